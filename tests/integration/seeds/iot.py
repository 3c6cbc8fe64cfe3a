#!/usr/bin/python3
"""Input and exact check for the IoT pipeline (config/pipelines/iot.yaml).

    iot.py generate --bootstrap HOST:PORT --phase main [--rate N]
    iot.py wait     --metrics URL --phase main       # until the watermark passed the data
    iot.py generate --bootstrap HOST:PORT --phase late
    iot.py check    --bootstrap HOST:PORT --redis HOST:PORT [--metrics URL]

Phase main: seeded readings of many devices every ~10 s (a few devices run hot, one
around 0 C: a temperature of exactly 0.0 is a reading), some without humidity, 3% sent
twice, out of order within the pipeline's 5 s bound, each on a random partition, plus
malformed records (bytes that do not parse, missing reading id, device, temperature, event
time; empty values).

Phase late, once `wait` saw every partition actor's watermark reach the final one
(greatest event time - 5 s):
- readings within the allowed lateness (2 min), at most one per device, in 1-minute windows
  that have fired: they update their windows, which are re-emitted with a higher seq; some
  are chosen so that a window's average crosses 30 C upwards, some downwards (an alert
  already sent stays: alerts are not retracted), some neither;
- readings an hour behind: refused by both window operators, so each is in the dead-letter
  topic twice (operators per_minute and five_minutes), error_code "late";
- copies of earlier readings: dropped by dedup, so neither counted nor late.

`check` builds the same input and compares, re-reading until they match or --wait-s:
the input topic; the dead letters (malformed + late, with provenance); Redis
"iot:1m:<device>:<start>" and "iot:5m:<device>:<start>" for every fired window (end - 1 <=
final watermark) and no other, values and versions; Kafka "iot-minute" (highest seq per
window); Kafka "alerts" (highest seq per window = the last emission whose average was above
30 C); with --metrics, keyflow_duplicates_total. Exits 0 only when everything matches, 1
when something differs, 2 when it cannot run.
"""

import argparse
import collections
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import kfcheck  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
PROTO = os.path.join(ROOT, "config", "proto", "iot.proto")
PIPELINE = "iot"
T0 = 1767225600000
BOUND_MS = 5000
MINUTE, SLIDING_SIZE, LATENESS = 60000, 300000, 120000
THRESHOLD = 30.0

Input = collections.namedtuple(
    "Input", "main late readings late_ok duplicates dead wm")
Input.__doc__ = ("Generated input: Kafka records of both phases (key, value, partition), the "
                 "distinct main readings, the within-lateness readings, the duplicates sent, "
                 "the expected dead letters and the final watermark.")


def main_readings(pb, args, rng):
    """Distinct readings of phase main."""
    out, n = [], 0
    for d in range(1, args.devices + 1):
        device = f"d-{d:03d}"
        base = {0: 30.0, 1: 28.5, 2: 31.5}.get(d % 5, 0.0 if d == 3 else 20.0)
        temp, battery = base, 100
        start = T0 + 17000 + rng.randrange(0, 10000)
        for k in range(args.minutes * 6):
            n += 1
            temp = max(base - 4, min(base + 4, temp + rng.choice([-0.5, -0.25, 0, 0.25, 0.5])))
            if rng.random() < 0.02:
                battery = max(1, battery - 1)
            r = pb.Reading(reading_id=f"r-{args.seed}-{n}", device_id=device, temperature=temp,
                           battery=battery,
                           event_time_ms=start + k * 10000 + rng.randrange(0, 3000))
            if rng.random() < 0.9:
                r.humidity = rng.randrange(40, 180) * 0.5
            out.append(r)
    return out


def malformed(pb, readings, args, rng):
    """Malformed records of phase main: [(key, value)] and their expected dead letters."""
    recs, dead = [], collections.Counter()
    for i in range(max(1, len(readings) // 80)):
        e = pb.Reading()
        e.CopyFrom(rng.choice(readings))
        e.reading_id = f"bad-{args.seed}-{i}"
        kind, key = i % 6, e.device_id.encode()
        if kind == 0:
            value, code = kfcheck.undecodable(e.SerializeToString(), rng), "decode_error"
        elif kind == 1:
            e.reading_id = ""
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 2:
            e.device_id, key = "", None
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 3:
            e.ClearField("temperature")
            value, code = e.SerializeToString(), "missing_field"
        elif kind == 4:
            e.event_time_ms = 0
            value, code = e.SerializeToString(), "missing_field"
        else:
            value, code = b"", "missing_field"
        dead[(value, code, "validate")] += 1
        recs.append((key, value))
    return recs, dead


def tumbling_start(t):
    """Start of the 1-minute window holding event time t."""
    return t - t % MINUTE


def late_readings(pb, args, rng, readings, wm):
    """Within-lateness readings, one per chosen device, in fired, unexpired 1-minute
    windows: four raise a window's average above the threshold, four lower it to or below,
    four change neither side."""
    per_window = collections.defaultdict(list)
    for r in readings:
        per_window[(r.device_id, tumbling_start(r.event_time_ms))].append(r.temperature)
    wanted = {"up": 4, "down": 4, "same": 4}
    out, n = [], 0
    for (device, start), temps in sorted(per_window.items()):
        end = start + MINUTE
        if not (end - 1 <= wm and end - 1 + LATENESS > wm) or \
                any(r.device_id == device for r in out):
            continue
        avg = sum(temps) / len(temps)
        for kind, value in (("up", 45.0), ("down", -10.0), ("same", round(avg * 4) / 4)):
            after = (sum(temps) + value) / (len(temps) + 1)
            crosses = (avg > THRESHOLD) != (after > THRESHOLD)
            fits = (kind == "same" and not crosses) or \
                (kind == "up" and crosses and after > THRESHOLD) or \
                (kind == "down" and crosses and after <= THRESHOLD)
            if wanted[kind] > 0 and fits:
                wanted[kind] -= 1
                n += 1
                t = start + rng.randrange(0, MINUTE)
                out.append(pb.Reading(reading_id=f"lateok-{args.seed}-{n}", device_id=device,
                                      temperature=value, humidity=50.0, battery=50,
                                      event_time_ms=t))
                break
    if any(wanted.values()):
        raise kfcheck.CheckError(f"input too small for the late readings: still {wanted}")
    return out


def build(pb, args):
    """Both phases for `args` (deterministic for the same options)."""
    rng = random.Random(args.seed)
    readings = main_readings(pb, args, rng)
    dups = rng.sample(readings, k=len(readings) * 3 // 100)
    ordered = kfcheck.bounded_disorder(readings + dups, lambda e: e.event_time_ms, BOUND_MS, rng)
    main = [(e.device_id.encode(), e.SerializeToString()) for e in ordered]
    bad, dead = malformed(pb, readings, args, rng)
    for rec in bad:
        main.insert(rng.randrange(len(main) + 1), rec)
    wm = max(e.event_time_ms for e in readings) - BOUND_MS

    late_ok = late_readings(pb, args, rng, readings, wm)
    late = [(e.device_id.encode(), e.SerializeToString()) for e in late_ok]
    late_dups = [rng.choice(readings) for _ in range(3)] + late_ok[:2]
    late += [(e.device_id.encode(), e.SerializeToString()) for e in late_dups]
    for i in range(20):
        e = pb.Reading(reading_id=f"late-{args.seed}-{i}",
                       device_id=f"d-{rng.randint(1, args.devices):03d}",
                       temperature=rng.randrange(60, 120) * 0.25, battery=42,
                       event_time_ms=wm - 3600000 + rng.randrange(0, 600000))
        value = e.SerializeToString()
        late.append((e.device_id.encode(), value))
        for op in ("per_minute", "five_minutes"):
            dead[(value, "late", op)] += 1
    rng.shuffle(late)
    main = [(k, v, rng.randrange(args.partitions)) for k, v in main]
    late = [(k, v, rng.randrange(args.partitions)) for k, v in late]
    return Input(main, late, readings, late_ok, len(dups) + len(late_dups), dead, wm)


def window_fields(rs):
    """Aggregates of one window over readings `rs`, as the pipeline names them (sums of
    quarter degrees and half percents are exact in any order)."""
    temps = [r.temperature for r in rs]
    hums = [r.humidity for r in rs if r.HasField("humidity")]
    return {"readings": len(rs), "avg_temperature": sum(temps) / len(temps),
            "min_temperature": min(temps), "max_temperature": max(temps),
            "avg_humidity": sum(hums) / len(hums) if hums else None,
            "min_battery": min(r.battery for r in rs)}


def sliding_fields(rs):
    """Aggregates of one 5-minute sliding window."""
    temps = [r.temperature for r in rs]
    return {"readings": len(rs), "avg_temperature": sum(temps) / len(temps),
            "max_temperature": max(temps)}


def expected(inp):
    """(minute, sliding, alerts): {(device, start): fields incl. window bounds and seq} for
    every fired window; alerts as the last emission above the threshold."""
    minute, sliding = collections.defaultdict(list), collections.defaultdict(list)
    for r in inp.readings + inp.late_ok:
        s = tumbling_start(r.event_time_ms)
        minute[(r.device_id, s)].append(r)
        for start in range(s - SLIDING_SIZE + MINUTE, s + MINUTE, MINUTE):
            sliding[(r.device_id, start)].append(r)
    late_ids = {r.reading_id for r in inp.late_ok}

    def result(key, start, size, fields):
        return dict(fields, window_start_ms=start, window_end_ms=start + size,
                    key=key[0], event_time_ms=start + size - 1, seq=fields["readings"])

    want_minute, want_sliding, want_alerts = {}, {}, {}
    for key, rs in minute.items():
        if key[1] + MINUTE - 1 > inp.wm:
            continue
        final = result(key, key[1], MINUTE, window_fields(rs))
        want_minute[key] = final
        states = [final]
        on_time = [r for r in rs if r.reading_id not in late_ids]
        if len(on_time) < len(rs):  # first emission before the late reading came
            states.insert(0, result(key, key[1], MINUTE, window_fields(on_time)))
        above = [s for s in states if s["avg_temperature"] > THRESHOLD]
        if above:
            want_alerts[key] = above[-1]
    for key, rs in sliding.items():
        if key[1] + SLIDING_SIZE - 1 <= inp.wm:
            want_sliding[key] = result(key, key[1], SLIDING_SIZE, sliding_fields(rs))
    return want_minute, want_sliding, want_alerts


def redis_expected(prefix, results):
    """Redis hashes of window results: fields without key/event_time_ms/seq, plus `_v`."""
    out = {}
    for (device, start), r in results.items():
        fields = {k: v for k, v in r.items() if k not in ("key", "event_time_ms", "seq")}
        fields["_v"] = f"{r['event_time_ms']:020}:{r['seq']:020}:{0:020}"
        out[f"{prefix}{device}:{start}"] = fields
    return out


def compare(args, inp):
    """Reads every output; returns the list of Diffs."""
    want_minute, want_sliding, want_alerts = expected(inp)
    inputs = kfcheck.read_topic(args.bootstrap, "readings", args.timeout_s)
    d_in = kfcheck.diff_multisets(collections.Counter(v for _, v, _ in inp.main + inp.late),
                                  collections.Counter(r.value for r in inputs), "input records")
    letters, bad = kfcheck.read_dead_letters(args.bootstrap, "readings-dlq", args.timeout_s)
    d_dead = kfcheck.diff_dead_letters(inp.dead, letters, inputs, "readings", PIPELINE,
                                       tolerate_duplicates=args.restarted)
    d_dead.different += [((p, o), {"record": ("DeadLetter", why)}) for p, o, why in bad]
    ident = lambda o: (o.get("key"), o.get("window_start_ms"))  # noqa: E731
    diffs = [d_in, d_dead]
    for topic, want in (("iot-minute", want_minute), ("alerts", want_alerts)):
        objects, bad = kfcheck.read_json_topic(args.bootstrap, topic, args.timeout_s)
        d = kfcheck.diff_json_results(want, objects, ident, f"'{topic}' results")
        d.different += [((p, o), {"record": ("JSON", why)}) for p, o, why in bad]
        diffs.append(d)
    for prefix, want in (("iot:1m:", want_minute), ("iot:5m:", want_sliding)):
        diffs.append(kfcheck.diff_hashes(redis_expected(prefix, want),
                                         kfcheck.read_redis_hashes(args.redis, prefix + "*"),
                                         f"'{prefix}*' hashes"))
    if args.metrics:
        got = kfcheck.metric_sum(args.metrics, "keyflow_duplicates_total", operator="dedup")
        diffs.append(kfcheck.diff_value("keyflow_duplicates_total", inp.duplicates, int(got)))
    return diffs


def wait(args, inp):
    """Waits until the watermark of every partition actor reached the final one (greatest
    main event time - bound); returns the exit code. That needs the source that holds the
    greatest event time to have read it, and every other source to be idle or as far: any
    main reading still unread is then newer than the final watermark, so the late phase
    cannot change what a fired window contained when it fired. (Restarts reset
    keyflow_records_in_total, so records read are not counted.)"""
    deadline = time.monotonic() + args.wait_s
    marks = []
    while time.monotonic() < deadline:
        marks = [round(v * 1000) for v in
                 kfcheck.metric_values(args.metrics, "keyflow_watermark_timestamp_seconds")]
        if marks and min(marks) >= inp.wm:
            print(f"iot wait: watermarks {sorted(set(int(m) for m in marks))} >= {inp.wm}")
            return 0
        time.sleep(0.2)
    print(f"iot wait: timed out after {args.wait_s} s: watermarks {marks}, want {inp.wm}",
          file=sys.stderr)
    return 1


def main():
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("setup", "nothing to set up (no enrichment); accepted for symmetry"),
                       ("generate", "write one phase of the readings to Kafka"),
                       ("wait", "wait until keyflowd has read phase main and its watermark "
                                "passed it"),
                       ("check", "compare the pipeline's outputs with the expected ones")):
        c = sub.add_parser(name, help=text, description=text)
        c.add_argument("--seed", type=int, default=5, help="randomness (default: %(default)s)")
        c.add_argument("--devices", type=int, default=40, help="devices (default: %(default)s)")
        c.add_argument("--minutes", type=int, default=30,
                       help="minutes of readings per device (default: %(default)s)")
        c.add_argument("--partitions", type=int, default=4,
                       help="partitions of 'readings' (default: %(default)s)")
        if name in ("setup", "check"):
            c.add_argument("--redis", required=name == "check", help="Redis address HOST:PORT")
        if name in ("generate", "check"):
            c.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
        if name in ("generate", "wait"):
            c.add_argument("--phase", choices=["main", "late"], default="main",
                           help="main data, or the late readings (default: %(default)s)")
        if name == "generate":
            c.add_argument("--rate", type=float, default=0.0,
                           help="records per second, 0 = as fast as possible "
                                "(default: %(default)s)")
        if name in ("wait", "check"):
            c.add_argument("--metrics", required=name == "wait",
                           help="keyflowd /metrics URL" + (": also check the duplicate count "
                                                          "(only for a run without restarts)"
                                                          if name == "check" else ""))
            c.add_argument("--wait-s", type=float, default=60.0,
                           help="wait at most this long (default: %(default)s)")
        if name == "check":
            c.add_argument("--restarted", action="store_true",
                           help="keyflowd was killed and restarted during the run: dead "
                                "letters may repeat (at-least-once); results must still be exact")
            c.add_argument("--timeout-s", type=float, default=60.0,
                           help="give up reading a topic after this long (default: %(default)s)")
    args = p.parse_args()
    try:
        if args.command == "setup":
            return 0
        pb = kfcheck.compile_proto(PROTO)
        inp = build(pb, args)
        if args.command == "generate":
            records = inp.main if args.phase == "main" else inp.late
            n = kfcheck.produce(args.bootstrap, "readings", records, rate=args.rate)
            print(f"iot generate {args.phase}: {n} records")
            return 0
        if args.command == "wait":
            return wait(args, inp)
        diffs = kfcheck.wait_for_match(lambda: compare(args, inp), args.wait_s)
        want_minute, want_sliding, want_alerts = expected(inp)
        return kfcheck.report_all(
            diffs, "iot check",
            f"{len(inp.readings)} readings of {args.devices} devices, {len(inp.late_ok)} within "
            f"the lateness, {inp.duplicates} duplicates; {len(want_minute)} 1-minute and "
            f"{len(want_sliding)} 5-minute windows fired, {len(want_alerts)} alerts "
            f"(final watermark {inp.wm})")
    except kfcheck.CheckError as e:
        print(f"iot: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
