// keyflow-micro: Google Benchmark micro benchmarks of the per-record hot paths below the
// actors: key hashing, routing, decoding, the keyed operator chain and keyed state.
// Fixtures that need RocksDB are built once per process (function-local statics) in a
// temporary directory, so repeated runs of a benchmark measure warm state.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "benchmarks/bench_util.hpp"
#include "config/pipeline_config.hpp"
#include "core/datagen.hpp"
#include "core/key_group.hpp"
#include "core/router.hpp"
#include "operators/aggregate.hpp"
#include "operators/keyed_chain.hpp"
#include "operators/validate.hpp"
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
      v.push_back(datagen_reader::key_name(i));
    return v;
  }();
  return k;
}

/// `n` records with uniformly random keys and their key groups set.
std::vector<event_record> random_records(size_t n, uint64_t seed) {
  std::vector<event_record> out(n);
  for (auto& r : out) {
    const uint64_t x = splitmix(seed);
    r.key = keys()[x % key_count];
    r.event_id = "e-" + std::to_string(x & 0xffffff);
    r.type = "page_view";
    r.value = static_cast<double>((x >> 32) % 2001) * 0.25;
    r.event_time_ms = 1767225600000 + static_cast<int64_t>(x & 0xffff);
    r.key_group = key_group_of(r.key, max_parallelism);
  }
  return out;
}

/// validate + aggregate, no score, no sinks (the harness's pipeline).
config::pipeline_config bench_config() {
  config::pipeline_config cfg;
  cfg.name = "bench";
  cfg.source.topic = "events";
  cfg.dead_letter_topic = "events-dlq";
  return cfg;
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

/// router::route of 1024 records over range(0) destinations (refill untimed).
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

/// validator::decode of one serialized Event (with two attributes, as keyflow-gen writes).
void BM_validator_decode(benchmark::State& state) {
  proto::Event ev;
  ev.set_event_id("e-42-1234567");
  ev.set_customer_id("c-012345");
  ev.set_event_time_ms(1767225600000);
  ev.set_type("page_view");
  ev.set_value(12.25);
  (*ev.mutable_attributes())["channel"] = "web";
  (*ev.mutable_attributes())["country"] = "DE";
  const std::string bytes = ev.SerializeAsString();
  ops::validator v(bench_config().validate);
  event_record rec;
  ops::rejection why;
  for (auto _ : state) {
    if (!v.decode(bytes, rec, why))
      state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(rec);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
}
BENCHMARK(BM_validator_decode);

/// A state store in a temporary directory with the aggregate column family.
struct store_fixture {
  bench::temp_dir dir{"keyflow-micro-"};
  std::unique_ptr<state::state_store> store = state::state_store::open(dir.path(), {"aggregate"});
};

/// A keyed_chain over 100k warm keys plus 64 batches of 1024 random records.
struct chain_fixture {
  store_fixture fx;
  config::pipeline_config cfg = bench_config();
  ops::keyed_chain chain;
  std::vector<event_batch> batches;

  /// Builds the chain (profiles emitted or not) and touches every key once.
  explicit chain_fixture(bool emit_profiles) : chain(cfg, *fx.store, emit_profiles) {
    event_batch all;
    for (const auto& k : keys()) {
      event_record r;
      r.key = k;
      r.key_group = key_group_of(k, max_parallelism);
      all.records.push_back(std::move(r));
    }
    ops::chain_output out;
    chain.process(all, out);
    chain.flush_state();
    for (uint64_t i = 0; i < 64; ++i)
      batches.push_back({random_records(batch_size, 100 + i)});
  }
};

/// keyed_chain::process of a 1024-record batch over 100k warm keys; range(0) = profiles on.
void BM_keyed_chain_process_1024(benchmark::State& state) {
  static chain_fixture without_profiles(false);
  static chain_fixture with_profiles(true);
  auto& fx = state.range(0) ? with_profiles : without_profiles;
  ops::chain_output out;
  size_t i = 0;
  for (auto _ : state) {
    fx.chain.process(fx.batches[i], out);
    out.clear();
    i = (i + 1) % fx.batches.size();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
}
BENCHMARK(BM_keyed_chain_process_1024)->ArgName("profiles")->Arg(0)->Arg(1);

/// keyed_state::flush of range(0) dirty keys (one RocksDB WriteBatch); marking them is
/// untimed. Every flush adds new versions to the same memtable, as in the engine.
void BM_keyed_state_flush(benchmark::State& state) {
  static store_fixture fx;
  static state::keyed_state<ops::aggregate_state, ops::aggregate_codec> st(
      *fx.store, fx.store->column_family("aggregate"));
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
    ops::aggregate_state s;
    s.count = 1;
    for (const auto& k : keys())
      batch.Put(cf, state::state_key(key_group_of(k, max_parallelism), k), ops::encode(s));
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

/// datagen_reader::read of 1024 events into a router (the datagen source's work per batch).
void BM_datagen_read_1024(benchmark::State& state) {
  datagen_options o;
  o.events = UINT64_MAX;
  o.keys = key_count;
  datagen_reader reader(o);
  router rt(max_parallelism, 1);
  std::vector<kafka_message> dead;
  for (auto _ : state) {
    reader.read(rt, dead, batch_size);
    rt.batch(0).records.clear();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
}
BENCHMARK(BM_datagen_read_1024);

/// 64 batches of 1024 random records over the 100k keys, shared by the map benchmarks.
const std::vector<std::vector<event_record>>& record_batches() {
  static const std::vector<std::vector<event_record>> b = [] {
    std::vector<std::vector<event_record>> v;
    for (uint64_t i = 0; i < 64; ++i)
      v.push_back(random_records(batch_size, 100 + i));
    return v;
  }();
  return b;
}

/// Folds 1024 records per iteration into a 100k-key map of type Map (count + sum), cycling
/// over 64 batches like BM_keyed_chain_process_1024: the cost of the hash-map lookups alone.
/// Map = the raw baseline's std::unordered_map<std::string, V> (std::hash; libstdc++ caches
/// hash codes in the nodes) or keyed_state's map type (transparent state::string_hash;
/// libstdc++ treats it as a "fast" hash and caches nothing, so bucket walks rehash nodes).
template <class Map>
void BM_map_fold_1024(benchmark::State& state) {
  Map map;
  for (const auto& k : keys())
    map[k];
  const auto& batches = record_batches();
  size_t i = 0;
  for (auto _ : state) {
    for (const auto& r : batches[i]) {
      auto it = map.find(r.key);
      ++it->second.count;
      it->second.sum += r.value;
    }
    i = (i + 1) % batches.size();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(batch_size));
}

/// The value type of both maps: the size of keyed_state's entry for aggregate_state.
struct map_value {
  ops::aggregate_state agg;
  uint64_t count = 0;
  double sum = 0;
};
using std_hash_map = std::unordered_map<std::string, map_value>;
using transparent_hash_map =
    std::unordered_map<std::string, map_value, state::string_hash, std::equal_to<>>;
BENCHMARK_TEMPLATE(BM_map_fold_1024, std_hash_map);
BENCHMARK_TEMPLATE(BM_map_fold_1024, transparent_hash_map);

/// What-if for keyed_state::flush: a WriteBatch of 10k aggregate states put in hash-map
/// order (as flush() does) or sorted by state key (range(0) = 1), into the same memtable.
void BM_write_batch_10k(benchmark::State& state) {
  static store_fixture unsorted_fx, sorted_fx; // separate memtables for a fair comparison
  auto& fx = state.range(0) != 0 ? sorted_fx : unsorted_fx;
  auto* cf = fx.store->column_family("aggregate");
  constexpr size_t n = 10'000;
  std::unordered_map<std::string, ops::aggregate_state, state::string_hash, std::equal_to<>> m;
  for (size_t i = 0; i < n; ++i)
    m[state::state_key(key_group_of(keys()[i], max_parallelism), keys()[i])].count = i;
  std::vector<std::pair<std::string, std::string>> kvs;
  for (const auto& [k, v] : m)
    kvs.emplace_back(k, ops::encode(v));
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
