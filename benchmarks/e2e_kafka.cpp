// Scenario "kafka": protobuf Events pre-produced into an embedded Kafka topic, read by the
// engine (one kafka_reader source actor per partition -> partition actors) and by a raw
// librdkafka consumer that parses and aggregates in one thread.

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "benchmarks/bench_pipelines.hpp"
#include "benchmarks/e2e_engine.hpp"
#include "benchmarks/e2e_scenarios.hpp"
#include "kafka/client.hpp"
#include "kafka/embedded_kafka.hpp"
#include "kafka/kafka_reader.hpp"
#include "pipeline/generator_reader.hpp"
#include "proto/event.pb.h"

namespace keyflow::bench {

namespace {

constexpr uint64_t default_events = 1'000'000;
constexpr uint64_t short_events = 200'000;
constexpr int topic_partitions = 4;
constexpr size_t max_batch = 1024; // the engine's default batch size
constexpr double target_ratio = 0.5;
const std::string topic = "events"; // the bench pipeline's source topic

/// splitmix64 step for the produced event stream.
inline uint64_t splitmix(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Applies --kafka-property KEY=VALUE overrides to `props`.
kafka::properties with_overrides(kafka::properties props, const run_options& o) {
  for (const auto& [k, v] : o.kafka_properties)
    props[k] = v;
  return props;
}

/// Properties of the engine's consumers (those keyflowd sets; one consumer per partition).
kafka::properties consumer_properties(const std::string& bootstrap, const run_options& o) {
  return with_overrides({{"bootstrap.servers", bootstrap},
                         {"group.id", "keyflow-bench"},
                         {"enable.auto.commit", "false"},
                         {"queued.max.messages.kbytes", "16384"}},
                        o);
}

/// Properties of the raw baseline's single consumer: the same prefetch budget in total as
/// the engine's consumers together. (librdkafka 2.0.2 stops fetching for a fixed 1 s once
/// a consumer queue holds queued.min.messages or queued.max.messages.kbytes, and with one
/// consumer those limits cover all partitions.)
kafka::properties raw_consumer_properties(const std::string& bootstrap, const run_options& o) {
  auto props = consumer_properties(bootstrap, run_options{});
  props["queued.max.messages.kbytes"] = std::to_string(16384 * topic_partitions);
  props["queued.min.messages"] = std::to_string(100000 * topic_partitions);
  return with_overrides(std::move(props), o);
}

/// Produces `n` Events keyed by customer (uniform over `keys`), zstd-compressed so the mock
/// cluster's ~5 MiB-per-partition retention keeps them all; returns the expected totals.
totals_map produce_events(const std::string& bootstrap, uint64_t n, uint32_t keys) {
  kafka::producer prod({{"bootstrap.servers", bootstrap},
                        {"compression.type", "zstd"},
                        {"linger.ms", "20"},
                        {"batch.num.messages", "10000"},
                        {"batch.size", "1000000"},
                        {"queue.buffering.max.messages", "1000000"}});
  static const char* const types[] = {"page_view", "add_to_cart", "purchase", "email_open"};
  std::vector<std::string> names;
  for (uint32_t k = 0; k < keys; ++k)
    names.push_back(pipeline::datagen_key_name(k));
  totals_map expected;
  proto::Event ev;
  std::string bytes;
  uint64_t rng = 7;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t x = splitmix(rng);
    const auto& key = names[x % keys];
    const double value = static_cast<double>((x >> 32) % 2001) * 0.25;
    ev.set_event_id("e-" + std::to_string(i));
    ev.set_customer_id(key);
    ev.set_event_time_ms(1767225600000 + static_cast<int64_t>(i));
    ev.set_type(types[(x >> 24) % 4]);
    ev.set_value(value);
    ev.SerializeToString(&bytes);
    prod.send(topic, key, bytes);
    auto& t = expected[key];
    ++t.count;
    t.sum += value;
    if (i % 1024 == 0)
      prod.poll();
  }
  if (!prod.flush(120000) || prod.failed() != 0 || prod.delivered() != n)
    throw std::runtime_error("kafka: produced " + std::to_string(prod.delivered()) + " of " +
                             std::to_string(n) + " events (" + prod.last_error() + ")");
  return expected;
}

/// Checks that the topic still holds every produced record (low watermark 0 everywhere,
/// high watermarks summing to `n`); returns a note with the per-partition counts.
std::string check_retained(const std::string& bootstrap, uint64_t n) {
  char err[512];
  rd_kafka_conf_t* conf = kafka::make_conf({{"bootstrap.servers", bootstrap}});
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string{"kafka: watermark client: "} + err);
  }
  std::string note = "records per partition:";
  int64_t total = 0;
  bool dropped = false;
  for (int p = 0; p < topic_partitions; ++p) {
    int64_t low = -1, high = -1;
    auto rc = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high, 10000);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_destroy(rk);
      throw std::runtime_error(std::string{"kafka: watermarks: "} + rd_kafka_err2str(rc));
    }
    dropped = dropped || low != 0;
    total += high;
    note.push_back(' ');
    note += std::to_string(high - low);
  }
  rd_kafka_destroy(rk);
  if (dropped || total != static_cast<int64_t>(n))
    throw std::runtime_error("kafka: the mock cluster kept only part of the " + std::to_string(n) +
                             " events (" + note +
                             "); its retention is ~5 MiB per partition: lower --events");
  return note + " (none dropped by retention)";
}

/// Engine: one kafka_reader source actor per partition -> partition actors.
phase_result run_engine(const run_options& o, const std::string& bootstrap, uint64_t n,
                        totals_map& state, std::vector<std::string>& notes) {
  phase_result r;
  r.variant = "engine";
  auto s = settings_from(o);
  r.detail = std::to_string(topic_partitions) + " kafka_reader source actors -> " +
             std::to_string(s.parallelism) + " partition actor(s), " + std::to_string(o.workers) +
             " CAF worker(s)";
  memory_probe mem;
  auto plan = keyed_count_plan();
  engine_run eng(plan, s);
  const auto props = consumer_properties(bootstrap, o);
  auto& read = eng.node_metrics().records_in(plan->cfg.source.id);
  auto& folded = eng.node_metrics().records_in("aggregate");
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::shared_ptr<source_reader>> readers;
  for (int p = 0; p < topic_partitions; ++p)
    readers.push_back(std::make_shared<kafka::kafka_reader>(
        plan, props, p, RD_KAFKA_OFFSET_BEGINNING, &eng.node_metrics()));
  eng.start(readers);
  // The clock starts at the first record read: consumer start-up is reported apart.
  if (!engine_run::wait_for(read, 1, std::chrono::seconds(60)))
    throw std::runtime_error("kafka engine: no record read within 60 s");
  const auto t_first = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  r.startup_s = std::chrono::duration<double>(t_first - t0).count();
  if (!engine_run::wait_for(folded, n, std::chrono::seconds(600)) ||
      folded.Value() != static_cast<double>(n))
    throw std::runtime_error("kafka engine: " + std::to_string(folded.Value()) + " of " +
                             std::to_string(n) + " events folded in before the timeout");
  r.seconds = seconds_since(t_first);
  r.cpu_s = process_cpu_seconds() - cpu0;
  r.events = n;
  const auto t1 = std::chrono::steady_clock::now();
  const auto drained = eng.drain();
  notes.push_back("engine drain took " + std::to_string(seconds_since(t1)) +
                  " s, not included in the timing");
  const auto validated = eng.node_metrics().records_out(plan->cfg.source.id).Value();
  if (drained.processed != n || validated != static_cast<double>(n))
    throw std::runtime_error("kafka engine: " + std::to_string(drained.processed) + " processed, " +
                             std::to_string(validated) + " validated, expected " +
                             std::to_string(n));
  r.latency = eng.latency();
  r.memory = mem.finish();
  state = read_count_sum(eng.store(), "aggregate");
  return r;
}

/// A plain librdkafka consumer assigned every partition of the topic from the beginning.
class raw_consumer {
public:
  /// Creates the consumer and assigns partitions 0..partitions-1 at the beginning.
  raw_consumer(const kafka::properties& props, int partitions) {
    char err[512];
    rd_kafka_conf_t* conf = kafka::make_conf(props);
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string{"kafka raw consumer: "} + err);
    }
    rd_kafka_poll_set_consumer(rk_);
    queue_ = rd_kafka_queue_get_consumer(rk_);
    auto* list = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p)
      rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    auto rc = rd_kafka_assign(rk_, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
      close();
      throw std::runtime_error(std::string{"kafka raw consumer: assign: "} + rd_kafka_err2str(rc));
    }
  }
  ~raw_consumer() { close(); }
  raw_consumer(const raw_consumer&) = delete;
  raw_consumer& operator=(const raw_consumer&) = delete;

  /// Takes the messages available now (up to out.size()); if there are none, waits up to
  /// `timeout_ms` for the first one. (rd_kafka_consume_batch_queue with a timeout waits
  /// for a full batch, so it is only ever called with timeout 0.)
  size_t poll(std::vector<rd_kafka_message_t*>& out, int timeout_ms) {
    auto n = rd_kafka_consume_batch_queue(queue_, 0, out.data(), out.size());
    if (n > 0)
      return static_cast<size_t>(n);
    rd_kafka_message_t* first = rd_kafka_consume_queue(queue_, timeout_ms);
    if (first == nullptr)
      return 0;
    out[0] = first;
    n = rd_kafka_consume_batch_queue(queue_, 0, out.data() + 1, out.size() - 1);
    return 1 + (n < 0 ? 0 : static_cast<size_t>(n));
  }

private:
  void close() {
    rd_kafka_queue_destroy(queue_);
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
  }
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
};

/// Parses and folds one batch; returns the events folded in. Throws on a bad record.
uint64_t fold_batch(std::vector<rd_kafka_message_t*>& msgs, size_t got, proto::Event& ev,
                    totals_map& map) {
  uint64_t good = 0;
  std::string error;
  for (size_t i = 0; i < got; ++i) {
    auto* m = msgs[i];
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (ev.ParseFromArray(m->payload, static_cast<int>(m->len))) {
        auto& t = map[ev.customer_id()];
        ++t.count;
        t.sum += ev.value();
        ++good;
      } else {
        error = "undecodable record at offset " + std::to_string(m->offset);
      }
    } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      error = rd_kafka_message_errstr(m);
    }
    rd_kafka_message_destroy(m);
  }
  if (!error.empty())
    throw std::runtime_error("kafka raw consumer: " + error);
  return good;
}

/// Raw: one consumer, ParseFromArray, std::unordered_map, all in this thread.
phase_result run_raw(const run_options& o, const std::string& bootstrap, uint64_t n,
                     totals_map& out) {
  phase_result r;
  r.variant = "raw";
  r.detail = "1 librdkafka consumer (all partitions, same total prefetch budget) + "
             "ParseFromArray + std::unordered_map, 1 thread";
  memory_probe mem;
  totals_map map;
  latency_samples lat;
  proto::Event ev;
  std::vector<rd_kafka_message_t*> msgs(max_batch);
  uint64_t folded = 0;
  const auto t0 = std::chrono::steady_clock::now();
  auto t_first = t0; // the clock starts at the first record, as for the engine
  double cpu0 = 0;
  {
    raw_consumer consumer(raw_consumer_properties(bootstrap, o), topic_partitions);
    while (folded < n) {
      if (seconds_since(t0) > 600)
        throw std::runtime_error("kafka raw consumer: " + std::to_string(folded) + " of " +
                                 std::to_string(n) + " events before the timeout");
      const size_t got = consumer.poll(msgs, 100);
      const auto b0 = std::chrono::steady_clock::now();
      if (folded == 0 && got > 0) {
        t_first = b0;
        cpu0 = process_cpu_seconds();
      }
      const uint64_t good = fold_batch(msgs, got, ev, map);
      folded += good;
      if (good > 0)
        lat.add(seconds_since(b0), good);
    }
    r.seconds = seconds_since(t_first);
    r.cpu_s = process_cpu_seconds() - cpu0;
    r.startup_s = std::chrono::duration<double>(t_first - t0).count();
    r.memory = mem.finish();
  }
  r.events = folded;
  r.latency = lat.percentiles();
  out = std::move(map);
  return r;
}

} // namespace

scenario_result run_kafka(const run_options& opts) {
  scenario_result res;
  res.name = "kafka";
  const uint64_t n = opts.events ? opts.events : (opts.short_mode ? short_events : default_events);
  kafka::embedded_kafka cluster(1);
  cluster.create_topic(topic, topic_partitions);
  const auto bootstrap = cluster.bootstrap_servers();
  progress(opts, "kafka: producing " + std::to_string(n) + " events over " +
                     std::to_string(opts.keys) + " customers");
  const auto t0 = std::chrono::steady_clock::now();
  const totals_map expected = produce_events(bootstrap, n, opts.keys);
  res.notes.push_back("produced in " + std::to_string(seconds_since(t0)) + " s (zstd, untimed); " +
                      check_retained(bootstrap, n));
  progress(opts, "kafka: engine");
  totals_map engine_state, raw_state;
  res.engine = run_engine(opts, bootstrap, n, engine_state, res.notes);
  progress(opts, "kafka: raw baseline");
  res.raw = run_raw(opts, bootstrap, n, raw_state);
  res.notes.push_back("consumer start-up (assign -> first record), excluded from the timings: "
                      "engine " +
                      std::to_string(res.engine.startup_s) + " s, raw " +
                      std::to_string(res.raw.startup_s) + " s");
  std::string why;
  const bool engine_ok = same_totals(engine_state, expected, why);
  if (!engine_ok)
    res.notes.push_back("engine differs from what was produced: " + why);
  const bool raw_ok = same_totals(raw_state, expected, why);
  if (!raw_ok)
    res.notes.push_back("raw baseline differs from what was produced: " + why);
  res.results_equal = engine_ok && raw_ok;
  res.target = ">= 50% of raw";
  res.target_met = res.ratio() >= target_ratio;
  return res;
}

} // namespace keyflow::bench
