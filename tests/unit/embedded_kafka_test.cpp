// embedded_kafka: a librdkafka mock cluster that plain librdkafka clients can use, with
// explicit topic creation and an optional fixed bootstrap port.
#include "kafka/embedded_kafka.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

using keyflow::kafka::embedded_kafka;
using keyflow::test::free_port;

namespace {

/// Builds a client config from key/value pairs; fails the test on a bad property.
rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& props) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : props)
    EXPECT_EQ(rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof(errstr)),
              RD_KAFKA_CONF_OK)
        << k << ": " << errstr;
  return conf;
}

/// Produces `count` records "k<i>"/"v<i>" to partition i % partitions; returns how many
/// were acknowledged without error.
int produce(const std::string& bootstrap, const std::string& topic, int count, int partitions) {
  int delivered = 0;
  rd_kafka_conf_t* conf = make_conf(
      {{"bootstrap.servers", bootstrap}, {"enable.idempotence", "true"}, {"linger.ms", "5"}});
  rd_kafka_conf_set_opaque(conf, &delivered);
  rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      ++*static_cast<int*>(opaque);
  });
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr)
    throw std::runtime_error(errstr);
  for (int i = 0; i < count; ++i) {
    std::string key = "k" + std::to_string(i);
    std::string value = "v" + std::to_string(i);
    EXPECT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_PARTITION(i % partitions),
                                RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(value.data(), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  EXPECT_EQ(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);
  return delivered;
}

/// Reads every partition from the beginning until `expected` records arrived or 30 s
/// passed; returns key -> (value, partition).
std::map<std::string, std::pair<std::string, int>>
consume(const std::string& bootstrap, const std::string& topic, int partitions, int expected) {
  rd_kafka_conf_t* conf = make_conf({{"bootstrap.servers", bootstrap},
                                     {"group.id", "embedded-kafka-test"},
                                     {"enable.auto.commit", "false"}});
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (rk == nullptr)
    throw std::runtime_error(errstr);
  rd_kafka_poll_set_consumer(rk);
  rd_kafka_topic_partition_list_t* parts = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  EXPECT_EQ(rd_kafka_assign(rk, parts), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_topic_partition_list_destroy(parts);
  std::map<std::string, std::pair<std::string, int>> got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (static_cast<int>(got.size()) < expected && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (m == nullptr)
      continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      got[std::string(static_cast<const char*>(m->key), m->key_len)] = {
          std::string(static_cast<const char*>(m->payload), m->len), m->partition};
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return got;
}

/// Partition count of `topic` as a client sees it in metadata (-1 if absent).
int metadata_partitions(const std::string& bootstrap, const std::string& topic) {
  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, make_conf({{"bootstrap.servers", bootstrap}}),
                                errstr, sizeof(errstr));
  const rd_kafka_metadata_t* md = nullptr;
  int result = -1;
  if (rd_kafka_metadata(rk, 1, nullptr, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < md->topic_cnt; ++i)
      if (topic == md->topics[i].topic)
        result = md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
  }
  rd_kafka_destroy(rk);
  return result;
}

/// Checks that all `count` records of produce() came back on their partitions.
void expect_round_trip(const std::map<std::string, std::pair<std::string, int>>& got, int count,
                       int partitions) {
  ASSERT_EQ(static_cast<int>(got.size()), count);
  for (int i = 0; i < count; ++i) {
    auto it = got.find("k" + std::to_string(i));
    ASSERT_NE(it, got.end()) << "missing k" << i;
    EXPECT_EQ(it->second.first, "v" + std::to_string(i));
    EXPECT_EQ(it->second.second, i % partitions);
  }
}

} // namespace

TEST(embedded_kafka, produce_consume_round_trip) {
  embedded_kafka kafka(1);
  EXPECT_EQ(kafka.port(), 0);
  EXPECT_EQ(kafka.bootstrap_servers(), kafka.broker_addresses());
  kafka.create_topic("roundtrip", 3);
  EXPECT_EQ(produce(kafka.bootstrap_servers(), "roundtrip", 300, 3), 300);
  expect_round_trip(consume(kafka.bootstrap_servers(), "roundtrip", 3, 300), 300, 3);
}

TEST(embedded_kafka, several_brokers_and_metadata) {
  embedded_kafka kafka(3);
  EXPECT_EQ(kafka.brokers(), 3);
  kafka.create_topic("wide", 7);
  auto addresses = kafka.broker_addresses();
  EXPECT_EQ(std::count(addresses.begin(), addresses.end(), ','), 2) << addresses;
  EXPECT_EQ(metadata_partitions(kafka.bootstrap_servers(), "wide"), 7);
  EXPECT_EQ(produce(kafka.bootstrap_servers(), "wide", 70, 7), 70);
  expect_round_trip(consume(kafka.bootstrap_servers(), "wide", 7, 70), 70, 7);
}

TEST(embedded_kafka, create_topic_rejects_bad_input) {
  embedded_kafka kafka(1);
  kafka.create_topic("events", 4);
  EXPECT_THROW(kafka.create_topic("events", 4), std::runtime_error); // exists
  EXPECT_THROW(kafka.create_topic("zero", 0), std::runtime_error);
  EXPECT_THROW(kafka.create_topic("bad name!", 2), std::runtime_error);
  EXPECT_THROW(kafka.create_topic("", 2), std::runtime_error);
  try {
    kafka.create_topic("events", 4);
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'events'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(embedded_kafka(0), std::runtime_error);
}

TEST(embedded_kafka, unknown_topics_are_auto_created_with_four_partitions) {
  embedded_kafka kafka(1);
  EXPECT_EQ(produce(kafka.bootstrap_servers(), "auto", 8, 4), 8);
  EXPECT_EQ(metadata_partitions(kafka.bootstrap_servers(), "auto"), 4);
  EXPECT_THROW(kafka.create_topic("auto", 2), std::runtime_error);
}

TEST(embedded_kafka, fixed_bootstrap_port) {
  const std::uint16_t port = free_port();
  embedded_kafka kafka(2, port);
  EXPECT_EQ(kafka.port(), port);
  EXPECT_EQ(kafka.bootstrap_servers(), "127.0.0.1:" + std::to_string(port));
  EXPECT_NE(kafka.broker_addresses(), kafka.bootstrap_servers());
  kafka.create_topic("fixed", 2);
  EXPECT_EQ(metadata_partitions(kafka.bootstrap_servers(), "fixed"), 2);
  EXPECT_EQ(produce(kafka.bootstrap_servers(), "fixed", 100, 2), 100);
  expect_round_trip(consume(kafka.bootstrap_servers(), "fixed", 2, 100), 100, 2);
  // The port is taken now: a second cluster on it must fail with a clear message.
  try {
    embedded_kafka other(1, port);
    FAIL() << "second cluster on port " << port << " started";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
  }
}
