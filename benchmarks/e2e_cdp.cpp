// keyflow-bench nexmark --query cdp: the reference pipeline (config/pipelines/cdp.yaml:
// validate, dedup, enrich from Redis, aggregate, score, activate) over make_datagen events,
// beside a raw loop doing the same with plain hash maps. Enrich reads a real redis-server
// started here (the engine's lookups go over the network; the raw loop holds the same
// entities in a hash map, as a warm cache would). Sinks are counting sinks.

#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "benchmarks/bench_pipelines.hpp"
#include "benchmarks/e2e_nexmark.hpp"
#include "benchmarks/redis_server.hpp"
#include "config/pipeline_config.hpp"
#include "proto/event.pb.h"
#include "redis/redis_client.hpp"

namespace keyflow::bench {

namespace {

constexpr uint64_t default_events = 2'000'000;
constexpr uint64_t short_events = 100'000;
constexpr uint64_t seed = 42;
constexpr uint64_t raw_batch = 1024;
// The score operator of cdp.yaml, and its activation threshold.
constexpr double score_bias = -6.0, w_count = 0.04, w_sum = 0.0001, threshold = 0.6;

/// The entity hash of customer number k ("customer:c-..."): segment and tier; every tenth
/// customer has none (the enrich defaults apply).
std::optional<std::pair<std::string, std::string>> entity_of(uint32_t k) {
  static const std::array<const char*, 4> segments = {"gold", "silver", "bronze", "new"};
  static const std::array<const char*, 3> tiers = {"a", "b", "c"};
  if (k % 10 == 9)
    return std::nullopt;
  return std::make_pair(std::string{segments[k % 4]}, std::string{tiers[k % 3]});
}

/// Writes the entity hashes of customers 0..keys-1 to Redis.
void load_entities(const std::string& address, uint32_t keys) {
  redis::client c{redis::address::parse(address)};
  for (uint32_t k = 0; k < keys; ++k) {
    if (auto e = entity_of(k)) {
      const auto key = "customer:" + pipeline::datagen_key_name(k);
      c.append({"HSET", key, "segment", e->first, "tier", e->second});
    }
    if (k % 1000 == 999 || k + 1 == keys)
      if (c.exec() != 0)
        throw std::runtime_error("redis: HSET of customer entities refused");
  }
}

/// cdp.yaml, or, for `with_enrich` false, cdp.yaml without its enrich operator (the
/// aggregate then reads dedup and keeps count, sum, last_event_time_ms only).
std::shared_ptr<const pipeline::plan> cdp_plan(bool with_enrich) {
  auto cfg = config::load_pipeline_file(source_dir() + "/config/pipelines/cdp.yaml");
  cfg.source.watermark.idle_timeout_ms = 0; // a bounded run: see load_repo_plan()
  if (!with_enrich) {
    auto& ops = cfg.operators;
    auto e = std::find_if(ops.begin(), ops.end(), [](auto& op) { return op.type == "enrich"; });
    if (e == ops.end())
      throw std::runtime_error("cdp.yaml has no enrich operator");
    const auto enrich_id = e->id, enrich_input = e->input;
    ops.erase(e);
    for (auto& op : ops) {
      if (op.input == enrich_id)
        op.input = enrich_input;
      auto& a = op.aggregates;
      a.erase(std::remove_if(a.begin(), a.end(),
                             [](auto& x) { return x.name == "segment" || x.name == "tier"; }),
              a.end());
    }
    for (auto& s : cfg.sinks) {
      auto& f = s.fields;
      for (size_t i = f.size(); i-- > 0;)
        if (f[i].name == "segment" || f[i].name == "tier") {
          f.erase(f.begin() + static_cast<std::ptrdiff_t>(i));
          s.field_names.erase(s.field_names.begin() + static_cast<std::ptrdiff_t>(i));
        }
    }
  }
  return pipeline::make_plan(std::move(cfg));
}

/// Generator settings of source `i` of `sources` sharing `events` events.
pipeline::datagen_options share(const run_options& o, uint64_t events, uint32_t i,
                                uint32_t sources) {
  pipeline::datagen_options d;
  d.events = events / sources + (i < events % sources ? 1 : 0);
  d.keys = o.keys;
  d.seed = seed;
  return d;
}

/// Results of the raw loop.
struct cdp_raw_result {
  phase_result phase;
  result_digest profiles;   ///< final profile per customer
  uint64_t activations = 0; ///< customers whose score reached the threshold
};

/// Raw: every generator's events in turn, parsed, validated, deduplicated, enriched from a
/// hash map, aggregated and scored.
cdp_raw_result run_raw(const run_options& o, uint64_t events, uint32_t sources, bool enrich) {
  cdp_raw_result res;
  auto& r = res.phase;
  r.variant = "raw";
  r.detail = std::string{"1 thread: generate -> ParseFromArray -> validate -> "
                         "unordered_set dedup -> "} +
             (enrich ? "unordered_map entities -> " : "") +
             "unordered_map aggregate -> score -> activation";
  memory_probe mem;
  struct profile {
    int64_t count = 0;
    double sum = 0;
    bool has_sum = false; // proto3: a value of 0 is not on the wire, so absent, not summed
    int64_t last_time = INT64_MIN;
    const std::pair<std::string, std::string>* entity = nullptr;
    bool activated = false;
  };
  std::unordered_map<std::string, std::pair<std::string, std::string>> entities;
  for (uint32_t k = 0; k < o.keys; ++k)
    if (auto e = entity_of(k))
      entities.emplace("customer:" + pipeline::datagen_key_name(k), std::move(*e));
  const std::pair<std::string, std::string> defaults{"unknown", "none"};
  std::unordered_map<std::string, profile> profiles;
  std::unordered_set<std::string> seen;
  latency_samples lat;
  proto::Event ev;
  std::string key, value, dedup_key, entity_key;
  const double cpu0 = thread_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  auto b0 = t0;
  uint64_t in_batch = 0;
  for (uint32_t i = 0; i < sources; ++i) {
    auto gen = pipeline::make_datagen(share(o, events, i, sources), i);
    while (gen->next(key, value)) {
      ++r.events;
      if (++in_batch == raw_batch) {
        lat.add(seconds_since(b0), in_batch);
        in_batch = 0;
        b0 = std::chrono::steady_clock::now();
      }
      if (!ev.ParseFromArray(value.data(), static_cast<int>(value.size())) ||
          ev.event_id().empty() || ev.customer_id().empty() || ev.event_time_ms() <= 0 ||
          !std::isfinite(ev.value()))
        continue; // rejected (a dead letter in the engine)
      dedup_key.assign(ev.customer_id());
      dedup_key.push_back('\0');
      dedup_key += ev.event_id();
      if (!seen.insert(dedup_key).second)
        continue;
      const std::pair<std::string, std::string>* entity = nullptr;
      if (enrich) {
        entity_key.assign("customer:").append(ev.customer_id());
        auto e = entities.find(entity_key);
        entity = e != entities.end() ? &e->second : &defaults;
      }
      auto& p = profiles[ev.customer_id()];
      ++p.count;
      if (ev.value() != 0) {
        p.sum += ev.value();
        p.has_sum = true;
      }
      if (ev.event_time_ms() >= p.last_time) // "last": the latest event time wins
        p.entity = entity;
      p.last_time = std::max(p.last_time, ev.event_time_ms());
      double z = score_bias;
      z += w_count * static_cast<double>(p.count);
      z += w_sum * p.sum;
      if (!p.activated && 1.0 / (1.0 + std::exp(-z)) >= threshold) {
        p.activated = true;
        ++res.activations;
      }
    }
  }
  if (in_batch > 0)
    lat.add(seconds_since(b0), in_batch);
  for (const auto& [k, p] : profiles) {
    double z = score_bias;
    z += w_count * static_cast<double>(p.count);
    z += w_sum * p.sum;
    record_hash h;
    h.key(k).i64(p.count);
    if (p.has_sum)
      h.dbl(p.sum);
    else
      h.none();
    h.i64(p.last_time);
    if (enrich)
      h.str(p.entity->first).str(p.entity->second);
    h.dbl(1.0 / (1.0 + std::exp(-z)));
    res.profiles.add(h.done());
  }
  r.seconds = seconds_since(t0);
  r.cpu_s = thread_cpu_seconds() - cpu0;
  r.latency = lat.percentiles();
  r.memory = mem.finish();
  return res;
}

} // namespace

query_result run_cdp(const run_options& o) {
  query_result res;
  res.query = "cdp";
  const uint64_t events = o.events ? o.events : (o.short_mode ? short_events : default_events);
  const bool enrich = redis_server::available();
  std::unique_ptr<redis_server> redis;
  auto s = settings_from(o);
  if (enrich) {
    redis = std::make_unique<redis_server>();
    load_entities(redis->address(), o.keys);
    s.redis = redis->address();
    res.notes.push_back("enrich reads a real redis-server at " + redis->address() +
                        " (entities of 90% of the customers; the rest get the defaults)");
  } else {
    res.notes.push_back("no redis-server on $PATH: cdp WITHOUT its enrich operator (and "
                        "without the segment/tier aggregates)");
  }
  auto plan = cdp_plan(enrich);
  res.sources = o.sources ? o.sources : o.workers;
  res.parallelism = std::min(s.parallelism, plan->cfg.max_parallelism);
  res.stages = static_cast<uint32_t>(plan->stages);
  progress(o, "cdp: engine, " + std::to_string(events) + " events over " + std::to_string(o.keys) +
                  " customers, " + std::to_string(res.sources) + " source(s)");
  std::vector<std::unique_ptr<pipeline::event_generator>> gens;
  for (uint32_t i = 0; i < res.sources; ++i)
    gens.push_back(pipeline::make_datagen(share(o, events, i, res.sources), i));
  const double redis_cpu0 = redis ? redis->cpu_seconds() : 0;
  auto eng = run_generated(plan, s, std::move(gens), events);
  res.engine = eng.phase;
  if (redis) { // the lookups' other half runs in redis-server: its CPU counts too
    const double redis_cpu = redis->cpu_seconds() - redis_cpu0;
    res.engine.cpu_s += redis_cpu;
    res.notes.push_back("engine CPU includes redis-server's " + std::to_string(redis_cpu) +
                        " s (enrich lookups)");
  }
  res.engine.detail = std::to_string(res.sources) + " generator source(s) -> " +
                      std::to_string(res.parallelism) + " partition actor(s) -> counting sinks, " +
                      std::to_string(o.workers) + " CAF worker(s)";
  res.sink_latency = eng.sink_latency;
  res.dead_letters = eng.dead_letters;
  size_t profiles = 0, activations = 0;
  for (size_t i = 0; i < plan->sinks.size(); ++i) {
    if (plan->sinks[i].cfg->type == "redis")
      profiles = i;
    else
      activations = i;
  }
  res.outputs = eng.sink_records[profiles];
  res.engine_digest = eng.sinks[profiles];

  if (o.engine_only) {
    res.compared = false;
    res.notes.push_back("--engine-only: no raw baseline, results not compared");
    return res;
  }
  progress(o, "cdp: raw baseline");
  auto raw = run_raw(o, events, res.sources, enrich);
  res.raw = raw.phase;
  res.raw_digest = raw.profiles;
  const uint64_t engine_activations = eng.sink_records[activations];
  res.results_equal = res.engine_digest == res.raw_digest &&
                      engine_activations == raw.activations && res.dead_letters == 0;
  res.notes.push_back(
      "sinks 'profiles' (redis) and 'activations' (kafka) replaced by counting sinks; compared: "
      "the newest profile per customer (as the Redis sink keeps it), digest of all fields: "
      "engine " +
      std::to_string(res.engine_digest.count) + " customers, raw " +
      std::to_string(res.raw_digest.count) +
      (res.engine_digest == res.raw_digest ? " (equal)" : " (DIFFERENT)") +
      "; activations: engine " + std::to_string(engine_activations) + ", raw " +
      std::to_string(raw.activations) + "; " + std::to_string(res.outputs) +
      " profile updates emitted (one per customer per batch)");
  if (res.dead_letters != 0)
    res.notes.push_back(std::to_string(res.dead_letters) + " dead letters: expected none");
  return res;
}

} // namespace keyflow::bench
