#pragma once
/// \file
/// What a node's supervisor remembers across restarts of a pipeline instance: failures,
/// restart backoff, records suspected of failing an operator and poison records.
///
/// A failure restarts the whole instance (sources, partition actors, sinks) from its last
/// checkpoint, so no state and no output is lost or counted twice. An operator failure
/// inside a batch cannot name its record, so the batch's records become *suspects*: after
/// the restart they are processed one at a time and the next failure names its record. A
/// record named by `max_attempts` failures is a *poison record*: from the next restart on,
/// its source dead-letters it (reason `poison`) instead of passing it on.
///
/// Thread-safe: the supervisor actor, partition actors and the node's control loop share it.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace keyflow {

/// Restart and poison-record settings (node options --restart-backoff-ms,
/// --restart-backoff-max-ms, --poison-attempts).
struct supervision_settings {
  uint32_t max_attempts = 3;                    ///< failures naming a record before it is poison
  std::chrono::milliseconds backoff{100};       ///< delay before the first restart
  std::chrono::milliseconds backoff_max{30000}; ///< the delay doubles per failure up to this
  std::chrono::milliseconds reset_after{60000}; ///< a run this long without failure resets it
};

/// Source position of a record: (partition, offset) of the source topic.
using record_position = std::pair<int32_t, int64_t>;

/// Why a record is poison: the operator it failed and the last error.
struct poison_info {
  std::string op;        ///< operator id
  std::string error;     ///< last error message
  uint32_t attempts = 0; ///< failures that named this record
};

/// What a partition actor reports when an operator throws.
struct operator_failure {
  uint32_t instance = 0;    ///< pipeline instance (0 standalone, region index in a cluster)
  uint64_t incarnation = 0; ///< which start of the instance
  std::string op;           ///< operator id
  std::string error;        ///< what() of the exception
  /// The failing record, when it ran alone (suspect mode); else unknown.
  std::optional<record_position> record;
  /// Highest offset per source partition among the records of the failing batch.
  std::vector<record_position> batch;
  int32_t key_group = -1; ///< the failing record's key group when it ran alone (logs)
};

/// Read-only view given to the actors of one start of an instance.
struct supervision_hints {
  /// Records of a source partition up to this offset are processed one at a time.
  std::map<int32_t, int64_t> suspects;
  /// Records to dead-letter at the source.
  std::map<record_position, poison_info> poison;
  /// True if `p` at `offset` is a suspect.
  bool suspect(int32_t p, int64_t offset) const {
    auto i = suspects.find(p);
    return i != suspects.end() && offset <= i->second;
  }
};

class supervision;

/// What the actors of one start of an instance know of their supervision.
struct supervision_link {
  std::shared_ptr<supervision> sup;               ///< null: failures only stop actors
  std::shared_ptr<const supervision_hints> hints; ///< suspects and poison records (may be null)
  uint32_t instance = 0;                          ///< instance index
  uint64_t incarnation = 0;                       ///< which start of it
};

/// Failure memory of one node (see the file comment).
class supervision {
public:
  using clock = std::chrono::steady_clock;

  /// Supervision with `settings`.
  explicit supervision(supervision_settings settings = {}) : settings_(settings) {}

  /// The settings.
  const supervision_settings& settings() const noexcept { return settings_; }

  /// The instance (re)started: returns its new incarnation; failures of older ones are
  /// ignored from now on.
  uint64_t started(uint32_t instance);

  /// An actor of `instance` failed (`what` says how). Schedules a restart with backoff
  /// unless one is scheduled already or the incarnation is stale; returns true if it did.
  bool actor_failed(uint32_t instance, uint64_t incarnation, const std::string& what);

  /// An operator threw: remembers suspects or counts an attempt against the named record
  /// (which becomes poison after max_attempts). The actor fails right after.
  void operator_failed(const operator_failure& f);

  /// A scheduled restart: when, and why (operator_failed or actor_failed).
  struct restart_plan {
    clock::time_point due;           ///< not before
    std::chrono::milliseconds delay; ///< the backoff it waits
    std::string cause;               ///< metric label
  };

  /// The instance's scheduled restart, if any.
  std::optional<restart_plan> restart_due(uint32_t instance) const;

  /// Adds poison records another node found (a job spread over nodes); keeps the entry
  /// with more attempts where both know a record.
  void add_poison(const std::map<record_position, poison_info>& more);

  /// Hints for the next start of the instance's actors.
  std::shared_ptr<const supervision_hints> hints() const;

  /// Restarts scheduled so far (all instances).
  uint64_t restarts() const;

private:
  struct instance_state {
    uint64_t incarnation = 0;
    std::optional<restart_plan> due;
    uint64_t operator_failed = 0; // incarnation in which an operator threw
    uint32_t consecutive = 0;
    clock::time_point last_failure{};
  };

  supervision_settings settings_;
  mutable std::mutex mu_;
  std::map<uint32_t, instance_state> instances_;
  std::map<record_position, poison_info> attempts_; // records named by failures
  std::shared_ptr<supervision_hints> hints_ = std::make_shared<supervision_hints>();
  uint64_t restarts_ = 0;
};

} // namespace keyflow
