#pragma once
/// \file
/// Source reader over one Kafka topic-partition: fetch, decode + validate, route by key.

#include <map>
#include <memory>
#include <string>

#include "config/pipeline_config.hpp"
#include "core/source_reader.hpp"
#include "kafka/client.hpp"
#include "metrics/metrics.hpp"
#include "operators/validate.hpp"

namespace keyflow::kafka {

/// Reads protobuf Events from one partition; bad records become dead letters.
class kafka_reader final : public source_reader {
public:
  /// Consumes `partition` of the pipeline's source topic from `start_offset`.
  kafka_reader(const config::pipeline_config& cfg, const properties& props, int32_t partition,
               int64_t start_offset, metrics::metrics* m);
  size_t read(router& out, std::vector<kafka_message>& dead, size_t max) override;
  void pause() override { consumer_.pause(); }
  void resume() override { consumer_.resume(); }
  int64_t lag() const override { return consumer_.lag(); }
  std::string name() const override;
  source_position position() const override {
    return {consumer_.topic(), consumer_.partition(), consumer_.next_offset()};
  }

  /// Offset of the next record to read.
  int64_t next_offset() const noexcept { return consumer_.next_offset(); }

private:
  void reject(const rd_kafka_message_t* m, const ops::rejection& why,
              std::vector<kafka_message>& dead);

  const config::pipeline_config* cfg_;
  partition_consumer consumer_;
  ops::validator validator_;
  message_batch batch_;
  metrics::metrics* metrics_;
  prometheus::Counter* in_ = nullptr;
  prometheus::Counter* out_ = nullptr;
  std::map<std::string, prometheus::Counter*> dead_by_reason_;
};

} // namespace keyflow::kafka
