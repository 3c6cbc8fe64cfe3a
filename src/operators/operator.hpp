#pragma once
/// \file
/// The interface of a keyed operator hosted by a partition actor. Operators are plain C++:
/// a batch of input records (plus keyed state) in, output records and dead letters out.
/// They know nothing of actors; the host moves batches, advances watermarks, writes state at
/// checkpoints and handles failure.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/key_group.hpp"
#include "core/layout.hpp"
#include "core/record.hpp"
#include "state/state_store.hpp"

namespace keyflow::metrics {
class metrics;
}

namespace keyflow::ops {

/// What the host gives every operator instance.
struct op_env {
  state::state_store* store =
      nullptr; ///< node state (column family = operator id); may be null for stateless operators
  std::string pipeline;                ///< pipeline name (dead letters)
  uint32_t pipeline_version = 1;       ///< pipeline version (dead letters)
  std::string dead_letter_topic;       ///< where rejected records go
  std::string source_topic;            ///< topic records came from (dead-letter provenance)
  metrics::metrics* metrics = nullptr; ///< node metrics; may be null (tests)
  key_group_t first_key_group = 0;     ///< first key group of the hosting actor
  key_group_t last_key_group = 0;      ///< last key group of the hosting actor (inclusive)
  uint32_t instance = 0;               ///< index of the hosting actor
  /// Processing-time clock in ms since the Unix epoch (state TTL); replaceable in tests.
  std::function<int64_t()> now_ms;
};

/// Where an operator puts what it produces.
struct op_output {
  std::vector<record> records;             ///< records for the next operators and sinks
  std::vector<kafka_message> dead_letters; ///< ready-to-send dead letters (late data, ...)
  /// Clears both, keeping capacity.
  void clear() {
    records.clear();
    dead_letters.clear();
  }
};

/// A stateful or stateless operator instance for the key groups of one partition actor.
class keyed_operator {
public:
  virtual ~keyed_operator() = default;

  /// The operator id (config), also its state's column family.
  virtual const std::string& id() const noexcept = 0;

  /// Processes a batch in order. May move records out of `in`. Outputs go to `out`.
  virtual void process(std::vector<record>& in, op_output& out) = 0;

  /// The input watermark advanced to `wm` (every record with an event time <= wm that is
  /// not late has been processed): emit what it completes (windows). Called after
  /// process() of the batch that carried it. Default: nothing.
  virtual void advance_watermark(int64_t wm, op_output& out) {
    (void)wm;
    (void)out;
  }

  /// Writes changed state to RocksDB (before a checkpoint and on the flush timer); returns
  /// the number of keys written. Default: stateless.
  virtual size_t flush_state() { return 0; }

  /// Drops unchanged state from memory down to `max_keys` entries. Default: nothing.
  virtual size_t evict_to(size_t max_keys) {
    (void)max_keys;
    return 0;
  }

  /// Keys (or windows) held in memory.
  virtual size_t state_size() const { return 0; }

  /// Records dropped as duplicates so far (dedup); 0 for other operators.
  virtual uint64_t duplicates() const { return 0; }

  /// Records sent to the late-data output so far (windows); 0 for other operators.
  virtual uint64_t late_records() const { return 0; }

  /// Names of the column families this operator keeps state in (default: none).
  virtual std::vector<std::string> column_families() const { return {}; }
};

} // namespace keyflow::ops
