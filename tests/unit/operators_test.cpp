/// \file
/// Unit tests of the operators: decode + validate (and the dead-letter envelope), the
/// aggregate and its logistic score, the aggregate's state codec, and the keyed chain
/// (aggregate -> score -> profiles and activations) over real keyed state in RocksDB.

#include <gtest/gtest.h>

#include <google/protobuf/stubs/logging.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "config/pipeline_config.hpp"
#include "core/key_group.hpp"
#include "core/record.hpp"
#include "operators/aggregate.hpp"
#include "operators/keyed_chain.hpp"
#include "operators/validate.hpp"
#include "proto/activation.pb.h"
#include "proto/dead_letter.pb.h"
#include "proto/event.pb.h"
#include "proto/state.pb.h"
#include "state/state_store.hpp"
#include "test_util.hpp"

namespace {

using keyflow::ec;
using keyflow::event_batch;
using keyflow::event_record;
using keyflow::key_group_of;
namespace ops = keyflow::ops;
namespace config = keyflow::config;

using keyflow::test::temp_dir;

/// Silences protobuf's own error log for the scope (restores the previous handler).
class quiet_protobuf {
public:
  quiet_protobuf() : old_(google::protobuf::SetLogHandler(nullptr)) {}
  ~quiet_protobuf() { google::protobuf::SetLogHandler(old_); }
  quiet_protobuf(const quiet_protobuf&) = delete;
  quiet_protobuf& operator=(const quiet_protobuf&) = delete;

private:
  google::protobuf::LogHandler* old_;
};

// --- validate ------------------------------------------------------------------------------

/// A complete, valid event.
keyflow::proto::Event good_event() {
  keyflow::proto::Event e;
  e.set_event_id("e-1");
  e.set_customer_id("c-000007");
  e.set_event_time_ms(1767225600123);
  e.set_type("purchase");
  e.set_value(12.75);
  (*e.mutable_attributes())["channel"] = "web";
  return e;
}

config::validate_config validate_all_fields() {
  config::validate_config cfg;
  cfg.id = "check";
  cfg.required = {"event_id", "customer_id", "event_time_ms", "type", "value"};
  return cfg;
}

TEST(Validate, AcceptsAGoodEvent) {
  ops::validator v{validate_all_fields()};
  EXPECT_EQ(v.id(), "check");
  event_record out;
  ops::rejection why;
  const auto bytes = good_event().SerializeAsString();
  ASSERT_TRUE(v.decode(bytes, out, why)) << why.message;
  EXPECT_EQ(out.key, "c-000007");
  EXPECT_EQ(out.event_id, "e-1");
  EXPECT_EQ(out.type, "purchase");
  EXPECT_EQ(out.value, 12.75);
  EXPECT_EQ(out.event_time_ms, 1767225600123);
}

TEST(Validate, DefaultRequiredFieldsMatchTheReferencePipeline) {
  // cdp.yaml requires event_id, customer_id, event_time_ms: type and value may be absent.
  ops::validator v{config::validate_config{}};
  auto e = good_event();
  e.clear_type();
  e.clear_value();
  event_record out;
  ops::rejection why;
  ASSERT_TRUE(v.decode(e.SerializeAsString(), out, why)) << why.message;
  EXPECT_EQ(out.type, "");
  EXPECT_EQ(out.value, 0.0);
}

TEST(Validate, RejectsBytesThatAreNotAnEvent) {
  ops::validator v{validate_all_fields()};
  event_record out;
  // Invalid wire types, truncated varints, a length running past the end.
  const std::vector<std::string> junk = {
      std::string("\xff\xff\xff\xff", 4),
      std::string("\x0f", 1),
      std::string("\x18\xff\xff", 3),
      std::string("\x12\x7f"
                  "abc",
                  5),
      std::string("\x0e\x01\x02\x03", 4),
  };
  for (const auto& bytes : junk) {
    ops::rejection why;
    EXPECT_FALSE(v.decode(bytes, out, why));
    EXPECT_EQ(why.code, ec::decode_error) << why.message;
    EXPECT_NE(why.message.find("keyflow.proto.Event"), std::string::npos) << why.message;
  }
  // Random bytes: whatever protobuf cannot parse must be a decode_error.
  const quiet_protobuf quiet; // invalid UTF-8 in random strings is logged
  std::mt19937_64 gen{7};
  size_t undecodable = 0;
  keyflow::proto::Event probe;
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(8 + gen() % 57, '\0');
    for (auto& c : bytes)
      c = static_cast<char>(gen() & 0xff);
    if (probe.ParseFromString(bytes))
      continue;
    ++undecodable;
    ops::rejection why;
    ASSERT_FALSE(v.decode(bytes, out, why));
    ASSERT_EQ(why.code, ec::decode_error) << why.message;
  }
  EXPECT_GT(undecodable, 1000u);
}

TEST(Validate, RejectsInvalidUtf8InStringFields) {
  // Producers other than Keyflow's may send any bytes; proto3 strings must be UTF-8.
  const quiet_protobuf quiet; // protobuf logs each invalid string
  ops::validator v{config::validate_config{}};
  for (auto set : {+[](keyflow::proto::Event&e, const std::string&x) { e.set_customer_id(x); },
                   +[](keyflow::proto::Event&e, const std::string&x) { e.set_event_id(x); }}) {
    auto e = good_event();
    set(e, std::string("c-\xff\xfe", 4));
    std::string bytes;
    ASSERT_TRUE(e.SerializePartialToString(&bytes));
    event_record out;
    ops::rejection why;
    EXPECT_FALSE(v.decode(bytes, out, why));
    EXPECT_EQ(why.code, ec::decode_error) << why.message;
  }
}

TEST(Validate, RejectsEachMissingRequiredFieldNamingIt) {
  ops::validator v{validate_all_fields()};
  const std::map<std::string, void (*)(keyflow::proto::Event&)> clear = {
      {"event_id", [](keyflow::proto::Event& e) { e.clear_event_id(); }},
      {"customer_id", [](keyflow::proto::Event& e) { e.clear_customer_id(); }},
      {"event_time_ms", [](keyflow::proto::Event& e) { e.clear_event_time_ms(); }},
      {"type", [](keyflow::proto::Event& e) { e.clear_type(); }},
      {"value", [](keyflow::proto::Event& e) { e.clear_value(); }},
  };
  for (const auto& [field, clear_field] : clear) {
    auto e = good_event();
    clear_field(e);
    event_record out;
    ops::rejection why;
    EXPECT_FALSE(v.decode(e.SerializeAsString(), out, why)) << field;
    EXPECT_EQ(why.code, ec::missing_field) << field;
    EXPECT_NE(why.message.find("'" + field + "'"), std::string::npos)
        << "message does not name " << field << ": " << why.message;
    for (const auto& [other, unused] : clear) {
      if (other != field) {
        EXPECT_EQ(why.message.find("'" + other + "'"), std::string::npos)
            << "message names " << other << " for a missing " << field << ": " << why.message;
      }
    }
  }
  // An empty string counts as missing; so does a non-positive event time.
  for (auto mutate : {+[](keyflow::proto::Event& e) { e.set_customer_id(""); },
                      +[](keyflow::proto::Event& e) { e.set_event_time_ms(-5); }}) {
    auto e = good_event();
    mutate(e);
    event_record out;
    ops::rejection why;
    EXPECT_FALSE(v.decode(e.SerializeAsString(), out, why));
    EXPECT_EQ(why.code, ec::missing_field) << why.message;
  }
}

TEST(Validate, RejectsNonFiniteValues) {
  // Even when 'value' is not required: a NaN or infinity would poison every sum.
  for (const auto& cfg : {validate_all_fields(), config::validate_config{}}) {
    ops::validator v{cfg};
    for (double bad :
         {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
          -std::numeric_limits<double>::infinity()}) {
      auto e = good_event();
      e.set_value(bad);
      event_record out;
      ops::rejection why;
      EXPECT_FALSE(v.decode(e.SerializeAsString(), out, why)) << bad;
      EXPECT_EQ(why.code, ec::invalid_field) << why.message;
      EXPECT_NE(why.message.find("'value'"), std::string::npos) << why.message;
    }
  }
}

TEST(Validate, ReusedValidatorDoesNotLeakFieldsBetweenRecords) {
  ops::validator v{config::validate_config{}};
  event_record out;
  ops::rejection why;
  ASSERT_TRUE(v.decode(good_event().SerializeAsString(), out, why));
  ASSERT_FALSE(v.decode(std::string("\xff\xff", 2), out, why));
  keyflow::proto::Event second;
  second.set_event_id("e-2");
  second.set_customer_id("c-2");
  second.set_event_time_ms(5);
  event_record out2;
  ASSERT_TRUE(v.decode(second.SerializeAsString(), out2, why)) << why.message;
  EXPECT_EQ(out2.key, "c-2");
  EXPECT_EQ(out2.type, "") << "type of an earlier record leaked";
  EXPECT_EQ(out2.value, 0.0) << "value of an earlier record leaked";
}

TEST(DeadLetter, EnvelopeRoundTripsWithProvenance) {
  const std::string value("\x00\xff raw \x80 bytes", 14);
  const std::string key("c-\x00"
                        "1",
                        4);
  ops::provenance from{"events", 3, 123456789012, 1767225600999};
  ops::rejection why{ec::missing_field, "required field 'event_id' is missing or empty"};
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const auto bytes = ops::make_dead_letter(key, value, from, "validate", why, "cdp", 7, 2);
  const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  keyflow::proto::DeadLetter dl;
  ASSERT_TRUE(dl.ParseFromString(bytes));
  EXPECT_EQ(dl.original_value(), value);
  EXPECT_EQ(dl.original_key(), key);
  EXPECT_EQ(dl.source_topic(), "events");
  EXPECT_EQ(dl.source_partition(), 3);
  EXPECT_EQ(dl.source_offset(), 123456789012);
  EXPECT_EQ(dl.record_timestamp_ms(), 1767225600999);
  EXPECT_EQ(dl.operator_id(), "validate");
  EXPECT_EQ(dl.error_code(), "missing_field");
  EXPECT_EQ(dl.error_message(), why.message);
  EXPECT_EQ(dl.pipeline(), "cdp");
  EXPECT_EQ(dl.pipeline_version(), 7u);
  EXPECT_EQ(dl.attempts(), 2u);
  EXPECT_GE(dl.dead_lettered_at_ms(), before);
  EXPECT_LE(dl.dead_lettered_at_ms(), after);
}

TEST(DeadLetter, RejectionOfTheValidatorFitsTheEnvelope) {
  ops::validator v{config::validate_config{}};
  const std::string junk("\xff\xff\xff", 3);
  event_record out;
  ops::rejection why;
  ASSERT_FALSE(v.decode(junk, out, why));
  keyflow::proto::DeadLetter dl;
  ASSERT_TRUE(dl.ParseFromString(
      ops::make_dead_letter({}, junk, {"events", 0, 0, 1}, v.id(), why, "cdp", 1)));
  EXPECT_EQ(dl.original_value(), junk);
  EXPECT_EQ(dl.error_code(), "decode_error");
  EXPECT_EQ(dl.operator_id(), "validate");
  EXPECT_EQ(dl.attempts(), 1u);
  EXPECT_EQ(dl.source_offset(), 0);
}

// --- aggregate and score -------------------------------------------------------------------

event_record rec(const std::string& key, double value, int64_t time_ms, int64_t ingest = 0) {
  event_record r;
  r.key = key;
  r.event_id = key + "@" + std::to_string(time_ms);
  r.value = value;
  r.event_time_ms = time_ms;
  r.ingest_ns = ingest;
  r.key_group = key_group_of(key, 128);
  return r;
}

TEST(Aggregate, FoldsCountSumMaxEventTimeAndLastValue) {
  ops::aggregate_state s;
  ops::aggregate(s, rec("k", 2.5, 100));
  ops::aggregate(s, rec("k", 0.25, 300));
  ops::aggregate(s, rec("k", 7.0, 200)); // late event: does not move the event time back
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.sum, 9.75);
  EXPECT_EQ(s.last_event_time_ms, 300);
  EXPECT_EQ(s.last_value, 7.0); // by arrival
  EXPECT_FALSE(s.activated);
}

TEST(Score, IsTheLogisticFunctionOfTheConfiguredFeatures) {
  config::score_config cfg;
  cfg.id = "model";
  cfg.bias = -6.0;
  cfg.weights = {{"count", 0.04}, {"sum", 0.0001}};
  cfg.threshold = 0.6;
  ops::scorer sc{cfg};
  EXPECT_EQ(sc.id(), "model");
  EXPECT_EQ(sc.threshold(), 0.6);
  ops::aggregate_state s;
  s.count = 10;
  s.sum = 1000; // z = -6 + 0.4 + 0.1 = -5.5
  EXPECT_NEAR(sc.score(s), 0.004070137715896128, 1e-15);
  s.count = 0;
  s.sum = 0; // z = bias
  EXPECT_NEAR(sc.score(s), 0.0024726231566347743, 1e-15);

  config::score_config cfg2;
  cfg2.bias = 0.5;
  cfg2.weights = {{"avg", 0.1}, {"last_value", -0.2}};
  ops::scorer sc2{cfg2};
  ops::aggregate_state t;
  t.count = 4;
  t.sum = 10;       // avg 2.5
  t.last_value = 3; // z = 0.5 + 0.25 - 0.6 = 0.15
  EXPECT_NEAR(sc2.score(t), 0.5374298453437496, 1e-15);
  t = {};
  EXPECT_EQ(sc2.score(t), 1.0 / (1.0 + std::exp(-0.5))) << "avg of no events must be 0";

  config::score_config zero; // no weights, bias 0: exactly one half
  EXPECT_EQ(ops::scorer{zero}.score(t), 0.5);
  EXPECT_EQ(ops::scorer{zero}.threshold(), 0.5);
}

TEST(AggregateCodec, RoundTripsAndUsesTheDocumentedLayout) {
  ops::aggregate_state s;
  s.count = 123456789;
  s.sum = 98765.25;
  s.last_event_time_ms = 1767225600123;
  s.last_value = -3.5;
  s.activated = true;
  s.batch_mark = 42; // transient: not stored
  const auto bytes = ops::encode(s);
  ops::aggregate_state back;
  back.batch_mark = 7;
  ASSERT_TRUE(ops::decode(bytes, back));
  EXPECT_EQ(back.count, s.count);
  EXPECT_EQ(back.sum, s.sum);
  EXPECT_EQ(back.last_event_time_ms, s.last_event_time_ms);
  EXPECT_EQ(back.last_value, s.last_value);
  EXPECT_TRUE(back.activated);
  // config/proto/state.proto is the on-disk contract.
  keyflow::proto::CustomerAggregate msg;
  ASSERT_TRUE(msg.ParseFromString(bytes));
  EXPECT_EQ(msg.count(), s.count);
  EXPECT_EQ(msg.sum(), s.sum);
  EXPECT_EQ(msg.last_event_time_ms(), s.last_event_time_ms);
  EXPECT_EQ(msg.last_value(), s.last_value);
  EXPECT_TRUE(msg.activated());
  // The codec used by keyed state is the same.
  EXPECT_EQ(ops::aggregate_codec::encode(s), bytes);
  // Corrupt bytes are refused.
  ops::aggregate_state junk;
  EXPECT_FALSE(ops::decode(std::string("\xff\xff\xff", 3), junk));
  EXPECT_FALSE(ops::aggregate_codec::decode(std::string("\x08", 1), junk));
}

// --- keyed chain ---------------------------------------------------------------------------

/// Pipeline YAML with a score model that activates a key at its third event:
/// score = sigmoid(-3 + count) >= 0.5 <=> count >= 3 (exactly 0.5 at count 3).
std::string pipeline_yaml(bool kafka_sink, bool redis_sink = true) {
  std::string y = R"(pipeline:
  name: unit
  version: 3
  max_parallelism: 128
source:
  topic: events
dead_letters:
  topic: events-dlq
operators:
  - id: validate
    type: validate
  - id: agg
    type: aggregate
    key: customer_id
  - id: model
    type: score
    bias: -3
    weights:
      count: 1
    threshold: 0.5
)";
  if (redis_sink || kafka_sink)
    y += "sinks:\n";
  if (redis_sink)
    y += "  - id: profiles\n    type: redis\n";
  if (kafka_sink)
    y += "  - id: out\n    type: kafka\n    topic: activations\n";
  return y;
}

struct chain_fixture : ::testing::Test {
  temp_dir dir;
  config::pipeline_config cfg = config::parse_pipeline(pipeline_yaml(true));
  std::unique_ptr<keyflow::state::state_store> store =
      keyflow::state::state_store::open(dir.path(), {cfg.aggregate.id});
};

TEST_F(chain_fixture, CountsAndSumsPerKeyAreExact) {
  ops::keyed_chain chain{cfg, *store};
  std::map<std::string, std::pair<uint64_t, double>> want;
  std::map<std::string, int64_t> last_time;
  std::mt19937_64 gen{11};
  ops::chain_output out;
  int64_t t = 1000;
  for (int b = 0; b < 50; ++b) {
    event_batch batch;
    for (int i = 0; i < 200; ++i) {
      const auto key = "c-" + std::to_string(gen() % 300);
      const double value = static_cast<double>(gen() % 2001) * 0.25;
      const int64_t time = t++ - static_cast<int64_t>(gen() % 50);
      batch.records.push_back(rec(key, value, time));
      auto& w = want[key];
      ++w.first;
      w.second += value;
      last_time[key] = std::max(last_time[key], time);
    }
    out.clear();
    chain.process(batch, out);
    if (b % 7 == 0)
      chain.flush_state(); // flushing in between must not change anything
  }
  EXPECT_EQ(chain.state_size(), want.size());
  for (const auto& [key, w] : want) {
    const auto* s = chain.find(key, key_group_of(key, 128));
    ASSERT_NE(s, nullptr) << key;
    EXPECT_EQ(s->count, w.first) << key;
    EXPECT_EQ(s->sum, w.second) << key;
    EXPECT_EQ(s->last_event_time_ms, last_time[key]) << key;
  }
}

TEST_F(chain_fixture, OneProfilePerTouchedKeyPerBatch) {
  ops::keyed_chain chain{cfg, *store};
  ops::chain_output out;
  event_batch batch;
  batch.records = {rec("a", 1, 10, 500), rec("b", 2, 11, 400), rec("a", 3, 12, 450),
                   rec("c", 4, 9, 600),  rec("a", 5, 8, 700),  rec("b", 6, 13, 650)};
  chain.process(batch, out);
  ASSERT_EQ(out.profiles.size(), 3u);
  std::map<std::string, keyflow::profile_update> by_key;
  for (const auto& p : out.profiles)
    EXPECT_TRUE(by_key.emplace(p.key, p).second) << "two profiles for " << p.key;
  ASSERT_EQ(by_key.size(), 3u);
  EXPECT_EQ(by_key["a"].count, 3u);
  EXPECT_EQ(by_key["a"].sum, 9.0);
  EXPECT_EQ(by_key["a"].last_event_time_ms, 12);
  EXPECT_EQ(by_key["b"].count, 2u);
  EXPECT_EQ(by_key["b"].sum, 8.0);
  EXPECT_EQ(by_key["b"].last_event_time_ms, 13);
  EXPECT_EQ(by_key["c"].count, 1u);
  EXPECT_EQ(by_key["c"].sum, 4.0);
  // Score of the latest state; ingest time is the oldest of the batch.
  EXPECT_EQ(by_key["a"].score, 1.0 / (1.0 + std::exp(-(-3.0 + 3.0))));
  EXPECT_NEAR(by_key["b"].score, 1.0 / (1.0 + std::exp(1.0)), 1e-15);
  for (const auto& p : out.profiles)
    EXPECT_EQ(p.ingest_ns, 400) << p.key;

  // The next batch touches only "b": one cumulative profile.
  out.clear();
  event_batch next;
  next.records = {rec("b", 0.5, 20, 900), rec("b", 0.25, 21, 901)};
  chain.process(next, out);
  ASSERT_EQ(out.profiles.size(), 1u);
  EXPECT_EQ(out.profiles[0].key, "b");
  EXPECT_EQ(out.profiles[0].count, 4u);
  EXPECT_EQ(out.profiles[0].sum, 8.75);
  EXPECT_EQ(out.profiles[0].last_event_time_ms, 21);
  EXPECT_EQ(out.profiles[0].ingest_ns, 900);

  // An empty batch produces nothing.
  out.clear();
  chain.process(event_batch{}, out);
  EXPECT_TRUE(out.profiles.empty());
  EXPECT_TRUE(out.activations.empty());
}

TEST_F(chain_fixture, ActivatesOnceWhenTheScoreCrossesTheThreshold) {
  std::vector<keyflow::kafka_message> all;
  {
    ops::keyed_chain chain{cfg, *store};
    ops::chain_output out;
    // "x" crosses in the middle of a batch (its 3rd event), "y" across batches.
    event_batch b1;
    b1.records = {rec("x", 1, 1), rec("y", 2, 2), rec("x", 1.5, 3),
                  rec("x", 2, 4), rec("x", 4, 5), rec("x", 8, 6)};
    chain.process(b1, out);
    all.insert(all.end(), out.activations.begin(), out.activations.end());
    ASSERT_EQ(out.activations.size(), 1u);
    keyflow::proto::Activation a;
    ASSERT_TRUE(a.ParseFromString(out.activations[0].value));
    EXPECT_EQ(out.activations[0].topic, "activations");
    EXPECT_EQ(out.activations[0].key, "x");
    EXPECT_EQ(a.customer_id(), "x");
    EXPECT_EQ(a.event_count(), 3u);
    EXPECT_EQ(a.value_sum(), 4.5);
    EXPECT_EQ(a.event_time_ms(), 4) << "event time of the event that crossed";
    EXPECT_EQ(a.score(), 0.5);
    EXPECT_EQ(a.threshold(), 0.5);
    EXPECT_EQ(a.pipeline(), "unit");
    EXPECT_EQ(a.operator_id(), "model");
    for (int i = 0; i < 4; ++i) {
      out.clear();
      event_batch b;
      b.records = {rec("y", 1, 10 + i), rec("x", 1, 20 + i)};
      chain.process(b, out);
      all.insert(all.end(), out.activations.begin(), out.activations.end());
      if (i == 1) {
        ASSERT_EQ(out.activations.size(), 1u) << "y reaches count 3 in this batch";
        EXPECT_EQ(out.activations[0].key, "y");
      } else {
        EXPECT_TRUE(out.activations.empty()) << "batch " << i;
      }
    }
    chain.flush_state();
  }
  // Restart on the reopened store: the activation flag is durable, no second activation.
  store.reset();
  store = keyflow::state::state_store::open(dir.path(), {cfg.aggregate.id});
  ops::keyed_chain again{cfg, *store};
  ops::chain_output out;
  event_batch more;
  for (int i = 0; i < 10; ++i)
    more.records.push_back(rec(i % 2 ? "x" : "y", 100, 100 + i));
  again.process(more, out);
  EXPECT_TRUE(out.activations.empty());
  ASSERT_EQ(out.profiles.size(), 2u);
  const auto* x = again.find("x", key_group_of("x", 128));
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->count, 5u + 4u + 5u);
  EXPECT_TRUE(x->activated);
  std::map<std::string, int> per_key;
  for (const auto& m : all)
    ++per_key[m.key];
  EXPECT_EQ(per_key, (std::map<std::string, int>{{"x", 1}, {"y", 1}}));
}

TEST_F(chain_fixture, NoActivationsWithoutAKafkaSink) {
  const auto no_kafka = config::parse_pipeline(pipeline_yaml(false));
  ASSERT_FALSE(no_kafka.kafka_sink.has_value());
  ops::keyed_chain chain{no_kafka, *store};
  ops::chain_output out;
  event_batch b;
  for (int i = 0; i < 10; ++i)
    b.records.push_back(rec("k" + std::to_string(i % 2), 1, i));
  chain.process(b, out);
  EXPECT_TRUE(out.activations.empty());
  EXPECT_EQ(out.profiles.size(), 2u);
  for (const auto& p : out.profiles)
    EXPECT_GE(p.score, 0.5) << "the keys did cross the threshold";
}

TEST_F(chain_fixture, NoProfilesWithoutAProfileSink) {
  ops::keyed_chain chain{cfg, *store, /*emit_profiles=*/false};
  ops::chain_output out;
  event_batch b;
  for (int i = 0; i < 10; ++i)
    b.records.push_back(rec("k" + std::to_string(i % 2), 1, i));
  chain.process(b, out);
  EXPECT_TRUE(out.profiles.empty());
  EXPECT_EQ(out.activations.size(), 2u) << "activations do not depend on the profile sink";
  const auto* s = chain.find("k0", key_group_of("k0", 128));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->count, 5u);
}

TEST_F(chain_fixture, StateSurvivesFlushAndReopen) {
  {
    ops::keyed_chain chain{cfg, *store};
    ops::chain_output out;
    event_batch b;
    b.records = {rec("p", 1.25, 5), rec("q", 2, 6), rec("p", 0.5, 7)};
    chain.process(b, out);
    EXPECT_EQ(chain.flush_state(), 2u);
    EXPECT_EQ(chain.flush_state(), 0u);
  }
  store.reset();
  store = keyflow::state::state_store::open(dir.path(), {cfg.aggregate.id});
  ops::keyed_chain chain{cfg, *store};
  const auto* p = chain.find("p", key_group_of("p", 128));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->count, 2u);
  EXPECT_EQ(p->sum, 1.75);
  EXPECT_EQ(p->last_event_time_ms, 7);
  EXPECT_EQ(chain.find("never-seen", key_group_of("never-seen", 128)), nullptr);
}

TEST_F(chain_fixture, RefusesAStoreWithoutTheOperatorsColumnFamily) {
  temp_dir other;
  auto bare = keyflow::state::state_store::open(other.path(), {"something-else"});
  EXPECT_THROW((ops::keyed_chain{cfg, *bare}), std::runtime_error);
}

} // namespace
