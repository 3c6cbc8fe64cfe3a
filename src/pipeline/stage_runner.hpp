#pragma once
/// \file
/// Runs the operators of one stage for one partition actor: a batch of input records (and a
/// watermark) goes through the operator tree in config order; outputs are collected per
/// sink, for the next stage (key_by) and as dead letters. An enrich operator can suspend the
/// run until its lookup is answered, so the hosting actor never blocks on Redis.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/lookup.hpp"
#include "operators/operator.hpp"
#include "pipeline/plan.hpp"

namespace keyflow::ops {
class enrich_operator;
}

namespace keyflow::pipeline {

/// The operators of one stage over the key groups of one partition actor.
class stage_runner {
public:
  /// Builds the stage's operator instances with `env` (state, key-group range).
  stage_runner(std::shared_ptr<const plan> p, int stage, ops::op_env env);
  ~stage_runner();

  /// Starts a batch: `in` are the stage's input records, `watermark` the new input
  /// watermark if it advanced. The previous batch must have finished.
  void start(std::vector<record>&& in, std::optional<int64_t> watermark);

  /// Runs until the batch is finished (returns true) or an enrich operator needs keys looked
  /// up (returns false and fills `request` and `op_index`; call complete() with the reply).
  bool run(lookup_request& request, int& op_index);

  /// Hands an enrich operator the reply to the request run() returned.
  void complete(int op_index, const lookup_request& request, const lookup_reply& reply);

  /// Records for sink i of the plan (empty for sinks of other stages).
  std::vector<record>& sink_output(size_t i) { return sink_out_[i]; }
  /// Records for the next stage (output of this stage's key_by), in order.
  std::vector<record>& downstream() { return downstream_; }
  /// Dead letters produced by operators (late records, missing entities).
  std::vector<kafka_message>& dead_letters() { return dead_; }
  /// Clears every output.
  void clear_outputs();

  /// Writes the changed state of every operator; returns keys written.
  size_t flush_state();
  /// Drops unchanged state from memory down to `max_keys` per operator.
  void evict_to(size_t max_keys);
  /// Keys held in memory over all operators.
  size_t state_size() const;
  /// Watermark the stage has processed up to (no_watermark at start).
  int64_t watermark() const noexcept { return watermark_; }
  /// Operators of the stage, in order (for metrics).
  const std::vector<std::unique_ptr<ops::keyed_operator>>& operators() const { return ops_; }
  /// Records each operator emitted in the last batch (parallel to operators()).
  const std::vector<size_t>& last_outputs() const { return last_out_; }
  /// Seconds each operator spent on the last batch (parallel to operators(); lookup waits
  /// excluded).
  const std::vector<double>& last_seconds() const { return last_seconds_; }
  /// Producer of each operator's input (parallel to operators(); -1 = the stage input).
  const std::vector<int>& inputs() const { return input_; }
  /// Id of the operator run() is at (the one that threw, after an exception).
  const std::string& current_operator() const;
  /// The stage has an enrich operator.
  bool has_enrich() const noexcept { return has_enrich_; }

private:
  std::vector<record> take(int producer); // -1 = stage input
  void check_failpoint(size_t i, const std::vector<record>& in) const;

  std::shared_ptr<const plan> plan_;
  int stage_;
  std::vector<int> plan_index_; // operator -> plan index
  std::vector<int> input_;      // operator -> producer (-1 = stage input)
  std::vector<std::unique_ptr<ops::keyed_operator>> ops_;
  std::vector<ops::enrich_operator*> enrich_; // per operator, nullptr if not enrich
  std::vector<bool> per_record_;              // per operator: at most one output per input
  std::vector<int> consumers_;                // per producer (+1: stage input at end)
  std::vector<int> remaining_;
  std::vector<ops::op_output> out_;
  std::vector<size_t> last_out_;
  std::vector<double> last_seconds_;
  std::vector<std::pair<size_t, int>> sinks_; // (plan sink index, producer)
  int key_by_ = -1;                           // producer feeding the next stage
  std::vector<std::vector<record>> sink_out_;
  std::vector<record> downstream_;
  std::vector<kafka_message> dead_;
  std::vector<record> input_records_;
  std::optional<int64_t> pending_wm_;
  int64_t watermark_ = no_watermark;
  size_t next_ = 0; // next operator to run
  bool enrich_ready_ = false;
  bool has_enrich_ = false;
  std::vector<int> fail_slot_; // per operator: failpoint input slot, -1 = none
  std::string fail_text_;      // failpoint value
};

} // namespace keyflow::pipeline
