#pragma once
/// \file
/// Event generators for the in-process sources of the benchmarks: the Nexmark generator as
/// a pipeline::event_generator, and a wrapper that publishes how many events a generator has
/// emitted (so the harness knows when a bounded input has been read completely).

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

} // namespace keyflow::bench
