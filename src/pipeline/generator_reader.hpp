#pragma once
/// \file
/// In-process inputs (like a datagen connector): a generator produces serialized records
/// that are decoded exactly like Kafka records, so the engine can be measured without Kafka
/// and with the decoding cost included.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/source_reader.hpp"
#include "operators/preaggregate.hpp"
#include "pipeline/source_decoder.hpp"

namespace keyflow::pipeline {

/// Produces records: a Kafka-style key and the serialized message.
class event_generator {
public:
  virtual ~event_generator() = default;
  /// Writes the next record; false when the generator has ended.
  virtual bool next(std::string& key, std::string& value) = 0;
  /// Records left, or -1 if unknown.
  virtual int64_t remaining() const { return -1; }
};

/// Settings of the customer-event generator.
struct datagen_options {
  uint64_t events = 1'000'000;          ///< events to emit in total (this generator)
  uint32_t keys = 100'000;              ///< distinct keys, "c-000001".. ; default 100k
  uint64_t seed = 42;                   ///< random seed
  int64_t base_time_ms = 1767225600000; ///< event time of the first event (2026-01-01)
  /// Share of the events carrying one hot key (customer 0, "c-000001"); the others are
  /// uniform over the other keys. 0 (default): uniform over all keys.
  double hot_share = 0;
};

/// keyflow.proto.Event records uniformly over `keys` customers (or with one hot key, see
/// hot_share); values are multiples of 0.25 (sums stay exact); event ids unique; event time
/// grows by 1 ms per event. The hot share does not change values, ids or times.
std::unique_ptr<event_generator> make_datagen(datagen_options opts, uint32_t index = 0);

/// Key string of customer number `k` (0-based): "c-" + 6+ digits, e.g. "c-000001".
std::string datagen_key_name(uint32_t k);

/// A source reader over a generator.
class generator_reader final : public source_reader {
public:
  /// Decodes the generator's records with the plan's source; `index` names the reader.
  generator_reader(std::shared_ptr<const plan> p, std::unique_ptr<event_generator> gen,
                   uint32_t index = 0);
  size_t read(router& out, std::vector<kafka_message>& dead, size_t max) override;
  bool exhausted() const override { return done_; }
  int64_t lag() const override { return gen_->remaining(); }
  int64_t max_event_time() const override { return decoder_.max_event_time(); }
  std::string name() const override { return "datagen/" + std::to_string(index_); }
  source_position position() const override {
    return {"datagen", static_cast<int32_t>(index_), static_cast<int64_t>(emitted_)};
  }

  /// Hot-key fanout: pre-aggregates the records of keys with this share of its records for
  /// the plan's fanout operator (operators/preaggregate.hpp; none: no effect).
  void enable_fanout(double share);

private:
  std::shared_ptr<const plan> plan_;
  std::unique_ptr<event_generator> gen_;
  source_decoder decoder_;
  uint32_t index_;
  uint64_t emitted_ = 0;
  bool done_ = false;
  std::string key_, value_;
  std::unique_ptr<ops::hot_key_combiner> combiner_;
};

} // namespace keyflow::pipeline
