#pragma once
/// \file
/// In-process event generator (like Flink's datagen): deterministic events over a key
/// space, so the engine can be measured without Kafka.

#include <cstdint>
#include <string>
#include <vector>

#include "core/source_reader.hpp"

namespace keyflow {

/// Settings of a generator source.
struct datagen_options {
  uint64_t events = 1'000'000;          ///< events to emit in total (this reader)
  uint32_t keys = 100'000;              ///< distinct keys, "c-000001".. ; default 100k
  uint64_t seed = 42;                   ///< random seed
  int64_t base_time_ms = 1767225600000; ///< event time of the first event (2026-01-01)
};

/// Emits `events` uniformly keyed events; values are multiples of 0.25 so sums are exact.
class datagen_reader final : public source_reader {
public:
  /// A generator with the given options; `index` distinguishes several generators.
  explicit datagen_reader(datagen_options opts, uint32_t index = 0);
  size_t read(router& out, std::vector<kafka_message>& dead, size_t max) override;
  bool exhausted() const override { return emitted_ >= opts_.events; }
  int64_t lag() const override { return static_cast<int64_t>(opts_.events - emitted_); }
  std::string name() const override { return "datagen/" + std::to_string(index_); }
  source_position position() const override {
    return {"datagen", static_cast<int32_t>(index_), static_cast<int64_t>(emitted_)};
  }

  /// Key string of key number `k` (0-based): "c-" + 6+ digits, e.g. "c-000001".
  static std::string key_name(uint32_t k);

private:
  datagen_options opts_;
  uint32_t index_;
  uint64_t emitted_ = 0;
  uint64_t rng_;
  std::vector<std::string> keys_;
};

} // namespace keyflow
