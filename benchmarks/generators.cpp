#include "benchmarks/generators.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "proto/event.pb.h"

namespace keyflow::bench {

namespace {

/// make_datagen's random step (src/pipeline/generator_reader.cpp), so that hot share 0
/// reproduces its sequence.
uint64_t splitmix(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Customer events with one hot key (see make_hot_datagen).
class hot_datagen final : public pipeline::event_generator {
public:
  hot_datagen(const hot_datagen_options& opts, uint32_t index)
      : opts_(opts.base), index_(index), rng_(opts_.seed * 1000003 + index) {
    const double share = std::clamp(opts.hot_share, 0.0, 1.0);
    hot_ = share > 0;
    // u < threshold with probability `share` for a uniform 64-bit u (share 1: always).
    threshold_ = share >= 1.0 ? UINT64_MAX : static_cast<uint64_t>(std::ldexp(share, 64));
    keys_.reserve(opts_.keys);
    for (uint32_t k = 0; k < opts_.keys; ++k)
      keys_.push_back(pipeline::datagen_key_name(k));
  }

  bool next(std::string& key, std::string& value) override {
    if (emitted_ >= opts_.events)
      return false;
    const uint64_t r = splitmix(rng_);
    const uint32_t n = opts_.keys;
    uint64_t k = r % n; // make_datagen's choice
    if (hot_)
      k = splitmix(rng_) < threshold_ || n == 1 ? 0 : 1 + r % (n - 1);
    key = keys_[k];
    char id[32];
    std::snprintf(id, sizeof(id), "g%u-%llu", index_, static_cast<unsigned long long>(emitted_));
    ev_.set_event_id(id);
    ev_.set_customer_id(key);
    ev_.set_event_time_ms(opts_.base_time_ms + static_cast<int64_t>(emitted_));
    ev_.set_type("purchase");
    ev_.set_value(static_cast<double>((r >> 32) % 2001) * 0.25);
    ev_.SerializeToString(&value);
    ++emitted_;
    return true;
  }

  int64_t remaining() const override { return static_cast<int64_t>(opts_.events - emitted_); }

private:
  pipeline::datagen_options opts_;
  uint32_t index_;
  uint64_t rng_;
  bool hot_ = false;
  uint64_t threshold_ = 0;
  uint64_t emitted_ = 0;
  std::vector<std::string> keys_;
  proto::Event ev_;
};

} // namespace

std::unique_ptr<pipeline::event_generator> make_hot_datagen(const hot_datagen_options& opts,
                                                            uint32_t index) {
  return std::make_unique<hot_datagen>(opts, index);
}

} // namespace keyflow::bench
