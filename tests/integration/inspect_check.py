"""Checks of keyflowctl's snapshot inspection, shared by the admin tests.

  inspect_check.py profile INSPECT_JSON REDIS_HOST:PORT CUSTOMER
      `keyflowctl inspect SNAP --operator aggregate --key CUSTOMER --output json` shows the
      profile Redis holds for CUSTOMER, field by field.
  inspect_check.py diff DIFF_JSON
      `keyflowctl diff A B --operator aggregate --output json` shows changed keys and no
      removed one (B was taken after A while events arrived).
"""
import json
import sys


def profile(path, address, customer):
    import redis as redis_client
    snap = json.load(open(path))
    host, port = address.rsplit(":", 1)
    redis = {k.decode(): v.decode() for k, v in
             redis_client.Redis(host=host, port=int(port)).hgetall("profile:" + customer).items()}
    entries = [e for op in snap["operators"] if op["id"] == "aggregate" for e in op["entries"]]
    assert len(entries) == 1 and entries[0]["key"] == customer, entries
    value = entries[0]["value"]
    for field in ("count", "sum", "last_event_time_ms", "segment", "tier"):
        got, want = value[field], redis[field]
        same = abs(float(got) - float(want)) < 1e-6 * max(1.0, abs(float(want))) \
            if isinstance(got, (int, float)) else str(got) == want
        assert same, f"{customer} {field}: snapshot {got!r}, Redis {want!r}"


def diff(path):
    d = json.load(open(path))
    op = [o for o in d["operators"] if o["id"] == "aggregate"][0]
    assert op["changed"] > 0 and op["removed"] == 0, op
    print(f"   diff {d['a']}..{d['b']}: {op['added']} added, {op['changed']} changed, "
          f"{op['removed']} removed")


if __name__ == "__main__":
    if sys.argv[1] == "profile":
        profile(*sys.argv[2:5])
    else:
        diff(sys.argv[2])
