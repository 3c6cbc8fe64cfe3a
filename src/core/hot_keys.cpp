#include "core/hot_keys.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

namespace keyflow {

namespace {

constexpr uint64_t no_count = UINT64_MAX; // count of unused heap entries

/// A fast hash of a short key: 8 bytes at a time, multiply-xorshift mixed, finalized so that
/// the low bits (the index slot) depend on every byte.
inline size_t hash_key(std::string_view key) noexcept {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ key.size();
  const char* p = key.data();
  size_t n = key.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
    h ^= h >> 29;
  }
  if (n != 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * 0x94d049bb133111ebull;
  }
  h ^= h >> 31;
  h *= 0xd6e8feb86659fd93ull;
  return static_cast<size_t>(h ^ (h >> 32));
}

/// Index table size for `capacity` counters: a power of two >= 4 * capacity (load <= 1/4).
size_t table_size_for(size_t capacity) noexcept {
  size_t n = 8;
  while (n < capacity * 4)
    n <<= 1;
  return n;
}

} // namespace

// --- space_saving --------------------------------------------------------------------------

space_saving::space_saving(size_t capacity)
    : counters_(std::max<size_t>(capacity, 1)), heap_(2 * counters_.size() + 2, {no_count, 0}),
      table_(table_size_for(counters_.size()), 0), mask_(table_.size() - 1) {}

size_t space_saving::probe(std::string_view key, size_t hash, bool& found) const noexcept {
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const uint32_t s = table_[i];
    if (s == 0) {
      found = false;
      return i;
    }
    const counter& c = counters_[s - 1];
    if (c.hash == hash && c.key == key) {
      found = true;
      return i;
    }
  }
}

size_t space_saving::empty_slot(size_t hash) const noexcept {
  size_t i = hash & mask_;
  while (table_[i] != 0)
    i = (i + 1) & mask_;
  return i;
}

// Backward-shift deletion (linear probing without tombstones): entries after the hole that
// may legally live in it move back, so every entry stays reachable from its home slot.
void space_saving::erase_slot(size_t slot) noexcept {
  size_t hole = slot;
  for (size_t j = (hole + 1) & mask_; table_[j] != 0; j = (j + 1) & mask_) {
    const size_t home = counters_[table_[j] - 1].hash & mask_;
    // The entry at j can move to the hole unless its home lies cyclically in (hole, j].
    const bool home_in_between =
        hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!home_in_between) {
      table_[hole] = table_[j];
      hole = j;
    }
  }
  table_[hole] = 0;
}

void space_saving::place(size_t pos, heap_entry e) noexcept {
  heap_[pos] = e;
  counters_[e.idx].heap_pos = static_cast<uint32_t>(pos);
}

void space_saving::sift_up(size_t pos) noexcept {
  const heap_entry e = heap_[pos];
  while (pos > 0) {
    const size_t parent = (pos - 1) / 2;
    if (heap_[parent].count <= e.count)
      break;
    place(pos, heap_[parent]);
    pos = parent;
  }
  place(pos, e);
}

// Unused entries count no_count, so the right child needs no bounds check and the smaller
// child is picked without a branch.
void space_saving::sift_down(size_t pos) noexcept {
  const heap_entry e = heap_[pos];
  for (size_t l = 2 * pos + 1; l < used_; l = 2 * pos + 1) {
    const size_t m = l + static_cast<size_t>(heap_[l + 1].count < heap_[l].count);
    if (heap_[m].count >= e.count)
      break;
    place(pos, heap_[m]);
    pos = m;
  }
  place(pos, e);
}

void space_saving::add(std::string_view key, uint64_t weight) {
  if (weight == 0)
    return;
  total_ += weight;
  const size_t hash = hash_key(key);
  bool found = false;
  const size_t slot = probe(key, hash, found);
  if (found) { // a monitored key: its count grows, it moves towards the leaves
    counter& c = counters_[table_[slot] - 1];
    c.count += weight;
    heap_[c.heap_pos].count = c.count;
    sift_down(c.heap_pos);
    return;
  }
  if (used_ < counters_.size()) { // a free counter
    const auto idx = static_cast<uint32_t>(used_++);
    counter& c = counters_[idx];
    c.key.assign(key);
    c.count = weight;
    c.error = 0;
    c.hash = hash;
    table_[slot] = idx + 1;
    place(used_ - 1, {weight, idx});
    sift_up(used_ - 1);
    return;
  }
  // Take over the counter with the smallest count m: count m + weight, error m.
  const uint32_t idx = heap_[0].idx;
  counter& c = counters_[idx];
  size_t old = c.hash & mask_;
  while (table_[old] != idx + 1)
    old = (old + 1) & mask_;
  erase_slot(old);
  const uint64_t m = c.count;
  c.key.assign(key);
  c.error = m;
  c.count = m + weight;
  c.hash = hash;
  table_[empty_slot(hash)] = idx + 1;
  heap_[0].count = c.count;
  sift_down(0);
  ++evictions_;
}

const space_saving::counter* space_saving::find(std::string_view key) const noexcept {
  bool found = false;
  const size_t slot = probe(key, hash_key(key), found);
  return found ? &counters_[table_[slot] - 1] : nullptr;
}

uint64_t space_saving::unmonitored_bound() const noexcept {
  return evictions_ != 0 ? heap_[0].count : 0;
}

void space_saving::clear() noexcept {
  std::fill(table_.begin(), table_.end(), 0);
  std::fill(heap_.begin(), heap_.begin() + static_cast<std::ptrdiff_t>(used_),
            heap_entry{no_count, 0});
  used_ = 0;
  total_ = 0;
  evictions_ = 0;
}

// --- hot_key_tracker -----------------------------------------------------------------------

hot_key_tracker::hot_key_tracker(hot_key_options opts)
    : opts_(opts), cur_(opts.capacity), prev_(opts.capacity) {
  opts_.capacity = cur_.capacity();
}

void hot_key_tracker::observe(std::string_view key, uint64_t weight) {
  cur_.add(key, weight);
  if (opts_.period_records != 0 && cur_.total() >= opts_.period_records)
    roll();
}

void hot_key_tracker::observe_batch(std::span<const std::string_view> keys) {
  for (const auto key : keys)
    observe(key);
}

void hot_key_tracker::observe_batch(std::span<const std::string> keys) {
  for (const auto& key : keys)
    observe(key);
}

void hot_key_tracker::roll() noexcept {
  std::swap(cur_, prev_);
  cur_.clear();
  ++epochs_;
}

void hot_key_tracker::tick(int64_t now_ms) noexcept {
  if (opts_.period_ms <= 0)
    return;
  if (!clock_started_) {
    clock_started_ = true;
    epoch_start_ms_ = now_ms;
    return;
  }
  if (now_ms - epoch_start_ms_ < opts_.period_ms)
    return;
  const int64_t periods = (now_ms - epoch_start_ms_) / opts_.period_ms;
  roll();
  if (periods >= 2)
    roll();
  epoch_start_ms_ += periods * opts_.period_ms;
}

void hot_key_tracker::clear() noexcept {
  cur_.clear();
  prev_.clear();
  epochs_ = 0;
  clock_started_ = false;
  epoch_start_ms_ = 0;
}

// A key missing from an epoch may still have up to that epoch's unmonitored bound there: it
// counts with count = error = bound, so it adds to the upper bound but not the lower one.
hot_key_tracker::candidate
hot_key_tracker::merge(std::string_view key, const space_saving::counter* cur,
                       const space_saving::counter* prev) const noexcept {
  const uint64_t cur_bound = cur ? 0 : cur_.unmonitored_bound();
  const uint64_t prev_bound = prev ? 0 : prev_.unmonitored_bound();
  return {key, (cur ? cur->count : cur_bound) + (prev ? prev->count : prev_bound),
          (cur ? cur->error : cur_bound) + (prev ? prev->error : prev_bound)};
}

std::vector<hot_key_tracker::candidate> hot_key_tracker::candidates() const {
  std::vector<candidate> out;
  out.reserve(cur_.size() + prev_.size());
  for (const auto& c : cur_.counters())
    out.push_back(merge(c.key, &c, prev_.find(c.key)));
  for (const auto& p : prev_.counters())
    if (cur_.find(p.key) == nullptr)
      out.push_back(merge(p.key, nullptr, &p));
  // Heaviest first; then the larger guaranteed weight; then by key, for a stable order.
  std::sort(out.begin(), out.end(), [](const candidate& a, const candidate& b) {
    if (a.count != b.count)
      return a.count > b.count;
    if (a.count - a.error != b.count - b.error)
      return a.count - a.error > b.count - b.error;
    return a.key < b.key;
  });
  return out;
}

hot_key hot_key_tracker::to_hot_key(const candidate& c) const {
  const uint64_t t = total();
  const double total = t == 0 ? 1.0 : static_cast<double>(t);
  return {std::string(c.key), c.count, c.error, static_cast<double>(c.count) / total,
          static_cast<double>(c.count - c.error) / total};
}

std::vector<hot_key> hot_key_tracker::top(size_t n) const {
  const auto all = candidates();
  std::vector<hot_key> out;
  out.reserve(std::min(n, all.size()));
  for (size_t i = 0; i < all.size() && i < n; ++i)
    out.push_back(to_hot_key(all[i]));
  return out;
}

std::vector<hot_key> hot_key_tracker::hot() const {
  std::vector<hot_key> out;
  const uint64_t t = total();
  if (t == 0 || t < opts_.min_records)
    return out;
  const double need = opts_.threshold * static_cast<double>(t);
  for (const auto& c : candidates()) {
    const uint64_t guaranteed = c.count - c.error;
    if (guaranteed > 0 && static_cast<double>(guaranteed) >= need)
      out.push_back(to_hot_key(c));
  }
  return out;
}

std::optional<hot_key> hot_key_tracker::estimate(std::string_view key) const {
  const auto* c = cur_.find(key);
  const auto* p = prev_.find(key);
  if (c == nullptr && p == nullptr)
    return std::nullopt;
  return to_hot_key(merge(key, c, p));
}

} // namespace keyflow
