#!/usr/bin/python3
"""Input and exact check for the reference pipeline (config/pipelines/cdp.yaml) with
duplicates and customer entities, written by an independent Kafka client.

    cdp.py setup    --redis HOST:PORT              # customer:<id> hashes
    cdp.py generate --bootstrap HOST:PORT          # events to "events"
    cdp.py check    --bootstrap HOST:PORT --redis HOST:PORT [--metrics URL]

`generate` writes seeded keyflow.proto.Event records over skewed customers, out of order
within 5 s, each on a random partition; 4% of the valid events are sent twice (same bytes,
same event_id); some values are 0 (absent: not summed) or NaN (invalid_field); malformed
records do not parse or miss customer, event id or event time. `setup` gives a third of the
customers a "customer:<id>" hash with segment and tier, some only a segment.

`check` builds the same input and compares:
- the input topic holds exactly the generated records;
- dead letters: exactly one per malformed or non-finite record, with provenance;
- Redis "profile:<id>" for exactly the customers with valid events: count and sum over
  distinct events, greatest event time, segment and tier from the hash (else "unknown" and
  "none"), score = sigmoid(-6 + 0.04 count + 0.0001 sum) computed here, version;
- Kafka "activations": exactly one record per customer whose final score is >= 0.6 and none
  for others; each consistent (its score is the sigmoid of its own count and sum, >= 0.6,
  count and sum no more than the final ones, seq = count, the customer's segment). Where
  the threshold was crossed depends on how records were batched, so only that is checked;
- with --metrics: keyflow_duplicates_total{operator="dedup"} equals the duplicates sent.
Exits 0 only when everything matches, 1 when something differs, 2 when it cannot run.
"""

import collections
import math
import os
import random
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kfcheck  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
PROTO = os.path.join(ROOT, "config", "proto", "event.proto")
PIPELINE = "cdp"
T0 = 1767225600000
BOUND_MS = 5000
BIAS, W_COUNT, W_SUM, THRESHOLD = -6.0, 0.04, 0.0001, 0.6

Input = collections.namedtuple("Input", "records events duplicates dead customers")
Input.__doc__ = ("Generated input: Kafka records (key, value, partition), the distinct valid "
                 "events, the duplicates sent, expected dead letters, customer hashes.")


def build(pb, args):
    """The input for `args` (deterministic for the same options)."""
    rng = random.Random(args.seed)
    customers = {}
    for c in range(1, args.customers + 1):
        if c % 3 == 0:
            h = {"segment": rng.choice(["vip", "regular", "churn-risk"]),
                 "tier": rng.choice(["gold", "silver", "bronze"])}
            if c % 10 == 0:
                del h["tier"]
            customers[f"customer:c-{c:06d}"] = h
    events, dead = [], collections.Counter()
    for n in range(args.events):
        c = min(int(rng.paretovariate(0.9)), args.customers)
        if args.hot_share and rng.random() < args.hot_share:
            c = args.customers  # one customer takes this share of all events
        r = rng.random()
        value = (float("nan") if r < 0.003 else 0.0 if r < 0.05 else rng.randrange(1, 2001) * 0.25)
        e = pb.Event(event_id=f"e-{args.seed}-{n}", customer_id=f"c-{c:06d}",
                     event_time_ms=T0 + n * 20 + rng.randrange(0, 50),
                     type=rng.choice(["page_view", "add_to_cart", "purchase"]), value=value)
        if rng.random() < 0.2:
            e.attributes["channel"] = rng.choice(["web", "app", "store"])
        events.append(e)
    valid = [e for e in events if math.isfinite(e.value)]
    dups = rng.sample(valid, k=len(valid) * 4 // 100)
    if args.poison_suffix:
        # Events that make an operator fail (keyflowd's KEYFLOW_FAILPOINT): every copy sent
        # becomes a poison dead letter; they count nowhere.
        poison = [e for e in valid if e.event_id.endswith(args.poison_suffix)]
        for e in poison + [e for e in dups if e.event_id.endswith(args.poison_suffix)]:
            dead[(e.SerializeToString(), "poison", args.poison_operator)] += 1
        valid = [e for e in valid if not e.event_id.endswith(args.poison_suffix)]
    ordered = kfcheck.bounded_disorder(events + dups, lambda e: e.event_time_ms, BOUND_MS, rng)
    records = [(e.customer_id.encode(), e.SerializeToString()) for e in ordered]
    for e in events:
        if not math.isfinite(e.value):
            dead[(e.SerializeToString(), "invalid_field", "validate")] += 1
    for i in range(max(1, len(events) // 100)):
        e = pb.Event()
        e.CopyFrom(rng.choice(valid))
        e.event_id = f"bad-{args.seed}-{i}"
        kind, key = i % 4, e.customer_id.encode()
        if kind == 0:
            value, code = kfcheck.undecodable(e.SerializeToString(), rng), "decode_error"
        elif kind == 1:
            e.customer_id, key = "", None
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 2:
            e.event_id = ""
            value, code = e.SerializeToString(), "missing_field"
        else:
            e.event_time_ms = 0
            value, code = e.SerializeToString(), "missing_field"
        dead[(value, code, "validate")] += 1
        records.insert(rng.randrange(len(records) + 1), (key, value))
    if args.key_partitioned:  # one customer, one partition (a stable hash of the key)
        records = [(k, v, zlib.crc32(k or b"") % args.partitions) for k, v in records]
    else:
        records = [(k, v, rng.randrange(args.partitions)) for k, v in records]
    return Input(records, valid, len(dups), dead, customers)


def score(count, total):
    """The pipeline's score: sigmoid(bias + 0.04 count + 0.0001 sum), summed in its order."""
    z = BIAS
    z += W_COUNT * float(count)
    z += W_SUM * (total if total is not None else 0.0)
    return 1.0 / (1.0 + math.exp(-z))


def expected_profiles(inp):
    """{customer: profile fields} over the distinct valid events."""
    per = collections.defaultdict(list)
    for e in inp.events:
        per[e.customer_id].append(e)
    out = {}
    for c, es in per.items():
        values = [e.value for e in es if e.value != 0]  # 0 = absent: not summed
        total = sum(values) if values else None          # quarters: exact in any order
        h = inp.customers.get(f"customer:{c}", {})
        out[c] = {"count": len(es), "sum": total,
                  "last_event_time_ms": max(e.event_time_ms for e in es),
                  "segment": h.get("segment", "unknown"), "tier": h.get("tier", "none"),
                  "score": score(len(es), total)}
    return out


def compare(args, inp):
    """Reads input, dead letters, profiles and activations; returns the list of Diffs."""
    profiles = expected_profiles(inp)
    inputs = kfcheck.read_topic(args.bootstrap, "events", args.timeout_s)
    d_in = kfcheck.diff_multisets(collections.Counter(v for _, v, _ in inp.records),
                                  collections.Counter(r.value for r in inputs), "input records")
    letters, bad = kfcheck.read_dead_letters(args.bootstrap, "events-dlq", args.timeout_s)
    if args.restarted:  # a letter written again after a restart counts once per input record
        letters = list({(dl.source_partition, dl.source_offset): dl for dl in letters}.values())
    d_dead = kfcheck.diff_dead_letters(inp.dead, letters, inputs, "events", PIPELINE)
    d_dead.different += [((p, o), {"record": ("DeadLetter", why)}) for p, o, why in bad]
    for dl in letters:
        if dl.error_code == "poison" and (dl.attempts != args.poison_attempts or
                                          dl.pipeline_version != 2 or
                                          "failpoint" not in dl.error_message):
            d_dead.different.append(((dl.source_partition, dl.source_offset), {
                "poison envelope": (f"attempts {args.poison_attempts}, version 2, the error",
                                    (dl.attempts, dl.pipeline_version, dl.error_message))}))

    want = {f"profile:{c}": dict(p, _v=f"{p['last_event_time_ms']:020}:{p['count']:020}:"
                                       f"{0:020}")
            for c, p in profiles.items()}
    d_redis = kfcheck.diff_hashes(want, kfcheck.read_redis_hashes(args.redis, "profile:*"),
                                  "profiles in Redis")

    objects, bad = kfcheck.read_json_topic(args.bootstrap, "activations", args.timeout_s)
    activated = {c for c, p in profiles.items() if p["score"] >= THRESHOLD}
    d_act = kfcheck.diff_multisets(collections.Counter(activated),
                                   collections.Counter(o.get("key") for o in objects),
                                   "activated customers", tolerate_duplicates=args.restarted)
    for o in objects:
        c, final = o.get("key"), profiles.get(o.get("key"))
        if final is None:
            continue
        count, total = o.get("count"), o.get("sum")
        problems = {}
        if type(count) is not int or not 0 < count <= final["count"] or o.get("seq") != count:
            problems["count/seq"] = (f"1..{final['count']} = seq", (count, o.get("seq")))
        elif total is not None and (type(total) not in (int, float) or
                                    final["sum"] is None or total > final["sum"]):
            problems["sum"] = (f"<= {final['sum']}", total)
        elif type(o.get("score")) not in (int, float) or \
                float(o["score"]) != score(count, None if total is None else float(total)) \
                or o["score"] < THRESHOLD:
            problems["score"] = ("sigmoid of its count and sum, >= 0.6", o.get("score"))
        if o.get("segment") != final["segment"]:
            problems["segment"] = (final["segment"], o.get("segment"))
        if problems:
            d_act.different.append((c, problems))
    d_act.different += [((p, o), {"record": ("JSON", why)}) for p, o, why in bad]
    diffs = [d_in, d_dead, d_redis, d_act]
    if args.metrics:
        got = kfcheck.metric_sum(args.metrics, "keyflow_duplicates_total", operator="dedup")
        diffs.append(kfcheck.diff_value("keyflow_duplicates_total", inp.duplicates, int(got)))
    return diffs


def main():
    """Command line."""
    def options(c):
        c.add_argument("--seed", type=int, default=31, help="randomness (default: %(default)s)")
        c.add_argument("--events", type=int, default=30000,
                       help="distinct events, valid and NaN-valued (default: %(default)s)")
        c.add_argument("--customers", type=int, default=400,
                       help="customer ids c-000001 ... (default: %(default)s)")
        c.add_argument("--flush-event", action="store_true",
                       help="generate: also write one event of customer c-flush, far in the "
                            "future, to every partition (its watermark fires every window)")
        c.add_argument("--key-partitioned", action="store_true",
                       help="write each customer's events to one partition (a cluster node's "
                            "regions need it) instead of random ones")
        c.add_argument("--hot-share", type=float, default=0.0,
                       help="share of the events that go to the last customer (a hot key)")
        c.add_argument("--restarted", action="store_true",
                       help="keyflowd restarted from checkpoints: tolerate repeats of "
                            "activations and dead letters (at-least-once Kafka outputs); each "
                            "input record must still have exactly its expected dead letter")
        c.add_argument("--poison-suffix", default="",
                       help="valid events whose event_id ends with this make an operator fail "
                            "(keyflowd runs with KEYFLOW_FAILPOINT) and must be poison dead "
                            "letters")
        c.add_argument("--poison-operator", default="aggregate",
                       help="operator the poison events fail (default: %(default)s)")
        c.add_argument("--poison-attempts", type=int, default=3,
                       help="attempts a poison dead letter must record (default: %(default)s)")

    args = kfcheck.seed_parser(__doc__, "write the customer:<id> hashes to Redis",
                               "write the events to Kafka", "events", options,
                               "keyflowd /metrics URL: also check the duplicate count (only for "
                               "a run without restarts)").parse_args()

    def setup(pb, inp):
        kfcheck.set_redis_hashes(args.redis, inp.customers)
        print(f"cdp setup: {len(inp.customers)} customer hashes")
        return 0

    def generate(pb, inp):
        records = list(inp.records)
        if args.flush_event:  # one valid event far in the future on every partition
            e = pb.Event(event_id="flush", customer_id="c-flush", event_time_ms=T0 + 10**9,
                         type="page_view", value=1.0)
            records += [(b"c-flush", e.SerializeToString(), p) for p in range(args.partitions)]
        n = kfcheck.produce(args.bootstrap, "events", records)
        print(f"cdp generate: {n} records ({len(inp.events)} valid events, "
              f"{inp.duplicates} duplicates, {sum(inp.dead.values())} dead letters expected)")
        return 0

    def check(pb, inp):
        diffs = kfcheck.wait_for_match(lambda: compare(args, inp), args.wait_s)
        profiles = expected_profiles(inp)
        return kfcheck.report_all(
            diffs, "cdp check",
            f"{len(inp.events)} valid events, {inp.duplicates} duplicates, "
            f"{sum(inp.dead.values())} dead letters; {len(profiles)} profiles, "
            f"{sum(1 for p in profiles.values() if p['score'] >= THRESHOLD)} activated")

    return kfcheck.run_seed("cdp", args, PROTO, build,
                            {"setup": setup, "generate": generate, "check": check})

if __name__ == "__main__":
    sys.exit(main())
