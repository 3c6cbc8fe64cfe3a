#pragma once
/// \file
/// A bounded least-recently-used cache whose entries expire a fixed time after they were
/// put (processing time, from an injectable clock). Get and put are O(1). Not thread-safe:
/// each operator instance owns its own cache.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <unordered_map>
#include <utility>

namespace keyflow::ops {

/// Milliseconds of the steady clock: the default clock of lru_cache.
inline int64_t steady_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// LRU cache of at most `max_entries` entries, each valid for a time-to-live after its put.
/// A get of an expired entry is a miss and drops the entry.
template <class Key, class Value, class Hash = std::hash<Key>, class Eq = std::equal_to<Key>>
class lru_cache {
public:
  /// Clock in milliseconds (any epoch, must not go backwards).
  using clock_fn = std::function<int64_t()>;

  /// A cache of at most `max_entries` (0 = caches nothing) whose entries live `ttl_ms`
  /// after their put (<= 0 = no expiry), timed by `now_ms`.
  explicit lru_cache(size_t max_entries, int64_t ttl_ms = 0, clock_fn now_ms = steady_clock_ms)
      : max_entries_(max_entries), ttl_ms_(ttl_ms), now_ms_(std::move(now_ms)) {}

  /// The value of `key` if cached and not expired (then also the most recently used), else
  /// nullptr. The pointer stays valid until the next put, erase or clear.
  Value* get(const Key& key) {
    auto it = index_.find(key);
    if (it == index_.end())
      return nullptr;
    auto node = it->second;
    if (node->expires_at_ms <= now_ms_()) {
      entries_.erase(node);
      index_.erase(it);
      ++expired_;
      return nullptr;
    }
    entries_.splice(entries_.begin(), entries_, node);
    return &node->value;
  }

  /// Inserts or replaces `key` with the cache's TTL, as the most recently used entry;
  /// evicts the least recently used entry if the cache is over its size.
  void put(const Key& key, Value value) { put(key, std::move(value), ttl_ms_); }

  /// Inserts or replaces `key`, valid for `ttl_ms` (<= 0 = no expiry).
  void put(const Key& key, Value value, int64_t ttl_ms) {
    if (max_entries_ == 0)
      return;
    auto expires_at = ttl_ms > 0 ? now_ms_() + ttl_ms : INT64_MAX;
    if (auto it = index_.find(key); it != index_.end()) {
      auto node = it->second;
      node->value = std::move(value);
      node->expires_at_ms = expires_at;
      entries_.splice(entries_.begin(), entries_, node);
      return;
    }
    entries_.push_front(entry{key, std::move(value), expires_at});
    index_.emplace(key, entries_.begin());
    while (entries_.size() > max_entries_) {
      index_.erase(entries_.back().key);
      entries_.pop_back();
      ++evicted_;
    }
  }

  /// Removes `key`; returns whether it was cached (expired or not).
  bool erase(const Key& key) {
    auto it = index_.find(key);
    if (it == index_.end())
      return false;
    entries_.erase(it->second);
    index_.erase(it);
    return true;
  }

  /// Removes every entry.
  void clear() {
    index_.clear();
    entries_.clear();
  }

  /// Entries held, expired ones not yet dropped included.
  size_t size() const noexcept { return entries_.size(); }

  /// Maximum number of entries.
  size_t capacity() const noexcept { return max_entries_; }

  /// Entries dropped to make room, so far.
  uint64_t evicted() const noexcept { return evicted_; }

  /// Entries dropped by a get after their TTL, so far.
  uint64_t expired() const noexcept { return expired_; }

private:
  struct entry {
    Key key;
    Value value;
    int64_t expires_at_ms;
  };
  using list_type = std::list<entry>;

  size_t max_entries_;
  int64_t ttl_ms_;
  clock_fn now_ms_;
  list_type entries_; // most recently used first
  std::unordered_map<Key, typename list_type::iterator, Hash, Eq> index_;
  uint64_t evicted_ = 0;
  uint64_t expired_ = 0;
};

} // namespace keyflow::ops
