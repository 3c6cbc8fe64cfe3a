// keyflow-gen: writes realistic keyflow.proto.Event records to Kafka, with a chosen rate,
// key skew (zipf) and share of malformed records, and reports exactly what it sent (a JSON
// summary with per-customer counts and sums) so that results can be checked.
// `keyflow-gen nexmark ...` instead writes Nexmark events (keyflow.nexmark.Event, from
// src/core/nexmark.hpp) and summarizes them by kind and event time.
//
// Everything is deterministic given --seed and the options: the same command always sends
// the same records (the --rate, --random-partition and --key-by-customer options do not
// change the events themselves).
#include "core/nexmark.hpp"
#include "proto/event.pb.h"

#include <CLI/CLI.hpp>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>
#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

/// 2026-01-01T00:00:00Z in ms since the Unix epoch: event time of the first event.
constexpr std::int64_t base_time_ms = 1767225600000;

/// xoshiro256** seeded by splitmix64: the same sequence on every platform and library
/// (std:: distributions are implementation-defined, so they are not used).
class rng {
public:
  /// Seeds the state from `seed` via splitmix64.
  explicit rng(std::uint64_t seed) {
    for (auto& word : s_) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31);
    }
  }

  /// Next 64 random bits.
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform integer in [0, n) (multiply-shift; bias below 2^-32 for n < 2^32).
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

  /// Uniform double in [0, 1).
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> s_{};
};

/// Samples ranks 0..n-1 with P(k) proportional to 1/(k+1)^s: precomputed CDF + binary
/// search. s = 0 is uniform (no table).
class zipf_sampler {
public:
  /// Builds the CDF for n ranks and exponent s >= 0.
  zipf_sampler(std::uint64_t n, double s) : n_(n) {
    if (s <= 0.0)
      return;
    cdf_.resize(n);
    double total = 0.0;
    for (std::uint64_t k = 0; k < n; ++k)
      cdf_[k] = total += std::pow(static_cast<double>(k + 1), -s);
    for (auto& c : cdf_)
      c /= total;
  }

  /// Draws one rank; uses exactly one random number either way.
  std::uint64_t operator()(rng& r) const {
    if (cdf_.empty())
      return r.below(n_);
    auto it = std::upper_bound(cdf_.begin(), cdf_.end(), r.unit());
    return std::min<std::uint64_t>(static_cast<std::uint64_t>(it - cdf_.begin()), n_ - 1);
  }

private:
  std::uint64_t n_;
  std::vector<double> cdf_;
};

/// Kinds of malformed records; `none` is a valid event.
enum class bad_kind {
  none,
  decode_error,
  missing_customer_id,
  missing_event_id,
  missing_event_time
};

/// Names of the malformed kinds, as used in the summary (index = bad_kind - 1).
constexpr std::array<const char*, 4> bad_kind_names = {"decode_error", "missing_customer_id",
                                                       "missing_event_id", "missing_event_time"};

/// Options of keyflow-gen.
struct options {
  std::string bootstrap_servers;
  std::string topic = "events";
  std::uint64_t events = 100000;
  std::uint64_t customers = 1000;
  double rate = 0;
  double zipf = 0;
  double malformed = 0;
  std::uint64_t seed = 42;
  std::string summary;
  bool random_partition = false;
  bool key_by_customer = true;
  std::int64_t time_step_ms = 10;
  std::int64_t jitter_ms = 50;
  int message_timeout_ms = 60000;
  std::string compression = "lz4";
  std::vector<std::string> properties;
};

/// One generated Kafka record and what it means.
struct record {
  std::string key; // empty with has_key = false: no key
  bool has_key = false;
  std::string value; // serialized Event, or junk for decode_error
  bad_kind kind = bad_kind::none;
  std::uint64_t customer = 0; // customer index (0-based)
  double amount = 0;
  std::int64_t event_time_ms = 0;
};

/// Formats customer index i (0-based) as "c-000001".
std::string customer_id(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "c-%06llu", static_cast<unsigned long long>(i + 1));
  return buf;
}

/// Produces the deterministic record stream described by the options.
class event_generator {
public:
  /// Prepares the samplers for `opt`.
  explicit event_generator(const options& opt)
      : opt_(opt), rng_(opt.seed), customers_(opt.customers, opt.zipf) {}

  /// Generates record number n (0-based); must be called with n = 0, 1, 2, ...
  void next(std::uint64_t n, record& out) {
    static constexpr std::array<const char*, 10> types = {
        "page_view", "page_view",   "page_view",   "page_view", "page_view",
        "page_view", "add_to_cart", "add_to_cart", "purchase",  "email_open"};
    static constexpr std::array<const char*, 4> channels = {"web", "ios", "android", "email"};
    static constexpr std::array<const char*, 6> countries = {"US", "DE", "FR", "GB", "JP", "BR"};
    // A fixed number of draws per record, so the stream does not shift with --malformed.
    out.customer = customers_(rng_);
    const bool bad = rng_.unit() < opt_.malformed;
    const auto kind = static_cast<bad_kind>(1 + rng_.below(4));
    const char* type = types[rng_.below(types.size())];
    out.amount = static_cast<double>(rng_.below(2001)) * 0.25;
    const auto jitter = static_cast<std::int64_t>(rng_.below(opt_.jitter_ms + 1));
    const char* channel = channels[rng_.below(channels.size())];
    const char* country = countries[rng_.below(countries.size())];

    out.kind = bad ? kind : bad_kind::none;
    out.event_time_ms = base_time_ms + static_cast<std::int64_t>(n) * opt_.time_step_ms + jitter;
    const std::string cid = customer_id(out.customer);
    out.has_key = opt_.key_by_customer && out.kind != bad_kind::missing_customer_id;
    out.key = out.has_key ? cid : std::string();
    if (out.kind == bad_kind::decode_error) {
      junk(n, out.value);
      return;
    }
    event_.Clear();
    if (out.kind != bad_kind::missing_event_id)
      event_.set_event_id("e-" + std::to_string(opt_.seed) + "-" + std::to_string(n));
    if (out.kind != bad_kind::missing_customer_id)
      event_.set_customer_id(cid);
    if (out.kind != bad_kind::missing_event_time)
      event_.set_event_time_ms(out.event_time_ms);
    event_.set_type(type);
    event_.set_value(out.amount);
    (*event_.mutable_attributes())["channel"] = channel;
    (*event_.mutable_attributes())["country"] = country;
    serialize(event_, out.value);
  }

  /// Serializes with map entries in key order: plain SerializeToString writes protobuf maps
  /// in hash order, which differs between runs, so equal events would differ in bytes.
  static void serialize(const keyflow::proto::Event& event, std::string& out) {
    out.clear();
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    event.SerializeToCodedStream(&coded);
  } // coded then stream trim `out` to the bytes written

private:
  /// Random bytes that do not parse as an Event (own stream per record n).
  void junk(std::uint64_t n, std::string& out) {
    rng r(opt_.seed ^ (0xd1b54a32d192ed03ULL * (n + 1)));
    keyflow::proto::Event probe;
    do {
      out.resize(8 + r.below(57));
      for (auto& c : out)
        c = static_cast<char>(r.next() & 0xff);
    } while (probe.ParseFromArray(out.data(), static_cast<int>(out.size())));
  }

  const options& opt_;
  rng rng_;
  zipf_sampler customers_;
  keyflow::proto::Event event_;
};

/// What was sent, per customer (valid events only).
struct customer_stats {
  std::uint64_t count = 0;
  double sum = 0;
  std::int64_t last_event_time_ms = 0; // greatest event time
};

/// Totals over all records sent.
struct totals {
  std::uint64_t valid = 0;
  std::uint64_t malformed = 0;
  std::array<std::uint64_t, 4> by_reason{};
  std::vector<customer_stats> per_customer;

  /// Accounts for one record.
  void add(const record& r) {
    if (r.kind != bad_kind::none) {
      ++malformed;
      ++by_reason[static_cast<int>(r.kind) - 1];
      return;
    }
    ++valid;
    auto& c = per_customer[r.customer];
    ++c.count;
    c.sum += r.amount;
    c.last_event_time_ms = std::max(c.last_event_time_ms, r.event_time_ms);
  }
};

/// Options of `keyflow-gen nexmark`.
struct nexmark_cli_options {
  std::string bootstrap_servers;
  std::string topic = "nexmark";
  keyflow::nexmark_options gen{.events = 100000};
  double rate = 0;
  std::string summary;
  bool random_partition = false;
  int message_timeout_ms = 60000;
  std::string compression = "lz4";
  std::vector<std::string> properties;
};

/// An idempotent librdkafka producer that counts delivery reports.
class producer {
public:
  /// Connects as `opt` says; throws std::runtime_error on a bad configuration.
  explicit producer(const options& opt)
      : producer(opt.bootstrap_servers, opt.topic, opt.message_timeout_ms, opt.compression,
                 opt.properties) {}

  /// Connects to `bootstrap_servers` to write `topic` with the given delivery timeout,
  /// compression and extra librdkafka properties (KEY=VALUE); throws std::runtime_error on a
  /// bad configuration.
  producer(const std::string& bootstrap_servers, const std::string& topic, int message_timeout_ms,
           const std::string& compression, const std::vector<std::string>& properties) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    auto set = [&](const std::string& key, const std::string& value) {
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof(errstr)) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error("producer property " + key + "=" + value + ": " + errstr);
      }
    };
    set("bootstrap.servers", bootstrap_servers);
    set("enable.idempotence", "true");
    set("linger.ms", "5");
    set("batch.num.messages", "10000");
    set("batch.size", "1000000");
    set("queue.buffering.max.messages", "1000000");
    set("message.timeout.ms", std::to_string(message_timeout_ms));
    set("compression.type", compression);
    for (const auto& p : properties) {
      auto eq = p.find('=');
      if (eq == std::string::npos || eq == 0) {
        rd_kafka_conf_destroy(conf);
        throw std::runtime_error("--property wants KEY=VALUE, got '" + p + "'");
      }
      set(p.substr(0, eq), p.substr(eq + 1));
    }
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, &producer::on_delivery);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string("cannot create producer: ") + errstr);
    }
    rkt_ = rd_kafka_topic_new(rk_, topic.c_str(), nullptr);
  }

  ~producer() {
    if (rkt_ != nullptr)
      rd_kafka_topic_destroy(rkt_);
    rd_kafka_destroy(rk_);
  }

  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  /// Partition count of the topic, from metadata; throws if unavailable.
  int partition_count(int timeout_ms) {
    const rd_kafka_metadata_t* md = nullptr;
    auto err = rd_kafka_metadata(rk_, 0, rkt_, &md, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error(std::string("metadata for topic '") + rd_kafka_topic_name(rkt_) +
                               "': " + rd_kafka_err2str(err));
    int count = md->topic_cnt == 1 && md->topics[0].err == 0 ? md->topics[0].partition_cnt : 0;
    auto topic_err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    rd_kafka_metadata_destroy(md);
    if (count <= 0)
      throw std::runtime_error(std::string("topic '") + rd_kafka_topic_name(rkt_) +
                               "' has no partitions: " + rd_kafka_err2str(topic_err));
    return count;
  }

  /// Enqueues one record (waiting while the local queue is full); false if refused.
  bool send(const record& r, int partition) {
    return send(r.has_key ? r.key.data() : nullptr, r.has_key ? r.key.size() : 0, r.value,
                partition);
  }

  /// Enqueues a record with the given key (none if `key` is null) and value (both copied),
  /// waiting while the local queue is full; false if refused.
  bool send(const char* key, std::size_t key_size, std::string_view value, int partition) {
    for (;;) {
      auto err = rd_kafka_producev(
          rk_, RD_KAFKA_V_RKT(rkt_), RD_KAFKA_V_PARTITION(partition),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key_size),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return true;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        note_failure(err);
        return false;
      }
      rd_kafka_poll(rk_, 10);
    }
  }

  /// Serves delivery reports without blocking.
  void poll() { rd_kafka_poll(rk_, 0); }

  /// Waits until every record has a delivery report (or timeout_ms passed).
  bool flush(int timeout_ms) {
    return rd_kafka_flush(rk_, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
  }

  /// Records acknowledged by the brokers.
  std::uint64_t delivered() const { return delivered_; }

  /// Records that failed (refused locally or reported failed).
  std::uint64_t failed() const { return failed_; }

  /// The first failure's message, empty if none.
  const std::string& first_error() const { return first_error_; }

private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<producer*>(opaque);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      ++self->delivered_;
    else
      self->note_failure(m->err);
  }

  void note_failure(rd_kafka_resp_err_t err) {
    if (failed_++ == 0)
      first_error_ = rd_kafka_err2str(err);
  }

  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* rkt_ = nullptr;
  std::uint64_t delivered_ = 0;
  std::uint64_t failed_ = 0;
  std::string first_error_;
};

/// Sleeps as needed so that record n is not sent before n / rate seconds after start.
void pace(double rate, clock_type::time_point start, std::uint64_t n) {
  if (rate <= 0)
    return;
  auto due = start + std::chrono::duration_cast<clock_type::duration>(
                         std::chrono::duration<double>(static_cast<double>(n) / rate));
  if (due - clock_type::now() > std::chrono::milliseconds(1))
    std::this_thread::sleep_until(due);
}

/// Builds the summary JSON (schema in tools/README.md).
nlohmann::ordered_json make_summary(const options& opt, const totals& t, double elapsed_s,
                                    const producer& p) {
  nlohmann::ordered_json j;
  j["topic"] = opt.topic;
  j["events"] = opt.events;
  j["valid"] = t.valid;
  j["malformed"] = t.malformed;
  auto& reasons = j["malformed_by_reason"] = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < bad_kind_names.size(); ++i)
    reasons[bad_kind_names[i]] = t.by_reason[i];
  j["customers"] = opt.customers;
  j["seed"] = opt.seed;
  j["zipf"] = opt.zipf;
  j["random_partition"] = opt.random_partition;
  j["key_by_customer"] = opt.key_by_customer;
  j["compression"] = opt.compression;
  j["delivered"] = p.delivered();
  j["failed_deliveries"] = p.failed();
  j["elapsed_s"] = std::round(elapsed_s * 1000.0) / 1000.0;
  auto& per = j["per_customer"] = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < t.per_customer.size(); ++i) {
    const auto& c = t.per_customer[i];
    if (c.count > 0)
      per[customer_id(i)] = {
          {"count", c.count}, {"sum", c.sum}, {"last_event_time_ms", c.last_event_time_ms}};
  }
  return j;
}

/// Writes `text` to `path` through a temporary file and rename(2).
void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush())
      throw std::runtime_error("cannot write '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
}

/// Waits until all `sent` records have delivery reports: every record gets one within
/// message.timeout.ms; the extra deadline is a safety net.
void flush_all(producer& prod, int message_timeout_ms, std::uint64_t sent) {
  const auto deadline =
      clock_type::now() + std::chrono::milliseconds(message_timeout_ms) + std::chrono::seconds(30);
  while (!prod.flush(1000) && prod.delivered() + prod.failed() < sent &&
         clock_type::now() < deadline) {
  }
}

/// Generates and sends all records; returns the exit code.
int run(const options& opt) {
  google::protobuf::SetLogHandler(nullptr); // junk probes must not log UTF-8 errors
  producer prod(opt);
  const int partitions = opt.random_partition ? prod.partition_count(10000) : 0;
  event_generator gen(opt);
  rng partition_rng(opt.seed ^ 0x5851f42d4c957f2dULL);
  totals sent;
  sent.per_customer.resize(opt.customers);
  record r;
  const auto start = clock_type::now();
  for (std::uint64_t n = 0; n < opt.events; ++n) {
    pace(opt.rate, start, n);
    gen.next(n, r);
    int partition = opt.random_partition ? static_cast<int>(partition_rng.below(partitions))
                                         : RD_KAFKA_PARTITION_UA;
    prod.send(r, partition);
    sent.add(r);
    if (n % 1024 == 0)
      prod.poll();
  }
  flush_all(prod, opt.message_timeout_ms, opt.events);
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  if (!opt.summary.empty())
    write_file_atomically(opt.summary, make_summary(opt, sent, elapsed, prod).dump(1) + "\n");
  std::fprintf(stderr,
               "keyflow-gen: %llu events (%llu valid, %llu malformed) to '%s' in %.3f s: "
               "%.0f events/s\n",
               static_cast<unsigned long long>(opt.events),
               static_cast<unsigned long long>(sent.valid),
               static_cast<unsigned long long>(sent.malformed), opt.topic.c_str(), elapsed,
               elapsed > 0 ? static_cast<double>(opt.events) / elapsed : 0.0);
  if (prod.failed() == 0)
    return 0;
  std::fprintf(stderr, "keyflow-gen: %llu of %llu deliveries FAILED (first: %s)\n",
               static_cast<unsigned long long>(prod.failed()),
               static_cast<unsigned long long>(opt.events), prod.first_error().c_str());
  return 1;
}

/// Declares the command-line options on `app`.
void add_options(CLI::App& app, options& opt) {
  app.option_defaults()->always_capture_default();
  app.add_option("--bootstrap-servers,-b", opt.bootstrap_servers,
                 "Kafka bootstrap servers (required)");
  app.add_option("--topic,-t", opt.topic, "topic to write to");
  app.add_option("--events,-n", opt.events, "number of records to send (valid + malformed)");
  app.add_option("--customers", opt.customers, "number of customers (ids c-000001, ...)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10000000}));
  app.add_option("--rate", opt.rate, "records per second (0 = as fast as possible)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--zipf", opt.zipf, "key skew exponent s, P(rank k) ~ 1/k^s (0 = uniform)")
      ->check(CLI::Range(0.0, 10.0));
  app.add_option("--malformed", opt.malformed, "share of malformed records, 0..1")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--seed", opt.seed, "random seed; same seed and options = same records");
  app.add_option("--summary", opt.summary, "write a JSON summary of what was sent here");
  app.add_flag("--random-partition", opt.random_partition,
               "send each record to a random partition instead of partitioning by key");
  app.add_flag("--key-by-customer,!--no-key-by-customer", opt.key_by_customer,
               "Kafka record key = customer_id (--no-key-by-customer: no key)");
  app.add_option("--time-step-ms", opt.time_step_ms,
                 "event time advance per record from 2026-01-01T00:00:00Z")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  app.add_option("--jitter-ms", opt.jitter_ms, "random extra event time 0..N ms per record")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  app.add_option("--message-timeout-ms", opt.message_timeout_ms,
                 "give up on a record not acknowledged after this long")
      ->check(CLI::Range(1000, 3600000));
  app.add_option("--compression", opt.compression,
                 "batch compression (lz4 also makes the embedded broker's fixed ~5 MiB per "
                 "partition retention hold ~3x more events)")
      ->check(CLI::IsMember({"none", "gzip", "snappy", "lz4", "zstd"}));
  app.add_option("--property,-X", opt.properties,
                 "extra librdkafka producer property KEY=VALUE (repeatable), e.g. for SASL");
}

/// What `keyflow-gen nexmark` sent: counts by kind, event times, bytes.
struct nexmark_totals {
  std::array<std::uint64_t, 3> by_kind{}; // index = keyflow::nexmark_kind
  std::uint64_t events = 0;
  std::uint64_t bytes = 0; // serialized values
  std::int64_t first_time_ms = 0, last_time_ms = 0, min_time_ms = 0, max_time_ms = 0;

  /// Accounts for the generator's current event.
  void add(const keyflow::nexmark_generator& gen) {
    const std::int64_t t = gen.event().event_time_ms();
    if (events++ == 0)
      first_time_ms = min_time_ms = max_time_ms = t;
    last_time_ms = t;
    min_time_ms = std::min(min_time_ms, t);
    max_time_ms = std::max(max_time_ms, t);
    ++by_kind[static_cast<int>(keyflow::nexmark_kind_of(gen.number()))];
    bytes += gen.value().size();
  }
};

/// Builds the `keyflow-gen nexmark` summary JSON: counts by kind, event-time range, the
/// generator options and delivery counts.
nlohmann::ordered_json make_nexmark_summary(const nexmark_cli_options& opt, const nexmark_totals& t,
                                            double elapsed_s, const producer& p) {
  nlohmann::ordered_json j;
  j["topic"] = opt.topic;
  j["events"] = t.events;
  auto& kinds = j["by_kind"] = nlohmann::ordered_json::object();
  for (int k = 0; k < 3; ++k)
    kinds[std::string(keyflow::nexmark_kind_name(static_cast<keyflow::nexmark_kind>(k)))] =
        t.by_kind[k];
  j["first_event_time_ms"] = t.first_time_ms;
  j["last_event_time_ms"] = t.last_time_ms;
  j["min_event_time_ms"] = t.min_time_ms;
  j["max_event_time_ms"] = t.max_time_ms;
  j["bytes"] = t.bytes;
  j["sequence_events"] = opt.gen.events;
  j["instance"] = opt.gen.instance;
  j["instances"] = opt.gen.instances;
  j["seed"] = opt.gen.seed;
  j["base_time_ms"] = opt.gen.base_time_ms;
  j["events_per_second"] = opt.gen.events_per_second;
  j["max_delay_ms"] = opt.gen.max_delay_ms;
  j["random_partition"] = opt.random_partition;
  j["compression"] = opt.compression;
  j["delivered"] = p.delivered();
  j["failed_deliveries"] = p.failed();
  j["elapsed_s"] = std::round(elapsed_s * 1000.0) / 1000.0;
  return j;
}

/// Generates and sends this instance's Nexmark events; prints the summary on stdout;
/// returns the exit code.
int run_nexmark(const nexmark_cli_options& opt) {
  keyflow::nexmark_generator gen(opt.gen); // throws on bad options, before connecting
  producer prod(opt.bootstrap_servers, opt.topic, opt.message_timeout_ms, opt.compression,
                opt.properties);
  const int partitions = opt.random_partition ? prod.partition_count(10000) : 0;
  rng partition_rng(opt.gen.seed ^ 0x5851f42d4c957f2dULL);
  nexmark_totals sent;
  const auto start = clock_type::now();
  while (gen.next()) {
    pace(opt.rate, start, sent.events);
    int partition = opt.random_partition ? static_cast<int>(partition_rng.below(partitions))
                                         : RD_KAFKA_PARTITION_UA;
    prod.send(gen.key().data(), gen.key().size(), gen.value(), partition);
    sent.add(gen);
    if (sent.events % 1024 == 0)
      prod.poll();
  }
  flush_all(prod, opt.message_timeout_ms, sent.events);
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  const auto summary = make_nexmark_summary(opt, sent, elapsed, prod);
  if (!opt.summary.empty())
    write_file_atomically(opt.summary, summary.dump(1) + "\n");
  std::cout << summary.dump() << std::endl;
  std::fprintf(stderr,
               "keyflow-gen: %llu nexmark events (%llu persons, %llu auctions, %llu bids) to "
               "'%s' in %.3f s: %.0f events/s\n",
               static_cast<unsigned long long>(sent.events),
               static_cast<unsigned long long>(sent.by_kind[0]),
               static_cast<unsigned long long>(sent.by_kind[1]),
               static_cast<unsigned long long>(sent.by_kind[2]), opt.topic.c_str(), elapsed,
               elapsed > 0 ? static_cast<double>(sent.events) / elapsed : 0.0);
  if (prod.failed() == 0)
    return 0;
  std::fprintf(stderr, "keyflow-gen: %llu of %llu deliveries FAILED (first: %s)\n",
               static_cast<unsigned long long>(prod.failed()),
               static_cast<unsigned long long>(sent.events), prod.first_error().c_str());
  return 1;
}

/// Declares the options of the `nexmark` subcommand on `cmd`.
void add_nexmark_options(CLI::App& cmd, nexmark_cli_options& opt) {
  cmd.option_defaults()->always_capture_default();
  cmd.add_option("--bootstrap-servers,-b", opt.bootstrap_servers, "Kafka bootstrap servers")
      ->required();
  cmd.add_option("--topic,-t", opt.topic, "topic to write to");
  cmd.add_option("--events,-n", opt.gen.events,
                 "events in the sequence (with --instances: all instances together)");
  cmd.add_option("--seed", opt.gen.seed, "random seed; same seed and options = same records");
  cmd.add_option("--events-per-second", opt.gen.events_per_second,
                 "event-time rate: event n has time base + n*1000/rate ms (not a send rate)")
      ->check(CLI::Range(1U, 1000000000U));
  cmd.add_option("--max-delay-ms", opt.gen.max_delay_ms,
                 "bounded disorder: each event time moves back by a random 0..N ms")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{86400000}));
  cmd.add_option("--base-time-ms", opt.gen.base_time_ms,
                 "event time of event 0, ms since the Unix epoch (2026-01-01T00:00:00Z)");
  cmd.add_option("--instance", opt.gen.instance,
                 "send only events n with n % instances == instance");
  cmd.add_option("--instances", opt.gen.instances,
                 "generators splitting one sequence by event number")
      ->check(CLI::Range(1U, 1000000U));
  cmd.add_option("--rate", opt.rate, "records per second (0 = as fast as possible)")
      ->check(CLI::Range(0.0, 1e9));
  cmd.add_option("--summary", opt.summary, "also write the JSON summary here");
  cmd.add_flag("--random-partition", opt.random_partition,
               "send each record to a random partition instead of partitioning by key");
  cmd.add_option("--message-timeout-ms", opt.message_timeout_ms,
                 "give up on a record not acknowledged after this long")
      ->check(CLI::Range(1000, 3600000));
  cmd.add_option("--compression", opt.compression, "batch compression")
      ->check(CLI::IsMember({"none", "gzip", "snappy", "lz4", "zstd"}));
  cmd.add_option("--property,-X", opt.properties,
                 "extra librdkafka producer property KEY=VALUE (repeatable), e.g. for SASL");
}

/// Parses the command line: the events generator (top-level options) or `nexmark`.
/// Returns -1 to go on, else the exit code (help, or a usage error already printed).
int parse(CLI::App& app, CLI::App& nexmark, const options& opt, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    if (!nexmark.parsed()) {
      // Not ->required() on the top level: it would also be required with `nexmark`.
      if (opt.bootstrap_servers.empty())
        throw CLI::RequiredError("--bootstrap-servers");
      return -1;
    }
    for (const CLI::Option* o : app.get_options())
      if (o->count() > 0 && o != app.get_help_ptr())
        throw CLI::ValidationError(o->get_name() + " is not a nexmark option; write nexmark "
                                                   "options after 'nexmark'");
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return -1;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyflow-gen: writes keyflow.proto.Event records to Kafka with chosen rate, "
               "key skew and malformed share, and summarizes what it sent."};
  options opt;
  add_options(app, opt);
  nexmark_cli_options nexmark_opt;
  CLI::App* nexmark = app.add_subcommand(
      "nexmark", "writes Nexmark events (keyflow.nexmark.Event: persons, auctions, bids) "
                 "and prints a JSON summary of what it sent");
  add_nexmark_options(*nexmark, nexmark_opt);
  if (const int rc = parse(app, *nexmark, opt, argc, argv); rc >= 0)
    return rc;
  try {
    return nexmark->parsed() ? run_nexmark(nexmark_opt) : run(opt);
  } catch (const std::exception& e) {
    std::cerr << "keyflow-gen: " << e.what() << std::endl;
    return 1;
  }
}
