#include "benchmarks/generators.hpp"

namespace keyflow::bench {

std::unique_ptr<pipeline::event_generator> make_hot_datagen(const hot_datagen_options& opts,
                                                            uint32_t index) {
  auto o = opts.base;
  o.hot_share = opts.hot_share;
  return pipeline::make_datagen(o, index);
}

} // namespace keyflow::bench
