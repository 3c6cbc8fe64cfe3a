#pragma once
/// \file
/// Online heavy hitters ("hot keys") of a record stream: the Space-Saving algorithm
/// (Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements in
/// Data Streams", ICDT 2005) with k counters, over a sliding window of two epochs.
///
/// Space-Saving keeps k (key, count, error) counters. A monitored key adds its weight to its
/// counter; an unmonitored key takes over the counter with the smallest count m and starts
/// at count m + weight with error m. For every key the true weight lies in
/// [count - error, count], an unmonitored key's weight is at most m, and m <= total / k.
///
/// Decay: the tracker keeps two summaries, the current epoch and the previous one. `roll()`
/// drops the previous epoch and makes the current one previous; reports merge both, so they
/// cover the last one to two periods and traffic older than two periods has no influence at
/// all. Epochs end after `period_records` of weight, on `tick(now_ms)` after `period_ms`, or on
/// an explicit `roll()`. Updates touch only the current epoch: O(1) hash lookup plus an
/// O(log k) heap step, no allocation once key strings have reached their longest length.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace keyflow {

/// One Space-Saving summary over a single epoch: k counters, an open-addressing index over
/// the counters' own key strings and a min-heap by count.
class space_saving {
public:
  /// A monitored key. The true weight of `key` in this epoch lies in [count - error, count].
  struct counter {
    std::string key;     ///< the key (its storage is reused when the counter is taken over)
    uint64_t count = 0;  ///< estimated weight: an upper bound of the true weight
    uint64_t error = 0;  ///< overestimation bound: count - error is a lower bound
    size_t hash = 0;     ///< internal: hash of `key`
    uint32_t heap_pos{}; ///< internal: position in the min-heap
  };

  /// A summary with `capacity` counters (at least 1).
  explicit space_saving(size_t capacity);

  /// Adds `weight` to `key` (no-op for weight 0).
  void add(std::string_view key, uint64_t weight = 1);
  /// The counter of `key`, or nullptr if it is not monitored.
  const counter* find(std::string_view key) const noexcept;
  /// Upper bound of the weight of any unmonitored key: the smallest count once a counter
  /// has been taken over, else 0 (nothing was ever dropped).
  uint64_t unmonitored_bound() const noexcept;
  /// The counters in use, in no particular order.
  std::span<const counter> counters() const noexcept { return {counters_.data(), used_}; }
  /// Total weight added since the last clear().
  uint64_t total() const noexcept { return total_; }
  /// Number of counters in use (at most capacity()).
  size_t size() const noexcept { return used_; }
  /// Number of counters (k).
  size_t capacity() const noexcept { return counters_.size(); }
  /// Forgets all keys; keeps the memory (key strings keep their capacity).
  void clear() noexcept;

private:
  /// A min-heap entry: a counter's count (copied here for locality) and its index.
  struct heap_entry {
    uint64_t count;
    uint32_t idx;
  };

  size_t probe(std::string_view key, size_t hash, bool& found) const noexcept;
  size_t empty_slot(size_t hash) const noexcept;
  void erase_slot(size_t slot) noexcept;
  void sift_up(size_t pos) noexcept;
  void sift_down(size_t pos) noexcept;
  void place(size_t pos, heap_entry e) noexcept;

  std::vector<counter> counters_; // k counters, the first used_ in use
  std::vector<heap_entry> heap_;  // min-heap by count; 2k + 2 entries, unused ones count max
  std::vector<uint32_t> table_;   // open addressing, linear probing: counter index + 1, 0 = empty
  size_t mask_ = 0;               // table_.size() - 1 (a power of two >= 4k)
  size_t used_ = 0;
  uint64_t total_ = 0;
  uint64_t evictions_ = 0;
};

/// Options of a hot_key_tracker.
struct hot_key_options {
  size_t capacity = 64;        ///< counters per epoch (k); keys below total/k are noise; 64
  double threshold = 0.2;      ///< guaranteed share of the window for a key to be hot; 0.2
  uint64_t min_records = 1000; ///< window weight below which hot() reports nothing; 1000
  uint64_t period_records = 0; ///< epoch length in weight, 0 = no count-based rolls; 0
  int64_t period_ms = 0;       ///< epoch length in ms for tick(), 0 = tick() never rolls; 0
};

/// A key's estimate over the window (current + previous epoch).
struct hot_key {
  std::string key;             ///< the key
  uint64_t count = 0;          ///< estimated weight: an upper bound of the true weight
  uint64_t error = 0;          ///< guaranteed error: the true weight is >= count - error
  double share = 0;            ///< count / window total
  double guaranteed_share = 0; ///< (count - error) / window total: a lower bound of the share
  friend bool operator==(const hot_key&, const hot_key&) = default;
};

/// Tracks the heaviest keys of a stream over a sliding window of two epochs (see the file
/// comment). Not thread-safe: one per partition actor.
class hot_key_tracker {
public:
  /// A tracker with `opts` (capacity at least 1).
  explicit hot_key_tracker(hot_key_options opts = {});

  /// Counts `weight` for `key` in the current epoch; rolls when the epoch reaches
  /// `period_records`.
  void observe(std::string_view key, uint64_t weight = 1);
  /// observe(key) for every key of `keys`.
  void observe_batch(std::span<const std::string_view> keys);
  /// observe(key) for every key of `keys`.
  void observe_batch(std::span<const std::string> keys);

  /// Ends the current epoch: the previous epoch is dropped, the current one becomes the
  /// previous one and a new, empty epoch starts.
  void roll() noexcept;
  /// Advances the clock to `now_ms`: rolls once per elapsed `period_ms` (at most twice: the
  /// window is then empty). The first call starts the first epoch. No-op if period_ms <= 0.
  void tick(int64_t now_ms) noexcept;
  /// Forgets everything, as if newly constructed.
  void clear() noexcept;

  /// Up to `n` monitored keys, heaviest (by estimated count) first.
  std::vector<hot_key> top(size_t n) const;
  /// The keys whose guaranteed share (count - error) / total is at least the threshold,
  /// heaviest first; empty while the window's weight is below `min_records`. A key is never
  /// reported only because of the estimation error.
  std::vector<hot_key> hot() const;
  /// The estimate of `key` over the window, or nullopt if neither epoch monitors it.
  std::optional<hot_key> estimate(std::string_view key) const;

  /// Weight of the window (current + previous epoch).
  uint64_t total() const noexcept { return cur_.total() + prev_.total(); }
  /// Weight of the current epoch.
  uint64_t epoch_total() const noexcept { return cur_.total(); }
  /// Counters in use in the current epoch (at most capacity).
  size_t monitored() const noexcept { return cur_.size(); }
  /// Number of epochs ended so far.
  uint64_t epochs() const noexcept { return epochs_; }
  /// The options in use.
  const hot_key_options& options() const noexcept { return opts_; }

private:
  /// A merged estimate before its key is copied out.
  struct candidate {
    std::string_view key;
    uint64_t count;
    uint64_t error;
  };
  std::vector<candidate> candidates() const;
  candidate merge(std::string_view key, const space_saving::counter* cur,
                  const space_saving::counter* prev) const noexcept;
  hot_key to_hot_key(const candidate& c) const;

  hot_key_options opts_;
  space_saving cur_;
  space_saving prev_;
  uint64_t epochs_ = 0;
  int64_t epoch_start_ms_ = 0;
  bool clock_started_ = false;
};

} // namespace keyflow
