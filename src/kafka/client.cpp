#include "kafka/client.hpp"

#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

namespace keyflow::kafka {

rd_kafka_conf_t* make_conf(const properties& props) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error("Kafka property '" + k + "': " + err);
    }
  }
  return conf;
}

int partition_count(const properties& props, const std::string& topic, int timeout_ms) {
  char err[512];
  rd_kafka_conf_t* conf = make_conf(props);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string{"Kafka client: "} + err);
  }
  // Ask for all topics rather than naming this one: a Metadata request that names an unknown
  // topic auto-creates it on brokers that allow it (and always on the embedded one).
  const rd_kafka_metadata_t* md = nullptr;
  auto rc = rd_kafka_metadata(rk, 1, nullptr, &md, timeout_ms);
  if (rc != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_destroy(rk);
    throw std::runtime_error("Kafka metadata from " + props.at("bootstrap.servers") +
                             " failed: " + rd_kafka_err2str(rc));
  }
  int result = -1;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (topic == md->topics[i].topic && md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      result = md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_destroy(rk);
  return result;
}

void message_batch::clear() {
  for (auto* m : msgs_)
    rd_kafka_message_destroy(m);
  msgs_.clear();
}

partition_consumer::partition_consumer(const properties& props, std::string topic,
                                       int32_t partition, int64_t start_offset)
    : topic_(std::move(topic)), partition_(partition) {
  char err[512];
  rd_kafka_conf_t* conf = make_conf(props);
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string{"Kafka consumer: "} + err);
  }
  rd_kafka_poll_set_consumer(rk_);
  queue_ = rd_kafka_queue_get_consumer(rk_);
  // Resolve logical offsets now, so the position recorded in a checkpoint is always a real
  // offset (a checkpoint taken before the first record must not say "latest").
  if (start_offset < 0) {
    int64_t low = 0, high = 0;
    auto rc = rd_kafka_query_watermark_offsets(rk_, topic_.c_str(), partition_, &low, &high, 10000);
    if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw std::runtime_error("cannot query offsets of " + topic_ + "/" +
                               std::to_string(partition_) + ": " + rd_kafka_err2str(rc));
    start_offset = start_offset == RD_KAFKA_OFFSET_END ? high : low;
  }
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic_.c_str(), partition_)->offset = start_offset;
  auto rc = rd_kafka_assign(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw std::runtime_error("cannot assign " + topic_ + "/" + std::to_string(partition_) + ": " +
                             rd_kafka_err2str(rc));
  next_offset_ = start_offset;
}

partition_consumer::~partition_consumer() {
  if (queue_ != nullptr)
    rd_kafka_queue_destroy(queue_);
  if (rk_ != nullptr) {
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
  }
}

size_t partition_consumer::poll(message_batch& out, size_t max, int timeout_ms) {
  out.clear();
  auto& msgs = out.messages();
  msgs.resize(max);
  auto n = rd_kafka_consume_batch_queue(queue_, timeout_ms, msgs.data(), max);
  msgs.resize(n < 0 ? 0 : static_cast<size_t>(n));
  // Drop error events (partition EOF, transport errors) but log real errors.
  size_t kept = 0;
  for (auto* m : msgs) {
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      msgs[kept++] = m;
      next_offset_ = m->offset + 1;
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      spdlog::warn("kafka consumer {}/{}: {}", topic_, partition_, rd_kafka_message_errstr(m));
    rd_kafka_message_destroy(m);
  }
  msgs.resize(kept);
  return kept;
}

void partition_consumer::pause() {
  if (paused_)
    return;
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic_.c_str(), partition_);
  rd_kafka_pause_partitions(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  paused_ = true;
}

void partition_consumer::resume() {
  if (!paused_)
    return;
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic_.c_str(), partition_);
  rd_kafka_resume_partitions(rk_, list);
  rd_kafka_topic_partition_list_destroy(list);
  paused_ = false;
}

int64_t partition_consumer::lag() const {
  int64_t low = -1, high = -1;
  if (rd_kafka_get_watermark_offsets(rk_, topic_.c_str(), partition_, &low, &high) !=
          RD_KAFKA_RESP_ERR_NO_ERROR ||
      high < 0)
    return -1;
  if (next_offset_ < 0)
    return high - low;
  return high > next_offset_ ? high - next_offset_ : 0;
}

producer::producer(const properties& props) {
  properties p = props;
  p.emplace("enable.idempotence", "true");
  p.emplace("linger.ms", "5");
  char err[512];
  rd_kafka_conf_t* conf = make_conf(p);
  rd_kafka_conf_set_dr_msg_cb(conf, &producer::on_delivery);
  rd_kafka_conf_set_opaque(conf, this);
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string{"Kafka producer: "} + err);
  }
}

producer::~producer() {
  if (rk_ != nullptr) {
    rd_kafka_flush(rk_, 5000);
    rd_kafka_destroy(rk_);
  }
}

void producer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
  auto* self = static_cast<producer*>(opaque);
  if (msg->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->delivered_.fetch_add(1, std::memory_order_relaxed);
  } else {
    self->failed_.fetch_add(1, std::memory_order_relaxed);
    self->last_error_ = rd_kafka_err2str(msg->err);
  }
}

void producer::send(const std::string& topic, std::string_view key, std::string_view value) {
  for (;;) {
    auto rc = rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_KEY(const_cast<char*>(key.data()), key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
      return;
    if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      throw std::runtime_error("Kafka produce to '" + topic + "' failed: " + rd_kafka_err2str(rc));
    rd_kafka_poll(rk_, 10); // local queue full: serve delivery reports, then retry
  }
}

bool producer::flush(int timeout_ms) {
  return rd_kafka_flush(rk_, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

namespace {

/// Throws (and destroys `err`) if it is set.
void check(rd_kafka_error_t* err, const char* what) {
  if (err == nullptr)
    return;
  std::string msg = std::string{what} + ": " + rd_kafka_error_string(err);
  rd_kafka_error_destroy(err);
  throw std::runtime_error(msg);
}

} // namespace

void producer::begin_transactions(int timeout_ms) {
  check(rd_kafka_init_transactions(rk_, timeout_ms), "Kafka init_transactions");
  check(rd_kafka_begin_transaction(rk_), "Kafka begin_transaction");
  transactional_ = true;
}

void producer::commit_transaction(int timeout_ms) {
  if (auto* err = rd_kafka_commit_transaction(rk_, timeout_ms)) {
    std::string msg = std::string{"Kafka commit_transaction: "} + rd_kafka_error_string(err);
    bool abortable = rd_kafka_error_txn_requires_abort(err);
    rd_kafka_error_destroy(err);
    if (abortable)
      if (auto* aerr = rd_kafka_abort_transaction(rk_, timeout_ms))
        rd_kafka_error_destroy(aerr);
    check(rd_kafka_begin_transaction(rk_), "Kafka begin_transaction");
    throw std::runtime_error(msg);
  }
  check(rd_kafka_begin_transaction(rk_), "Kafka begin_transaction");
}

std::string producer::last_error() const {
  return last_error_;
}

} // namespace keyflow::kafka
