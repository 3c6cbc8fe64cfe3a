// keyflow-micro: Google Benchmark micro benchmarks of the per-record hot paths below the
// actors: key hashing, routing, decoding, the generators, a stage's operators and keyed
// state. Fixtures that need RocksDB are built once per process (function-local statics) in
// a temporary directory, so repeated runs of a benchmark measure warm state.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "benchmarks/bench_pipelines.hpp"
#include "benchmarks/bench_util.hpp"
#include "core/hot_keys.hpp"
#include "core/key_group.hpp"
#include "core/nexmark.hpp"
#include "core/router.hpp"
#include "operators/basic.hpp"
#include "pipeline/generator_reader.hpp"
#include "pipeline/source_decoder.hpp"
#include "pipeline/stage_runner.hpp"
#include "proto/event.pb.h"
#include "state/keyed_state.hpp"
#include "state/state_store.hpp"

namespace {

using namespace keyflow;

constexpr uint32_t key_count = 100'000;
constexpr uint32_t max_parallelism = 128;
constexpr size_t batch_size = 1024;

/// splitmix64 step for deterministic test data.
uint64_t splitmix(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// The 100k key names "c-000001".. shared by all benchmarks.
const std::vector<std::string>& keys() {
  static const std::vector<std::string> k = [] {
    std::vector<std::string> v;
    for (uint32_t i = 0; i < key_count; ++i)
      v.push_back(pipeline::datagen_key_name(i));
    return v;
  }();
  return k;
}

/// The keyed count + sum pipeline of the end-to-end benchmarks (validate + aggregate).
const std::shared_ptr<const pipeline::plan>& keyed_plan() {
  static const auto p = bench::keyed_count_plan();
  return p;
}

/// One serialized keyflow.proto.Event (two attributes, as keyflow-gen writes them).
std::string event_bytes(const std::string& customer, double value, int64_t time) {
  proto::Event ev;
  ev.set_event_id("e-42-1234567");
  ev.set_customer_id(customer);
  ev.set_event_time_ms(time);
  ev.set_type("page_view");
  ev.set_value(value);
  (*ev.mutable_attributes())["channel"] = "web";
  (*ev.mutable_attributes())["country"] = "DE";
  return ev.SerializeAsString();
}

/// `n` records decoded by the keyed plan's source decoder, uniformly random keys, key
/// groups set.
std::vector<record> random_records(size_t n, uint64_t seed) {
  pipeline::source_decoder dec(keyed_plan());
  std::vector<kafka_message> dead;
  std::vector<record> out(n);
  for (auto& r : out) {
    const uint64_t x = splitmix(seed);
    const auto bytes =
        event_bytes(keys()[x % key_count], static_cast<double>((x >> 32) % 2001) * 0.25,
                    1767225600000 + static_cast<int64_t>(x & 0xffff));
    if (dec.decode({}, bytes, {"events", 0, 0, 0}, r, dead) != pipeline::decode_result::ok)
      throw std::runtime_error("random_records: decode failed");
    r.key_group = key_group_of(r.key, max_parallelism);
  }
  return out;
}

/// Kafka's murmur2 over a key of range(0) bytes.
void BM_murmur2(benchmark::State& state) {
  const std::string key(static_cast<size_t>(state.range(0)), 'k');
  for (auto _ : state)
    benchmark::DoNotOptimize(murmur2(key));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_murmur2)->Arg(8)->Arg(36);

/// key_group_of over the 100k customer ids.
void BM_key_group_of(benchmark::State& state) {
  const auto& k = keys();
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(key_group_of(k[i], max_parallelism));
    i = i + 1 == k.size() ? 0 : i + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_key_group_of);

/// router::route of 1024 decoded records over range(0) destinations (refill untimed).
void BM_router_route_1024(benchmark::State& state) {
  router rt(max_parallelism, static_cast<uint32_t>(state.range(0)));
  auto input = random_records(batch_size, 1);
  for (auto _ : state) {
    for (auto& r : input)
      rt.route(std::move(r));
    state.PauseTiming();
    input.clear();
    for (uint32_t d = 0; d < rt.parallelism(); ++d) {
      auto& b = rt.batch(d).records;
      std::move(b.begin(), b.end(), std::back_inserter(input));
      b.clear();
    }
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
}
BENCHMARK(BM_router_route_1024)->Arg(1)->Arg(2)->Arg(8);

/// source_decoder::decode of one serialized Event: schema decode of the fields the keyed
/// plan uses + validate + key and event time, into a reused record (as a source does not:
/// it builds a fresh record per event, see BM_source_decode_fresh).
void BM_source_decode(benchmark::State& state) {
  const std::string bytes = event_bytes("c-012345", 12.25, 1767225600000);
  pipeline::source_decoder dec(keyed_plan());
  std::vector<kafka_message> dead;
  record rec;
  for (auto _ : state) {
    if (dec.decode({}, bytes, {"events", 0, 0, 0}, rec, dead) != pipeline::decode_result::ok)
      state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(rec);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}
BENCHMARK(BM_source_decode);

/// source_decoder::decode into a fresh record each time, moved into a vector as a source
/// reader routes it (cleared every 1024): the per-record allocations included.
void BM_source_decode_fresh(benchmark::State& state) {
  const std::string bytes = event_bytes("c-012345", 12.25, 1767225600000);
  pipeline::source_decoder dec(keyed_plan());
  std::vector<kafka_message> dead;
  std::vector<record> out;
  out.reserve(batch_size);
  for (auto _ : state) {
    record rec;
    if (dec.decode({}, bytes, {"events", 0, 0, 0}, rec, dead) != pipeline::decode_result::ok)
      state.SkipWithError("decode failed");
    out.push_back(std::move(rec));
    if (out.size() == batch_size)
      out.clear();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_source_decode_fresh);

/// The Nexmark bids of q7 (three int64 fields of the bid + event time) decoded by q7's
/// source decoder.
void BM_source_decode_nexmark_bid(benchmark::State& state) {
  static const auto plan = bench::load_repo_plan("nexmark/q7.yaml", true);
  nexmark_options o;
  nexmark_generator gen(o);
  std::vector<std::string> bids;
  while (bids.size() < 1024 && gen.next())
    if (nexmark_kind_of(gen.number()) == nexmark_kind::bid)
      bids.emplace_back(gen.value());
  pipeline::source_decoder dec(plan);
  std::vector<kafka_message> dead;
  record rec;
  size_t i = 0;
  for (auto _ : state) {
    if (dec.decode({}, bids[i], {"nexmark", 0, 0, 0}, rec, dead) != pipeline::decode_result::ok)
      state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(rec);
    i = (i + 1) % bids.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_source_decode_nexmark_bid);

/// 1024 Nexmark bids decoded by `plan`'s source decoder.
std::vector<record> nexmark_bids(const std::shared_ptr<const pipeline::plan>& plan) {
  nexmark_options o;
  nexmark_generator gen(o);
  pipeline::source_decoder dec(plan);
  std::vector<kafka_message> dead;
  std::vector<record> out;
  while (out.size() < batch_size && gen.next()) {
    record r;
    if (dec.decode(gen.key(), gen.value(), {"nexmark", 0, 0, 0}, r, dead) ==
        pipeline::decode_result::ok)
      out.push_back(std::move(r));
  }
  return out;
}

/// ops::filter_matches over 1024 decoded bids: q2's `bid.auction mod_eq 123` (range 0) or
/// q1's `bid.auction gt 0` (range 1).
void BM_filter_matches_1024(benchmark::State& state) {
  static const auto plan = bench::load_repo_plan("nexmark/q2.yaml", true);
  static const auto bids = nexmark_bids(plan);
  const auto& op = plan->ops[state.range(0) == 0 ? 1 : 0];
  for (auto _ : state) {
    size_t n = 0;
    for (const auto& r : bids)
      n += ops::filter_matches(op, r) ? 1 : 0;
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(bids.size()));
}
BENCHMARK(BM_filter_matches_1024)->ArgName("gt")->Arg(0)->Arg(1);

/// nexmark_generator::next: one event generated and serialized.
void BM_nexmark_next(benchmark::State& state) {
  nexmark_options o;
  o.events = UINT64_MAX;
  nexmark_generator gen(o);
  for (auto _ : state) {
    gen.next();
    benchmark::DoNotOptimize(gen.value().data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_nexmark_next);

/// generator_reader::read of 1024 make_datagen events into a router (the datagen source's
/// work per batch: generate, serialize, decode, route).
void BM_generator_read_1024(benchmark::State& state) {
  pipeline::datagen_options o;
  o.events = UINT64_MAX / 2;
  o.keys = key_count;
  pipeline::generator_reader reader(keyed_plan(), pipeline::make_datagen(o));
  router rt(max_parallelism, 1);
  std::vector<kafka_message> dead;
  for (auto _ : state) {
    reader.read(rt, dead, batch_size);
    rt.batch(0).records.clear();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
}
BENCHMARK(BM_generator_read_1024);

/// 64k keys over the 100k key names for the hot-key benchmarks: range(0) = 0 uniform, 1
/// Zipf(1.1) (k0 ~ 9%, heavy head, long tail), 2 one key on every other record.
const std::vector<std::string_view>& hot_key_stream(int64_t dist) {
  static const auto streams = [] {
    std::vector<std::vector<std::string_view>> v(3);
    std::vector<double> cdf(key_count);
    double sum = 0;
    for (uint32_t i = 0; i < key_count; ++i)
      cdf[i] = sum += 1.0 / std::pow(static_cast<double>(i + 1), 1.1);
    uint64_t seed = 17;
    for (size_t i = 0; i < 65'536; ++i) {
      const uint64_t x = splitmix(seed);
      v[0].push_back(keys()[x % key_count]);
      const double u = static_cast<double>(x >> 11) * 0x1.0p-53 * sum;
      const auto z = std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
      v[1].push_back(keys()[std::min<size_t>(static_cast<size_t>(z), key_count - 1)]);
      v[2].push_back(i % 2 == 0 ? keys()[0] : keys()[(x >> 7) % key_count]);
    }
    return v;
  }();
  return streams[static_cast<size_t>(dist)];
}

/// hot_key_tracker::observe per record (k = 64, epochs of 100k records, so rolls are
/// included): range(0) = 0 uniform over 100k keys (almost every record takes over a
/// counter), 1 Zipf(1.1), 2 one key with 50% of the records.
void BM_hot_keys_observe(benchmark::State& state) {
  const auto& stream = hot_key_stream(state.range(0));
  hot_key_options o;
  o.period_records = 100'000;
  hot_key_tracker tracker(o);
  size_t i = 0;
  for (auto _ : state) {
    tracker.observe(stream[i]);
    i = (i + 1) & (stream.size() - 1);
  }
  benchmark::DoNotOptimize(tracker.total());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_hot_keys_observe)->ArgName("dist")->Arg(0)->Arg(1)->Arg(2);

/// hot_key_tracker::hot over a window of uniform + one 50% key (k = 64: merging and sorting
/// up to 128 candidates, copying out the hot keys): the cost of one report.
void BM_hot_keys_report(benchmark::State& state) {
  hot_key_tracker tracker;
  const auto& stream = hot_key_stream(2);
  tracker.observe_batch(stream);
  tracker.roll();
  tracker.observe_batch(stream);
  for (auto _ : state)
    benchmark::DoNotOptimize(tracker.hot());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_hot_keys_report);

/// A state store in a temporary directory with the given column families.
struct store_fixture {
  bench::temp_dir dir{"keyflow-micro-"};
  std::unique_ptr<state::state_store> store;
  explicit store_fixture(const std::vector<std::string>& cfs = {"aggregate"})
      : store(state::state_store::open(dir.path(), cfs)) {}
};

/// The stage of the keyed plan (aggregate count + sum) over 100k warm keys plus 64 batches
/// of 1024 random records.
struct stage_fixture {
  store_fixture fx{keyed_plan()->column_families()};
  std::unique_ptr<pipeline::stage_runner> runner;
  std::vector<std::vector<record>> batches;

  stage_fixture() {
    ops::op_env env;
    env.store = fx.store.get();
    env.first_key_group = 0;
    env.last_key_group = max_parallelism - 1;
    runner = std::make_unique<pipeline::stage_runner>(keyed_plan(), 0, env);
    std::vector<record> all;
    pipeline::source_decoder dec(keyed_plan());
    std::vector<kafka_message> dead;
    for (const auto& k : keys()) {
      record r;
      dec.decode({}, event_bytes(k, 1, 1767225600000), {"events", 0, 0, 0}, r, dead);
      r.key_group = key_group_of(k, max_parallelism);
      all.push_back(std::move(r));
    }
    run(std::move(all));
    runner->flush_state();
    for (uint64_t i = 0; i < 64; ++i)
      batches.push_back(random_records(batch_size, 100 + i));
  }
  void run(std::vector<record>&& in) {
    lookup_request req;
    int op = -1;
    runner->start(std::move(in), std::nullopt);
    runner->run(req, op);
    runner->clear_outputs();
  }
};

/// stage_runner of the keyed plan (global aggregate: count + sum, one output record per
/// touched key) over a 1024-record batch and 100k warm keys. Copying the batch in is
/// untimed.
void BM_stage_aggregate_1024(benchmark::State& state) {
  static stage_fixture fx;
  size_t i = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto in = fx.batches[i];
    state.ResumeTiming();
    fx.run(std::move(in));
    i = (i + 1) % fx.batches.size();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
}
BENCHMARK(BM_stage_aggregate_1024);

/// 16-byte count + sum state for the keyed_state benchmarks.
struct count_sum {
  uint64_t count = 0;
  double sum = 0;
};

/// Codec of count_sum: its bytes.
struct count_sum_codec {
  static std::string encode(const count_sum& v) {
    std::string s(sizeof(v), '\0');
    std::memcpy(s.data(), &v, sizeof(v));
    return s;
  }
  static bool decode(std::string_view b, count_sum& v) {
    if (b.size() != sizeof(v))
      return false;
    std::memcpy(&v, b.data(), sizeof(v));
    return true;
  }
};

/// keyed_state::flush of range(0) dirty keys (one RocksDB WriteBatch); marking them is
/// untimed. Every flush adds new versions to the same memtable, as in the engine.
void BM_keyed_state_flush(benchmark::State& state) {
  static store_fixture fx;
  static state::keyed_state<count_sum, count_sum_codec> st(*fx.store,
                                                           fx.store->column_family("aggregate"));
  static const std::vector<key_group_t> groups = [] {
    std::vector<key_group_t> g;
    for (const auto& k : keys())
      g.push_back(key_group_of(k, max_parallelism));
    return g;
  }();
  const auto dirty = static_cast<size_t>(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    for (size_t i = 0; i < dirty; ++i)
      ++st.update(keys()[i], groups[i]).count;
    state.ResumeTiming();
    benchmark::DoNotOptimize(st.flush());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(dirty));
}
BENCHMARK(BM_keyed_state_flush)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMillisecond);

/// A store holding the 100k keys in an SST file (bloom filters), or empty.
state::state_store& get_store(bool populated) {
  static store_fixture empty;
  static store_fixture full;
  static const bool filled = [] {
    auto* cf = full.store->column_family("aggregate");
    rocksdb::WriteBatch batch;
    count_sum s{1, 0};
    for (const auto& k : keys())
      batch.Put(cf, state::state_key(key_group_of(k, max_parallelism), k),
                count_sum_codec::encode(s));
    return full.store->write(batch).ok() &&
           full.store->db()->Flush(rocksdb::FlushOptions{}, cf).ok();
  }();
  if (!filled)
    throw std::runtime_error("cannot fill the benchmark store");
  return populated ? *full.store : *empty.store;
}

/// state_store::get of a key that is not there (the first touch of every new key);
/// range(0) = store holds 100k other keys.
void BM_state_store_get_missing(benchmark::State& state) {
  auto& store = get_store(state.range(0) != 0);
  auto* cf = store.column_family("aggregate");
  std::vector<std::string> missing;
  for (uint32_t i = 0; i < 1024; ++i)
    missing.push_back(
        state::state_key(static_cast<key_group_t>(i % max_parallelism), "m-" + std::to_string(i)));
  std::string value;
  size_t i = 0;
  for (auto _ : state) {
    if (!store.get(cf, missing[i], &value).IsNotFound())
      state.SkipWithError("key unexpectedly present");
    i = (i + 1) % missing.size();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_state_store_get_missing)->ArgName("populated")->Arg(0)->Arg(1);

/// 64 batches of 1024 (key, value) pairs over the 100k keys, shared by the map benchmarks.
const std::vector<std::vector<std::pair<std::string, double>>>& key_batches() {
  static const auto b = [] {
    std::vector<std::vector<std::pair<std::string, double>>> v;
    for (uint64_t i = 0; i < 64; ++i) {
      uint64_t seed = 100 + i;
      auto& batch = v.emplace_back();
      for (size_t j = 0; j < batch_size; ++j) {
        const uint64_t x = splitmix(seed);
        batch.emplace_back(keys()[x % key_count], static_cast<double>((x >> 32) % 2001) * 0.25);
      }
    }
    return v;
  }();
  return b;
}

/// Folds 1024 records per iteration into a 100k-key map of type Map (count + sum), cycling
/// over 64 batches: the cost of the hash-map lookups alone. Map = the raw baseline's
/// std::unordered_map<std::string, V> (std::hash; libstdc++ caches hash codes in the nodes)
/// or keyed_state's map type (transparent state::string_hash; libstdc++ treats it as a
/// "fast" hash and caches nothing, so bucket walks rehash nodes).
template <class Map>
void BM_map_fold_1024(benchmark::State& state) {
  Map map;
  for (const auto& k : keys())
    map[k];
  const auto& batches = key_batches();
  size_t i = 0;
  for (auto _ : state) {
    for (const auto& [k, v] : batches[i]) {
      auto it = map.find(k);
      ++it->second.count;
      it->second.sum += v;
    }
    i = (i + 1) % batches.size();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
}

/// The value type of both maps: about the size of keyed_state's entry.
struct map_value {
  uint64_t count = 0;
  double sum = 0;
  int64_t expire_at = 0;
  uint64_t flags = 0;
};
using std_hash_map = std::unordered_map<std::string, map_value>;
using transparent_hash_map =
    std::unordered_map<std::string, map_value, state::string_hash, std::equal_to<>>;
BENCHMARK_TEMPLATE(BM_map_fold_1024, std_hash_map);
BENCHMARK_TEMPLATE(BM_map_fold_1024, transparent_hash_map);

/// What-if for keyed_state::flush: a WriteBatch of 10k states put in hash-map order (as
/// flush() does) or sorted by state key (range(0) = 1), into the same memtable.
void BM_write_batch_10k(benchmark::State& state) {
  static store_fixture unsorted_fx, sorted_fx; // separate memtables for a fair comparison
  auto& fx = state.range(0) != 0 ? sorted_fx : unsorted_fx;
  auto* cf = fx.store->column_family("aggregate");
  constexpr size_t n = 10'000;
  std::unordered_map<std::string, count_sum, state::string_hash, std::equal_to<>> m;
  for (size_t i = 0; i < n; ++i)
    m[state::state_key(key_group_of(keys()[i], max_parallelism), keys()[i])].count = i;
  std::vector<std::pair<std::string, std::string>> kvs;
  for (const auto& [k, v] : m)
    kvs.emplace_back(k, count_sum_codec::encode(v));
  if (state.range(0) != 0)
    std::sort(kvs.begin(), kvs.end());
  for (auto _ : state) {
    rocksdb::WriteBatch batch;
    for (const auto& [k, v] : kvs)
      batch.Put(cf, k, v);
    if (!fx.store->write(batch).ok())
      state.SkipWithError("write failed");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
BENCHMARK(BM_write_batch_10k)->ArgName("sorted")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
