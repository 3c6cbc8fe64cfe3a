/// \file
/// Hot-key pre-aggregation (src/operators/preaggregate.hpp): which operator may take
/// partials, partial encoding, and a combiner's partials merged by the aggregate giving the
/// same state as folding every record.

#include <gtest/gtest.h>

#include <map>
#include <memory>

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
  window_spec spec;
  spec.kind = window_kind::global;
  spec.aggregates = specs();
  hot_key_combiner c{spec, 0.2, "test/0", nullptr};
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

TEST(Preaggregate, WindowsFoldOnlyRecordsNoWatermarkCanMakeLate) {
  window_spec spec;
  spec.kind = window_kind::tumbling;
  spec.size_ms = 1000;
  spec.allowed_lateness_ms = 0;
  spec.aggregates = specs();
  auto bound = std::make_shared<watermark_bound>(no_watermark);
  hot_key_combiner c{spec, 0.2, "test/0", bound};
  router out{128, 1};
  for (int i = 0; i < 2000; ++i) // the key becomes hot
    c.absorb(rec("hot", 1.0, 10'000 + i % 1000));
  c.flush(out, 1000);
  out.batch(0).records.clear();
  bound->store(5'000); // a source has sent watermark 5000
  EXPECT_FALSE(c.absorb(rec("hot", 1.0, 4'999))) << "window [4000, 5000) may be expired";
  EXPECT_TRUE(c.absorb(rec("hot", 1.0, 5'000)));
  EXPECT_TRUE(c.absorb(rec("hot", 2.0, 5'999)));
  EXPECT_TRUE(c.absorb(rec("hot", 3.0, 7'250)));
  c.flush(out, 1000);
  std::map<int64_t, uint32_t> folded; // partial event time -> records
  for (const auto& r : out.batch(0).records)
    folded[r.event_time_ms] += r.folded;
  EXPECT_EQ(folded, (std::map<int64_t, uint32_t>{{5'999, 2}, {7'250, 1}}))
      << "one partial per window, at the latest event time folded into it";
}

} // namespace
