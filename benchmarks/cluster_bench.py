#!/usr/bin/env python3
"""Measurement side of benchmarks/cluster_bench.sh (which starts and stops the processes).

  cluster_bench.py sample --metrics URL... --pids PID... [--other-pids PID...]
                          [--status URL --nodes K] [--cluster-ports P...] --events E
                          [--timeout S] --out FILE
      Polls every node's /metrics every 100 ms until the records read by the sources
      (keyflow_records_in_total{operator="source"}, summed over the nodes) and the records
      folded in by the aggregate (plus dead letters) both reach E. Records the first poll
      that saw a record read, the poll at which /status first showed every region running
      on its owner, the poll at which all E were read and the one at which all E were
      processed; the CPU time (/proc/PID/stat) of the nodes and of the other processes at
      those polls; the peak RSS (VmHWM) of every node at the end; with --cluster-ports the
      bytes sent over the TCP connections on those ports (ss -tni) at those polls and
      --bytes-window seconds (default 3) after the regions all ran. Exit 1 (with the
      reason) if a node exits, does not answer within 30 s or the records are not all
      processed within --timeout.
  cluster_bench.py covered URL N [--timeout S]
      Waits until the node at URL sees N members alive and every region running on its
      owner (as tests/integration/cluster_status.py covered); exit 1 on timeout.
  cluster_bench.py running URL
      Prints "region:partition,partition ..." of the regions the node at URL runs.
  cluster_bench.py watch --redis HOST:PORT --keys P:KEY,KEY... [--interval-ms 20] --out FILE
      Until SIGTERM: polls the version field `_v` of profile:<KEY> for each key and appends
      "epoch_ms partition key version" to FILE whenever it changes.
  cluster_bench.py failover --kill-ms T --victim N --moved R:P,P... --coordinator-log F
                            --log F... --watch FILE [--wait S] --out FILE
      The parts of one failover from the survivors' logs (lines at or after T) and the
      Redis watch file; see benchmarks/README.md.
  cluster_bench.py report --dir DIR [--json FILE]
      Prints the tables from the *.json files cluster_bench.sh left in DIR and writes the
      JSON summary.
"""
import argparse
import datetime
import glob
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
REGIONS = 6  # config/pipelines/cdp.yaml: one region per partition of "events" (6)


def now_ms():
    return time.time() * 1000.0


def fail(msg):
    print(f"cluster_bench.py: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- metrics, /proc, ss

SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')


def scrape(url):
    """{(name, labels): value} of a Prometheus text page."""
    with urllib.request.urlopen(url, timeout=2) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = SERIES.match(line)
        if m:
            try:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


def metric_sum(series, name, label=None):
    return sum(v for (n, l), v in series.items() if n == name and (label is None or label in l))


def cpu_seconds(pid):
    """utime + stime of a process, in seconds; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def proc_status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    # a zombie (exited, not yet reaped by the shell) is gone too
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def ss_bytes(ports):
    """Bytes sent over the TCP sockets whose local or peer port is one of `ports`: both ends
    of every connection between the nodes are on this host, so the sum over all sockets is
    the traffic in both directions. Returns (bytes, sockets)."""
    ports = {str(p) for p in ports}
    out = subprocess.run(["ss", "-tni"], capture_output=True, text=True, check=True).stdout
    total = sockets = 0
    match = False
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            cols = line.split()
            match = False
            if len(cols) >= 5 and cols[0] == "ESTAB":
                local, peer = cols[3].rsplit(":", 1)[1], cols[4].rsplit(":", 1)[1]
                match = local in ports or peer in ports
            continue
        if match:
            m = re.search(r"\bbytes_sent:(\d+)", line)
            total += int(m.group(1)) if m else 0
            sockets += 1
            match = False
    return total, sockets


def fetch_status(url):
    req = urllib.request.Request(
        url, headers={"Authorization": "Bearer " + os.environ.get("KEYFLOW_ADMIN_TOKEN", "")})
    with urllib.request.urlopen(req, timeout=2) as r:
        return json.load(r)


def is_covered(s, want_alive):
    """As tests/integration/cluster_status.py covered."""
    live = [m for m in s["members"] if m["alive"]]
    if len(live) != want_alive:
        return False
    owners = {r["region"]: (r["node"], r["generation"]) for r in s["assignment"]["regions"]}
    if not owners or len(owners) != len(s["regions"]):
        return False
    running = {}
    for m in live:
        for r in m["running"]:
            running.setdefault(r["region"], []).append((m["id"], r["generation"]))
    return all(running.get(region) == [owner] for region, owner in owners.items())


# ---------------------------------------------------------------- sample

def cmd_sample(a):
    n = len(a.metrics)
    last_src = [0.0] * n
    last_done = [0.0] * n
    answered = [False] * n
    start = now_ms()
    res = {"events": a.events, "nodes": n, "t_start_ms": start, "t_first_ms": None,
           "n_first": None, "t_covered_ms": None, "n_covered": None, "t_read_all_ms": None,
           "t_processed_all_ms": None, "polls": 0, "assignment_version_at_covered": None}
    cpu_at = {}      # label -> (nodes cpu s, others cpu s)
    bytes_at = {}    # label -> (bytes, sockets, t)

    def cpu_now():
        nodes = sum(cpu_seconds(p) or 0.0 for p in a.pids)
        others = sum(cpu_seconds(p) or 0.0 for p in a.other_pids)
        return nodes, others

    def mark(label, t):
        cpu_at[label] = cpu_now()
        if a.cluster_ports:
            b, s = ss_bytes(a.cluster_ports)
            bytes_at[label] = (b, s, t)

    while True:
        t = now_ms()
        if t - start > a.timeout * 1000:
            fail(f"timed out after {a.timeout} s: {sum(last_src):.0f} of {a.events} records "
                 f"read, {sum(last_done):.0f} processed")
        for i, pid in enumerate(a.pids):
            if not alive(pid):
                fail(f"node {i + 1} (pid {pid}) exited")
        for i, url in enumerate(a.metrics):
            try:
                s = scrape(url)
                answered[i] = True
                last_src[i] = metric_sum(s, "keyflow_records_in_total", 'operator="source"')
                last_done[i] = (metric_sum(s, "keyflow_records_in_total", 'operator="aggregate"')
                                + metric_sum(s, "keyflow_dead_letters_total"))
            except Exception:  # not up yet, or a scrape in the middle of a restart
                if not answered[i] and t - start > 30000:
                    fail(f"node {i + 1} did not answer on {url} within 30 s")
        res["polls"] += 1
        src, done = sum(last_src), sum(last_done)
        if res["t_first_ms"] is None and src > 0:
            res["t_first_ms"], res["n_first"] = t, src
            mark("first", t)
        if a.status and res["t_covered_ms"] is None:
            try:
                st = fetch_status(a.status)
                if is_covered(st, a.nodes):
                    res["t_covered_ms"], res["n_covered"] = t, src
                    res["assignment_version_at_covered"] = st["assignment"].get("version")
                    mark("covered", t)
            except Exception:
                pass
        if res["t_read_all_ms"] is None and src >= a.events:
            res["t_read_all_ms"] = t
            mark("read_all", t)
        if done >= a.events and src >= a.events:
            res["t_processed_all_ms"] = t
            mark("processed_all", t)
            break
        time.sleep(max(0.0, 0.1 - (now_ms() - t) / 1000.0))
    if a.status and res["t_covered_ms"] is None:
        # Done before the regions settled (a rebalance while starting): wait for them.
        deadline = time.time() + 30
        while res["t_covered_ms"] is None and time.time() < deadline:
            try:
                st = fetch_status(a.status)
                if is_covered(st, a.nodes):
                    res["t_covered_ms"], res["n_covered"] = now_ms(), sum(last_src)
                    res["assignment_version_at_covered"] = st["assignment"].get("version")
            except Exception:
                pass
            time.sleep(0.1)
        if res["t_covered_ms"] is None:
            fail("all records were processed but /status never showed every region running on "
                 "its owner")
    res["records_read"] = sum(last_src)
    res["records_processed"] = sum(last_done)
    res["cpu_s"] = {k: {"nodes": v[0], "others": v[1]} for k, v in cpu_at.items()}
    res["cpu_s_total_per_node"] = [cpu_seconds(p) for p in a.pids]
    res["peak_rss_kib"] = [proc_status_kb(p, "VmHWM") for p in a.pids]
    res["region_starts"] = None
    try:
        res["region_starts"] = sum(metric_sum(scrape(u), "keyflow_region_starts_total")
                                   for u in a.metrics)
    except Exception:
        pass
    # A clean start: the first assignment already spread the regions over all the nodes and
    # each region started once (else some records were read twice, by an old and a new owner).
    res["clean_start"] = (res["assignment_version_at_covered"] == 1
                          and res["region_starts"] == REGIONS
                          and res["t_covered_ms"] <= res["t_processed_all_ms"])
    if a.cluster_ports and res["t_covered_ms"] is not None:
        # The heartbeat rate over at least --bytes-window seconds after every region ran (a
        # short run may be done sooner; heartbeats do not depend on the load).
        rest = res["t_covered_ms"] + a.bytes_window * 1000 - now_ms()
        if rest > 0:
            time.sleep(rest / 1000.0)
        mark("rate_end", now_ms())
    if a.cluster_ports:
        res["cluster_bytes"] = {k: {"bytes": v[0], "sockets": v[1], "t_ms": v[2]}
                                for k, v in bytes_at.items()}
        res["cluster_ports"] = a.cluster_ports
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    return 0


# ---------------------------------------------------------------- covered, running

def cmd_covered(a):
    deadline = time.time() + a.timeout
    last = None
    while time.time() < deadline:
        try:
            last = fetch_status(a.url)
            if is_covered(last, a.n):
                return 0
        except Exception as e:
            last = str(e)
        time.sleep(0.1)
    print(f"cluster_bench.py: {a.url}: regions not all running on {a.n} live nodes after "
          f"{a.timeout} s; last status: {json.dumps(last)[:2000]}", file=sys.stderr)
    return 1


def cmd_running(a):
    s = fetch_status(a.url)
    parts = {r["region"]: r.get("partitions", []) for r in s["regions"]}
    print(" ".join(f'{r["region"]}:{",".join(map(str, parts.get(r["region"], [])))}'
                   for r in s["running"]))
    return 0


# ---------------------------------------------------------------- watch

def cmd_watch(a):
    import redis  # /usr/bin/python3 has it

    host, port = a.redis.rsplit(":", 1)
    r = redis.Redis(host=host, port=int(port), socket_timeout=2)
    keys = []  # (partition, key)
    for spec in a.keys:
        p, ks = spec.split(":", 1)
        keys += [(int(p), k) for k in ks.split(",") if k]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    seen = {}
    with open(a.out, "a", buffering=1) as out:
        while not stop:
            t = now_ms()
            try:
                pipe = r.pipeline(transaction=False)
                for _, k in keys:
                    pipe.hget(f"profile:{k}", "_v")
                vals = pipe.execute()
            except Exception:
                time.sleep(a.interval_ms / 1000.0)
                continue
            for (p, k), v in zip(keys, vals):
                if v is not None and seen.get(k) != v:
                    seen[k] = v
                    out.write(f"{t:.0f} {p} {k} {v.decode()}\n")
            time.sleep(max(0.0, a.interval_ms / 1000.0 - (now_ms() - t) / 1000.0))
    return 0


# ---------------------------------------------------------------- failover

LOG_TS = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\] \[[^]]*\] \[[^]]*\] (.*)$")
# "silent for N ms" (failure timeout) or "its connection closed and its port refuses
# connections" (the process is gone: detected without waiting for the timeout).
DEAD = re.compile(r"cluster: node (\d+) \(.*\) is dead: (?:silent for (\d+) ms|its connection closed)")
ASSIGN = re.compile(r"cluster: new assignment v(\d+) over (\d+) live node\(s\):(.*)")
ADOPT = re.compile(r"cluster: assignment v(\d+) from node (\d+)")
STARTED = re.compile(r"cluster: region (\d+) generation (\d+) started from (.*) in (\d+) ms")


def log_ms(stamp):
    # spdlog writes the machine's local time; a naive datetime's timestamp() reads it as such
    return datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp() * 1000.0


def read_log(path, since_ms):
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = LOG_TS.match(line.rstrip("\n"))
                if m:
                    t = log_ms(m.group(1))
                    if t >= since_ms:
                        out.append((t, m.group(2)))
    except OSError:
        pass
    return out


def analyze_failover(a, moved):
    kill = a.kill_ms
    r = {"kill_ms": kill, "victim": a.victim, "moved_regions": sorted(moved),
         "failure_timeout_ms": a.failure_timeout_ms}
    dead = []
    for path in a.log:
        for t, msg in read_log(path, kill):
            m = DEAD.search(msg)
            if m and int(m.group(1)) == a.victim:
                silent = int(m.group(2)) if m.group(2) else -1  # -1: refused, no timeout
                dead.append((t, silent, os.path.basename(path)))
                break
    if not dead:
        return r, "no survivor declared node %d dead" % a.victim
    dead.sort()
    t_dead, silent, who = dead[0]
    r.update(detected_ms=t_dead - kill, detected_by=who, silent_ms_at_detection=silent,
             detected_ms_by={w: t - kill for t, _, w in dead})
    t_assign = None
    for t, msg in read_log(a.coordinator_log, kill):
        m = ASSIGN.search(msg)
        if m and t >= t_dead:
            t_assign = t
            r.update(assignment_version=int(m.group(1)), assignment=m.group(3).strip())
            break
    if t_assign is None:
        return r, "the coordinator made no new assignment"
    r["assigned_ms"] = t_assign - kill
    starts = {}
    for path in a.log:
        for t, msg in read_log(path, t_assign):
            m = STARTED.search(msg)
            if m and int(m.group(1)) in moved and int(m.group(1)) not in starts:
                starts[int(m.group(1))] = {
                    "region": int(m.group(1)), "generation": int(m.group(2)),
                    "node_log": os.path.basename(path), "from": m.group(3),
                    "restore_ms": int(m.group(4)), "started_ms": t - kill,
                    "began_ms": t - int(m.group(4)) - kill}
    r["regions"] = [starts[k] for k in sorted(starts)]
    missing = sorted(set(moved) - set(starts))
    if missing:
        return r, "moved region(s) %s did not start on a survivor" % missing
    last = max(starts.values(), key=lambda s: s["started_ms"])
    r["running_again_ms"] = last["started_ms"]
    r["parts_ms"] = {
        "detect": r["detected_ms"],
        "assign": r["assigned_ms"] - r["detected_ms"],
        "start_wait": last["began_ms"] - r["assigned_ms"],
        "restore": last["restore_ms"],
    }
    r["restore_ms_max"] = max(s["restore_ms"] for s in starts.values())
    # Output again: for each moved partition, the first newer profile version that a hot
    # customer of it got in Redis after the new assignment.
    first = {}
    moved_parts = set(p for ps in moved.values() for p in ps)
    try:
        with open(a.watch) as f:
            for line in f:
                t, p, _k, _v = line.split()
                t, p = float(t), int(p)
                if p in moved_parts and t >= t_assign and p not in first:
                    first[p] = t
    except (OSError, ValueError):
        pass
    r["output_again_by_partition_ms"] = {str(p): first[p] - kill for p in sorted(first)}
    if moved_parts and set(first) == moved_parts:
        r["output_again_ms"] = max(first.values()) - kill
    else:
        r["output_again_ms"] = None
        return r, "waiting for output of partition(s) %s" % sorted(moved_parts - set(first))
    return r, None


def cmd_failover(a):
    moved = {}
    for spec in a.moved:
        region, parts = spec.split(":", 1)
        moved[int(region)] = [int(p) for p in parts.split(",") if p]
    deadline = time.time() + a.wait
    while True:
        r, why = analyze_failover(a, moved)
        if why is None or time.time() >= deadline:
            break
        time.sleep(0.2)
    with open(a.out, "w") as f:
        json.dump(r, f, indent=1)
    if why is not None:
        if "running_again_ms" in r:  # complete; only the output check came up empty
            print(f"cluster_bench.py: warning: failover at {a.kill_ms:.0f}: {why}",
                  file=sys.stderr)
            return 0
        print(f"cluster_bench.py: failover at {a.kill_ms:.0f} did not complete: {why}",
              file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- report

def fmt_rate(x):
    if x is None:
        return "-"
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x / 1e3:.1f} k"


def fmt_bytes(b):
    if b is None:
        return "-"
    for unit, div in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= div:
            return f"{b / div:.1f} {unit}"
    return f"{b:.0f} B"


def table(header, rows):
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def throughput_row(s):
    e = s["events"]
    t0, n0, t1 = s["t_first_ms"], s["n_first"], s["t_read_all_ms"]
    out = {"nodes": s["nodes"], "events": e}
    out["first_to_last_s"] = (t1 - t0) / 1000.0
    out["events_per_s"] = (e - n0) / ((t1 - t0) / 1000.0) if t1 > t0 else None
    tc, nc = s.get("t_covered_ms"), s.get("n_covered")
    out["covered_to_last_s"] = (t1 - tc) / 1000.0 if tc else None
    out["events_per_s_from_covered"] = ((e - nc) / ((t1 - tc) / 1000.0)
                                        if tc and t1 > tc else None)
    out["first_read_to_covered_s"] = (tc - t0) / 1000.0 if tc else None
    out["processed_all_after_last_read_s"] = (s["t_processed_all_ms"] - t1) / 1000.0
    c0, c1 = s["cpu_s"].get("first"), s["cpu_s"].get("read_all")
    if c0 and c1:
        span = (t1 - t0) / 1000.0
        out["node_cpu_s"] = c1["nodes"] - c0["nodes"]
        out["node_cores"] = out["node_cpu_s"] / span if span > 0 else None
        out["other_cores"] = (c1["others"] - c0["others"]) / span if span > 0 else None
        out["cpu_us_per_event"] = out["node_cpu_s"] / (e - n0) * 1e6 if e > n0 else None
    out["cpu_s_total_per_node"] = s["cpu_s_total_per_node"]
    out["peak_rss_mib_per_node"] = [round(k / 1024.0, 1) if k else None
                                    for k in s["peak_rss_kib"]]
    out["region_starts"] = s.get("region_starts")
    out["clean_start"] = s.get("clean_start")
    out["assignment_version_at_covered"] = s.get("assignment_version_at_covered")
    return out


def stats(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"min": min(v), "median": statistics.median(v), "max": max(v), "n": len(v)}


def cmd_report(a):
    d = a.dir
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    summary = {"meta": meta, "throughput": [], "inter_node": None, "failover": None}

    tp = []
    for k in (1, 2, 3):
        p = os.path.join(d, f"tp{k}.json")
        if os.path.exists(p):
            with open(p) as f:
                s = json.load(f)
            tp.append((s, throughput_row(s)))
    if tp:
        print()
        print(f"Throughput: {meta['events']:,} cdp events preloaded into Kafka (6 partitions, "
              f"{meta['customers']} customers, zipf {meta['zipf']}), then K nodes started with "
              f"--workers 1 each (6 regions over K nodes); records read = "
              f"keyflow_records_in_total{{operator=\"source\"}} summed over the nodes, polled "
              f"every 100 ms")
        rows = []
        for s, r in tp:
            summary["throughput"].append(r)
            rss = " / ".join(f"{x:.0f}" if x else "-" for x in r["peak_rss_mib_per_node"])
            rows.append([r["nodes"], fmt_rate(r["events_per_s"]),
                         f"{r['first_to_last_s']:.2f}", fmt_rate(r["events_per_s_from_covered"]),
                         f"{r['first_read_to_covered_s']:.2f}"
                         if r["first_read_to_covered_s"] is not None else "-",
                         f"{r.get('node_cores', 0):.2f}", f"{r.get('other_cores', 0):.2f}",
                         f"{r.get('cpu_us_per_event', 0):.1f}",
                         " / ".join(f"{x:.1f}" for x in r["cpu_s_total_per_node"] if x is not None),
                         rss,
                         "-" if r["region_starts"] is None else f"{r['region_starts']:.0f}",
                         "yes" if s["clean_start"] else "NO"])
        table(["nodes", "events/s (first->last read)", "seconds",
               "events/s (all regions running->last)", "first read->all running s",
               "node cores", "broker+redis cores", "node CPU us/event", "CPU s per node (process)",
               "peak RSS per node MiB", "region starts", "clean start"], rows)
        base = tp[0][1]["events_per_s"]
        if base:
            print("speed-up over 1 node (first->last read): " + ", ".join(
                f"{r['nodes']} node{'s' if r['nodes'] > 1 else ''} "
                f"{r['events_per_s'] / base:.2f}x" for _, r in tp))
        if meta["mode"] == "short":
            print("(short mode: the reading takes well under a second; these rates are not "
                  "meaningful, the run only checks that everything works)")

    s3 = next((s for s, r in tp if s["nodes"] == 3 and s.get("cluster_bytes")), None)
    if s3:
        b = s3["cluster_bytes"]
        end = b.get("processed_all")
        cov = b.get("covered")
        rate_end = b.get("rate_end", end)
        inter = {"bytes": end["bytes"], "sockets": end["sockets"], "events": s3["events"],
                 "bytes_per_record": end["bytes"] / s3["events"],
                 "span_s": (end["t_ms"] - s3["t_start_ms"]) / 1000.0}
        if cov and rate_end["t_ms"] > cov["t_ms"]:
            window = (rate_end["t_ms"] - cov["t_ms"]) / 1000.0
            inter["bytes_per_s"] = (rate_end["bytes"] - cov["bytes"]) / window
            inter["bytes_per_s_window_s"] = window
        summary["inter_node"] = inter
        print()
        print("Bytes between the nodes (3-node run): bytes_sent of every TCP socket on a cluster "
              "port (ss -tni; both ends of each connection are on this host), from the nodes' "
              "start until all records were processed; bytes/s over the %.1f s after every "
              "region ran; bytes per record = bytes total / %s records."
              % (inter.get("bytes_per_s_window_s", 0), f"{s3['events']:,}"))
        if meta.get("spread"):
            print("A job spread over the nodes (--spread): sources send every record to the "
                  "partition actor of its key group on whichever node owns it, so this is "
                  "mostly record batches over the CAF middleman (BASP), plus checkpoint "
                  "barriers, credits and heartbeats.")
        else:
            print("Records do NOT cross nodes in this mode: every region (= source partition; "
                  "the pipeline is partitioned_by_key) runs wholly on one node, so this "
                  "traffic is the membership heartbeats (every --heartbeat-ms %d ms to each "
                  "peer); per record it is time-based, not record-based." % meta["heartbeat_ms"])
        table(["sockets (2 per connection)", "bytes total", "since start s", "bytes/s",
               "bytes per record"],
              [[inter["sockets"], f"{inter['bytes']:,} ({fmt_bytes(inter['bytes'])})",
                f"{inter['span_s']:.1f}",
                f"{inter.get('bytes_per_s', 0):,.0f}", f"{inter['bytes_per_record']:.4f}"]])

    reps = []
    for p in sorted(glob.glob(os.path.join(d, "fo*.json")),
                    key=lambda x: int(re.search(r"fo(\d+)", x).group(1))):
        with open(p) as f:
            reps.append(json.load(f))
    if reps:
        print()
        print(f"Failover: 3 nodes, keyflow-gen at {meta['failover_rate']} events/s, kill -9 of "
              f"node {reps[0]['victim']} (not the coordinator) {len(reps)} time(s) (restarted "
              f"and covered again in between); --heartbeat-ms {meta['heartbeat_ms']} "
              f"--failure-timeout-ms {meta['failure_timeout_ms']} (keyflowd's defaults: 500 "
              "and 3000 ms). A killed process is detected when its connection closes and its "
              "port refuses a new one (ms); a stalled or unreachable node only after the "
              "failure timeout (at the first heartbeat tick after that much silence). Times "
              "in ms after the kill, parts in ms.")
        rows = []
        cols = ["detect", "assign", "start_wait", "restore", "running_again", "output_again"]
        per = {c: [] for c in cols}
        for i, r in enumerate(reps, 1):
            parts = r.get("parts_ms", {})
            vals = {"detect": parts.get("detect"), "assign": parts.get("assign"),
                    "start_wait": parts.get("start_wait"), "restore": parts.get("restore"),
                    "running_again": r.get("running_again_ms"),
                    "output_again": r.get("output_again_ms")}
            for c in cols:
                per[c].append(vals[c])
            restores = ", ".join(f"r{s['region']} {s['restore_ms']}" for s in r.get("regions", []))
            rows.append([i, " ".join(map(str, r["moved_regions"]))] +
                        [f"{vals[c]:.0f}" if vals[c] is not None else "-" for c in cols] +
                        [restores])
        st = {c: stats(per[c]) for c in cols}
        for k in ("min", "median", "max"):
            rows.append([k, ""] + [f"{st[c][k]:.0f}" if st[c] else "-" for c in cols] + [""])
        table(["rep", "moved regions", "detect", "assign", "start wait", "restore",
               "total: running again", "output again", "restore ms per moved region"], rows)
        print("detect = first 'is dead' line on a survivor - kill; assign = coordinator's 'new "
              "assignment' - detect; start wait = until the last moved region began restoring "
              "(the assignment reaches the other survivor with a heartbeat, which also waits "
              "until it has declared the node dead itself; nodes poll their assignment every "
              "50 ms); restore = that region's 'started ... in N ms' (checkpoint restore + "
              "pipeline start); total = its 'started' line - kill; output again = a newer "
              "profile version in Redis for every moved partition's hot customers (replay "
              "from the checkpoint has passed what the dead node had written).")
        summary["failover"] = {"failure_timeout_ms": meta["failure_timeout_ms"],
                               "heartbeat_ms": meta["heartbeat_ms"],
                               "rate": meta["failover_rate"], "reps": reps, "stats_ms": st}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
        print(f"\nJSON summary: {a.json}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--pids", nargs="+", type=int, required=True)
    s.add_argument("--other-pids", nargs="*", type=int, default=[])
    s.add_argument("--status")
    s.add_argument("--nodes", type=int, default=1)
    s.add_argument("--cluster-ports", nargs="*", type=int, default=[])
    s.add_argument("--bytes-window", type=float, default=3)
    s.add_argument("--events", type=int, required=True)
    s.add_argument("--timeout", type=float, default=300)
    s.add_argument("--out", required=True)
    s = sub.add_parser("covered")
    s.add_argument("url")
    s.add_argument("n", type=int)
    s.add_argument("--timeout", type=float, default=60)
    s = sub.add_parser("running")
    s.add_argument("url")
    s = sub.add_parser("watch")
    s.add_argument("--redis", required=True)
    s.add_argument("--keys", nargs="+", required=True)
    s.add_argument("--interval-ms", type=float, default=20)
    s.add_argument("--out", required=True)
    s = sub.add_parser("failover")
    s.add_argument("--kill-ms", type=float, required=True)
    s.add_argument("--victim", type=int, required=True)
    s.add_argument("--moved", nargs="+", required=True)
    s.add_argument("--coordinator-log", required=True)
    s.add_argument("--log", nargs="+", required=True)
    s.add_argument("--watch", required=True)
    s.add_argument("--failure-timeout-ms", type=int, default=0)
    s.add_argument("--wait", type=float, default=15)
    s.add_argument("--out", required=True)
    s = sub.add_parser("report")
    s.add_argument("--dir", required=True)
    s.add_argument("--json")
    a = ap.parse_args()
    return {"sample": cmd_sample, "covered": cmd_covered, "running": cmd_running,
            "watch": cmd_watch, "failover": cmd_failover, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
