#pragma once
/// \file
/// Write-back keyed state: the working copy of one operator's state for the key groups an
/// actor owns lives in a hash map; misses load from RocksDB; dirty entries are written to
/// RocksDB in one WriteBatch by flush() (on an interval now, at checkpoint barriers later).
/// RocksDB stays the durable store: nothing is kept only in the map across a flush.

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rocksdb/iterator.h>
#include <rocksdb/write_batch.h>

#include "core/key_group.hpp"
#include "state/state_store.hpp"
#include "state/ttl.hpp"

namespace keyflow::state {

/// Transparent string hash so lookups by string_view do not allocate.
struct string_hash {
  using is_transparent = void; ///< enables heterogeneous lookup
  /// Hashes any string-like value. Deliberately not noexcept: libstdc++ then stores each
  /// node's hash code in the node (it does so for hashes that may throw), so a lookup does
  /// not rehash every key in the bucket it walks and compares hash codes before strings.
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

/// Keyed state of type V in one column family, with an in-memory write-back cache.
/// `Codec` provides `static std::string encode(const V&)` and
/// `static bool decode(std::string_view, V&)`.
template <class V, class Codec>
class keyed_state {
public:
  /// State of `cf` in `store`; the store must outlive this object.
  keyed_state(state_store& store, rocksdb::ColumnFamilyHandle* cf) : store_(&store), cf_(cf) {
    if (cf_ == nullptr)
      throw std::invalid_argument("keyed_state: unknown column family");
  }

  /// Gives every value a time-to-live: `ttl_ms` of processing time (`now_ms`) after its
  /// last update it reads as absent (default-constructed) and compaction drops it from
  /// RocksDB. 0 = no TTL (the default).
  void set_ttl(int64_t ttl_ms, std::function<int64_t()> now_ms = wall_clock_ms) {
    ttl_ms_ = ttl_ms;
    now_ms_ = std::move(now_ms);
  }

  /// The value of `key` in key group `kg`, loaded from RocksDB or default-constructed,
  /// marked dirty (the caller is about to change it). With a TTL, an expired value is
  /// reset to default first and the key's expiry restarts.
  V& update(std::string_view key, key_group_t kg) { return update_entry(key, kg).second; }

  /// Like update(), but also returns the stored key (stable until the entry is removed).
  std::pair<std::string_view, V&> update_entry(std::string_view key, key_group_t kg) {
    auto i = map_.find(key);
    if (i == map_.end())
      i = load(key, kg);
    entry& e = i->second;
    if (ttl_ms_ > 0) {
      auto now = now_ms_();
      if (e.expire_at != 0 && e.expire_at <= now)
        e.value = V{};
      e.expire_at = now + ttl_ms_;
    }
    if (!e.dirty) {
      e.dirty = true;
      dirty_.push_back(&*i);
    }
    return {std::string_view{i->first}, e.value};
  }

  /// The value of `key` if known (in memory or in RocksDB) and not expired, without
  /// marking it dirty.
  const V* find(std::string_view key, key_group_t kg) {
    auto i = map_.find(key);
    if (i == map_.end()) {
      i = load(key, kg);
      if (!i->second.stored) {
        map_.erase(i); // a lookup of an absent key must not create it
        return nullptr;
      }
    }
    if (ttl_ms_ > 0 && i->second.expire_at != 0 && i->second.expire_at <= now_ms_())
      return nullptr;
    return &i->second.value;
  }

  /// Writes every dirty entry to RocksDB in one batch; returns how many were written.
  size_t flush() {
    if (dirty_.empty())
      return 0;
    // In state-key order (key group, then key bytes): the memtable inserts a sorted batch
    // much faster than one in hash-map order.
    std::sort(dirty_.begin(), dirty_.end(), [](const auto* a, const auto* b) {
      return a->second.kg != b->second.kg ? a->second.kg < b->second.kg : a->first < b->first;
    });
    rocksdb::WriteBatch batch;
    for (auto* kv : dirty_) {
      state_key_into(scratch_, kv->second.kg, kv->first);
      if (ttl_ms_ > 0) {
        bytes_.clear();
        append_ttl_header(bytes_, kv->second.expire_at);
        bytes_ += Codec::encode(kv->second.value);
        batch.Put(cf_, scratch_, bytes_);
      } else {
        batch.Put(cf_, scratch_, Codec::encode(kv->second.value));
      }
      kv->second.dirty = false;
      kv->second.stored = true;
    }
    auto s = store_->write(batch);
    if (!s.ok())
      throw std::runtime_error("state flush failed: " + s.ToString());
    auto n = dirty_.size();
    dirty_.clear();
    return n;
  }

  /// Drops unchanged entries (already in RocksDB) until at most `max_keys` remain, or no
  /// unchanged entry is left; they are loaded again on their next access. Returns how many
  /// were dropped. Bounds the working copy's memory; changed entries are never dropped.
  size_t evict_to(size_t max_keys) {
    if (map_.size() <= max_keys)
      return 0;
    size_t dropped = 0;
    for (auto i = map_.begin(); i != map_.end() && map_.size() > max_keys;) {
      if (i->second.dirty) {
        ++i;
        continue;
      }
      i = map_.erase(i);
      ++dropped;
    }
    return dropped;
  }

  /// Number of keys in the working copy.
  size_t size() const noexcept { return map_.size(); }

  /// Number of keys changed since the last flush.
  size_t dirty_count() const noexcept { return dirty_.size(); }

  /// Calls f(key, key_group, value) for every key in the working copy.
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [k, e] : map_)
      f(std::string_view{k}, e.kg, e.value);
  }

  /// Calls f(key, key_group, const V&) for every entry of key groups [first, last]
  /// (inclusive) that is stored or in memory and not expired: RocksDB's entries in key
  /// order, the working copy's value where the key is in memory, then keys not yet
  /// written. Loads nothing into the working copy. `key` is valid during the call only.
  template <class F>
  void scan(key_group_t first, key_group_t last, F&& f) {
    const int64_t now = ttl_ms_ > 0 ? now_ms_() : 0;
    auto live = [&](int64_t expire_at) {
      return ttl_ms_ <= 0 || expire_at == 0 || expire_at > now;
    };
    std::string lower, upper;
    state_key_into(lower, first, {});
    rocksdb::ReadOptions options;
    options.total_order_seek = true; // a range scan, whatever the column family's index
    rocksdb::Slice upper_bound;
    if (last < UINT16_MAX) {
      state_key_into(upper, static_cast<key_group_t>(last + 1), {});
      upper_bound = rocksdb::Slice{upper};
      options.iterate_upper_bound = &upper_bound;
    }
    std::unique_ptr<rocksdb::Iterator> it{store_->db()->NewIterator(options, cf_)};
    V stored_value{};
    for (it->Seek(lower); it->Valid(); it->Next()) {
      std::string_view skey{it->key().data(), it->key().size()};
      if (skey.size() < 2)
        continue;
      key_group_t kg = key_group_of_state_key(skey);
      std::string_view key = skey.substr(2);
      if (auto i = map_.find(key); i != map_.end()) {
        if (live(i->second.expire_at))
          f(key, kg, static_cast<const V&>(i->second.value));
        continue;
      }
      std::string_view bytes{it->value().data(), it->value().size()};
      int64_t expire_at = 0;
      strip_ttl_header(bytes, expire_at);
      if (!live(expire_at))
        continue;
      stored_value = V{};
      if (!Codec::decode(bytes, stored_value))
        throw std::runtime_error("corrupt state value for key '" + std::string{key} + "'");
      f(key, kg, static_cast<const V&>(stored_value));
    }
    if (!it->status().ok())
      throw std::runtime_error("state scan failed: " + it->status().ToString());
    for (const auto& [k, e] : map_)
      if (!e.stored && e.kg >= first && e.kg <= last && live(e.expire_at))
        f(std::string_view{k}, e.kg, e.value);
  }

private:
  struct entry {
    V value{};
    int64_t expire_at = 0; // TTL: processing-time ms when the value expires; 0 = never
    key_group_t kg = 0;
    bool dirty = false;
    bool stored = false; // present in RocksDB
  };
  using map_type = std::unordered_map<std::string, entry, string_hash, std::equal_to<>>;

  typename map_type::iterator load(std::string_view key, key_group_t kg) {
    entry e;
    e.kg = kg;
    state_key_into(scratch_, kg, key);
    auto s = store_->get(cf_, scratch_, &value_buf_);
    if (s.ok()) {
      std::string_view bytes{value_buf_};
      strip_ttl_header(bytes, e.expire_at);
      if (!Codec::decode(bytes, e.value))
        throw std::runtime_error("corrupt state value for key '" + std::string{key} + "'");
      e.stored = true;
    } else if (!s.IsNotFound()) {
      throw std::runtime_error("state read failed: " + s.ToString());
    }
    return map_.emplace(std::string{key}, std::move(e)).first;
  }

  state_store* store_;
  rocksdb::ColumnFamilyHandle* cf_;
  map_type map_;
  std::vector<typename map_type::value_type*> dirty_;
  std::string scratch_;
  std::string value_buf_;
  std::string bytes_;
  int64_t ttl_ms_ = 0;
  std::function<int64_t()> now_ms_;
};

} // namespace keyflow::state
