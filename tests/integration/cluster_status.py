#!/usr/bin/env python3
"""Reads keyflowd's /status (cluster mode) for the cluster tests.

  cluster_status.py covered URL N       exit 0 if the node at URL sees its assignment of all
                                        regions running, each on its owner with the assigned
                                        generation, and N members alive
  cluster_status.py running URL         prints this node's running regions as "region:gen ..."
  cluster_status.py coordinator URL     prints the coordinator's id
  cluster_status.py alive URL           prints the ids of the members the node sees alive
  cluster_status.py generations URL     prints "region:generation" of the assignment
"""
import json
import os
import sys
import urllib.request


def status(url):
    """keyflowd's /status, with the admin token of $KEYFLOW_ADMIN_TOKEN."""
    req = urllib.request.Request(
        url, headers={"Authorization": "Bearer " + os.environ.get("KEYFLOW_ADMIN_TOKEN", "")})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def main():
    cmd, url = sys.argv[1], sys.argv[2]
    try:
        s = status(url)
    except Exception as e:  # node down or not ready yet
        print(f"status {url}: {e}", file=sys.stderr)
        return 1
    if cmd == "covered":
        want_alive = int(sys.argv[3])
        alive = [m for m in s["members"] if m["alive"]]
        if len(alive) != want_alive:
            return 1
        owners = {r["region"]: (r["node"], r["generation"]) for r in s["assignment"]["regions"]}
        if not owners or len(owners) != len(s["regions"]):
            return 1
        running = {}
        for m in alive:
            for r in m["running"]:
                running.setdefault(r["region"], []).append((m["id"], r["generation"]))
        for region, owner in owners.items():
            if running.get(region) != [owner]:
                return 1
        return 0
    if cmd == "running":
        print(" ".join(f'{r["region"]}:{r["generation"]}' for r in s["running"]))
    elif cmd == "coordinator":
        print(s["coordinator"])
    elif cmd == "alive":
        print(" ".join(str(m["id"]) for m in s["members"] if m["alive"]))
    elif cmd == "generations":
        print(" ".join(f'{r["region"]}:{r["generation"]}' for r in s["assignment"]["regions"]))
    else:
        print(f"unknown command {cmd}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
