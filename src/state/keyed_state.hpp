#pragma once
/// \file
/// Write-back keyed state: the working copy of one operator's state for the key groups an
/// actor owns lives in a hash map; misses load from RocksDB; dirty entries are written to
/// RocksDB in one WriteBatch by flush() (on an interval now, at checkpoint barriers later).
/// RocksDB stays the durable store: nothing is kept only in the map across a flush.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rocksdb/write_batch.h>

#include "core/key_group.hpp"
#include "state/state_store.hpp"

namespace keyflow::state {

/// Transparent string hash so lookups by string_view do not allocate.
struct string_hash {
  using is_transparent = void; ///< enables heterogeneous lookup
  /// Hashes any string-like value.
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
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

  /// The value of `key` in key group `kg`, loaded from RocksDB or default-constructed,
  /// marked dirty (the caller is about to change it).
  V& update(std::string_view key, key_group_t kg) { return update_entry(key, kg).second; }

  /// Like update(), but also returns the stored key (stable until the entry is removed).
  std::pair<std::string_view, V&> update_entry(std::string_view key, key_group_t kg) {
    auto i = map_.find(key);
    if (i == map_.end())
      i = load(key, kg);
    entry& e = i->second;
    if (!e.dirty) {
      e.dirty = true;
      dirty_.push_back(&*i);
    }
    return {std::string_view{i->first}, e.value};
  }

  /// The value of `key` if known (in memory or in RocksDB), without marking it dirty.
  const V* find(std::string_view key, key_group_t kg) {
    auto i = map_.find(key);
    if (i == map_.end()) {
      i = load(key, kg);
      if (!i->second.stored) {
        map_.erase(i); // a lookup of an absent key must not create it
        return nullptr;
      }
    }
    return &i->second.value;
  }

  /// Writes every dirty entry to RocksDB in one batch; returns how many were written.
  size_t flush() {
    if (dirty_.empty())
      return 0;
    rocksdb::WriteBatch batch;
    for (auto* kv : dirty_) {
      state_key_into(scratch_, kv->second.kg, kv->first);
      auto bytes = Codec::encode(kv->second.value);
      batch.Put(cf_, scratch_, bytes);
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

private:
  struct entry {
    V value{};
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
      if (!Codec::decode(value_buf_, e.value))
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
};

} // namespace keyflow::state
