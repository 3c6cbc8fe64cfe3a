#pragma once
/// \file
/// Event generators for the in-process sources of the benchmarks: the Nexmark generator as
/// a pipeline::event_generator, customer events with one hot key, and a wrapper that publishes how
/// many events a generator has emitted (so the harness knows when a bounded input has been read
/// completely).

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "core/nexmark.hpp"
#include "pipeline/generator_reader.hpp"

namespace keyflow::bench {

/// Nexmark events (serialized keyflow.nexmark.Event, decimal id key) as an event_generator.
class nexmark_events final : public pipeline::event_generator {
public:
  /// Emits this instance's share of the sequence `opts` describes.
  explicit nexmark_events(const nexmark_options& opts) : gen_(opts) {}
  /// Copies the next event's key and bytes; false once the instance is done.
  bool next(std::string& key, std::string& value) override {
    if (!gen_.next())
      return false;
    key.assign(gen_.key());
    value.assign(gen_.value());
    return true;
  }
  /// Events still to emit.
  int64_t remaining() const override { return static_cast<int64_t>(gen_.remaining()); }

private:
  nexmark_generator gen_;
};

/// Counts the events another generator emits into a shared atomic (one relaxed add each).
class counted_generator final : public pipeline::event_generator {
public:
  /// Wraps `inner`; adds every emitted event to `*emitted`.
  counted_generator(std::unique_ptr<pipeline::event_generator> inner,
                    std::shared_ptr<std::atomic<uint64_t>> emitted)
      : inner_(std::move(inner)), emitted_(std::move(emitted)) {}
  /// Forwards to the wrapped generator and counts.
  bool next(std::string& key, std::string& value) override {
    if (!inner_->next(key, value))
      return false;
    emitted_->fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  /// Forwards to the wrapped generator.
  int64_t remaining() const override { return inner_->remaining(); }

private:
  std::unique_ptr<pipeline::event_generator> inner_;
  std::shared_ptr<std::atomic<uint64_t>> emitted_;
};

/// Settings of the hot-key generator (the hotkey scenario's input).
struct hot_datagen_options {
  pipeline::datagen_options base; ///< events, keys, seed and time as for make_datagen
  double hot_share = 0.5;         ///< share of the events carrying the hot key "c-000001"; 0.5
};

/// make_datagen's customer events, except that each event carries the hot key (customer 0,
/// "c-000001") with probability `hot_share` and otherwise one of the other keys, uniformly;
/// same values, ids and times. With hot_share 0 the sequence is exactly make_datagen's.
std::unique_ptr<pipeline::event_generator> make_hot_datagen(const hot_datagen_options& opts,
                                                            uint32_t index = 0);

} // namespace keyflow::bench
