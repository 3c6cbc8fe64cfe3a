"""Helpers for Keyflow's integration checks, written in Python so that expected results are
computed independently of the engine.

- read_topic(): every record of a Kafka topic, all partitions, in partition/offset order.
- compile_proto(): a .proto compiled to a Python module at run time (protoc --python_out).
- decode_json(), read_json_topic(): output records parsed as JSON objects.
- read_redis_hashes(): Redis hashes whose keys match a pattern.
- latest_by_identity(): at-least-once results reduced to the highest `seq` per identity.
- diff_maps(), diff_multisets(): differences, printed bounded by Diff.report();
  require_equal() exits non-zero on any difference.
- produce(): writes records to chosen partitions with an idempotent producer, checking
  every delivery report.
- read_dead_letters(), diff_dead_letters(): DeadLetter envelopes of a topic, compared with
  the expected (bytes, error code, operator) multiset, provenance checked against the input.
- redis_text(), diff_hashes(): Redis hash text compared with typed expected values.
- set_redis_hashes(), scrape_metrics(), metric_values(), metric_sum(): entity hashes and
  /metrics.

Needs the Debian packages python3-confluent-kafka, python3-protobuf and python3-redis (run
with /usr/bin/python3) and protoc on PATH.
"""

import argparse
import atexit
import collections
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

KafkaRecord = collections.namedtuple("KafkaRecord", "partition offset key value")
KafkaRecord.__doc__ = "One Kafka record: partition, offset, key and value (bytes or None)."


class CheckError(Exception):
    """A check could not be carried out: unreachable Kafka, missing records, bad input."""


def read_topic(bootstrap, topic, timeout_s=60.0, allow_truncated=False, properties=None):
    """Reads every record of `topic` from the beginning up to the end offsets taken when
    reading starts, from all partitions, with isolation.level=read_uncommitted.

    Returns a list of KafkaRecord sorted by (partition, offset). Raises CheckError if the
    topic has no metadata, if reading takes longer than `timeout_s`, or (unless
    `allow_truncated`) if a partition no longer starts at offset 0 because retention dropped
    records. `properties` are extra librdkafka consumer properties.
    """
    from confluent_kafka import KafkaException

    try:
        return _read_topic(bootstrap, topic, timeout_s, allow_truncated, properties)
    except KafkaException as e:
        raise CheckError(f"topic '{topic}' at {bootstrap}: {e}") from None


def _read_topic(bootstrap, topic, timeout_s, allow_truncated, properties):
    """read_topic() without the translation of Kafka errors."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": "kfcheck-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_uncommitted",
        "enable.partition.eof": False,
    }
    conf.update(properties or {})
    consumer = Consumer(conf)
    try:
        deadline = time.monotonic() + timeout_s
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        info = metadata.topics.get(topic)
        if info is None or info.error is not None:
            raise CheckError(f"topic '{topic}': no metadata ({info.error if info else 'absent'})")
        ends = {}
        for p in sorted(info.partitions):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=max(1.0, deadline - time.monotonic()))
            if low > 0 and not allow_truncated:
                raise CheckError(f"topic '{topic}' partition {p} starts at offset {low}: "
                                 "records were dropped (retention); use more partitions")
            if high > low:
                ends[p] = (low, high)
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in ends.items()])
        records = []
        next_offset = {p: low for p, (low, _) in ends.items()}
        pending = set(ends)
        while pending:
            if time.monotonic() > deadline:
                left = {p: ends[p][1] - next_offset[p] for p in sorted(pending)}
                raise CheckError(f"topic '{topic}': timed out after {timeout_s} s with records "
                                 f"still to read per partition {left}")
            for m in consumer.consume(num_messages=10000, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise CheckError(f"topic '{topic}': {m.error()}")
                p, offset = m.partition(), m.offset()
                if p not in pending or offset >= ends[p][1]:
                    continue
                records.append(KafkaRecord(p, offset, m.key(), m.value()))
                next_offset[p] = offset + 1
            # The position also moves past transaction markers, which are never delivered.
            for tp in consumer.position([TopicPartition(topic, p) for p in pending]):
                next_offset[tp.partition] = max(next_offset[tp.partition], tp.offset)
            pending = {p for p in pending if next_offset[p] < ends[p][1]}
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        consumer.close()


_proto_dirs = []


def _remove_proto_dirs():
    """Removes the temporary directories of compile_proto() at exit."""
    for d in _proto_dirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_remove_proto_dirs)


def compile_proto(proto_file, include_dirs=None):
    """Compiles `proto_file` with `protoc --python_out` into a temporary directory and
    imports it. `include_dirs` (default: the file's own directory) are passed as -I; the
    module name follows the file's path below the first of them (dir/x.proto -> x_pb2).
    Raises CheckError if protoc fails."""
    proto_file = os.path.abspath(proto_file)
    include_dirs = [os.path.abspath(d) for d in (include_dirs or [os.path.dirname(proto_file)])]
    out = tempfile.mkdtemp(prefix="kfcheck-proto-")
    _proto_dirs.append(out)
    cmd = ["protoc", f"--python_out={out}"] + [f"-I{d}" for d in include_dirs] + [proto_file]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise CheckError(f"{' '.join(cmd)} failed: {result.stderr.strip()}")
    rel = os.path.relpath(proto_file, include_dirs[0])
    module = rel[: -len(".proto")].replace(os.sep, ".") + "_pb2"
    sys.path.insert(0, out)
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(out)


def decode_json(records):
    """Parses each record's value as a JSON object.

    Returns (objects, bad): objects in record order, and for records that are not JSON
    objects a list of (partition, offset, reason)."""
    objects, bad = [], []
    for r in records:
        try:
            obj = json.loads(r.value)
        except (TypeError, ValueError) as e:
            bad.append((r.partition, r.offset, f"not JSON: {e}"))
            continue
        if not isinstance(obj, dict):
            bad.append((r.partition, r.offset, f"not a JSON object: {str(obj)[:80]}"))
            continue
        objects.append(obj)
    return objects, bad


def read_json_topic(bootstrap, topic, timeout_s=60.0):
    """read_topic() + decode_json(): (objects, bad) of a topic of JSON output records."""
    return decode_json(read_topic(bootstrap, topic, timeout_s))


def read_redis_hashes(address, pattern):
    """Returns {key: {field: value}} (decoded as UTF-8) for every Redis hash whose key
    matches the glob `pattern`. `address` is "host:port" or a redis:// URL."""
    import redis

    if "://" in address:
        client = redis.Redis.from_url(address, decode_responses=True)
    else:
        host, _, port = address.rpartition(":")
        client = redis.Redis(host=host or "127.0.0.1", port=int(port), decode_responses=True)
    keys = sorted(client.scan_iter(match=pattern, count=1000))
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.hgetall(k)
    return dict(zip(keys, pipe.execute()))


def latest_by_identity(objects, identity, seq_field="seq"):
    """Reduces at-least-once results: for each identity(obj), keeps the object with the
    highest `seq_field`.

    Returns (latest, conflicts): latest maps identity -> object; conflicts lists
    (identity, a, b) for two different objects with the same identity and the same highest
    seq (or no seq), which no re-emission explains."""
    latest, conflicts = {}, []
    for obj in objects:
        ident = identity(obj)
        old = latest.get(ident)
        if old is None:
            latest[ident] = obj
            continue
        new_seq, old_seq = obj.get(seq_field), old.get(seq_field)
        if new_seq is not None and (old_seq is None or new_seq > old_seq):
            latest[ident] = obj
        elif new_seq == old_seq and obj != old:
            conflicts.append((ident, old, obj))
    conflicts = [c for c in conflicts if latest[c[0]].get(seq_field) == c[1].get(seq_field)]
    return latest, conflicts


class Diff:
    """Differences between an expected and an actual result set, with totals; report()
    prints them bounded."""

    def __init__(self, what, expected_count, actual_count):
        """An empty diff of `what` (a plural noun) between result sets of the given sizes."""
        self.what = what
        self.expected_count = expected_count
        self.actual_count = actual_count
        self.missing = []    # (identity, expected value, count)
        self.extra = []      # (identity, actual value, count)
        self.different = []  # (identity, {field: (expected, actual)})
        self.notes = []      # tolerated or informative lines, e.g. duplicates

    @property
    def ok(self):
        """True when nothing is missing, extra or different."""
        return not (self.missing or self.extra or self.different)

    def counts(self):
        """'N missing, N extra, N different' (missing/extra counted with multiplicity)."""
        missing = sum(c for _, _, c in self.missing)
        extra = sum(c for _, _, c in self.extra)
        return f"{missing} missing, {extra} extra, {len(self.different)} different"

    def report(self, limit=10, out=None):
        """Prints the first `limit` differences of each kind and the totals."""
        out = out or sys.stdout
        print(f"{self.what}: {self.expected_count} expected, {self.actual_count} actual: "
              f"{self.counts()}", file=out)
        for title, items, fmt in (
                ("missing", self.missing, _fmt_counted),
                ("extra", self.extra, _fmt_counted),
                ("different", self.different, _fmt_fields)):
            if items:
                shown = min(limit, len(items))
                print(f"  {title} ({len(items)}, first {shown}):", file=out)
                for item in _sorted(items)[:shown]:
                    print("    " + fmt(item), file=out)
        for note in self.notes:
            print("  note: " + note, file=out)


def _sorted(items):
    """Items sorted by identity where identities compare, else as given."""
    try:
        return sorted(items, key=lambda i: i[0])
    except TypeError:
        return list(items)


def _fmt_counted(item):
    """One missing/extra line."""
    ident, value, count = item
    times = f" (x{count})" if count != 1 else ""
    if value is ident:
        return f"{ident!r}{times}"
    return f"{ident!r}: {value!r}{times}"


def _fmt_fields(item):
    """One 'different' line: each differing field, expected then actual."""
    ident, fields = item
    parts = [f"{f} expected {e!r} got {a!r}" for f, (e, a) in sorted(fields.items())]
    return f"{ident!r}: " + "; ".join(parts)


def diff_maps(expected, actual, what="records", fields=None):
    """Compares {identity: value} maps. Values that are dicts are compared field by field
    (only `fields` if given; an absent field is None); others by equality."""
    d = Diff(what, len(expected), len(actual))
    for ident, want in expected.items():
        if ident not in actual:
            d.missing.append((ident, want, 1))
            continue
        got = actual[ident]
        if isinstance(want, dict) and isinstance(got, dict):
            names = fields if fields is not None else sorted(set(want) | set(got))
            bad = {f: (want.get(f), got.get(f)) for f in names if want.get(f) != got.get(f)}
        else:
            bad = {"value": (want, got)} if want != got else {}
        if bad:
            d.different.append((ident, bad))
    for ident, got in actual.items():
        if ident not in expected:
            d.extra.append((ident, got, 1))
    return d


def diff_multisets(expected, actual, what="records", tolerate_duplicates=False):
    """Compares multisets given as collections.Counter of hashable elements. An element
    the actual set has fewer times is missing. One it has more often is extra, unless
    `tolerate_duplicates` and the element is expected at all (at-least-once re-delivery):
    then the surplus is only noted."""
    d = Diff(what, sum(expected.values()), sum(actual.values()))
    duplicates = 0
    for elem, want in expected.items():
        got = actual.get(elem, 0)
        if got < want:
            d.missing.append((elem, elem, want - got))
        elif got > want:
            if tolerate_duplicates:
                duplicates += got - want
            else:
                d.extra.append((elem, elem, got - want))
    for elem, got in actual.items():
        if elem not in expected:
            d.extra.append((elem, elem, got))
    if duplicates:
        d.notes.append(f"{duplicates} duplicate records of expected ones tolerated "
                       "(at-least-once)")
    return d


def require_equal(diff, summary=None, limit=10):
    """Prints `diff` (bounded) and an optional one-line summary; exits with status 1 if
    anything differs."""
    diff.report(limit)
    if summary:
        print(summary)
    if not diff.ok:
        sys.exit(1)


# --- Producing input -----------------------------------------------------------------------

def produce(bootstrap, topic, records, rate=0.0, properties=None, timeout_s=120.0):
    """Writes `records` (an iterable of (key, value, partition): bytes or None, bytes or None,
    int or None for the default partitioner) to `topic` in order, with an idempotent
    producer. `rate` > 0 paces the writes to about that many records per second. Waits for
    every delivery report; returns the number delivered. Raises CheckError if any delivery
    failed or did not finish within `timeout_s` after the last write."""
    from confluent_kafka import KafkaException, Producer

    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
            "compression.type": "lz4"}
    conf.update(properties or {})
    failures, delivered = [], [0]

    def on_delivery(err, msg):
        if err is not None:
            failures.append(f"partition {msg.partition()}: {err}")
        else:
            delivered[0] += 1

    try:
        producer = Producer(conf)
        start, sent = time.monotonic(), 0
        for key, value, partition in records:
            kwargs = {"key": key, "value": value, "on_delivery": on_delivery}
            if partition is not None:
                kwargs["partition"] = partition
            while True:
                try:
                    producer.produce(topic, **kwargs)
                    break
                except BufferError:  # local queue full: serve delivery reports, then retry
                    producer.poll(0.05)
            sent += 1
            if rate > 0:
                ahead = sent / rate - (time.monotonic() - start)
                if ahead > 0:
                    producer.poll(0)
                    time.sleep(ahead)
            elif sent % 1000 == 0:
                producer.poll(0)
        left = producer.flush(timeout_s)
    except KafkaException as e:
        raise CheckError(f"producing to '{topic}' at {bootstrap}: {e}") from None
    if left > 0:
        raise CheckError(f"topic '{topic}': {left} records still undelivered after {timeout_s} s")
    if failures:
        raise CheckError(f"topic '{topic}': {len(failures)} deliveries failed, e.g. "
                         f"{failures[0]}")
    return delivered[0]


def partition_count(bootstrap, topic, timeout_s=30.0):
    """Number of partitions of an existing topic; raises CheckError if it has no metadata."""
    from confluent_kafka.admin import AdminClient

    info = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=timeout_s)
    t = info.topics.get(topic)
    if t is None or t.error is not None or not t.partitions:
        raise CheckError(f"topic '{topic}' at {bootstrap}: no metadata")
    return len(t.partitions)


# --- Dead letters --------------------------------------------------------------------------

DEAD_LETTER_PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                 "config", "proto", "dead_letter.proto")


def read_dead_letters(bootstrap, topic, timeout_s=60.0):
    """Every record of a dead-letter topic parsed as keyflow.proto.DeadLetter.

    Returns (letters, bad): letters as protobuf messages, bad as (partition, offset,
    reason) for records that are not DeadLetter envelopes."""
    pb = compile_proto(DEAD_LETTER_PROTO)
    letters, bad = [], []
    for r in read_topic(bootstrap, topic, timeout_s):
        dl = pb.DeadLetter()
        try:
            dl.ParseFromString(r.value or b"")
        except Exception as e:  # the protobuf runtime raises DecodeError or others
            bad.append((r.partition, r.offset, f"not a DeadLetter: {e}"))
            continue
        letters.append(dl)
    return letters, bad


def diff_dead_letters(expected, letters, inputs, source_topic, pipeline,
                      tolerate_duplicates=False):
    """Compares dead letters with `expected`, a Counter of (original value bytes, error code,
    operator id). Every letter must also carry provenance: `source_topic`, and a
    partition/offset at which `inputs` (the KafkaRecords of the input topic) holds exactly
    the original bytes, plus the pipeline name and a non-empty error message. Returns a
    Diff; provenance problems are listed as differences."""
    actual = collections.Counter(
        (dl.original_value, dl.error_code, dl.operator_id) for dl in letters)
    d = diff_multisets(expected, actual, "dead letters", tolerate_duplicates)
    by_position = {(r.partition, r.offset): r for r in inputs}
    wrong = []
    for dl in letters:
        src = by_position.get((dl.source_partition, dl.source_offset))
        problem = None
        if dl.source_topic != source_topic:
            problem = f"source_topic {dl.source_topic!r}, want {source_topic!r}"
        elif src is None:
            problem = f"no input record at partition {dl.source_partition} offset " \
                      f"{dl.source_offset}"
        elif (src.value or b"") != dl.original_value:
            problem = "original_value differs from the input record at its offset"
        elif (src.key or b"") != dl.original_key:
            problem = "original_key differs from the input record's key"
        elif dl.pipeline != pipeline:
            problem = f"pipeline {dl.pipeline!r}, want {pipeline!r}"
        elif not dl.error_message:
            problem = "empty error_message"
        elif dl.attempts < 1 or dl.dead_lettered_at_ms <= 0:
            problem = f"attempts {dl.attempts}, dead_lettered_at_ms {dl.dead_lettered_at_ms}"
        if problem:
            wrong.append(((dl.source_partition, dl.source_offset, dl.operator_id),
                          {"provenance": ("consistent", problem)}))
    d.different.extend(wrong)
    return d


# --- Redis ---------------------------------------------------------------------------------

def redis_client(address):
    """A redis.Redis client (decoded responses) for "host:port" or a redis:// URL."""
    import redis

    if "://" in address:
        return redis.Redis.from_url(address, decode_responses=True)
    host, _, port = address.rpartition(":")
    return redis.Redis(host=host or "127.0.0.1", port=int(port), decode_responses=True)


def set_redis_hashes(address, hashes):
    """Writes {key: {field: text}} as Redis hashes (replacing what is there)."""
    client = redis_client(address)
    pipe = client.pipeline(transaction=False)
    for key, fields in hashes.items():
        pipe.delete(key)
        if fields:
            pipe.hset(key, mapping=fields)
    pipe.execute()


def redis_text(value):
    """How a Keyflow Redis sink writes a value: ints in decimal, doubles with 17 significant
    digits, strings as they are, absent (None) as the empty string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        raise TypeError("booleans are not sink values")
    if isinstance(value, float):
        return format(value, ".17g")
    return str(value)


def _same_redis_value(want, text):
    """True if hash text `text` is the expected typed value `want` (doubles compared as
    numbers: 21 and 21.0 are the same double)."""
    if text is None:
        return False
    if isinstance(want, float):
        try:
            return float(text) == want
        except ValueError:
            return False
    return text == redis_text(want)


def diff_hashes(expected, actual, what="hashes"):
    """Compares {key: {field: typed value}} with hashes read from Redis ({key: {field:
    text}}): every expected field must be there with the expected value; fields not in the
    expected dict (e.g. the version `_v`) are ignored unless expected. Returns a Diff."""
    d = Diff(what, len(expected), len(actual))
    for key, want in expected.items():
        got = actual.get(key)
        if got is None:
            d.missing.append((key, want, 1))
            continue
        bad = {f: (v, got.get(f)) for f, v in want.items() if not _same_redis_value(v, got.get(f))}
        if bad:
            d.different.append((key, bad))
    for key, got in actual.items():
        if key not in expected:
            d.extra.append((key, got, 1))
    return d


# --- Kafka JSON results --------------------------------------------------------------------

def same_json_value(want, got):
    """True if a JSON output value equals the expected typed value: doubles as numbers (a
    JSON integer is accepted, since 21.0 prints as 21), ints exactly (not as doubles),
    strings exactly, None as null."""
    if want is None or got is None:
        return want is None and got is None
    if isinstance(want, float):
        return type(got) in (int, float) and float(got) == want
    return type(got) is type(want) and got == want


def diff_json_results(expected, objects, identity, what="results"):
    """At-least-once windowed results: `objects` (JSON output records) reduced to the highest
    `seq` per identity(obj), compared with `expected` {identity: {field: typed value}}
    field by field (see same_json_value). Two different records with the same identity and
    seq are differences. Returns a Diff."""
    latest, conflicts = latest_by_identity(objects, identity)
    d = Diff(what, len(expected), len(latest))
    for ident, want in expected.items():
        got = latest.get(ident)
        if got is None:
            d.missing.append((ident, want, 1))
            continue
        bad = {f: (v, got.get(f)) for f, v in want.items() if not same_json_value(v, got.get(f))}
        if bad:
            d.different.append((ident, bad))
    for ident, got in latest.items():
        if ident not in expected:
            d.extra.append((ident, got, 1))
    for ident, a, b in conflicts:
        d.different.append((ident, {"same seq, different record": (a, b)}))
    return d


# --- Metrics -------------------------------------------------------------------------------

def scrape_metrics(url, timeout_s=10.0):
    """Prometheus text from `url` as a list of (name, {label: value}, float)."""
    import re
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            text = resp.read().decode()
    except OSError as e:
        raise CheckError(f"cannot scrape {url}: {e}") from None
    out = []
    line_re = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
    label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = line_re.match(line)
        if m:
            out.append((m.group(1), dict(label_re.findall(m.group(3) or "")),
                        float(m.group(4))))
    return out


def metric_values(url, name, **labels):
    """Values of every series of metric `name` whose labels include `labels`."""
    return [v for n, ls, v in scrape_metrics(url)
            if n == name and all(ls.get(k) == want for k, want in labels.items())]


def metric_sum(url, name, **labels):
    """Sum of metric_values()."""
    return sum(metric_values(url, name, **labels))


# --- Generating input ----------------------------------------------------------------------

def bounded_disorder(items, time_of, bound_ms, rng):
    """`items` in a production order whose disorder stays strictly within `bound_ms`: each is
    delayed by a random 0..bound_ms-1 ms and the result sorted by delayed time (ties in input
    order). Then every item's event time is greater than the greatest event time of the
    items before it minus `bound_ms`, so a watermark of (max event time seen - bound_ms)
    never makes one of them late."""
    delayed = [(time_of(x) + rng.randrange(bound_ms), i, x) for i, x in enumerate(items)]
    delayed.sort(key=lambda d: (d[0], d[1]))
    return [x for _, _, x in delayed]


def undecodable(valid_bytes, rng):
    """Bytes that no protobuf parser accepts: a valid message followed by a length-delimited
    field 1 that claims more bytes than follow, or a varint that never ends."""
    if rng.random() < 0.5:
        return valid_bytes + b"\x0a\x05ab"
    return b"\xff" * rng.randrange(11, 20)


def seed_parser(doc, setup_text, generate_text, topic, add_options, metrics_help):
    """The command line of a seed script with the commands setup (`setup_text`), generate
    (`generate_text`) and check. Every command takes the script's own options
    (`add_options(subparser)`) and --partitions of `topic`; setup and check take --redis,
    generate and check --bootstrap; check also --metrics (`metrics_help`), --wait-s and
    --timeout-s."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("setup", setup_text), ("generate", generate_text),
                       ("check", "compare the pipeline's outputs with the expected ones")):
        c = sub.add_parser(name, help=text, description=text)
        add_options(c)
        c.add_argument("--partitions", type=int, default=4,
                       help=f"partitions of '{topic}' (default: %(default)s)")
        if name in ("setup", "check"):
            c.add_argument("--redis", required=True, help="Redis address HOST:PORT")
        if name in ("generate", "check"):
            c.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
        if name == "check":
            c.add_argument("--metrics", help=metrics_help)
            c.add_argument("--wait-s", type=float, default=60.0,
                           help="re-read the outputs until they match, at most this long "
                                "(default: %(default)s)")
            c.add_argument("--timeout-s", type=float, default=60.0,
                           help="give up reading a topic after this long (default: %(default)s)")
    return p


def run_seed(name, args, proto, build, commands):
    """Compiles `proto`, builds the script's input (`build(pb, args)`) and returns
    `commands[args.command](pb, inp)`; a CheckError is printed as `name: error` (exit 2)."""
    try:
        pb = compile_proto(proto)
        return commands[args.command](pb, build(pb, args))
    except CheckError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2


def wait_for_match(compare, wait_s, interval_s=1.0):
    """Calls compare() (returning a list of Diff) until every Diff is ok or `wait_s` has
    passed; returns the last list."""
    deadline = time.monotonic() + wait_s
    while True:
        diffs = compare()
        if all(d.ok for d in diffs) or time.monotonic() >= deadline:
            return diffs
        time.sleep(interval_s)


def report_all(diffs, name, summary, limit=10):
    """Prints every Diff and a PASS/FAIL line; returns the exit code (0 = all equal)."""
    for d in diffs:
        d.report(limit)
    ok = all(d.ok for d in diffs)
    print(f"{name}: {'PASS' if ok else 'FAIL'}: {summary}")
    return 0 if ok else 1


def diff_value(what, expected, actual):
    """A Diff of one number (e.g. a metric): its report shows both values."""
    d = Diff(what, expected, actual)
    if expected != actual:
        d.different.append((what, {"value": (expected, actual)}))
    return d
