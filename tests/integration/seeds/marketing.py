#!/usr/bin/python3
"""Input and exact check for the marketing pipeline (config/pipelines/marketing.yaml).

    marketing.py setup    --redis HOST:PORT         # campaign:<id> hashes
    marketing.py generate --bootstrap HOST:PORT     # interactions to "interactions"
    marketing.py check    --bootstrap HOST:PORT --redis HOST:PORT [--metrics URL]

`generate` writes seeded interactions of many users with campaigns. Each user's event
times strictly increase, so "the latest interaction" is unambiguous, but the records are
written out of order within 10 s (a user's newer interaction often reaches Kafka before an
older one), 3% of them twice, each on a random partition. About a tenth name a campaign
that has no hash (policy on_missing: dead_letter); some values are NaN or infinite
(invalid_field); malformed records do not parse or miss a required field. One campaign's
cost is not a number and one has no affinity: the enrich defaults (0) apply.

`check` builds the same input and compares:
- the input topic holds exactly the generated records;
- dead letters: exactly one per malformed or non-finite record (operator validate) and one
  per copy of an interaction whose campaign does not exist (operator campaign, error
  enrich_missing), with provenance;
- Redis "engagement:<user>": the user's latest enriched interaction (greatest event time),
  its campaign features and propensity = sigmoid(-2 + 0.01 value - 0.3 cost + 2.5
  affinity) computed here, version prefix = its event time, for exactly the users that
  have one;
- Kafka "offers": every copy of every enriched interaction with propensity >= 0.75
  (extra copies tolerated: at-least-once);
- with --metrics: keyflow_records_in_total of the score operator equals the enriched copies.
Exits 0 only when everything matches, 1 when something differs, 2 when it cannot run.
"""

import collections
import math
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kfcheck  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
PROTO = os.path.join(ROOT, "config", "proto", "marketing.proto")
PIPELINE = "marketing"
T0 = 1767225600000
HOUR_MS = 3600 * 1000
BOUND_MS = 10000
BIAS, WEIGHTS = -2.0, (("value", 0.01), ("cost", -0.3), ("affinity", 2.5))
THRESHOLD = 0.75
CAMPAIGNS, MISSING_CAMPAIGNS = 30, 5   # the last five have no hash

Input = collections.namedtuple("Input", "records interactions dead campaigns copies")
Input.__doc__ = ("Generated input: Kafka records (key, value, partition), the distinct valid "
                 "interactions, expected dead letters, campaign hashes, copies per event id.")


def make_campaigns(rng):
    """Campaign hashes {redis key: {field: text}}: cost, affinity, category; cmp-07's cost
    does not parse and cmp-08 has no affinity (defaults 0); cmp-26..cmp-30 do not exist."""
    out = {}
    for i in range(1, CAMPAIGNS - MISSING_CAMPAIGNS + 1):
        h = {"cost": f"{rng.randrange(50, 500) / 100:.2f}",
             "affinity": f"{rng.randrange(0, 100) / 100:.2f}",
             "category": rng.choice(["retail", "travel", "finance", "media"])}
        if i == 7:
            h["cost"] = "n/a"
        if i == 8:
            del h["affinity"]
        out[f"campaign:cmp-{i:02d}"] = h
    return out


def build(pb, args):
    """The input for `args` (deterministic for the same options)."""
    rng = random.Random(args.seed)
    campaigns = make_campaigns(rng)
    interactions, n = [], 0
    for u in range(1, args.users + 1):
        t = T0 + rng.randrange(0, HOUR_MS)
        for _ in range(rng.randint(1, 30)):
            n += 1
            t += rng.randrange(1, 60000)  # strictly increasing per user
            r = rng.random()
            value = (float("nan") if r < 0.005 else float("inf") if r < 0.007 else
                     0.0 if r < 0.3 else rng.randrange(1, 800) * 0.25)
            interactions.append(pb.Interaction(
                event_id=f"ix-{args.seed}-{n}", user_id=f"u-{u:04d}",
                campaign_id=f"cmp-{rng.randint(1, CAMPAIGNS):02d}",
                channel=rng.choice(["email", "web", "push", "sms"]),
                action=rng.choice(["impression", "click", "conversion"]),
                value=value, event_time_ms=t))
    dups = rng.sample(interactions, k=len(interactions) * 3 // 100)
    ordered = kfcheck.bounded_disorder(interactions + dups, lambda e: e.event_time_ms, BOUND_MS,
                                       rng)
    records = [(e.user_id.encode(), e.SerializeToString()) for e in ordered]
    copies = collections.Counter(e.event_id for e in ordered)

    dead = collections.Counter()
    for e in ordered:
        if not math.isfinite(e.value):
            dead[(e.SerializeToString(), "invalid_field", "validate")] += 1
        elif f"campaign:{e.campaign_id}" not in campaigns:
            dead[(e.SerializeToString(), "enrich_missing", "campaign")] += 1
    for i in range(max(1, len(interactions) // 80)):
        e = pb.Interaction()
        e.CopyFrom(rng.choice(interactions))
        e.event_id = f"bad-{args.seed}-{i}"
        kind, key = i % 6, e.user_id.encode()
        if kind == 0:
            value, code = kfcheck.undecodable(e.SerializeToString(), rng), "decode_error"
        elif kind == 1:
            e.user_id, key = "", None
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 2:
            e.event_id = ""
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 3:
            e.campaign_id = ""
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 4:
            e.event_time_ms = 0
            value, code = e.SerializeToString(), "missing_field"
        else:
            value, code = b"", "missing_field"
        dead[(value, code, "validate")] += 1
        records.insert(rng.randrange(len(records) + 1), (key, value))
    records = [(k, v, rng.randrange(args.partitions)) for k, v in records]
    return Input(records, interactions, dead, campaigns, copies)



def features(inp, e):
    """The enriched fields of an interaction: cost, affinity (doubles; unparsable or absent
    = 0.0) and category ("none" if absent)."""
    h = inp.campaigns[f"campaign:{e.campaign_id}"]

    def number(text):
        try:
            x = float(text)
        except (TypeError, ValueError):
            return 0.0
        return x if math.isfinite(x) else 0.0
    return {"cost": number(h.get("cost")), "affinity": number(h.get("affinity")),
            "category": h.get("category", "none")}


def propensity(value, f):
    """sigmoid(bias + sum of weight * feature), in the pipeline's weight order."""
    x = {"value": value, "cost": f["cost"], "affinity": f["affinity"]}
    z = BIAS
    for name, w in WEIGHTS:
        z += w * x[name]
    return 1.0 / (1.0 + math.exp(-z))


def enriched(inp):
    """Interactions that reach the score operator, with their output fields."""
    out = []
    for e in inp.interactions:
        if not math.isfinite(e.value) or f"campaign:{e.campaign_id}" not in inp.campaigns:
            continue
        f = features(inp, e)
        out.append((e, dict(f, event_id=e.event_id, campaign_id=e.campaign_id,
                            channel=e.channel, action=e.action,
                            value=e.value if e.value != 0 else None,
                            event_time_ms=e.event_time_ms, propensity=propensity(e.value, f))))
    return out


def compare(args, inp):
    """Reads input, dead letters, Redis and offers; returns the list of Diffs."""
    inputs = kfcheck.read_topic(args.bootstrap, "interactions", args.timeout_s)
    d_in = kfcheck.diff_multisets(collections.Counter(v for _, v, _ in inp.records),
                                  collections.Counter(r.value for r in inputs), "input records")
    letters, bad = kfcheck.read_dead_letters(args.bootstrap, "interactions-dlq", args.timeout_s)
    d_dead = kfcheck.diff_dead_letters(inp.dead, letters, inputs, "interactions", PIPELINE)
    d_dead.different += [((p, o), {"record": ("DeadLetter", why)}) for p, o, why in bad]

    rows = enriched(inp)
    latest = {}
    for e, fields in rows:
        if e.user_id not in latest or e.event_time_ms > latest[e.user_id].event_time_ms:
            latest[e.user_id] = e
    want = {f"engagement:{e.user_id}": dict(f) for e, f in rows if latest[e.user_id] is e}
    actual = kfcheck.read_redis_hashes(args.redis, "engagement:*")
    d_redis = kfcheck.diff_hashes(want, actual, "engagement hashes in Redis")
    for key, f in want.items():
        v = actual.get(key, {}).get("_v", "")
        if key in actual and not v.startswith(f"{f['event_time_ms']:020}:{0:020}:"):
            d_redis.different.append((key, {"_v": (f"{f['event_time_ms']:020}:{0:020}:...",
                                                   v)}))

    def offer(user, event_id, campaign_id, p):
        return (user, event_id, campaign_id, p)
    want_offers = collections.Counter()
    for e, f in rows:
        if f["propensity"] >= THRESHOLD:
            want_offers[offer(e.user_id, e.event_id, e.campaign_id, f["propensity"])] += \
                inp.copies[e.event_id]
    objects, bad = kfcheck.read_json_topic(args.bootstrap, "offers", args.timeout_s)
    got_offers = collections.Counter(
        offer(o.get("key"), o.get("event_id"), o.get("campaign_id"),
              float(o["propensity"]) if type(o.get("propensity")) in (int, float) else None)
        for o in objects)
    d_offers = kfcheck.diff_multisets(want_offers, got_offers, "offers in Kafka",
                                      tolerate_duplicates=True)
    d_offers.different += [((p, o), {"record": ("JSON", why)}) for p, o, why in bad]
    diffs = [d_in, d_dead, d_redis, d_offers]
    if args.metrics:
        copies = sum(inp.copies[e.event_id] for e, _ in rows)
        got = kfcheck.metric_sum(args.metrics, "keyflow_records_in_total", operator="propensity")
        diffs.append(kfcheck.diff_value("records scored", copies, int(got)))
    return diffs


def main():
    """Command line."""
    def options(c):
        c.add_argument("--seed", type=int, default=23, help="randomness (default: %(default)s)")
        c.add_argument("--users", type=int, default=500, help="users (default: %(default)s)")

    args = kfcheck.seed_parser(__doc__, "write the campaign:<id> hashes to Redis",
                               "write the interactions to Kafka", "interactions", options,
                               "keyflowd /metrics URL: also check how many records were scored "
                               "(only for a run without restarts)").parse_args()

    def setup(pb, inp):
        kfcheck.set_redis_hashes(args.redis, inp.campaigns)
        print(f"marketing setup: {len(inp.campaigns)} campaign hashes")
        return 0

    def generate(pb, inp):
        n = kfcheck.produce(args.bootstrap, "interactions", inp.records)
        print(f"marketing generate: {n} records ({len(inp.interactions)} interactions, "
              f"{sum(inp.copies.values()) - len(inp.interactions)} duplicates, "
              f"{sum(inp.dead.values())} dead letters expected)")
        return 0

    def check(pb, inp):
        diffs = kfcheck.wait_for_match(lambda: compare(args, inp), args.wait_s)
        by_code = collections.Counter(code for (_, code, _), n in inp.dead.items()
                                      for _ in range(n))
        return kfcheck.report_all(diffs, "marketing check",
                                  f"{len(inp.interactions)} interactions of {args.users} "
                                  f"users; dead letters by reason {dict(sorted(by_code.items()))}")

    return kfcheck.run_seed("marketing", args, PROTO, build,
                            {"setup": setup, "generate": generate, "check": check})

if __name__ == "__main__":
    sys.exit(main())
