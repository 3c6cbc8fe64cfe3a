#pragma once
/// \file
/// Keyed event-time windows (tumbling, sliding, session) and running per-key aggregates
/// with incremental aggregate functions. Results are emitted when the watermark passes a
/// window's end; a late record within the allowed lateness updates its window and
/// re-emits it; a record later than that goes to the late-data output.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/layout.hpp"
#include "operators/operator.hpp"

namespace keyflow::proto {
class WindowValue;
}

namespace keyflow::ops {

/// A value stored in window state (proto::WindowValue); absent if it holds none.
value from_proto(const proto::WindowValue& v);

/// Aggregate functions. Output types: count → int64; sum, min, max → the input's type
/// (int64 stays int64, else double); avg → double; first, last → the input's type (by event
/// time; ties: first arrival wins for `first`, last arrival for `last`); max_by, min_by →
/// the type of `field`, taken from the record with the greatest (least) `by` compared as a
/// double (ties: the record whose fields are lexicographically smaller, so every max_by of
/// a window names the same record). Absent inputs are skipped (count counts records); an
/// aggregate that saw no value is absent.
enum class agg_fn : uint8_t { count, sum, min, max, avg, first, last, max_by, min_by };

/// One aggregate of a window operator, resolved against the input layout.
struct agg_spec {
  std::string name;                         ///< output field name
  agg_fn fn = agg_fn::count;                ///< function
  int input_slot = -1;                      ///< input field slot (-1 for count)
  value_type input_type = value_type::none; ///< declared type of the input field
  int by_slot = -1;                         ///< max_by / min_by: slot of the compared field
};

/// a / b rounded toward minus infinity (window starts of negative event times).
inline int64_t floor_div(int64_t a, int64_t b) noexcept {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/// Window kinds. `global` = one running aggregate per key, no window: every batch emits the
/// latest aggregates of each key it touched.
enum class window_kind : uint8_t { tumbling, sliding, session, global };

/// A resolved window operator.
struct window_spec {
  std::string id;                           ///< operator id = column family
  window_kind kind = window_kind::tumbling; ///< kind
  int64_t size_ms = 0;                      ///< tumbling, sliding: window length
  int64_t slide_ms = 0;                     ///< sliding: distance between window starts
  int64_t gap_ms = 0;                       ///< session: inactivity gap
  int64_t allowed_lateness_ms = 0;          ///< windows stay updatable this long after firing
  std::vector<agg_spec> aggregates;         ///< at least one
  /// Late records go here; empty: the pipeline's dead-letter topic with reason "late".
  std::string late_topic;
  /// global kind: a key's state expires this long (processing time) after its last update;
  /// 0 = never.
  int64_t ttl_ms = 0;
};

/// Output layout of a window operator: window_start_ms, window_end_ms (int64), then the
/// aggregates; for the global kind only the aggregates.
layout window_output_layout(const window_spec& spec);

/// A window operator instance (late_records(): records behind the watermark by more than
/// the allowed lateness, sent to the late-data output).
class window_operator : public keyed_operator {
public:
  /// The operator's watermark (no_watermark until the first advance_watermark()).
  virtual int64_t watermark() const noexcept = 0;
};

/// Builds a window operator instance for one partition actor. Its state lives in column
/// family `spec.id` of env.store; timers of open windows are rebuilt from that state for the
/// actor's key-group range. The watermark is not stored: after a restore it is
/// no_watermark until the host advances it again (windows that had fired still re-emit at
/// once on a late record). Throws std::invalid_argument for an inconsistent spec or a
/// missing column family.
std::unique_ptr<window_operator> make_window_operator(const window_spec& spec, const op_env& env);

} // namespace keyflow::ops
