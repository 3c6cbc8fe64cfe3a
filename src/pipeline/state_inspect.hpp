#pragma once
/// \file
/// Reading the keyed state of checkpoints and snapshots (admin API: /snapshots/{name}/state
/// and /diff), and comparing two versions of a pipeline before a deploy or restore (which
/// operators keep their state, which start empty, which lose it).
///
/// An operator's state type (state_type()) names everything that fixes the encoding and
/// meaning of its stored values; the checkpoint coordinator writes it into every manifest,
/// so a checkpoint's state is only ever read by an operator that understands it.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pipeline/plan.hpp"
#include "proto/checkpoint.pb.h"
#include "state/checkpoint_store.hpp"

namespace keyflow::pipeline {

/// Signature of an operator's stored state layout; "" for a stateless operator. Two versions
/// of an operator can share state exactly when their state types are equal. Formats:
///
///     dedup
///     filter/once_per_key
///     aggregate/global[count,sum:double,last:string]
///     window/tumbling(size=60000)[count,avg:double]
///     window/sliding(size=60000,slide=10000)[max:int64]
///     window/session(gap=30000)[count]
///     aggregate/global[count,max_by(amount):string]/record[customer_id:string,...]
///
/// Aggregates are listed in order as function and output type (the type of the stored
/// value); max_by / min_by add their `by` field, and because they keep whole input records,
/// the input layout follows as `/record[name:type,...]`. Output names, input field names,
/// TTLs and lateness are left out: they do not change what stored bytes mean.
std::string state_type(const op_plan& op);

/// An operator, or a key, that has no state to show (HTTP 404); the message names it and,
/// for an operator, lists the stateful ones.
class inspect_not_found : public std::runtime_error {
public:
  /// Builds the error from a finished message.
  explicit inspect_not_found(const std::string& what) : std::runtime_error(what) {}
};

/// A checkpoint's state of an operator has another state type than the pipeline's version of
/// that operator, so it cannot be decoded; the message names the operator and both types.
class state_type_mismatch : public std::runtime_error {
public:
  /// Builds the error from a finished message.
  explicit state_type_mismatch(const std::string& what) : std::runtime_error(what) {}
};

/// What inspect_state() shows.
struct inspect_query {
  std::string operator_id;        ///< one operator; empty = every stateful operator
  std::optional<std::string> key; ///< one key only (its key group from max_parallelism)
  size_t limit = 100;             ///< entries shown per operator
};

/// The state of checkpoint `chk` (read-only; every part of a job spread over nodes) as
/// operators of `p` see it:
///
///     {"snapshot": "<name or chk-<id>>", "id": 7, "pipeline": "cdp", "version": 2,
///      "operators": [{"id", "type", "state_type", "keys": <count>,
///                     "entries": [{"key", "key_group", "value"}, ...]}]}
///
/// Values: an aggregate's named outputs as the operator emits them ({"events": 12,
/// "revenue": 310.5}), a window operator's open windows ([{"start_ms", "end_ms", "records",
/// "values"}], by start), `true` for a dedup or once-per-key marker. Dedup entries are
/// per event: "key" is the record key and "event_id" the id. Entries with a TTL carry
/// "expires_at_ms"; expired ones are left out, as the operator would not see them. With
/// `q.key`, "keys" counts that key's entries only (a dedup key has one per event id).
/// Throws inspect_not_found for an operator without state in `p` or a key found in no
/// inspected operator, state_type_mismatch if the manifest's state type of an operator is
/// not `p`'s, std::runtime_error if the checkpoint cannot be read.
nlohmann::json inspect_state(const plan& p, const state::checkpoint_info& chk,
                             const inspect_query& q);

/// Keys added, removed and changed from checkpoint `a` to `b`, per stateful operator of `p`
/// (or only `operator_id` if not empty), found by merging both checkpoints' sorted keys:
///
///     {"a": "<name>", "b": "<name>", "operators": [{"id", "type", "state_type",
///      "added": n, "removed": n, "changed": n, "unchanged": n,
///      "examples": {"added": [...], "removed": [...], "changed": [...]}}]}
///
/// with at most `limit` examples per kind, each {"key", "key_group", "a": value, "b": value}
/// (null on the side without the key). Values compare as inspect_state() renders them.
/// Throws like inspect_state(), and std::runtime_error if the checkpoints have different
/// max_parallelism.
nlohmann::json diff_state(const plan& p, const state::checkpoint_info& a,
                          const state::checkpoint_info& b, const std::string& operator_id,
                          size_t limit);

/// What a deploy does with one operator's state.
enum class state_change : uint8_t {
  keep,         ///< same id and state type: the state carries over
  fresh,        ///< stateful, no state yet ("new")
  drop,         ///< had state the new version removes (operator gone or now stateless)
  incompatible, ///< same id, the state cannot be read by the new version: starts empty
  stateless,    ///< keeps no state
};

/// "keep", "new", "drop", "incompatible" or "stateless".
std::string_view to_string(state_change c) noexcept;

/// One operator of a deploy plan.
struct operator_change {
  std::string id;              ///< operator id
  std::string type;            ///< operator type (of the old version for a dropped one)
  std::string state_type;      ///< state type in the new version; "" if none
  std::string from_state_type; ///< state type of the stored state; "" if none
  state_change state = state_change::stateless; ///< what happens to its state
  /// drop / incompatible: why, as a sentence naming the operator ("operator 'dd' (dedup) is
  /// removed: its state would be dropped").
  std::string reason;
};

/// What a deploy does.
enum class deploy_action : uint8_t {
  start,     ///< nothing runs: start the pipeline
  update,    ///< replace the running version
  unchanged, ///< the running version is the same pipeline
};

/// "start", "update" or "unchanged".
std::string_view to_string(deploy_action a) noexcept;

/// The plan of a deploy: per operator what happens to its state.
struct deploy_plan {
  std::string pipeline;                        ///< pipeline name
  std::optional<uint32_t> from_version;        ///< running version; none when nothing runs
  uint32_t to_version = 0;                     ///< new version
  deploy_action action = deploy_action::start; ///< what the deploy does
  bool compatible = true;                      ///< no operator would drop state or be incompatible
  /// The new version's operators in order, then stateful operators it drops.
  std::vector<operator_change> operators;
};

/// The plan as the admin API answers it: {"pipeline", "from_version" (null if none),
/// "to_version", "action", "compatible", "operators": [{"id", "type", "state_type", "state",
/// "from_state_type", "reason"}]} ("state_type" only for stateful operators,
/// "from_state_type" and "reason" for drop and incompatible).
nlohmann::json to_json(const deploy_plan& d);

/// Compares the running pipeline `current` (nullptr: nothing runs) with `next`: per operator
/// keep, new, drop, incompatible or stateless (same id and state type keeps state; an
/// operator of `current` whose state would be keyed by another field, e.g. after a new
/// key_by, is incompatible too). With `stored` (the operators of a snapshot's manifest), the
/// state types compare against those instead of current's. `action` is start without
/// `current`, unchanged if `next` is the same configuration as `current`, else update.
/// Throws config::config_error if `next` has another name, max_parallelism or source topic
/// than `current` (its state cannot carry over).
deploy_plan compare_plans(const plan* current, const plan& next,
                          const std::vector<proto::OperatorState>* stored = nullptr);

/// Why a plan that is not compatible is refused (HTTP 409), naming the offending operators,
/// e.g. "operator 'profile': state type changes from aggregate/global[count] to dedup;
/// deploy with --allow-drop-state to start it empty". Empty if the plan is compatible.
std::string refusal(const deploy_plan& d);

} // namespace keyflow::pipeline
