#!/usr/bin/python3
"""Input and exact check for the clickstream pipeline (config/pipelines/clickstream.yaml).

    clickstream.py setup    --redis HOST:PORT             # page:<id> hashes
    clickstream.py generate --bootstrap HOST:PORT         # page views to "pageviews"
    clickstream.py check    --bootstrap HOST:PORT --redis HOST:PORT [--metrics URL]

`generate` writes seeded page views of many users (sessions of 1-20 views; gaps inside a
session below 30 minutes, exactly 30 minutes - 1 ms now and then; gaps between sessions of
30 minutes or more, exactly 30 minutes now and then), 3% of them twice, out of order within
the pipeline's 10 s bound, each on a random partition; plus malformed records (bytes that do
not parse, missing user, event id, page or event time, empty and null values).

`check` builds the same input from the same options, computes the sessions here from the
views (dedup by event id, enrichment from the page hashes, 30-minute gap) and compares:
- the input topic holds exactly the generated records;
- the dead-letter topic holds exactly one envelope per malformed record, with its bytes,
  error code and provenance;
- Kafka "sessions": the record with the highest seq per (user, window_start_ms) equals the
  expected session, for every session that has fired (end - 1 <= final watermark = greatest
  valid event time - 10 s), and there is no other;
- Redis "session:<user>" holds the user's latest fired session (greatest end) with its
  version, for exactly the users that have one;
- with --metrics: keyflow_duplicates_total{operator="dedup"} equals the duplicates sent.
It re-reads the outputs every second until they match or --wait-s passes; exits 0 only
when everything matches, 1 when something differs, 2 when the check cannot run.
"""

import collections
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kfcheck  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
PROTO = os.path.join(ROOT, "config", "proto", "clickstream.proto")
PIPELINE = "clickstream"
T0 = 1767225600000          # 2026-01-01T00:00:00Z
HOUR = 3600 * 1000
GAP_MS = 30 * 60 * 1000     # session gap of the pipeline
BOUND_MS = 10000            # max_out_of_orderness_ms of the pipeline
CATEGORIES = ["news", "sport", "shop", "help", "video"]
SECTIONS = ["home", "article", "product", "checkout", "search"]
DEFAULT_CATEGORY, DEFAULT_SECTION = "unknown", "none"

Input = collections.namedtuple("Input", "records views duplicates dead pages")
Input.__doc__ = ("Generated input: Kafka records (key, value, partition), the distinct valid "
                 "views, the number of duplicates, the expected dead letters (Counter of "
                 "(bytes, error code, operator)), the page hashes.")


def make_pages(rng, count):
    """Page hashes {redis key: {field: text}}: most pages have category and section, some
    only one of them, some (every tenth) none at all."""
    pages = {}
    for i in range(1, count + 1):
        fields = {"category": rng.choice(CATEGORIES), "section": rng.choice(SECTIONS),
                  "title": f"Page {i}"}
        kind = i % 10
        if kind == 0:
            continue  # no hash: defaults
        if kind == 1:
            del fields["section"]
        elif kind == 2:
            del fields["category"]
        pages[f"page:p-{i:04d}"] = fields
    return pages


def build(pb, args):
    """The input for `args` (deterministic for the same options)."""
    rng = random.Random(args.seed)
    pages = make_pages(rng, args.pages)
    views, n = [], 0
    for u in range(1, args.users + 1):
        user = f"u-{u:04d}"
        t = T0 + rng.randrange(0, 2 * HOUR)
        for _ in range(rng.randint(1, 6)):
            count = rng.randint(1, 20)
            for v in range(count):
                n += 1
                page = f"p-{min(int(rng.paretovariate(1.2)), args.pages):04d}"
                e = pb.PageView(event_id=f"pv-{args.seed}-{n}", user_id=user, page_id=page,
                                url=f"https://shop.example/{page}",
                                referrer=rng.choice(["", "https://search.example/",
                                                     "https://social.example/"]),
                                event_type=rng.choice(["page_view", "click", "scroll"]),
                                event_time_ms=t,
                                dwell_ms=0 if rng.random() < 0.1 else rng.randrange(1, 120000))
                views.append(e)
                if v < count - 1:  # inside a session: below the gap, sometimes just below
                    t += GAP_MS - 1 if rng.random() < 0.03 else rng.randrange(1000, 600000)
            # Between sessions: the gap or more (exactly the gap starts a new session).
            t += GAP_MS if rng.random() < 0.1 else GAP_MS + rng.randrange(1, 4 * HOUR)
    dups = rng.sample(views, k=len(views) * 3 // 100)
    ordered = kfcheck.bounded_disorder(views + dups, lambda e: e.event_time_ms, BOUND_MS, rng)
    records = [(e.user_id.encode(), e.SerializeToString()) for e in ordered]

    dead = collections.Counter()
    for i in range(max(1, len(views) // 80)):
        e = pb.PageView()
        e.CopyFrom(rng.choice(views))
        e.event_id = f"bad-{args.seed}-{i}"
        kind = i % 7
        key = e.user_id.encode()
        if kind == 0:
            value, code = kfcheck.undecodable(e.SerializeToString(), rng), "decode_error"
        elif kind == 1:
            e.user_id, key = "", None
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 2:
            e.event_id = ""
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 3:
            e.page_id = ""
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 4:
            e.event_time_ms = 0
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 5:
            value, code = b"", "missing_field"
        else:
            value, code = None, "missing_field"  # a null value (tombstone)
        dead[(value or b"", code, "validate")] += 1
        records.insert(rng.randrange(len(records) + 1), (key, value))
    records = [(k, v, rng.randrange(args.partitions)) for k, v in records]
    return Input(records, views, len(dups), dead, pages)


def enrich(pages, page_id):
    """(category, section) of a page as the pipeline enriches it: hash fields, else the
    defaults."""
    h = pages.get(f"page:{page_id}", {})
    return h.get("category", DEFAULT_CATEGORY), h.get("section", DEFAULT_SECTION)


def expected_sessions(inp):
    """Every session of every user, fired or not: {(user, start): fields}."""
    by_user = collections.defaultdict(list)
    for e in inp.views:  # distinct views: duplicates are what dedup removes
        by_user[e.user_id].append(e)
    out = {}
    for user, views in by_user.items():
        views.sort(key=lambda e: e.event_time_ms)
        groups = [[views[0]]]
        for e in views[1:]:
            if e.event_time_ms - groups[-1][-1].event_time_ms >= GAP_MS:
                groups.append([])
            groups[-1].append(e)
        for g in groups:
            start, end = g[0].event_time_ms, g[-1].event_time_ms + GAP_MS
            dwell = [e.dwell_ms for e in g if e.dwell_ms != 0]  # 0 = absent: not summed
            out[(user, start)] = {
                "window_start_ms": start, "window_end_ms": end, "views": len(g),
                "first_page": g[0].page_id, "last_page": g[-1].page_id,
                "dwell_ms": sum(dwell) if dwell else None,
                "landing_section": enrich(inp.pages, g[0].page_id)[1],
                "last_category": enrich(inp.pages, g[-1].page_id)[0],
            }
    return out


def final_watermark(inp):
    """Watermark once all input is read and the sources are idle."""
    return max(e.event_time_ms for e in inp.views) - BOUND_MS


def compare(args, pb, inp):
    """Reads input, dead letters, sessions and Redis; returns the list of Diffs."""
    wm = final_watermark(inp)
    sessions = {k: v for k, v in expected_sessions(inp).items() if v["window_end_ms"] - 1 <= wm}
    inputs = kfcheck.read_topic(args.bootstrap, "pageviews", args.timeout_s)
    d_in = kfcheck.diff_multisets(collections.Counter(v for _, v, _ in inp.records),
                                  collections.Counter(r.value for r in inputs), "input records")
    letters, bad = kfcheck.read_dead_letters(args.bootstrap, "pageviews-dlq", args.timeout_s)
    d_dead = kfcheck.diff_dead_letters(inp.dead, letters, inputs, "pageviews", PIPELINE)
    d_dead.different += [((p, o), {"record": ("DeadLetter", why)}) for p, o, why in bad]

    kafka_want = {}
    for (user, start), s in sessions.items():
        kafka_want[(user, start)] = dict(s, key=user, event_time_ms=s["window_end_ms"] - 1,
                                         seq=s["views"])
    objects, bad = kfcheck.read_json_topic(args.bootstrap, "sessions", args.timeout_s)
    d_kafka = kfcheck.diff_json_results(kafka_want, objects,
                                        lambda o: (o.get("key"), o.get("window_start_ms")),
                                        "sessions in Kafka")
    d_kafka.different += [((p, o), {"record": ("JSON", why)}) for p, o, why in bad]

    latest = {}
    for (user, _), s in sessions.items():
        if user not in latest or s["window_end_ms"] > latest[user]["window_end_ms"]:
            latest[user] = s
    redis_want = {f"session:{u}": dict(s, _v=f"{s['window_end_ms'] - 1:020}:{s['views']:020}:"
                                          f"{0:020}")
                  for u, s in latest.items()}
    d_redis = kfcheck.diff_hashes(redis_want, kfcheck.read_redis_hashes(args.redis, "session:*"),
                                  "latest sessions in Redis")
    diffs = [d_in, d_dead, d_kafka, d_redis]
    if args.metrics:
        got = kfcheck.metric_sum(args.metrics, "keyflow_duplicates_total", operator="dedup")
        diffs.append(kfcheck.diff_value("keyflow_duplicates_total", inp.duplicates, int(got)))
    return diffs


def main():
    """Command line."""
    def options(c):
        c.add_argument("--seed", type=int, default=11, help="randomness (default: %(default)s)")
        c.add_argument("--users", type=int, default=400, help="users (default: %(default)s)")
        c.add_argument("--pages", type=int, default=150, help="page ids (default: %(default)s)")

    args = kfcheck.seed_parser(__doc__, "write the page:<id> hashes to Redis",
                               "write the page views to Kafka", "pageviews", options,
                               "keyflowd /metrics URL: also check the duplicate count (only for "
                               "a run without restarts)").parse_args()

    def setup(pb, inp):
        kfcheck.set_redis_hashes(args.redis, inp.pages)
        print(f"clickstream setup: {len(inp.pages)} page hashes")
        return 0

    def generate(pb, inp):
        n = kfcheck.produce(args.bootstrap, "pageviews", inp.records)
        print(f"clickstream generate: {n} records ({len(inp.views)} views, "
              f"{inp.duplicates} duplicates, {sum(inp.dead.values())} malformed)")
        return 0

    def check(pb, inp):
        diffs = kfcheck.wait_for_match(lambda: compare(args, pb, inp), args.wait_s)
        wm = final_watermark(inp)
        all_sessions = expected_sessions(inp)
        fired = sum(1 for s in all_sessions.values() if s["window_end_ms"] - 1 <= wm)
        return kfcheck.report_all(diffs, "clickstream check",
                                  f"{len(inp.views)} views of {args.users} users, "
                                  f"{inp.duplicates} duplicates, {sum(inp.dead.values())} "
                                  f"malformed; {fired} of {len(all_sessions)} sessions fired "
                                  f"(final watermark {wm})")

    return kfcheck.run_seed("clickstream", args, PROTO, build,
                            {"setup": setup, "generate": generate, "check": check})

if __name__ == "__main__":
    sys.exit(main())
