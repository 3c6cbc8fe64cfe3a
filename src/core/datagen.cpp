#include "core/datagen.hpp"

#include <chrono>
#include <cstdio>

namespace keyflow {

namespace {

uint64_t splitmix(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

} // namespace

std::string datagen_reader::key_name(uint32_t k) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "c-%06u", k + 1);
  return buf;
}

datagen_reader::datagen_reader(datagen_options opts, uint32_t index)
    : opts_(opts), index_(index), rng_(opts.seed * 1000003 + index) {
  keys_.reserve(opts_.keys);
  for (uint32_t k = 0; k < opts_.keys; ++k)
    keys_.push_back(key_name(k));
}

size_t datagen_reader::read(router& out, std::vector<kafka_message>&, size_t max) {
  auto now = std::chrono::steady_clock::now().time_since_epoch();
  auto ingest = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  size_t n = 0;
  for (; n < max && emitted_ < opts_.events; ++n, ++emitted_) {
    uint64_t r = splitmix(rng_);
    event_record rec;
    rec.key = keys_[r % opts_.keys];
    rec.value = static_cast<double>((r >> 32) % 2001) * 0.25;
    rec.event_time_ms = opts_.base_time_ms + static_cast<int64_t>(emitted_);
    rec.ingest_ns = ingest;
    rec.offset = static_cast<int64_t>(emitted_);
    rec.partition = static_cast<int32_t>(index_);
    out.route(std::move(rec));
  }
  return n;
}

} // namespace keyflow
