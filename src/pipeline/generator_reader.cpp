#include "pipeline/generator_reader.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "proto/event.pb.h"
#include "state/ttl.hpp"

namespace keyflow::pipeline {

namespace {

uint64_t splitmix(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class datagen final : public event_generator {
public:
  datagen(datagen_options opts, uint32_t index)
      : opts_(opts), index_(index), rng_(opts.seed * 1000003 + index) {
    const double share = std::clamp(opts_.hot_share, 0.0, 1.0);
    // u < threshold with probability `share` for a uniform 64-bit u (share 1: always).
    threshold_ = share >= 1.0 ? UINT64_MAX : static_cast<uint64_t>(std::ldexp(share, 64));
    keys_.reserve(opts_.keys);
    for (uint32_t k = 0; k < opts_.keys; ++k)
      keys_.push_back(datagen_key_name(k));
  }
  bool next(std::string& key, std::string& value) override {
    if (emitted_ >= opts_.events)
      return false;
    uint64_t r = splitmix(rng_);
    const uint32_t n = opts_.keys;
    uint64_t k = r % n;
    if (threshold_ > 0) // one hot key: an extra draw, so values stay those of share 0
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
  datagen_options opts_;
  uint32_t index_;
  uint64_t rng_;
  uint64_t threshold_ = 0; // hot key when a draw is below it (0: no hot key)
  uint64_t emitted_ = 0;
  std::vector<std::string> keys_;
  proto::Event ev_;
};

} // namespace

std::string datagen_key_name(uint32_t k) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "c-%06u", k + 1);
  return buf;
}

std::unique_ptr<event_generator> make_datagen(datagen_options opts, uint32_t index) {
  return std::make_unique<datagen>(opts, index);
}

generator_reader::generator_reader(std::shared_ptr<const plan> p,
                                   std::unique_ptr<event_generator> gen, uint32_t index)
    : plan_(std::move(p)), gen_(std::move(gen)), decoder_(plan_), index_(index) {}

size_t generator_reader::read(router& out, std::vector<kafka_message>& dead, size_t max) {
  auto ingest = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  size_t n = 0;
  for (; n < max; ++n) {
    if (!gen_->next(key_, value_)) {
      done_ = true;
      break;
    }
    record rec;
    ops::provenance from{"datagen", static_cast<int32_t>(index_), static_cast<int64_t>(emitted_),
                         0};
    ++emitted_;
    auto res = decoder_.decode(key_, value_, from, rec, dead);
    if (res == decode_result::ok) {
      rec.ingest_ns = ingest;
      if (!combiner_ || !combiner_->absorb(rec))
        out.route(std::move(rec));
    }
  }
  if (combiner_)
    combiner_->flush(out, state::wall_clock_ms());
  return n;
}

void generator_reader::enable_fanout(double share) {
  combiner_ = ops::make_combiner(*plan_, share, name());
}

} // namespace keyflow::pipeline
