// dead_letters: listing and replaying DeadLetter envelopes of a dead-letter topic, against
// the embedded Kafka (librdkafka mock cluster).
#include "kafka/dead_letters.hpp"
#include "kafka/embedded_kafka.hpp"
#include "operators/dead_letter.hpp"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using namespace keyflow;
using keyflow::kafka::dead_letter_filter;

namespace {

/// One record read back from a topic.
struct read_record {
  int32_t partition = -1; ///< partition
  int64_t offset = -1;    ///< offset
  std::string key;        ///< key ("" if none)
  bool has_key = false;   ///< false for a null key
  std::string value;      ///< value
  std::string origin;     ///< value of the keyflow-replay-of header ("" if none)
};

/// A letter to write: where to, and the envelope's content.
struct letter {
  int32_t dlq_partition;               ///< partition of the dead-letter topic
  std::string key;                     ///< original key
  std::string value;                   ///< original value
  int32_t source_partition;            ///< source partition
  int64_t source_offset;               ///< source offset
  std::string op;                      ///< operator id
  ec code;                             ///< reason
  std::string source_topic = "events"; ///< source topic
};

/// Writes raw records (partition, value) to `topic`, checking every delivery.
void produce_raw(const std::string& bootstrap, const std::string& topic,
                 const std::vector<std::pair<int32_t, std::string>>& records) {
  kafka::properties props{{"bootstrap.servers", bootstrap}};
  char err[512];
  rd_kafka_conf_t* conf = kafka::make_conf(props);
  int failed = 0;
  rd_kafka_conf_set_opaque(conf, &failed);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
      ++*static_cast<int*>(opaque);
  });
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  ASSERT_NE(rk, nullptr) << err;
  for (const auto& [p, value] : records)
    ASSERT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(p),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
  EXPECT_EQ(failed, 0);
}

/// The serialized envelope of `l`.
std::string envelope(const letter& l) {
  ops::provenance from{l.source_topic, l.source_partition, l.source_offset, 1767225600000};
  return ops::make_dead_letter(l.key, l.value, from, l.op, ops::rejection{l.code, "because"}, "cdp",
                               3, 1);
}

/// Writes the envelopes of `letters` to their dead-letter partitions, in order.
void write_letters(const std::string& bootstrap, const std::vector<letter>& letters) {
  std::vector<std::pair<int32_t, std::string>> raw;
  for (const auto& l : letters)
    raw.emplace_back(l.dlq_partition, envelope(l));
  produce_raw(bootstrap, "events-dlq", raw);
}

/// Every record of `topic` (partitions 0..n-1), read up to the high watermarks.
std::vector<read_record> read_all(const std::string& bootstrap, const std::string& topic, int n) {
  kafka::properties props{{"bootstrap.servers", bootstrap},
                          {"group.id", "dead-letters-test"},
                          {"enable.auto.commit", "false"}};
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, kafka::make_conf(props), err, sizeof(err));
  EXPECT_NE(rk, nullptr) << err;
  rd_kafka_poll_set_consumer(rk);
  std::vector<int64_t> high(static_cast<size_t>(n), 0);
  int64_t left = 0;
  auto* list = rd_kafka_topic_partition_list_new(n);
  for (int p = 0; p < n; ++p) {
    int64_t low = 0;
    EXPECT_EQ(rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &low, &high[p], 10000),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    left += high[p] - low;
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = low;
  }
  rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  std::vector<read_record> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (left > 0 && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      read_record r;
      r.partition = m->partition;
      r.offset = m->offset;
      r.has_key = m->key != nullptr;
      if (r.has_key)
        r.key.assign(static_cast<const char*>(m->key), m->key_len);
      r.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* headers = nullptr;
      const void* h = nullptr;
      size_t hlen = 0;
      if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(headers, kafka::replay_header, &h, &hlen) ==
              RD_KAFKA_RESP_ERR_NO_ERROR)
        r.origin.assign(static_cast<const char*>(h), hlen);
      out.push_back(std::move(r));
      --left;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  EXPECT_EQ(left, 0) << "records of " << topic << " not read";
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
  });
  return out;
}

/// The what() of the exception `fn` throws ("" if none).
template <class F>
std::string error_of(F fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

/// An embedded Kafka with "events" (4 partitions) and "events-dlq" (2 partitions) holding
/// six envelopes and one record that is not an envelope.
class dead_letters_test : public ::testing::Test {
protected:
  void SetUp() override {
    kafka_.create_topic("events", 4);
    kafka_.create_topic("events-dlq", 2);
    props_ = {{"bootstrap.servers", kafka_.bootstrap_servers()}};
    write_letters(bootstrap(), {letters_[0], letters_[1], letters_[2]});
    produce_raw(bootstrap(), "events-dlq", {{0, std::string(12, '\xff')}}); // dlq 0/3
    write_letters(bootstrap(), {letters_[3], letters_[4], letters_[5]});
  }

  /// Bootstrap servers of the embedded Kafka.
  std::string bootstrap() const { return kafka_.bootstrap_servers(); }

  kafka::embedded_kafka kafka_{1};
  kafka::properties props_;
  // dlq 0/0, 0/1, 0/2, (0/3 garbage), 0/4, 1/0, 1/1
  std::vector<letter> letters_{
      {0, "c-1", "value-1", 2, 10, "enrich", ec::enrich_missing},
      {0, "c-2", std::string("v\0al\xff-2", 7), 3, 11, "validate", ec::decode_error},
      {0, "c-3", "value-3", 1, 12, "enrich", ec::enrich_missing},
      {0, "", "value-4", 0, 13, "validate", ec::missing_field},
      {1, "c-5", "value-5", 3, 14, "enrich", ec::enrich_missing},
      {1, "c-6", "value-6", 2, 15, "window", ec::late},
  };
};

} // namespace

TEST_F(dead_letters_test, lists_every_envelope_with_its_fields) {
  auto all = kafka::list_dead_letters(props_, "events-dlq", dead_letter_filter{});
  ASSERT_EQ(all.size(), 6u); // the record that is not an envelope is left out
  const std::vector<std::pair<int32_t, int64_t>> where{{0, 0}, {0, 1}, {0, 2},
                                                       {0, 4}, {1, 0}, {1, 1}};
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& e = all[i];
    const auto& l = letters_[i];
    EXPECT_EQ(std::make_pair(e.partition, e.offset), where[i]) << i;
    EXPECT_EQ(e.original_key, l.key);
    EXPECT_EQ(e.original_value, l.value);
    EXPECT_EQ(e.source_topic, "events");
    EXPECT_EQ(e.source_partition, l.source_partition);
    EXPECT_EQ(e.source_offset, l.source_offset);
    EXPECT_EQ(e.operator_id, l.op);
    EXPECT_EQ(e.error_code, to_string(l.code));
    EXPECT_EQ(e.error_message, "because");
    EXPECT_EQ(e.attempts, 1u);
    EXPECT_EQ(e.pipeline, "cdp");
    EXPECT_EQ(e.pipeline_version, 3u);
    EXPECT_EQ(e.record_timestamp_ms, 1767225600000);
    EXPECT_GT(e.dead_lettered_at_ms, 0);
  }
  auto j = kafka::to_json(all[1]);
  EXPECT_EQ(j["operator"], "validate");
  EXPECT_EQ(j["error_code"], "decode_error");
  EXPECT_EQ(j["key_base64"], "Yy0y");           // "c-2"
  EXPECT_EQ(j["value_base64"], "dgBhbP8tMg=="); // "v\0al\xff-2"
  EXPECT_EQ(j["value_size"], 7);
  EXPECT_EQ(j["pipeline_version"], 3);
}

TEST_F(dead_letters_test, filters_by_reason_operator_limit_and_offset) {
  dead_letter_filter f;
  f.reason = "enrich_missing";
  auto missing = kafka::list_dead_letters(props_, "events-dlq", f);
  ASSERT_EQ(missing.size(), 3u);
  EXPECT_EQ(missing[0].original_key, "c-1");
  EXPECT_EQ(missing[1].original_key, "c-3");
  EXPECT_EQ(missing[2].original_key, "c-5");

  f = {};
  f.operator_id = "validate";
  auto validate = kafka::list_dead_letters(props_, "events-dlq", f);
  ASSERT_EQ(validate.size(), 2u);
  EXPECT_EQ(validate[0].error_code, "decode_error");
  EXPECT_EQ(validate[1].error_code, "missing_field");

  f.reason = "decode_error"; // both must match
  EXPECT_EQ(kafka::list_dead_letters(props_, "events-dlq", f).size(), 1u);
  f.reason = "late";
  EXPECT_TRUE(kafka::list_dead_letters(props_, "events-dlq", f).empty());

  f = {};
  f.limit = 2;
  auto first = kafka::list_dead_letters(props_, "events-dlq", f);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[1].offset, 1);
  f.limit = 0; // no limit
  EXPECT_EQ(kafka::list_dead_letters(props_, "events-dlq", f).size(), 6u);

  f = {};
  f.from = 1; // in every partition
  auto later = kafka::list_dead_letters(props_, "events-dlq", f);
  ASSERT_EQ(later.size(), 4u);
  EXPECT_EQ(std::make_pair(later[0].partition, later[0].offset), std::make_pair(0, int64_t{1}));
  EXPECT_EQ(std::make_pair(later[3].partition, later[3].offset), std::make_pair(1, int64_t{1}));
  f.from = 100;
  EXPECT_TRUE(kafka::list_dead_letters(props_, "events-dlq", f).empty());
}

TEST_F(dead_letters_test, replays_to_the_source_partition_once) {
  dead_letter_filter f;
  f.reason = "enrich_missing";
  auto r = kafka::replay_dead_letters(props_, "events-dlq", "replay-group", f);
  EXPECT_EQ(r.group, "replay-group");
  EXPECT_EQ(r.replayed, 3u);
  EXPECT_EQ(r.skipped, 4u); // decode_error, missing_field, late, and the record that is no envelope
  EXPECT_EQ(r.replayed_by_reason, (std::map<std::string, uint64_t>{{"enrich_missing", 3}}));
  EXPECT_EQ(r.skipped_by_reason,
            (std::map<std::string, uint64_t>{
                {"decode_error", 1}, {"late", 1}, {"missing_field", 1}, {"not_a_dead_letter", 1}}));
  EXPECT_EQ(r.committed, (std::map<int32_t, int64_t>{{0, 5}, {1, 2}}));

  auto events = read_all(bootstrap(), "events", 4);
  ASSERT_EQ(events.size(), 3u);
  // Sorted by (partition, offset): c-3 (partition 1), c-1 (2), c-5 (3).
  const std::vector<std::tuple<int32_t, std::string, std::string, std::string>> want{
      {1, "c-3", "value-3", "events-dlq/0/2"},
      {2, "c-1", "value-1", "events-dlq/0/0"},
      {3, "c-5", "value-5", "events-dlq/1/0"}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(events[i].partition, std::get<0>(want[i]));
    EXPECT_TRUE(events[i].has_key);
    EXPECT_EQ(events[i].key, std::get<1>(want[i]));
    EXPECT_EQ(events[i].value, std::get<2>(want[i]));
    EXPECT_EQ(events[i].origin, std::get<3>(want[i]));
  }

  // A second replay finds nothing new, with or without a filter: the group passed it all.
  auto again = kafka::replay_dead_letters(props_, "events-dlq", "replay-group", f);
  EXPECT_EQ(again.replayed, 0u);
  EXPECT_EQ(again.skipped, 0u);
  EXPECT_EQ(kafka::replay_dead_letters(props_, "events-dlq", "replay-group", {}).replayed, 0u);
  EXPECT_EQ(read_all(bootstrap(), "events", 4).size(), 3u);

  // A new letter is replayed by the next call, a key-less one without a key.
  write_letters(bootstrap(),
                {{1, "", std::string("\x08\x01", 2), 0, 99, "enrich", ec::enrich_missing}});
  auto next = kafka::replay_dead_letters(props_, "events-dlq", "replay-group", {});
  EXPECT_EQ(next.replayed, 1u);
  EXPECT_EQ(next.committed, (std::map<int32_t, int64_t>{{0, 5}, {1, 3}}));
  events = read_all(bootstrap(), "events", 4);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].partition, 0);
  EXPECT_FALSE(events[0].has_key);
  EXPECT_EQ(events[0].value, std::string("\x08\x01", 2));
  EXPECT_EQ(events[0].origin, "events-dlq/1/2");

  // `from` overrides the committed offsets; another group starts from the log start.
  f.from = 2;
  EXPECT_EQ(kafka::replay_dead_letters(props_, "events-dlq", "replay-group", f).replayed, 2u);
  EXPECT_EQ(kafka::replay_dead_letters(props_, "events-dlq", "other", {}).replayed, 7u);
  EXPECT_EQ(read_all(bootstrap(), "events", 4).size(), 13u);
}

TEST_F(dead_letters_test, errors_name_the_cause) {
  auto missing_topic = error_of([&] { kafka::list_dead_letters(props_, "nope-dlq", {}); });
  EXPECT_NE(missing_topic.find("dead-letter topic 'nope-dlq' does not exist"), std::string::npos)
      << missing_topic;
  missing_topic = error_of([&] { kafka::replay_dead_letters(props_, "nope-dlq", "g", {}); });
  EXPECT_NE(missing_topic.find("'nope-dlq'"), std::string::npos) << missing_topic;

  // A letter whose source topic is gone stops the replay there; the letters before it are
  // replayed and committed, the ones from it on are not.
  kafka_.create_topic("other-dlq", 1);
  std::vector<std::pair<int32_t, std::string>> raw{
      {0, envelope({0, "c-1", "v-1", 2, 1, "enrich", ec::enrich_missing})},
      {0, envelope({0, "c-2", "v-2", 2, 2, "enrich", ec::enrich_missing, "gone"})},
      {0, envelope({0, "c-3", "v-3", 9, 3, "enrich", ec::enrich_missing})}};
  produce_raw(bootstrap(), "other-dlq", raw);
  auto gone = error_of([&] { kafka::replay_dead_letters(props_, "other-dlq", "g", {}); });
  EXPECT_NE(gone.find("other-dlq/0/1: source topic 'gone' does not exist"), std::string::npos)
      << gone;
  EXPECT_EQ(read_all(bootstrap(), "events", 4).size(), 1u);
  // Still stuck at the same letter: nothing is replayed twice.
  gone = error_of([&] { kafka::replay_dead_letters(props_, "other-dlq", "g", {}); });
  EXPECT_NE(gone.find("source topic 'gone'"), std::string::npos) << gone;
  EXPECT_EQ(read_all(bootstrap(), "events", 4).size(), 1u);

  dead_letter_filter f;
  f.from = 2;
  auto partition = error_of([&] { kafka::replay_dead_letters(props_, "other-dlq", "g", f); });
  EXPECT_NE(partition.find("source partition 9 does not exist (topic 'events' has 4 partitions)"),
            std::string::npos)
      << partition;
  EXPECT_THROW(kafka::replay_dead_letters(props_, "events-dlq", "", {}), std::invalid_argument);
}

TEST(dead_letters, reasons_and_default_group) {
  auto reasons = kafka::dead_letter_reasons();
  for (const char* word : {"decode_error", "missing_field", "late", "enrich_missing"})
    EXPECT_NE(std::find(reasons.begin(), reasons.end(), word), reasons.end()) << word;
  EXPECT_EQ(std::find(reasons.begin(), reasons.end(), "none"), reasons.end());
  EXPECT_EQ(kafka::default_replay_group("cdp"), "keyflow-dlq-replay-cdp");
}
