/// \file
/// Hot-key pre-aggregation (src/operators/preaggregate.hpp): which operator may take
/// partials, partial encoding, and a combiner's partials merged by the aggregate giving the
/// same state as folding every record.

#include <gtest/gtest.h>

#include "core/router.hpp"
#include "operators/accumulator.hpp"
#include "operators/preaggregate.hpp"

namespace {

using namespace keyflow;
using namespace keyflow::ops;

std::vector<agg_spec> specs() {
  return {{"count", agg_fn::count, -1, value_type::none, -1},
          {"sum", agg_fn::sum, 0, value_type::dbl, -1},
          {"min", agg_fn::min, 0, value_type::dbl, -1},
          {"max", agg_fn::max, 0, value_type::dbl, -1},
          {"avg", agg_fn::avg, 0, value_type::dbl, -1}};
}

record rec(const std::string& key, double v, int64_t t) {
  record r;
  r.key = key;
  r.event_time_ms = t;
  r.fields = {value::of(v)};
  return r;
}

TEST(Preaggregate, PartialsRoundTrip) {
  std::vector<accumulator> a(2);
  a[0].n = 7;
  a[1].v = value::of(2.5);
  a[1].n = 3;
  a[1].t = 99;
  std::vector<value> fields;
  encode_partial(a, fields);
  std::vector<accumulator> b;
  ASSERT_TRUE(decode_partial(fields, 2, b));
  EXPECT_EQ(b[0].n, 7);
  EXPECT_EQ(b[1].v.d, 2.5);
  EXPECT_EQ(b[1].n, 3);
  EXPECT_EQ(b[1].t, 99);
  EXPECT_FALSE(decode_partial(fields, 3, b));
}

TEST(Preaggregate, HotKeyPartialsMergeToTheFoldedState) {
  aggregate_set aggs{specs()};
  hot_key_combiner c{specs(), 0.2, "test/0"};
  router out{128, 1};
  // The expected state: every record folded one by one.
  std::vector<accumulator> want(aggs.accumulators()), got(aggs.accumulators());
  int64_t t = 0;
  auto feed = [&](const record& r) {
    aggs.fold(want.data(), nullptr, r);
    if (!c.absorb(r))
      aggs.fold(got.data(), nullptr, r); // routed: the owner folds it
  };
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 500; ++i) {
      feed(rec("hot", 0.25 * (i % 17), ++t));
      feed(rec("k" + std::to_string(i), 1.0, ++t));
    }
    c.flush(out, 1000);
    for (auto& r : out.batch(0).records)
      if (r.folded > 0) { // the owner merges partials
        std::vector<accumulator> p;
        ASSERT_TRUE(decode_partial(r.fields, aggs.accumulators(), p));
        EXPECT_EQ(r.key, "hot");
        aggs.merge(got.data(), nullptr, p.data(), nullptr);
      }
    out.batch(0).records.clear();
  }
  EXPECT_GT(c.folded(), 5000u) << "the hot key was pre-aggregated after the first reads";
  EXPECT_LT(c.partials(), 20u);
  std::vector<value> a, b;
  aggs.results(want.data(), nullptr, a);
  aggs.results(got.data(), nullptr, b);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_EQ(a[i].to_string(), b[i].to_string()) << specs()[i].name;
}

} // namespace
