/// \file
/// Unit tests of the source side of a pipeline (pipeline/source_decoder.hpp): decoding the
/// fields a plan uses, the source-side operators (validate, plain filters), the key and
/// event-time checks, dead-letter envelopes of rejected records (operator, reason, original
/// bytes and provenance), raw bytes kept only when a later operator may dead-letter, and the
/// generator reader that decodes like a Kafka reader.

#include <gtest/gtest.h>

#include <google/protobuf/stubs/logging.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/router.hpp"
#include "pipeline/generator_reader.hpp"
#include "pipeline/source_decoder.hpp"
#include "pipeline_util.hpp"
#include "proto/dead_letter.pb.h"
#include "proto/event.pb.h"
#include "proto/nexmark.pb.h"

namespace {

using keyflow::kafka_message;
using keyflow::record;
using keyflow::value;
using keyflow::pipeline::decode_result;
using keyflow::pipeline::source_decoder;
using keyflow::test::event_pipeline;
using keyflow::test::plan_of;

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

/// A complete event.
keyflow::proto::Event event(const std::string& customer = "c-7", double v = 12.75) {
  keyflow::proto::Event e;
  e.set_event_id("e-1");
  e.set_customer_id(customer);
  e.set_event_time_ms(1767225600123);
  e.set_type("purchase");
  e.set_value(v);
  (*e.mutable_attributes())["page"] = "/cart";
  return e;
}

/// Provenance of a record at `offset` of events/2.
keyflow::ops::provenance at(int64_t offset) {
  return {"events", 2, offset, 1767225600999};
}

/// validate (event_id) -> filter (type != "test") -> aggregate: the first two run in the
/// sources. Source layout: customer_id, event_id, type, value, attributes.page, event_time_ms.
const std::string cdp_like =
    event_pipeline("  - {id: check, type: validate, required: [event_id]}\n"
                   "  - {id: no_tests, type: filter, field: type, op: ne, value: test}\n"
                   "  - {id: agg, type: aggregate, aggregates: {s: {fn: sum, field: value}, "
                   "p: {fn: last, field: attributes.page}}}\n",
                   {}, "{topic: events}", "{name: dec, version: 4}");

/// Decodes `bytes` with `d` at offset 7; `dead` collects dead letters.
decode_result decode(source_decoder& d, const std::string& bytes, record& out,
                     std::vector<kafka_message>& dead, const std::string& key = "k") {
  return d.decode(key, bytes, at(7), out, dead);
}

/// The one dead letter in `dead`, parsed.
keyflow::proto::DeadLetter only_dead_letter(const std::vector<kafka_message>& dead) {
  keyflow::proto::DeadLetter dl;
  EXPECT_EQ(dead.size(), 1u);
  if (!dead.empty()) {
    EXPECT_EQ(dead[0].topic, "dlq");
    EXPECT_TRUE(dl.ParseFromString(dead[0].value));
  }
  return dl;
}

TEST(SourceDecoder, DecodesTheFieldsThePlanUses) {
  const auto p = plan_of(cdp_like);
  ASSERT_EQ(p->source_ops().size(), 2u);
  EXPECT_FALSE(p->keep_raw);
  source_decoder d{p};
  EXPECT_EQ(&d.pipeline(), p.get());
  record r;
  r.raw = "left over";
  r.seq = 9;
  std::vector<kafka_message> dead;
  ASSERT_EQ(decode(d, event().SerializeAsString(), r, dead), decode_result::ok);
  EXPECT_TRUE(dead.empty());
  EXPECT_EQ(r.key, "c-7");
  EXPECT_EQ(r.event_time_ms, 1767225600123);
  EXPECT_EQ(r.offset, 7);
  EXPECT_EQ(r.partition, 2);
  EXPECT_EQ(r.seq, 0u);
  EXPECT_TRUE(r.raw.empty()) << "raw bytes kept although nothing can dead-letter later";
  EXPECT_EQ(r.fields, (std::vector<value>{
                          value::of(std::string("c-7")), value::of(std::string("e-1")),
                          value::of(std::string("purchase")), value::of(12.75),
                          value::of(std::string("/cart")), value::of(int64_t{1767225600123})}));
}

TEST(SourceDecoder, KeepsRawBytesWhenALaterOperatorMayDeadLetter) {
  const auto p = plan_of(event_pipeline("  - {id: w, type: window, kind: tumbling, size_ms: 10, "
                                        "aggregates: {n: {fn: count}}}\n"));
  ASSERT_TRUE(p->keep_raw);
  source_decoder d{p};
  record r;
  std::vector<kafka_message> dead;
  const auto bytes = event().SerializeAsString();
  ASSERT_EQ(decode(d, bytes, r, dead), decode_result::ok);
  EXPECT_EQ(r.raw, bytes);
}

TEST(SourceDecoder, UndecodableBytesAreDeadLetteredByTheFirstSourceOperator) {
  const auto p = plan_of(cdp_like);
  source_decoder d{p};
  const std::string junk("\x0f\xff\xff", 3);
  record r;
  std::vector<kafka_message> dead;
  ASSERT_EQ(decode(d, junk, r, dead, "key-1"), decode_result::rejected);
  EXPECT_EQ(d.rejected_by(), "check");
  EXPECT_EQ(d.last_reason(), "decode_error");
  EXPECT_EQ(dead.at(0).key, "key-1");
  const auto dl = only_dead_letter(dead);
  EXPECT_EQ(dl.original_value(), junk);
  EXPECT_EQ(dl.original_key(), "key-1");
  EXPECT_EQ(dl.source_topic(), "events");
  EXPECT_EQ(dl.source_partition(), 2);
  EXPECT_EQ(dl.source_offset(), 7);
  EXPECT_EQ(dl.record_timestamp_ms(), 1767225600999);
  EXPECT_EQ(dl.operator_id(), "check");
  EXPECT_EQ(dl.error_code(), "decode_error");
  EXPECT_NE(dl.error_message().find("keyflow.proto.Event"), std::string::npos)
      << dl.error_message();
  EXPECT_NE(dl.error_message().find("(3 bytes)"), std::string::npos) << dl.error_message();
  EXPECT_EQ(dl.pipeline(), "dec");
  EXPECT_EQ(dl.pipeline_version(), 4u);
  EXPECT_EQ(dl.attempts(), 1u);

  // Without source-side operators the source itself rejects.
  const auto bare = plan_of(event_pipeline("  - {id: a, type: aggregate, aggregates: {n: {fn: "
                                           "count}}}\n",
                                           {}, "{id: kafka-in, topic: events}"));
  source_decoder d2{bare};
  dead.clear();
  ASSERT_EQ(decode(d2, junk, r, dead), decode_result::rejected);
  EXPECT_EQ(only_dead_letter(dead).operator_id(), "kafka-in");
}

TEST(SourceDecoder, EveryUndecodableRecordIsADecodeError) {
  const auto p = plan_of(cdp_like);
  source_decoder d{p};
  const quiet_protobuf quiet; // invalid UTF-8 in random strings is logged
  std::mt19937_64 gen{7};
  keyflow::proto::Event probe;
  size_t undecodable = 0;
  for (int n = 0; n < 2000; ++n) {
    std::string bytes(8 + gen() % 57, '\0');
    for (auto& c : bytes)
      c = static_cast<char>(gen() & 0xff);
    if (probe.ParseFromString(bytes))
      continue;
    ++undecodable;
    record r;
    std::vector<kafka_message> dead;
    ASSERT_EQ(decode(d, bytes, r, dead), decode_result::rejected);
    ASSERT_EQ(d.last_reason(), "decode_error");
  }
  EXPECT_GT(undecodable, 1000u);
}

TEST(SourceDecoder, ValidateRejectsMissingAndNonFiniteFields) {
  const auto p = plan_of(cdp_like);
  source_decoder d{p};
  auto e = event();
  e.clear_event_id();
  record r;
  std::vector<kafka_message> dead;
  ASSERT_EQ(decode(d, e.SerializeAsString(), r, dead), decode_result::rejected);
  EXPECT_EQ(d.rejected_by(), "check");
  auto dl = only_dead_letter(dead);
  EXPECT_EQ(dl.error_code(), "missing_field");
  EXPECT_EQ(dl.error_message(), "required field 'event_id' is missing or empty");
  EXPECT_EQ(dl.original_value(), e.SerializeAsString());
  dead.clear();
  e = event("c-7", std::numeric_limits<double>::quiet_NaN());
  ASSERT_EQ(decode(d, e.SerializeAsString(), r, dead), decode_result::rejected);
  dl = only_dead_letter(dead);
  EXPECT_EQ(dl.error_code(), "invalid_field");
  EXPECT_EQ(dl.error_message(), "field 'value' is not a finite number");
}

TEST(SourceDecoder, SourceFiltersDropWithoutDeadLetters) {
  const auto p = plan_of(cdp_like);
  source_decoder d{p};
  auto e = event();
  e.set_type("test");
  record r;
  std::vector<kafka_message> dead;
  EXPECT_EQ(decode(d, e.SerializeAsString(), r, dead), decode_result::filtered);
  EXPECT_TRUE(dead.empty());
  // The operators run in order: validate before the filter dead-letters a test record
  // without an event id.
  e.clear_event_id();
  EXPECT_EQ(decode(d, e.SerializeAsString(), r, dead), decode_result::rejected);
  EXPECT_EQ(d.rejected_by(), "check");
}

TEST(SourceDecoder, RecordsWithoutKeyOrEventTimeAreRejectedByTheSource) {
  const auto p = plan_of(cdp_like);
  source_decoder d{p};
  record r;
  std::vector<kafka_message> dead;
  for (const char* customer : {static_cast<const char*>(""), static_cast<const char*>(nullptr)}) {
    auto e = event();
    if (customer == nullptr)
      e.clear_customer_id();
    else
      e.set_customer_id(customer);
    dead.clear();
    ASSERT_EQ(decode(d, e.SerializeAsString(), r, dead), decode_result::rejected);
    EXPECT_EQ(d.rejected_by(), "source");
    const auto dl = only_dead_letter(dead);
    EXPECT_EQ(dl.operator_id(), "source");
    EXPECT_EQ(dl.error_code(), "missing_field");
    EXPECT_EQ(dl.error_message(), "key field 'customer_id' is missing or empty");
  }
  for (int64_t t : {int64_t{0}, int64_t{-5}}) {
    auto e = event();
    e.set_event_time_ms(t);
    dead.clear();
    ASSERT_EQ(decode(d, e.SerializeAsString(), r, dead), decode_result::rejected) << t;
    EXPECT_EQ(only_dead_letter(dead).error_message(),
              "event time field 'event_time_ms' is missing or not positive");
  }
}

TEST(SourceDecoder, IntegerKeysBecomeText) {
  const auto p =
      keyflow::pipeline::load_plan(keyflow::test::source_path("config/pipelines/nexmark/q2.yaml"));
  source_decoder d{p};
  keyflow::nexmark::Event e;
  e.set_event_time_ms(5000);
  e.mutable_bid()->set_auction(1230);
  e.mutable_bid()->set_price(99);
  record r;
  std::vector<kafka_message> dead;
  ASSERT_EQ(decode(d, e.SerializeAsString(), r, dead), decode_result::ok);
  EXPECT_EQ(r.key, "1230");
  EXPECT_EQ(r.event_time_ms, 5000);
  // A person is no bid: the source-side filter bids (auction > 0) drops it.
  keyflow::nexmark::Event person;
  person.set_event_time_ms(5001);
  person.mutable_person()->set_id(1000);
  EXPECT_EQ(decode(d, person.SerializeAsString(), r, dead), decode_result::filtered);
  EXPECT_TRUE(dead.empty());
}

TEST(SourceDecoder, AReusedRecordGetsNoFieldsOfTheLastOne) {
  const auto p = plan_of(cdp_like);
  source_decoder d{p};
  record r;
  std::vector<kafka_message> dead;
  ASSERT_EQ(decode(d, event().SerializeAsString(), r, dead), decode_result::ok);
  keyflow::proto::Event second;
  second.set_event_id("e-2");
  second.set_customer_id("c-2");
  second.set_event_time_ms(5);
  ASSERT_EQ(decode(d, second.SerializeAsString(), r, dead), decode_result::ok);
  EXPECT_EQ(r.key, "c-2");
  EXPECT_FALSE(r.fields[2].present()) << "type of the earlier record leaked";
  EXPECT_FALSE(r.fields[3].present()) << "value of the earlier record leaked";
  EXPECT_FALSE(r.fields[4].present()) << "attributes.page of the earlier record leaked";
}

TEST(GeneratorReader, DecodesRoutesAndTracksEventTime) {
  const auto p = plan_of(cdp_like);
  keyflow::pipeline::datagen_options opts;
  opts.events = 1000;
  opts.keys = 50;
  keyflow::pipeline::generator_reader reader{p, keyflow::pipeline::make_datagen(opts, 3), 3};
  EXPECT_EQ(reader.name(), "datagen/3");
  EXPECT_EQ(reader.max_event_time(), keyflow::no_watermark);
  keyflow::router routes{128, 2};
  std::vector<kafka_message> dead;
  EXPECT_EQ(reader.read(routes, dead, 600), 600u);
  EXPECT_FALSE(reader.exhausted());
  EXPECT_EQ(reader.lag(), 400);
  EXPECT_EQ(reader.position().next_offset, 600);
  EXPECT_EQ(reader.max_event_time(), opts.base_time_ms + 599);
  EXPECT_EQ(reader.read(routes, dead, 600), 400u);
  EXPECT_TRUE(reader.exhausted());
  EXPECT_TRUE(dead.empty());
  EXPECT_EQ(routes.pending(), 1000u);
  int64_t last_offset = -1;
  for (const auto& r : routes.batch(0).records) {
    EXPECT_EQ(r.key_group, keyflow::key_group_of(r.key, 128));
    EXPECT_EQ(r.partition, 3);
    EXPECT_GT(r.offset, last_offset);
    last_offset = r.offset;
    EXPECT_EQ(r.event_time_ms, opts.base_time_ms + r.offset);
    EXPECT_EQ(r.key.rfind("c-", 0), 0u);
  }
}

} // namespace
