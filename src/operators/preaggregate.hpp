#pragma once
/// \file
/// Hot-key fanout by two-phase aggregation (Flink's "local-global" aggregation). A running
/// `aggregate` or a tumbling or sliding `window` whose functions combine (count, sum, min,
/// max, avg) and which is the only consumer of the source's records can take *partial
/// aggregates* (per key and, for windows, per pane of records sharing their windows; only
/// records that cannot be late are folded, see watermark_bound): each source actor tracks
/// the keys it reads (Space-Saving, core/hot_keys.hpp) and, for a hot key, folds its records
/// into a partial aggregate instead of sending them one by one; at the end of every read it
/// sends one partial record per hot key (record::folded = records folded, fields = the
/// accumulators). The partition actor owning the key merges partials into the key's state
/// (the combiner). The sources of every partition spread a hot key's work; the owner does
/// one merge per source read instead of one fold per record. Results are exact: merging
/// accumulators equals folding their records (sums of doubles may round in another order).
/// Partials never outlive a read, so a checkpoint barrier (sent after a read) never finds
/// one pending: checkpoints hold no partial state and a restore replays from the offsets.

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/hot_keys.hpp"
#include "core/record.hpp"
#include "core/router.hpp"
#include "operators/accumulator.hpp"

namespace keyflow::pipeline {
struct plan;
}

namespace keyflow::ops {

/// Index (in plan::ops) of the aggregate whose hot keys the sources may pre-aggregate, or
/// -1: a running aggregate or a tumbling or sliding window in stage 0 fed straight by the
/// source (only validate / filter in the sources before it), the only consumer of the
/// source's records, with count, sum, min, max and avg only.
int fanout_operator(const pipeline::plan& p);

/// The greatest watermark any source of a pipeline instance has sent (no_watermark at
/// first); sources raise it, combiners read it. A window operator's watermark never exceeds
/// it, so a record whose windows outlive it cannot be late: only such records are folded.
using watermark_bound = std::atomic<int64_t>;

class hot_key_combiner;

/// The combiner of a source reader named `source` for the plan's fanout operator with hot
/// keys at `share`; null if the plan has none or `share` is 0.
std::unique_ptr<hot_key_combiner>
make_combiner(const pipeline::plan& p, double share, std::string source,
              std::shared_ptr<const watermark_bound> bound = nullptr);

/// Encodes accumulators as record fields (3 values each) and back.
void encode_partial(const std::vector<accumulator>& accs, std::vector<value>& fields);
/// Decodes what encode_partial() wrote; false if `fields` do not hold `n` accumulators.
bool decode_partial(const std::vector<value>& fields, size_t n, std::vector<accumulator>& out);

/// One source's pre-aggregation of hot keys (not thread-safe; one per source reader).
class hot_key_combiner {
public:
  /// Pre-aggregates for the fanout operator `spec` (resolved against the source layout); a
  /// key is hot with this guaranteed share of the source's records. A window operator's
  /// records are folded only with a `bound` (else routed one by one).
  hot_key_combiner(const window_spec& spec, double share, std::string source,
                   std::shared_ptr<const watermark_bound> bound);

  /// Observes `r`'s key; if it is hot, folds `r` into its partial and returns true (the
  /// caller drops it), else returns false (the caller routes it).
  bool absorb(const record& r);

  /// Routes one partial record per hot key folded since the last flush, then refreshes the
  /// set of hot keys (`now_ms`: wall clock, for the tracker's epochs).
  void flush(router& out, int64_t now_ms);

  /// Records folded into partials so far.
  uint64_t folded() const noexcept { return folded_; }
  /// Partial records sent so far.
  uint64_t partials() const noexcept { return partials_; }

private:
  struct partial {
    std::vector<accumulator> accs;
    uint32_t n = 0;
    int64_t max_event_time = INT64_MIN;
    int64_t min_ingest = INT64_MAX;
  };

  /// Start of the pane of event time `t` (all its records share their windows), or 0 for
  /// a running aggregate; false if a record there could be late (route it instead).
  bool pane_of(int64_t t, int64_t& pane) const;

  window_spec spec_;
  aggregate_set aggs_;
  hot_key_tracker tracker_;
  std::string source_;
  std::shared_ptr<const watermark_bound> bound_;
  std::vector<std::string> hot_;                               // keys folded now
  std::map<std::pair<std::string, int64_t>, partial> partial_; // this read's, by (key, pane)
  uint64_t folded_ = 0;
  uint64_t partials_ = 0;
};

} // namespace keyflow::ops
