#include "core/router.hpp"

namespace keyflow {

router::router(uint32_t max_parallelism, uint32_t parallelism)
    : max_parallelism_(max_parallelism), owner_(max_parallelism), batches_(parallelism) {
  for (uint32_t kg = 0; kg < max_parallelism; ++kg)
    owner_[kg] = actor_for_key_group(max_parallelism, parallelism, kg);
}

size_t router::pending() const noexcept {
  size_t n = 0;
  for (const auto& b : batches_)
    n += b.records.size();
  return n;
}

} // namespace keyflow
