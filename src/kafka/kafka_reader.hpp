#pragma once
/// \file
/// Source reader over one Kafka topic-partition: fetch, decode + validate, route by key.

#include <map>
#include <memory>
#include <string>

#include "core/source_reader.hpp"
#include "core/supervision.hpp"
#include "kafka/client.hpp"
#include "metrics/metrics.hpp"
#include "operators/preaggregate.hpp"
#include "pipeline/source_decoder.hpp"

namespace keyflow::kafka {

/// Reads records of the pipeline's schema from one partition; bad records become dead
/// letters.
class kafka_reader final : public source_reader {
public:
  /// Consumes `partition` of the pipeline's source topic from `start_offset`.
  kafka_reader(std::shared_ptr<const pipeline::plan> plan, const properties& props,
               int32_t partition, int64_t start_offset, metrics::metrics* m);
  size_t read(router& out, std::vector<kafka_message>& dead, size_t max) override;
  void pause() override { consumer_.pause(); }
  void resume() override { consumer_.resume(); }
  int64_t lag() const override { return consumer_.lag(); }
  std::string name() const override;
  int64_t max_event_time() const override { return decoder_.max_event_time(); }
  source_position position() const override {
    return {consumer_.topic(), consumer_.partition(), consumer_.next_offset()};
  }

  /// Poison records (supervision) to dead-letter instead of decoding; null: none.
  void set_hints(std::shared_ptr<const supervision_hints> hints) { hints_ = std::move(hints); }
  /// Hot-key fanout: pre-aggregates the records of keys with this share of the partition's
  /// records for the pipeline's fanout operator (ops::fanout_operator; none: no effect).
  void enable_fanout(double share, std::shared_ptr<const ops::watermark_bound> bound = nullptr);
  /// Offset of the next record to read.
  int64_t next_offset() const noexcept { return consumer_.next_offset(); }

private:
  void count_rejection();
  bool dead_letter_poison(std::string_view key, std::string_view value, const ops::provenance& from,
                          std::vector<kafka_message>& dead);

  std::shared_ptr<const pipeline::plan> plan_;
  partition_consumer consumer_;
  pipeline::source_decoder decoder_;
  message_batch batch_;
  metrics::metrics* metrics_;
  prometheus::Counter* in_ = nullptr;
  prometheus::Counter* out_ = nullptr;
  std::map<std::string, prometheus::Counter*> dead_by_reason_;
  std::shared_ptr<const supervision_hints> hints_;
  std::unique_ptr<ops::hot_key_combiner> combiner_;
};

} // namespace keyflow::kafka
