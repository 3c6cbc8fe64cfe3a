#!/usr/bin/python3
"""Checks the output of a Keyflow Nexmark query (q1, q2, q5, q7, q11) against results
computed here, independently, from the input topic.

    nexmark_check.py --bootstrap 127.0.0.1:9092 --input-topic nexmark --query q5 \\
        --output-topic q5-out --out-of-orderness-ms 2000
    nexmark_check.py --self-test

Input: keyflow.nexmark.Event records (config/proto/nexmark.proto); only bids matter, and
every event's time is Event.event_time_ms. Output: one JSON object per record,
{"key": text, "event_time_ms": int, "seq": int, <fields>...}. The engine is at-least-once:
for windowed queries (q5, q7, q11) the record with the highest seq per identity counts; for
per-bid queries (q1, q2) records are compared as multisets where extra copies of expected
records are tolerated. A window (or session) is expected only once it has fired, i.e. when
window_end_ms - 1 <= max event time of all input events - out-of-orderness.

Prints the differences (first 10 of each kind) and a one-line summary; exits 0 only when the
output equals the expected result, 1 when it differs, 2 when the check cannot run.
"""

import argparse
import collections
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kfcheck  # noqa: E402

DEFAULT_PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "config",
                             "proto", "nexmark.proto")
EUR_PER_USD = 0.908        # q1: price_eur = price * 0.908 (double multiply)
Q2_AUCTION_MODULUS = 123   # q2: bids with auction % 123 == 0
Q5_SIZE_MS, Q5_SLIDE_MS = 10000, 2000
Q7_SIZE_MS = 10000
Q11_GAP_MS = 10000

Bid = collections.namedtuple("Bid", "auction bidder price date_time event_time_ms")
Bid.__doc__ = "The fields of one input bid that the queries use."

Input = collections.namedtuple("Input", "events by_kind bids max_time_ms")
Input.__doc__ = "Decoded input: event count, counts by kind, bids in topic order, max time."

BadValue = collections.namedtuple("BadValue", "json")
BadValue.__doc__ = "An output value of the wrong JSON type; never equal to a valid value."

# Output fields and their JSON types.
FIELD_TYPES = {
    "key": str, "auction": int, "bidder": int, "price": int, "price_eur": float,
    "date_time": int, "event_time_ms": int, "window_start_ms": int, "window_end_ms": int,
    "bids": int,
}


def decode_input(records, pb):
    """Decodes Kafka records of keyflow.nexmark.Event; raises CheckError on a record that
    is not one."""
    by_kind = collections.Counter()
    bids = []
    max_time = None
    event = pb.Event()
    for r in records:
        try:
            event.ParseFromString(r.value or b"")
        except Exception as e:  # the protobuf runtime raises DecodeError or others
            raise kfcheck.CheckError(f"input partition {r.partition} offset {r.offset}: "
                                     f"not a keyflow.nexmark.Event: {e}") from None
        kind = event.WhichOneof("kind") or "none"
        by_kind[kind] += 1
        t = event.event_time_ms
        max_time = t if max_time is None else max(max_time, t)
        if kind == "bid":
            b = event.bid
            bids.append(Bid(b.auction, b.bidder, b.price, b.date_time, t))
    return Input(len(records), by_kind, bids, max_time)


def final_watermark(inp, out_of_orderness_ms):
    """Watermark once every source is idle: max event time of all events - the bound
    (None without events)."""
    return None if inp.max_time_ms is None else inp.max_time_ms - out_of_orderness_ms


def fired(window_end_ms, watermark):
    """True if a window ending (exclusively) at window_end_ms has fired at `watermark`."""
    return watermark is not None and window_end_ms - 1 <= watermark


# --- Reference results: what each query must produce. -----------------------------------
# Per-bid queries return a Counter of field tuples (in the query's field order); windowed
# queries return {identity tuple: {field: value}}.

def expected_q1(bids, watermark):
    """q1 currency conversion: every bid, price in EUR."""
    del watermark
    return collections.Counter(
        (str(b.auction), b.auction, b.bidder, b.date_time, b.price * EUR_PER_USD) for b in bids)


def expected_q2(bids, watermark):
    """q2 selection: bids on auctions whose id is a multiple of 123."""
    del watermark
    return collections.Counter((str(b.auction), b.auction, b.price, b.event_time_ms)
                               for b in bids if b.auction % Q2_AUCTION_MODULUS == 0)


def expected_q5(bids, watermark):
    """q5 hot items: per 10 s window sliding by 2 s, the auction with the most bids
    (ties: smallest id), counted incrementally per bid."""
    counts = collections.defaultdict(collections.Counter)  # window end -> auction -> bids
    for b in bids:
        start = b.event_time_ms - b.event_time_ms % Q5_SLIDE_MS  # newest window with b
        while start > b.event_time_ms - Q5_SIZE_MS:
            counts[start + Q5_SIZE_MS][b.auction] += 1
            start -= Q5_SLIDE_MS
    out = {}
    for end, per_auction in counts.items():
        if fired(end, watermark):
            auction, n = min(per_auction.items(), key=lambda kv: (-kv[1], kv[0]))
            out[(end,)] = {"window_end_ms": end, "auction": auction, "bids": n}
    return out


def expected_q7(bids, watermark):
    """q7 highest bid: per 10 s tumbling window, the highest price and a bid with it
    (ties: smallest bidder, then smallest auction)."""
    best = {}  # window end -> (-price, bidder, auction)
    for b in bids:
        end = b.event_time_ms - b.event_time_ms % Q7_SIZE_MS + Q7_SIZE_MS
        cand = (-b.price, b.bidder, b.auction)
        if end not in best or cand < best[end]:
            best[end] = cand
    return {(end,): {"window_end_ms": end, "price": -p, "bidder": bidder, "auction": auction}
            for end, (p, bidder, auction) in best.items() if fired(end, watermark)}


def expected_q11(bids, watermark):
    """q11 user sessions: per bidder, sessions of bids less than 10 s apart; a session is
    [first bid, last bid + 10 s)."""
    times = collections.defaultdict(list)
    for b in bids:
        times[b.bidder].append(b.event_time_ms)
    out = {}

    def close(bidder, start, last, n):
        end = last + Q11_GAP_MS
        if fired(end, watermark):
            key = str(bidder)
            out[(key, start)] = {"key": key, "window_start_ms": start, "window_end_ms": end,
                                 "bids": n}

    for bidder, ts in times.items():
        ts.sort()
        start, last, n = ts[0], ts[0], 0
        for t in ts:
            if t - last >= Q11_GAP_MS:
                close(bidder, start, last, n)
                start, n = t, 0
            last, n = t, n + 1
        close(bidder, start, last, n)
    return out


Query = collections.namedtuple("Query", "expected fields identity per_bid")
Query.__doc__ = ("A query: reference function, compared fields, identity fields (windowed) "
                 "and whether it is a per-bid multiset query.")

QUERIES = {
    "q1": Query(expected_q1, ("key", "auction", "bidder", "date_time", "price_eur"), None, True),
    "q2": Query(expected_q2, ("key", "auction", "price", "event_time_ms"), None, True),
    "q5": Query(expected_q5, ("window_end_ms", "auction", "bids"), ("window_end_ms",), False),
    "q7": Query(expected_q7, ("window_end_ms", "price", "bidder", "auction"),
                ("window_end_ms",), False),
    "q11": Query(expected_q11, ("key", "window_start_ms", "window_end_ms", "bids"),
                 ("key", "window_start_ms"), False),
}


def norm(field, value):
    """An output value as compared: doubles as float (a JSON integer is accepted), ints and
    strings as such, null as None, anything else as a BadValue."""
    want = FIELD_TYPES[field]
    if value is None:
        return None
    if want is float and type(value) in (int, float):
        return float(value)
    if type(value) is want:
        return value
    return BadValue(json.dumps(value))


def compare(query, expected, objects):
    """Compares output JSON objects with the expected result of `query` (a QUERIES key);
    returns a kfcheck.Diff."""
    q = QUERIES[query]
    bad_seq = [o for o in objects if type(o.get("seq")) is not int]
    if q.per_bid:
        actual = collections.Counter(tuple(norm(f, o.get(f)) for f in q.fields) for o in objects)
        d = kfcheck.diff_multisets(expected, actual, f"{query} records", tolerate_duplicates=True)
    else:
        good = [o for o in objects if type(o.get("seq")) is int]
        latest, conflicts = kfcheck.latest_by_identity(
            good, lambda o: tuple(norm(f, o.get(f)) for f in q.identity))
        actual = {ident: {f: norm(f, o.get(f)) for f in q.fields} for ident, o in latest.items()}
        d = kfcheck.diff_maps(expected, actual, f"{query} results", q.fields)
        d.actual_count = len(actual)
        for ident, a, b in conflicts:
            d.different.append((ident, {"same seq, different record": (a, b)}))
    for o in bad_seq[:10]:
        d.different.append((("record without an integer seq",), {"record": (None, o)}))
    if len(bad_seq) > 10:
        d.notes.append(f"{len(bad_seq)} records without an integer seq in all")
    return d


def run_check(args):
    """Reads input and output topics, compares; returns the exit code."""
    pb = kfcheck.compile_proto(args.proto)
    inp = decode_input(kfcheck.read_topic(args.bootstrap, args.input_topic, args.timeout_s), pb)
    wm = final_watermark(inp, args.out_of_orderness_ms)
    expected = QUERIES[args.query].expected(inp.bids, wm)
    deadline = time.monotonic() + args.wait_s
    while True:
        records = kfcheck.read_topic(args.bootstrap, args.output_topic, args.timeout_s)
        objects, bad = kfcheck.decode_json(records)
        d = compare(args.query, expected, objects)
        for partition, offset, reason in bad[:10]:
            d.different.append(((f"output partition {partition} offset {offset}",),
                                {"record": ("a JSON object", reason)}))
        if len(bad) > 10:
            d.notes.append(f"{len(bad)} output records are not JSON objects in all")
        if d.ok or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    d.report(limit=10)
    kinds = ", ".join(f"{inp.by_kind[k]} {k}s" for k in ("person", "auction", "bid"))
    print(f"nexmark_check {args.query}: {'PASS' if d.ok else 'FAIL'}: "
          f"{d.expected_count} expected, {d.actual_count} in output ({len(records)} records): "
          f"{d.counts()}; input {inp.events} events ({kinds}), "
          f"final watermark {wm}, out-of-orderness {args.out_of_orderness_ms} ms")
    return 0 if d.ok else 1


# --- Self-test: the reference against brute-force versions, and the comparison. ---------

def make_test_events(pb, rng, count=3000):
    """A small, varied input: few auctions and bidders (ties), time jumps around the
    session gap (one bidder exactly at it), disorder, times on window boundaries, duplicate
    bids, and a last non-bid event with the largest time."""
    events, t = [], 1767225600000 + 1234
    prices = [100, 250, 999, 5000, 5000, 123456]
    auctions = [1000, 1001, 1002, 1003, 1107, 1230]
    for i in range(count):
        jump = rng.random()
        t += (rng.choice([9999, 10000, 10001, 15000]) if jump < 0.01 else
              rng.randrange(0, 40))
        e = pb.Event()
        e.event_time_ms = t - rng.randrange(0, 500)  # bounded disorder
        if rng.random() < 0.05:  # on a window boundary
            e.event_time_ms -= e.event_time_ms % Q5_SLIDE_MS
        r = rng.random()
        if r < 0.02:
            e.person.id, e.person.date_time = 1000 + i, e.event_time_ms
        elif r < 0.08:
            e.auction.id, e.auction.date_time = 1000 + i, e.event_time_ms
        elif r < 0.1 and events and events[-1].HasField("bid"):
            e.CopyFrom(events[-1])  # a duplicate bid
        else:
            b = e.bid
            b.auction, b.bidder = rng.choice(auctions), rng.randrange(2000, 2006)
            b.price, b.date_time = rng.choice(prices), e.event_time_ms
        events.append(e)
    # One bidder exactly at the session gap: bids 9999 ms apart share a session, 10000 not.
    for at in (t - 60000, t - 50001, t - 40001):
        e = pb.Event()
        e.event_time_ms = e.bid.date_time = at
        e.bid.auction, e.bid.bidder, e.bid.price = 1001, 2999, 100
        events.append(e)
    last = pb.Event()
    last.event_time_ms = t + 25000
    last.person.id, last.person.date_time = 99, last.event_time_ms
    events.append(last)
    return events


def brute_expected(query, events, watermark):
    """The queries written differently: per-window scans over all bids and all-pairs
    session merging, straight from the protobuf events."""
    bids = [(e.bid.auction, e.bid.bidder, e.bid.price, e.bid.date_time, e.event_time_ms)
            for e in events if e.HasField("bid")]
    if query == "q1":
        return collections.Counter((str(a), a, w, d, float(p) * 0.908) for a, w, p, d, _ in bids)
    if query == "q2":
        return collections.Counter((str(a), a, p, t) for a, _, p, _, t in bids if a % 123 == 0)
    lo = min(t for *_, t in bids) // 1000 * 1000 - 20000
    hi = max(t for *_, t in bids) + 20000
    out = {}
    if query == "q5":
        for start in range(lo // 2000 * 2000, hi, 2000):
            inside = [a for a, _, _, _, t in bids if start <= t < start + 10000]
            end = start + 10000
            if inside and end <= watermark + 1:
                top = max(inside.count(a) for a in set(inside))
                out[(end,)] = {"window_end_ms": end, "bids": top,
                               "auction": min(a for a in set(inside) if inside.count(a) == top)}
    elif query == "q7":
        for start in range(lo // 10000 * 10000, hi, 10000):
            inside = sorted((-p, w, a) for a, w, p, _, t in bids if start <= t < start + 10000)
            end = start + 10000
            if inside and end <= watermark + 1:
                p, w, a = inside[0]
                out[(end,)] = {"window_end_ms": end, "price": -p, "bidder": w, "auction": a}
    elif query == "q11":
        # Union-find over every pair of bids of one bidder less than the gap apart.
        parent = list(range(len(bids)))

        def root(i):
            while parent[i] != i:
                i = parent[i]
            return i
        per_bidder = collections.defaultdict(list)
        for i, x in enumerate(bids):
            per_bidder[x[1]].append(i)
        for members in per_bidder.values():
            for i in members:
                for j in members:
                    if i < j and abs(bids[i][4] - bids[j][4]) < 10000:
                        parent[root(i)] = root(j)
        groups = collections.defaultdict(list)
        for i, x in enumerate(bids):
            groups[root(i)].append(x)
        for g in groups.values():
            start, end = min(x[4] for x in g), max(x[4] for x in g) + 10000
            if end <= watermark + 1:
                key = str(g[0][1])
                out[(key, start)] = {"key": key, "window_start_ms": start, "window_end_ms": end,
                                     "bids": len(g)}
    return out


def to_output_json(query, expected, rng):
    """Output records as the engine would write them for `expected`: 17-digit doubles,
    extra fields, superseded older results (lower seq), duplicates, shuffled."""
    q = QUERIES[query]
    lines = []

    def emit(fields, seq):
        obj = dict(fields)
        obj.setdefault("key", "k")
        obj.setdefault("event_time_ms", 0)
        obj["seq"] = seq
        obj["window_start_ms"] = obj.get("window_start_ms", obj.get("window_end_ms", 0) - 10000)
        parts = [json.dumps(k) + ": " + (format(v, ".17g") if isinstance(v, float)
                                         else json.dumps(v)) for k, v in obj.items()]
        lines.append(("{" + ", ".join(parts) + "}").encode())

    if q.per_bid:
        for elem, n in expected.items():
            for _ in range(n + (1 if rng.random() < 0.05 else 0)):
                emit(dict(zip(q.fields, elem)), 1)
    else:
        for fields in expected.values():
            stale = dict(fields)
            for f in ("bids", "price", "auction", "window_end_ms"):
                if f in stale and f not in q.identity:
                    stale[f] += 1
            emit(stale, 3)
            emit(fields, 7)
            if rng.random() < 0.1:
                emit(fields, 7)
    rng.shuffle(lines)
    return [kfcheck.KafkaRecord(0, i, None, v) for i, v in enumerate(lines)]


def self_test_query(pb, query, events, ooo, rng):
    """Checks one query's reference against the brute force, then the comparison."""
    records = [kfcheck.KafkaRecord(0, i, None, e.SerializeToString())
               for i, e in enumerate(events)]
    inp = decode_input(records, pb)
    wm = final_watermark(inp, ooo)
    ref = QUERIES[query].expected(inp.bids, wm)
    brute = brute_expected(query, events, wm)
    problems = []
    d = kfcheck.diff_maps(ref, brute, "reference vs brute force") if not QUERIES[query].per_bid \
        else kfcheck.diff_multisets(ref, brute, "reference vs brute force")
    if not d.ok:
        d.report()
        problems.append("reference differs from brute force")

    def check(name, objects, want_ok):
        diff = compare(query, ref, objects)
        if diff.ok != want_ok:
            diff.report()
            problems.append(f"comparison of {name}: ok={diff.ok}, wanted {want_ok}")

    output = to_output_json(query, ref, rng)
    objects, bad = kfcheck.decode_json(output)
    if bad:
        problems.append(f"undecodable test output {bad[:3]}")
    check("engine-like output", objects, True)
    q = QUERIES[query]
    ident_fields = q.identity or q.fields
    if ref:
        latest = max(objects, key=lambda o: o["seq"])
        ident = tuple(latest.get(f) for f in ident_fields)
        check("output with a result missing",
              [o for o in objects if tuple(o.get(f) for f in ident_fields) != ident], False)
        value_field = next(f for f in ("bids", "bidder", "price") if f in q.fields)
        changed = [dict(o, **{value_field: -5}) if o == latest else o for o in objects]
        check("output with a wrong field", changed, False)
        check("output with a conflicting or unexpected copy",
              objects + [dict(latest, **{value_field: -1})], False)
        ints = [f for f in q.fields if FIELD_TYPES[f] is int]
        int_field = ints[0] if q.per_bid else next(f for f in ints if f not in ident_fields)
        check(f"output with a double {int_field}",
              [dict(o, **{int_field: float(o[int_field])}) if o == latest else o
               for o in objects], False)
    check("output with an unexpected result",
          objects + [{"key": "1", "event_time_ms": 1, "seq": 1, "auction": 1, "bidder": 1,
                      "date_time": 1, "price_eur": 0.5, "price": 1, "window_end_ms": 1,
                      "window_start_ms": 1, "bids": 1}], False)
    check("empty output", [], not ref)
    return ref, problems


def self_test(proto):
    """Runs the self-test; returns the exit code."""
    pb = kfcheck.compile_proto(proto)
    rng = random.Random(7)
    events = make_test_events(pb, rng)
    failures = 0
    typed = [norm("price_eur", 908) == 908.0, norm("price_eur", 0.1) == 0.1,
             norm("auction", 1000.0) != 1000, norm("bids", True) != 1, norm("key", 5) != "5",
             norm("bids", None) is None, json.loads(format(1234 * EUR_PER_USD, ".17g"))
             == 1234 * EUR_PER_USD]
    if not all(typed):
        print(f"self-test value types: FAILED: {typed}")
        failures += 1
    max_time = max(e.event_time_ms for e in events)
    for query in QUERIES:
        bounds = [0, 20000, 26000, 10 ** 12]
        if not QUERIES[query].per_bid:
            # The newest window fires exactly at the watermark = its end - 1, not one earlier.
            ref, _ = self_test_query(pb, query, events, 0, rng)
            newest = max(r["window_end_ms"] for r in ref.values())
            edge = max_time - (newest - 1)
            with_newest, _ = self_test_query(pb, query, events, edge, rng)
            without, _ = self_test_query(pb, query, events, edge + 1, rng)
            in_with = any(r["window_end_ms"] == newest for r in with_newest.values())
            in_without = any(r["window_end_ms"] == newest for r in without.values())
            edge_ok = in_with and not in_without
            print(f"self-test {query} newest window at the watermark edge: "
                  f"{'ok' if edge_ok else 'FAILED'}")
            failures += not edge_ok
            bounds += [edge, edge + 1]
        for ooo in bounds:
            ref, problems = self_test_query(pb, query, events, ooo, rng)
            if ooo == 0 and not ref:
                problems.append("no expected results: the test input is too small")
            if query == "q7" and ooo == 0 and not any(
                    sum(1 for e in events if e.HasField("bid") and e.bid.price == r["price"]
                        and r["window_end_ms"] - 10000 <= e.event_time_ms < r["window_end_ms"])
                    > 1 for r in ref.values()):
                problems.append("q7 input has no tie on the highest price")
            size = sum(ref.values()) if QUERIES[query].per_bid else len(ref)
            status = "ok" if not problems else "FAILED: " + "; ".join(problems)
            print(f"self-test {query} out-of-orderness {ooo}: {size} expected results: {status}")
            failures += bool(problems)
    print(f"nexmark_check self-test: {'PASS' if not failures else 'FAIL'}: "
          f"{len(events)} events, {failures} failing cases")
    return 0 if not failures else 1


def main():
    """Command line."""
    p = argparse.ArgumentParser(
        description="Compare a Keyflow Nexmark query's output topic with results computed "
                    "independently from the input topic; exit 0 only if equal.")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers, HOST:PORT")
    p.add_argument("--input-topic", default="nexmark", help="Nexmark input topic (default: "
                   "%(default)s)")
    p.add_argument("--query", choices=sorted(QUERIES), help="query whose output is checked")
    p.add_argument("--output-topic", help="topic with the query's JSON output records")
    p.add_argument("--out-of-orderness-ms", type=int, default=0,
                   help="the pipeline's watermark bound: windows ending after max event time "
                        "minus this have not fired and are not expected (default: %(default)s)")
    p.add_argument("--proto", default=DEFAULT_PROTO,
                   help="nexmark.proto to decode the input with (default: the repository's)")
    p.add_argument("--timeout-s", type=float, default=120.0,
                   help="give up reading a topic after this long (default: %(default)s)")
    p.add_argument("--wait-s", type=float, default=0.0,
                   help="re-read the output topic every second for up to this long until it "
                        "matches (default: %(default)s, compare once)")
    p.add_argument("--self-test", action="store_true",
                   help="test the reference results and the comparison on generated input, "
                        "without Kafka")
    args = p.parse_args()
    try:
        if args.self_test:
            return self_test(args.proto)
        missing = [o for o in ("bootstrap", "query", "output_topic") if not getattr(args, o)]
        if missing:
            p.error("required: " + ", ".join("--" + m.replace("_", "-") for m in missing))
        return run_check(args)
    except kfcheck.CheckError as e:
        print(f"nexmark_check: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
