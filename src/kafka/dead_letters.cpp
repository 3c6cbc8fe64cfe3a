#include "kafka/dead_letters.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "core/errors.hpp"
#include "proto/dead_letter.pb.h"

namespace keyflow::kafka {

namespace {

using clock_type = std::chrono::steady_clock;

/// Milliseconds left until `deadline` (at least 1, so a call still gets one try).
int remaining_ms(clock_type::time_point deadline) {
  auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 1, 1 << 30));
}

/// "<topic>/<partition>/<offset>".
std::string position_text(const std::string& topic, int32_t partition, int64_t offset) {
  return topic + "/" + std::to_string(partition) + "/" + std::to_string(offset);
}

/// Destroys a consumer (closing it first).
struct consumer_deleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
using consumer_ptr = std::unique_ptr<rd_kafka_t, consumer_deleter>;

/// A consumer for manual assignment in group `group` (librdkafka needs one even when
/// nothing is committed) that reports partition ends and reads aborted transactions'
/// records too (dead letters are never transactional).
consumer_ptr make_consumer(const properties& props, const std::string& group) {
  properties p = props;
  p["group.id"] = group;
  p["enable.auto.commit"] = "false";
  p["enable.auto.offset.store"] = "false";
  p["enable.partition.eof"] = "true";
  p["auto.offset.reset"] = "earliest"; // a start offset that retention just dropped
  p["isolation.level"] = "read_uncommitted";
  char err[512];
  rd_kafka_conf_t* conf = make_conf(p);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string{"Kafka consumer: "} + err);
  }
  rd_kafka_poll_set_consumer(rk);
  return consumer_ptr{rk};
}

/// The range of one partition to read: [start, end).
struct span {
  int32_t partition = 0; ///< partition
  int64_t start = 0;     ///< first offset to read
  int64_t end = 0;       ///< high watermark when the call started
};

/// Partition count of the dead-letter topic; throws if the topic does not exist.
int require_dlq(const properties& props, const std::string& topic, int timeout_ms) {
  int n = partition_count(props, topic, timeout_ms);
  if (n <= 0) {
    auto it = props.find("bootstrap.servers");
    throw std::runtime_error("dead-letter topic '" + topic + "' does not exist at " +
                             (it == props.end() ? std::string{"?"} : it->second));
  }
  return n;
}

/// Low and high watermark of `topic`/`partition`; throws naming the Kafka error.
std::pair<int64_t, int64_t> watermarks(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                                       clock_type::time_point deadline) {
  int64_t low = 0, high = 0;
  auto rc = rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &low, &high,
                                             remaining_ms(deadline));
  if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw std::runtime_error("cannot query the offsets of " + topic + "/" +
                             std::to_string(partition) + ": " + rd_kafka_err2str(rc));
  return {low, high};
}

/// Committed offsets of the consumer's group for partitions 0..n-1 (-1 where none).
std::vector<int64_t> committed_offsets(rd_kafka_t* rk, const std::string& topic, int n,
                                       const std::string& group, clock_type::time_point deadline) {
  auto* list = rd_kafka_topic_partition_list_new(n);
  for (int p = 0; p < n; ++p)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
  auto rc = rd_kafka_committed(rk, list, remaining_ms(deadline));
  std::vector<int64_t> out(static_cast<size_t>(n), -1);
  std::string error = rc == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(rc);
  for (int i = 0; i < list->cnt; ++i) {
    const auto& tp = list->elems[i];
    if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR && error.empty())
      error = rd_kafka_err2str(tp.err);
    if (tp.partition >= 0 && tp.partition < n)
      out[static_cast<size_t>(tp.partition)] = tp.offset;
  }
  rd_kafka_topic_partition_list_destroy(list);
  if (!error.empty())
    throw std::runtime_error("cannot read the committed offsets of consumer group '" + group +
                             "' on " + topic + ": " + error);
  return out;
}

/// The spans to read: every partition from its start (from `from`, else `start_of[p]` if
/// not negative, else the log start) up to its high watermark now.
std::vector<span> plan_spans(rd_kafka_t* rk, const std::string& topic, int partitions, int64_t from,
                             const std::vector<int64_t>& start_of,
                             clock_type::time_point deadline) {
  std::vector<span> out;
  for (int32_t p = 0; p < partitions; ++p) {
    auto [low, high] = watermarks(rk, topic, p, deadline);
    int64_t start = from >= 0 ? from : low;
    if (from < 0 && static_cast<size_t>(p) < start_of.size() && start_of[p] >= 0)
      start = start_of[p];
    out.push_back({p, std::clamp(start, low, std::max(low, high)), high});
  }
  return out;
}

/// Reads `s` of `topic`, calling `fn(message)` for each record (in offset order) until the
/// end of the span or until `fn` returns false. Returns the offset after the last record
/// handled (or the span's end). Throws if the span is not read by `deadline`.
int64_t read_span(rd_kafka_t* rk, const std::string& topic, const span& s,
                  clock_type::time_point deadline,
                  const std::function<bool(const rd_kafka_message_t&)>& fn) {
  if (s.start >= s.end)
    return s.start;
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, topic.c_str(), s.partition)->offset = s.start;
  auto rc = rd_kafka_assign(rk, list);
  rd_kafka_topic_partition_list_destroy(list);
  if (rc != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw std::runtime_error("cannot assign " + topic + "/" + std::to_string(s.partition) + ": " +
                             rd_kafka_err2str(rc));
  int64_t next = s.start;
  std::string last_error;
  bool stopped = false;
  while (next < s.end && !stopped) {
    if (clock_type::now() >= deadline)
      throw std::runtime_error("timed out reading " + topic + "/" + std::to_string(s.partition) +
                               " at offset " + std::to_string(next) + " of " +
                               std::to_string(s.end) +
                               (last_error.empty() ? "" : "; last Kafka error: " + last_error));
    // Owned here even when `fn` throws: a message never destroyed makes rd_kafka_destroy()
    // of the consumer wait forever.
    std::unique_ptr<rd_kafka_message_t, decltype(&rd_kafka_message_destroy)> owned{
        rd_kafka_consumer_poll(rk, std::min(remaining_ms(deadline), 200)),
        &rd_kafka_message_destroy};
    if (auto* m = owned.get()) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->partition == s.partition && m->offset >= next && m->offset < s.end) {
          if (fn(*m))
            next = m->offset + 1;
          else
            stopped = true;
        }
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        last_error = rd_kafka_message_errstr(m);
        spdlog::warn("dead letters: {}/{}: {}", topic, s.partition, last_error);
      }
    }
    if (stopped)
      break;
    // The position also moves past transaction markers, which are never delivered.
    auto* pos = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(pos, topic.c_str(), s.partition);
    if (rd_kafka_position(rk, pos) == RD_KAFKA_RESP_ERR_NO_ERROR && pos->elems[0].offset > next)
      next = std::min(pos->elems[0].offset, s.end);
    rd_kafka_topic_partition_list_destroy(pos);
  }
  rd_kafka_assign(rk, nullptr);
  return next;
}

/// Decodes one dead-letter record; false if it is not a DeadLetter envelope.
bool decode(const rd_kafka_message_t& m, dead_letter_entry& out) {
  proto::DeadLetter dl;
  if (m.payload == nullptr || !dl.ParseFromArray(m.payload, static_cast<int>(m.len)))
    return false;
  out.partition = m.partition;
  out.offset = m.offset;
  out.original_key = dl.original_key();
  out.original_value = dl.original_value();
  out.source_topic = dl.source_topic();
  out.source_partition = dl.source_partition();
  out.source_offset = dl.source_offset();
  out.operator_id = dl.operator_id();
  out.error_code = dl.error_code();
  out.error_message = dl.error_message();
  out.record_timestamp_ms = dl.record_timestamp_ms();
  out.dead_lettered_at_ms = dl.dead_lettered_at_ms();
  out.attempts = dl.attempts();
  out.pipeline = dl.pipeline();
  out.pipeline_version = dl.pipeline_version();
  return true;
}

/// True if `e` passes the filter's reason and operator.
bool matches(const dead_letter_entry& e, const dead_letter_filter& f) {
  return (f.reason.empty() || e.error_code == f.reason) &&
         (f.operator_id.empty() || e.operator_id == f.operator_id);
}

/// Standard base64 (with padding) of `in`.
std::string base64(const std::string& in) {
  static constexpr char digits[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8 |
                 static_cast<uint8_t>(in[i + 2]);
    out += {digits[v >> 18], digits[(v >> 12) & 63], digits[(v >> 6) & 63], digits[v & 63]};
  }
  if (i + 1 == in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += {digits[v >> 18], digits[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16 | static_cast<uint8_t>(in[i + 1]) << 8;
    out += {digits[v >> 18], digits[(v >> 12) & 63], digits[(v >> 6) & 63], '='};
  }
  return out;
}

/// The producer of a replay: idempotent, counting delivery reports.
class replay_producer {
public:
  /// Connects with `props`.
  explicit replay_producer(const properties& props) {
    properties p = props;
    p.emplace("enable.idempotence", "true");
    p.emplace("linger.ms", "5");
    char err[512];
    rd_kafka_conf_t* conf = make_conf(p);
    rd_kafka_conf_set_dr_msg_cb(conf, &replay_producer::on_delivery);
    rd_kafka_conf_set_opaque(conf, this);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk_ == nullptr) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string{"Kafka producer: "} + err);
    }
  }
  ~replay_producer() {
    rd_kafka_flush(rk_, 5000);
    rd_kafka_destroy(rk_);
  }
  replay_producer(const replay_producer&) = delete;
  replay_producer& operator=(const replay_producer&) = delete;

  /// Enqueues the letter's original record to its source partition (`partition`, or the
  /// partitioner's choice if negative) with the replay header `origin`.
  void send(const dead_letter_entry& e, int32_t partition, const std::string& origin) {
    const bool keyless = e.original_key.empty();
    for (;;) {
      auto rc = rd_kafka_producev(
          rk_, RD_KAFKA_V_TOPIC(e.source_topic.c_str()),
          RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
          RD_KAFKA_V_KEY(keyless ? nullptr : const_cast<char*>(e.original_key.data()),
                         e.original_key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(e.original_value.data()), e.original_value.size()),
          RD_KAFKA_V_HEADER(replay_header, origin.data(), static_cast<ssize_t>(origin.size())),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
      if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL)
        throw std::runtime_error("Kafka produce to " + e.source_topic + "/" +
                                 std::to_string(partition) + " failed: " + rd_kafka_err2str(rc));
      rd_kafka_poll(rk_, 10); // local queue full: serve delivery reports, then retry
    }
  }

  /// Waits until every record is delivered or failed, or `timeout_ms` passed; true if none
  /// is left.
  bool flush(int timeout_ms) {
    return rd_kafka_flush(rk_, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  /// Records that failed for good.
  uint64_t failed() const noexcept { return failed_; }
  /// Last delivery error text.
  const std::string& last_error() const noexcept { return last_error_; }

private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* msg, void* opaque) {
    auto* self = static_cast<replay_producer*>(opaque);
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ++self->failed_;
      self->last_error_ = rd_kafka_err2str(msg->err);
    }
  }
  rd_kafka_t* rk_ = nullptr;
  uint64_t failed_ = 0; // delivery reports are served by flush()/poll() on the calling thread
  std::string last_error_;
};

/// Checks that the letter's source topic and partition exist (partition counts cached in
/// `counts`); throws naming the letter otherwise.
void require_source(const properties& props, const dead_letter_entry& e, const std::string& origin,
                    std::map<std::string, int>& counts, clock_type::time_point deadline) {
  auto it = counts.find(e.source_topic);
  if (it == counts.end())
    it = counts
             .emplace(e.source_topic,
                      e.source_topic.empty()
                          ? -1
                          : partition_count(props, e.source_topic, remaining_ms(deadline)))
             .first;
  if (it->second <= 0)
    throw std::runtime_error("dead letter " + origin + ": source topic '" + e.source_topic +
                             "' does not exist");
  if (e.source_partition >= it->second)
    throw std::runtime_error("dead letter " + origin + ": source partition " +
                             std::to_string(e.source_partition) + " does not exist (topic '" +
                             e.source_topic + "' has " + std::to_string(it->second) +
                             " partitions)");
}

/// Commits `next` (partition -> offset) for the consumer's group; throws naming the error.
void commit(rd_kafka_t* rk, const std::string& topic, const std::map<int32_t, int64_t>& next,
            const std::string& group) {
  if (next.empty())
    return;
  auto* list = rd_kafka_topic_partition_list_new(static_cast<int>(next.size()));
  for (const auto& [p, offset] : next)
    rd_kafka_topic_partition_list_add(list, topic.c_str(), p)->offset = offset;
  auto rc = rd_kafka_commit(rk, list, 0);
  std::string error = rc == RD_KAFKA_RESP_ERR_NO_ERROR ? "" : rd_kafka_err2str(rc);
  for (int i = 0; i < list->cnt && error.empty(); ++i)
    if (list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
      error = rd_kafka_err2str(list->elems[i].err);
  rd_kafka_topic_partition_list_destroy(list);
  if (!error.empty())
    throw std::runtime_error("committing the offsets of consumer group '" + group + "' on " +
                             topic + " failed: " + error);
}

} // namespace

std::string default_replay_group(const std::string& pipeline) {
  return "keyflow-dlq-replay-" + pipeline;
}

std::vector<std::string> dead_letter_reasons() {
  std::vector<std::string> out;
  for (int i = 1; i < 256; ++i) {
    auto word = to_string(static_cast<ec>(i));
    if (word != "unknown")
      out.emplace_back(word);
  }
  return out;
}

std::vector<dead_letter_entry> list_dead_letters(const properties& props,
                                                 const std::string& dlq_topic,
                                                 const dead_letter_filter& filter, int timeout_ms) {
  const auto deadline = clock_type::now() + std::chrono::milliseconds(timeout_ms);
  const int partitions = require_dlq(props, dlq_topic, remaining_ms(deadline));
  auto rk = make_consumer(props, "keyflow-dlq-list"); // never commits
  auto spans = plan_spans(rk.get(), dlq_topic, partitions, filter.from, {}, deadline);
  std::vector<dead_letter_entry> out;
  for (const auto& s : spans) {
    if (filter.limit > 0 && out.size() >= filter.limit)
      break;
    read_span(rk.get(), dlq_topic, s, deadline, [&](const rd_kafka_message_t& m) {
      dead_letter_entry e;
      if (!decode(m, e)) {
        spdlog::warn("dead letters: {} is not a DeadLetter envelope",
                     position_text(dlq_topic, m.partition, m.offset));
      } else if (matches(e, filter)) {
        out.push_back(std::move(e));
      }
      return filter.limit == 0 || out.size() < filter.limit;
    });
  }
  return out;
}

replay_result replay_dead_letters(const properties& props, const std::string& dlq_topic,
                                  const std::string& group_id, const dead_letter_filter& filter,
                                  int timeout_ms) {
  if (group_id.empty())
    throw std::invalid_argument("replay of " + dlq_topic + ": empty consumer group");
  const auto deadline = clock_type::now() + std::chrono::milliseconds(timeout_ms);
  const int partitions = require_dlq(props, dlq_topic, remaining_ms(deadline));
  auto rk = make_consumer(props, group_id);
  std::vector<int64_t> committed;
  if (filter.from < 0)
    committed = committed_offsets(rk.get(), dlq_topic, partitions, group_id, deadline);
  auto spans = plan_spans(rk.get(), dlq_topic, partitions, filter.from, committed, deadline);

  replay_result result;
  result.group = group_id;
  replay_producer producer{props};
  std::map<std::string, int> source_partitions;
  std::map<int32_t, int64_t> next; // where each partition stopped
  std::string error;
  try {
    for (const auto& s : spans) {
      next[s.partition] = s.start;
      next[s.partition] = read_span(rk.get(), dlq_topic, s, deadline, [&](const auto& m) {
        auto origin = position_text(dlq_topic, m.partition, m.offset);
        dead_letter_entry e;
        if (!decode(m, e)) {
          ++result.skipped;
          ++result.skipped_by_reason["not_a_dead_letter"];
        } else if (!matches(e, filter)) {
          ++result.skipped;
          ++result.skipped_by_reason[e.error_code];
        } else {
          require_source(props, e, origin, source_partitions, deadline);
          producer.send(e, e.source_partition, origin);
          ++result.replayed;
          ++result.replayed_by_reason[e.error_code];
        }
        next[s.partition] = m.offset + 1; // read_span's answer when it returns normally
        return true;
      });
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  // Offsets move only once everything replayed is in Kafka: a crash before the commit
  // replays again (at least once), never loses a letter.
  if (!producer.flush(remaining_ms(deadline) + 10000) || producer.failed() > 0)
    throw std::runtime_error(
        (error.empty() ? "" : error + "; ") + std::to_string(producer.failed()) + " of " +
        std::to_string(result.replayed) + " replayed records were not delivered (" +
        (producer.last_error().empty() ? "flush timed out" : producer.last_error()) +
        "): offsets of consumer group '" + group_id + "' not committed");
  commit(rk.get(), dlq_topic, next, group_id);
  for (const auto& [p, offset] : next)
    result.committed[p] = offset;
  if (!error.empty())
    throw std::runtime_error(error + " (" + std::to_string(result.replayed) +
                             " letter(s) replayed before it were committed)");
  return result;
}

nlohmann::json to_json(const dead_letter_entry& e) {
  return nlohmann::json{{"partition", e.partition},
                        {"offset", e.offset},
                        {"source_topic", e.source_topic},
                        {"source_partition", e.source_partition},
                        {"source_offset", e.source_offset},
                        {"operator", e.operator_id},
                        {"error_code", e.error_code},
                        {"error_message", e.error_message},
                        {"attempts", e.attempts},
                        {"pipeline", e.pipeline},
                        {"pipeline_version", e.pipeline_version},
                        {"record_timestamp_ms", e.record_timestamp_ms},
                        {"dead_lettered_at_ms", e.dead_lettered_at_ms},
                        {"key_base64", base64(e.original_key)},
                        {"value_base64", base64(e.original_value)},
                        {"value_size", e.original_value.size()}};
}

nlohmann::json to_json(const replay_result& r) {
  nlohmann::json committed = nlohmann::json::object();
  for (const auto& [p, offset] : r.committed)
    committed[std::to_string(p)] = offset;
  return nlohmann::json{{"group", r.group},
                        {"replayed", r.replayed},
                        {"skipped", r.skipped},
                        {"replayed_by_reason", r.replayed_by_reason},
                        {"skipped_by_reason", r.skipped_by_reason},
                        {"committed", committed}};
}

} // namespace keyflow::kafka
