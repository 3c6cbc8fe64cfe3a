// keyflow-verify: checks a pipeline's results against what keyflow-gen says it sent.
// Reads the generator's summary JSON, the profiles in Redis, and optionally the dead-letter
// and activations topics in Kafka; prints a sample side by side and exits non-zero on any
// difference. Used by tools/quickstart.sh and the integration tests.

#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <tuple>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "config/pipeline_config.hpp"
#include "kafka/client.hpp"
#include "proto/dead_letter.pb.h"
#include "redis/redis_client.hpp"

namespace {

using namespace keyflow;

struct options {
  std::string summary, redis, pipeline, bootstrap;
  std::string key_prefix = "profile:";
  double wait_s = 0;
  size_t sample = 5;
  bool at_least_once_kafka = false;
};

struct expected_profile {
  uint64_t count = 0;
  double sum = 0;
  int64_t last = 0;
};

using profile_map = std::map<std::string, expected_profile>;

/// The pipeline's score operator over the aggregate features count and sum.
struct scorer {
  double bias = 0, w_count = 0, w_sum = 0, threshold = 0.5;
  /// Score of a customer with these aggregates.
  double score(const expected_profile& p) const {
    return 1.0 / (1.0 + std::exp(-(bias + w_count * static_cast<double>(p.count) + w_sum * p.sum)));
  }
};

/// Reads the score operator and the activation filter (score >= threshold) of a pipeline.
std::optional<scorer> scorer_of(const config::pipeline_config& pipe) {
  std::optional<scorer> out;
  for (const auto& op : pipe.operators) {
    if (op.type == "score") {
      out.emplace();
      out->bias = op.bias;
      for (const auto& [f, w] : op.weights) {
        if (f.name == "count")
          out->w_count = w;
        else if (f.name == "sum")
          out->w_sum = w;
        else
          throw std::runtime_error("keyflow-verify knows the features count and sum, not '" +
                                   f.name + "'");
      }
    }
    if (op.type == "filter" && out && op.field.name == "score" && op.op == "ge")
      out->threshold = std::stod(op.value);
  }
  return out;
}

profile_map load_expected(const nlohmann::json& j) {
  profile_map out;
  for (const auto& [k, v] : j.at("per_customer").items())
    out[k] = {v.at("count").get<uint64_t>(), v.at("sum").get<double>(),
              v.at("last_event_time_ms").get<int64_t>()};
  return out;
}

/// Compares Redis with the expectations; returns mismatching customers (first few printed).
size_t compare_profiles(const options& o, const profile_map& want,
                        const std::optional<scorer>& scorer, bool print) {
  redis::client r{redis::address::parse(o.redis)};
  size_t bad = 0, shown = 0;
  if (print)
    std::cout << fmt::format("{:<12} {:>16} {:>16} {:>20} {:>20} {:>10}\n", "customer",
                             "count got/want", "", "sum got/want", "", "score");
  for (const auto& [key, w] : want) {
    std::map<std::string, std::string> h;
    for (auto& [f, v] : r.hgetall(o.key_prefix + key))
      h[f] = v;
    auto num = [&](const char* f) { return h.count(f) ? std::stod(h[f]) : -1.0; };
    bool ok = num("count") == static_cast<double>(w.count) && num("sum") == w.sum &&
              num("last_event_time_ms") == static_cast<double>(w.last);
    if (ok && scorer)
      ok = std::fabs(num("score") - scorer->score(w)) < 1e-9;
    if (!ok)
      ++bad;
    if (print && (shown < o.sample || (!ok && bad <= 10))) {
      ++shown;
      std::cout << fmt::format(
          "{:<12} {:>8}/{:<8}{:>8} {:>12}/{:<12}{:>6} {:>10} {}\n", key,
          h.count("count") ? h["count"] : "-", w.count, "", h.count("sum") ? h["sum"] : "-", w.sum,
          "", h.count("score") ? h["score"].substr(0, 8) : "-", ok ? "ok" : "MISMATCH");
    }
  }
  return bad;
}

/// Reads a whole topic from the beginning; calls f(value) for each record.
template <class F>
size_t read_topic(const std::string& bootstrap, const std::string& topic, F f) {
  // read_uncommitted: the embedded Kafka (librdkafka's mock cluster) writes no transaction
  // markers, so its last stable offset cannot be trusted; every record counts as written.
  kafka::properties props{{"bootstrap.servers", bootstrap},
                          {"group.id", "keyflow-verify"},
                          {"enable.auto.commit", "false"},
                          {"isolation.level", "read_uncommitted"}};
  int parts = kafka::partition_count({{"bootstrap.servers", bootstrap}}, topic);
  if (parts <= 0)
    throw std::runtime_error("topic '" + topic + "' does not exist");
  size_t n = 0;
  for (int p = 0; p < parts; ++p) {
    kafka::partition_consumer c{props, topic, p, RD_KAFKA_OFFSET_BEGINNING};
    kafka::message_batch batch;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      c.poll(batch, 1000, 200);
      for (auto* m : batch.messages())
        f(std::string_view{static_cast<const char*>(m->payload), m->len}), ++n;
      if (batch.messages().empty() && c.lag() == 0)
        break;
    }
  }
  return n;
}

int check_dead_letters(const options& o, const nlohmann::json& j, const std::string& topic,
                       std::ostream& out) {
  std::map<std::string, size_t> by_code;
  std::set<std::tuple<std::string, int32_t, int64_t>> origins;
  size_t bad_envelopes = 0, duplicates = 0;
  auto total = read_topic(o.bootstrap, topic, [&](std::string_view v) {
    proto::DeadLetter dl;
    if (!dl.ParseFromArray(v.data(), static_cast<int>(v.size())) || dl.source_topic().empty() ||
        dl.source_offset() < 0 || dl.operator_id().empty() || dl.error_message().empty())
      ++bad_envelopes;
    if (!origins.emplace(dl.source_topic(), dl.source_partition(), dl.source_offset()).second) {
      ++duplicates;
      return;
    }
    ++by_code[dl.error_code()];
  });
  // Dead letters are written at least once: after a crash, replayed records are rejected
  // again. With --at-least-once-kafka, copies of the same source offset count once.
  size_t n = o.at_least_once_kafka ? origins.size() : total;
  if (duplicates > 0)
    out << fmt::format("dead letters: {} copies of already dead-lettered offsets{}\n", duplicates,
                       o.at_least_once_kafka ? " (allowed)" : "");
  size_t want = j.at("malformed").get<size_t>();
  out << fmt::format("dead letters in '{}': {} (generator sent {} malformed)", topic, n, want);
  for (auto& [code, c] : by_code)
    out << fmt::format(", {}={}", code, c);
  out << "\n";
  if (bad_envelopes > 0)
    out << bad_envelopes << " dead letters lack provenance\n";
  return n == want && bad_envelopes == 0 ? 0 : 1;
}

int check_activations(const options& o, const profile_map& want, const scorer& scorer,
                      const std::string& topic, std::ostream& out) {
  std::map<std::string, size_t> seen;
  read_topic(o.bootstrap, topic, [&](std::string_view v) {
    auto a = nlohmann::json::parse(v, nullptr, false);
    if (!a.is_discarded() && a.contains("key"))
      ++seen[a["key"].get<std::string>()];
  });
  size_t expected = 0, wrong = 0;
  for (const auto& [key, w] : want) {
    bool should = scorer.score(w) >= scorer.threshold;
    expected += should;
    auto got = seen.count(key) ? seen[key] : 0;
    // At least once: a replay after a crash may activate a customer again.
    bool ok = !should ? got == 0 : o.at_least_once_kafka ? got >= 1 : got == 1;
    wrong += !ok;
  }
  out << fmt::format("activations in '{}': {} customers (expected {}), {} wrong\n", topic,
                     seen.size(), expected, wrong);
  return wrong == 0 && seen.size() == expected ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  options o;
  CLI::App app{"keyflow-verify: compare a pipeline's results with keyflow-gen's summary"};
  app.add_option("--summary", o.summary, "Summary JSON written by keyflow-gen")->required();
  app.add_option("--redis", o.redis, "Redis address host:port")->required();
  app.add_option("--pipeline", o.pipeline,
                 "Pipeline YAML: check scores, dead letters and activations too");
  app.add_option("--bootstrap-servers", o.bootstrap, "Kafka, to count dead letters/activations");
  app.add_option("--key-prefix", o.key_prefix, "Profile hash key prefix")->capture_default_str();
  app.add_option("--wait", o.wait_s, "Retry for up to this many seconds until results match");
  app.add_option("--sample", o.sample, "Customers to print side by side")->capture_default_str();
  app.add_flag("--at-least-once-kafka", o.at_least_once_kafka,
               "Accept repeated dead letters (same source offset) and activations, as after "
               "a crash with the at-least-once Kafka sink");
  CLI11_PARSE(app, argc, argv);
  try {
    std::ifstream in{o.summary};
    if (!in)
      throw std::runtime_error("cannot read summary '" + o.summary + "'");
    auto j = nlohmann::json::parse(in);
    auto want = load_expected(j);
    std::optional<config::pipeline_config> pipe;
    std::optional<scorer> scorer;
    std::string activation_topic;
    if (!o.pipeline.empty()) {
      pipe = config::load_pipeline_file(o.pipeline);
      scorer = scorer_of(*pipe);
      for (const auto& s : pipe->sinks) {
        if (s.type == "redis")
          o.key_prefix = s.key_prefix;
        const auto* from = pipe->find_operator(s.from);
        if (s.type == "kafka" && from != nullptr && from->type == "filter" &&
            from->field.name == "score")
          activation_topic = s.topic;
      }
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(o.wait_s);
    size_t bad = compare_profiles(o, want, scorer, false);
    while (bad > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
      bad = compare_profiles(o, want, scorer, false);
    }
    compare_profiles(o, want, scorer, true);
    std::cout << fmt::format("profiles: {} customers checked, {} match, {} differ\n", want.size(),
                             want.size() - bad, bad);
    int rc = bad == 0 ? 0 : 1;
    if (pipe && !o.bootstrap.empty()) {
      // Kafka outputs may trail the profiles by a producer round trip: retry until --wait.
      std::ostringstream report;
      auto check_kafka = [&] {
        report.str({});
        int krc = check_dead_letters(o, j, pipe->dead_letter_topic, report);
        if (!activation_topic.empty() && scorer)
          krc |= check_activations(o, want, *scorer, activation_topic, report);
        return krc;
      };
      int krc = check_kafka();
      while (krc != 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        krc = check_kafka();
      }
      std::cout << report.str();
      rc |= krc;
    }
    std::cout << (rc == 0 ? "RESULT: all results match\n" : "RESULT: results differ\n");
    return rc;
  } catch (const std::exception& e) {
    std::cerr << "keyflow-verify: " << e.what() << "\n";
    return 2;
  }
}
