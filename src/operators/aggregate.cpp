#include "operators/aggregate.hpp"

#include <cmath>

#include "proto/state.pb.h"

namespace keyflow::ops {

std::string encode(const aggregate_state& s) {
  proto::CustomerAggregate msg;
  msg.set_count(s.count);
  msg.set_sum(s.sum);
  msg.set_last_event_time_ms(s.last_event_time_ms);
  msg.set_last_value(s.last_value);
  msg.set_activated(s.activated);
  return msg.SerializeAsString();
}

bool decode(std::string_view bytes, aggregate_state& s) {
  proto::CustomerAggregate msg;
  if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return false;
  s.count = msg.count();
  s.sum = msg.sum();
  s.last_event_time_ms = msg.last_event_time_ms();
  s.last_value = msg.last_value();
  s.activated = msg.activated();
  return true;
}

scorer::scorer(const config::score_config& cfg)
    : id_(cfg.id), bias_(cfg.bias), threshold_(cfg.threshold) {
  auto weight = [&](const char* name) {
    auto i = cfg.weights.find(name);
    return i == cfg.weights.end() ? 0.0 : i->second;
  };
  w_count_ = weight("count");
  w_sum_ = weight("sum");
  w_avg_ = weight("avg");
  w_last_ = weight("last_value");
}

double scorer::score(const aggregate_state& s) const noexcept {
  double avg = s.count == 0 ? 0.0 : s.sum / static_cast<double>(s.count);
  double z = bias_ + w_count_ * static_cast<double>(s.count) + w_sum_ * s.sum + w_avg_ * avg +
             w_last_ * s.last_value;
  return 1.0 / (1.0 + std::exp(-z));
}

} // namespace keyflow::ops
