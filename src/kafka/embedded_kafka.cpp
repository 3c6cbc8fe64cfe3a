#include "kafka/embedded_kafka.hpp"

#include "kafka/tcp_forwarder.hpp"

#include <librdkafka/rdkafka.h>
// rdkafka_mock.h must come after rdkafka.h.
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <stdexcept>

namespace keyflow::kafka {

namespace {

constexpr int max_brokers = 32;
constexpr int max_partitions = 10000;

/// Creates the rd_kafka_t instance that hosts the mock cluster's thread.
rd_kafka_t* new_host_handle() {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // Level 4 hides the NOTICE "No bootstrap.servers configured": this handle never connects.
  // Protocol errors from misbehaving clients (PROTOERR, level 1) still reach stderr.
  if (rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("embedded_kafka: ") + errstr);
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) { // conf is only consumed on success
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("embedded_kafka: cannot create rd_kafka_t: ") + errstr);
  }
  return rk;
}

/// Splits the first "host:port" entry of a comma-separated list.
std::pair<std::string, std::uint16_t> first_address(const std::string& list) {
  std::string first = list.substr(0, list.find(','));
  auto colon = first.rfind(':');
  if (colon == std::string::npos)
    throw std::runtime_error("embedded_kafka: unexpected broker address '" + first + "'");
  return {first.substr(0, colon), static_cast<std::uint16_t>(std::stoul(first.substr(colon + 1)))};
}

} // namespace

bool is_valid_topic_name(const std::string& name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..")
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

embedded_kafka::embedded_kafka(int brokers, std::uint16_t port) : brokers_(brokers) {
  if (brokers < 1 || brokers > max_brokers)
    throw std::runtime_error("embedded_kafka: number of brokers must be 1.." +
                             std::to_string(max_brokers) + ", got " + std::to_string(brokers));
  rk_ = new_host_handle();
  cluster_ = rd_kafka_mock_cluster_new(rk_, brokers);
  if (cluster_ == nullptr) {
    rd_kafka_destroy(rk_);
    throw std::runtime_error("embedded_kafka: cannot start the mock cluster with " +
                             std::to_string(brokers) + " broker(s)");
  }
  if (port == 0)
    return;
  try {
    auto [host, upstream_port] = first_address(broker_addresses());
    forwarder_ = std::make_unique<tcp_forwarder>(port, host, upstream_port);
  } catch (const std::exception& e) {
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(rk_);
    throw std::runtime_error(std::string("embedded_kafka: bootstrap port: ") + e.what());
  }
}

embedded_kafka::~embedded_kafka() {
  forwarder_.reset();
  rd_kafka_mock_cluster_destroy(cluster_);
  rd_kafka_destroy(rk_);
}

void embedded_kafka::create_topic(const std::string& name, int partitions) {
  if (!is_valid_topic_name(name))
    throw std::runtime_error("embedded_kafka: illegal topic name '" + name +
                             "' (use 1..249 of a-z A-Z 0-9 . _ -)");
  if (partitions < 1 || partitions > max_partitions)
    throw std::runtime_error("embedded_kafka: topic '" + name + "': partitions must be 1.." +
                             std::to_string(max_partitions) + ", got " +
                             std::to_string(partitions));
  int replication = std::min(3, brokers_);
  rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, replication);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw std::runtime_error("embedded_kafka: cannot create topic '" + name +
                             "': " + rd_kafka_err2str(err));
}

std::string embedded_kafka::bootstrap_servers() const {
  if (forwarder_)
    return "127.0.0.1:" + std::to_string(forwarder_->port());
  return broker_addresses();
}

std::string embedded_kafka::broker_addresses() const {
  return rd_kafka_mock_cluster_bootstraps(cluster_);
}

std::uint16_t embedded_kafka::port() const noexcept {
  return forwarder_ ? forwarder_->port() : 0;
}

} // namespace keyflow::kafka
