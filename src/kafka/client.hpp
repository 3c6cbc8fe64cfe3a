#pragma once
/// \file
/// Thin RAII wrappers over the ordinary librdkafka C client API: a consumer assigned to one
/// topic-partition (Keyflow tracks offsets itself, as Flink does) and a producer with
/// delivery-report accounting. Pointing `bootstrap.servers` at a real Kafka is all it takes
/// to leave the embedded one.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <librdkafka/rdkafka.h>

namespace keyflow::kafka {

/// Client properties (librdkafka names), e.g. {"bootstrap.servers", "127.0.0.1:9092"}.
using properties = std::map<std::string, std::string>;

/// Builds an rd_kafka_conf_t from properties; throws std::runtime_error naming the property.
rd_kafka_conf_t* make_conf(const properties& props);

/// Number of partitions of `topic`, or -1 if the topic does not exist (metadata request).
int partition_count(const properties& props, const std::string& topic, int timeout_ms = 10000);

/// Owns a batch of consumed messages and destroys them.
class message_batch {
public:
  message_batch() = default;
  ~message_batch() { clear(); }
  message_batch(const message_batch&) = delete;
  message_batch& operator=(const message_batch&) = delete;
  /// Destroys all messages.
  void clear();
  /// The messages (valid until clear()).
  std::vector<rd_kafka_message_t*>& messages() noexcept { return msgs_; }

private:
  std::vector<rd_kafka_message_t*> msgs_;
};

/// A consumer reading one topic-partition from a given start offset.
class partition_consumer {
public:
  /// Connects with `props` and assigns `topic`/`partition` at `start_offset`
  /// (an offset, RD_KAFKA_OFFSET_BEGINNING or RD_KAFKA_OFFSET_END).
  partition_consumer(const properties& props, std::string topic, int32_t partition,
                     int64_t start_offset);
  ~partition_consumer();
  partition_consumer(const partition_consumer&) = delete;
  partition_consumer& operator=(const partition_consumer&) = delete;

  /// Fetches up to `max` messages without blocking longer than `timeout_ms` into `out`
  /// (cleared first). Error events (not messages) are logged and dropped from `out`.
  size_t poll(message_batch& out, size_t max, int timeout_ms = 0);

  /// Pauses fetching (backpressure); librdkafka stops prefetching for the partition.
  void pause();
  /// Resumes fetching.
  void resume();
  /// True while paused.
  bool paused() const noexcept { return paused_; }

  /// Records behind the high watermark, from the last fetch response (no network call);
  /// -1 if unknown.
  int64_t lag() const;

  /// Offset of the next record to read.
  int64_t next_offset() const noexcept { return next_offset_; }

  /// Topic name.
  const std::string& topic() const noexcept { return topic_; }
  /// Partition number.
  int32_t partition() const noexcept { return partition_; }

private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  std::string topic_;
  int32_t partition_;
  int64_t next_offset_ = -1;
  bool paused_ = false;
};

/// A producer that counts deliveries and failures.
class producer {
public:
  /// Connects with `props` (idempotence on by default).
  explicit producer(const properties& props);
  ~producer();
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  /// Enqueues one record; waits (serving delivery reports) while the local queue is full.
  /// Throws std::runtime_error on a non-retriable error.
  void send(const std::string& topic, std::string_view key, std::string_view value);

  /// Serves delivery reports without blocking.
  void poll() { rd_kafka_poll(rk_, 0); }

  /// Waits up to `timeout_ms` for all records to be delivered; true if none is left.
  bool flush(int timeout_ms);

  /// Initialises transactions (needs `transactional.id`), fencing older producers with the
  /// same id and aborting their open transaction, then begins the first transaction.
  /// Throws std::runtime_error on failure.
  void begin_transactions(int timeout_ms = 30000);

  /// Commits the open transaction (flushing first) and begins the next one. Throws
  /// std::runtime_error naming the cause; the transaction is aborted then.
  void commit_transaction(int timeout_ms = 30000);

  /// True once begin_transactions() succeeded.
  bool transactional() const noexcept { return transactional_; }

  /// Records acknowledged by the broker.
  uint64_t delivered() const noexcept { return delivered_.load(); }
  /// Records that failed for good.
  uint64_t failed() const noexcept { return failed_.load(); }
  /// Last delivery error text (empty if none).
  std::string last_error() const;

private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque);
  rd_kafka_t* rk_ = nullptr;
  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> failed_{0};
  std::string last_error_;
  bool transactional_ = false;
};

} // namespace keyflow::kafka
