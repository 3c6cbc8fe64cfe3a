/// \file
/// Unit tests of the hot-key tracker: Space-Saving's exactness on small streams, its error
/// bounds on skewed and uniform streams, the two-epoch decay, the capacity bound and the
/// guaranteed-share rule of hot().

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/hot_keys.hpp"

namespace {

using keyflow::hot_key;
using keyflow::hot_key_options;
using keyflow::hot_key_tracker;
using keyflow::space_saving;

/// splitmix64 step: deterministic test data on every platform.
uint64_t splitmix(uint64_t& x) noexcept {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// A uniform double in [0, 1).
double unit(uint64_t& x) noexcept {
  return static_cast<double>(splitmix(x) >> 11) * 0x1.0p-53;
}

std::string key_name(uint64_t i) {
  return "k" + std::to_string(i);
}

/// `n` keys drawn from Zipf(s) over `distinct` keys "k0".. (k0 the heaviest).
std::vector<std::string> zipf_stream(size_t n, size_t distinct, double s, uint64_t seed) {
  std::vector<double> cdf(distinct);
  double sum = 0;
  for (size_t i = 0; i < distinct; ++i)
    cdf[i] = sum += 1.0 / std::pow(static_cast<double>(i + 1), s);
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const double u = unit(seed) * sum;
    const auto it = std::upper_bound(cdf.begin(), cdf.end(), u);
    out.push_back(key_name(static_cast<uint64_t>(
        std::min<ptrdiff_t>(it - cdf.begin(), static_cast<ptrdiff_t>(distinct) - 1))));
  }
  return out;
}

/// `n` keys uniform over `distinct` keys, except that `hot` takes every other record.
std::vector<std::string> half_hot_stream(size_t n, size_t distinct, const std::string& hot,
                                         uint64_t seed) {
  std::vector<std::string> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i)
    out.push_back(i % 2 == 0 ? hot : key_name(splitmix(seed) % distinct));
  return out;
}

/// Exact weights of a stream.
std::unordered_map<std::string, uint64_t> exact(const std::vector<std::string>& keys) {
  std::unordered_map<std::string, uint64_t> m;
  for (const auto& k : keys)
    ++m[k];
  return m;
}

/// Every key the tracker reports has its true weight within [count - error, count], and the
/// error is at most total / k per epoch.
void expect_within_bounds(const hot_key_tracker& t,
                          const std::unordered_map<std::string, uint64_t>& truth) {
  const auto all = t.top(SIZE_MAX);
  ASSERT_FALSE(all.empty());
  for (const auto& h : all) {
    const auto it = truth.find(h.key);
    const uint64_t w = it == truth.end() ? 0 : it->second;
    EXPECT_LE(w, h.count) << h.key;
    EXPECT_GE(w, h.count - h.error) << h.key;
    EXPECT_LE(h.error, t.total() / t.options().capacity + 1) << h.key;
  }
}

hot_key_options opts(size_t capacity, double threshold, uint64_t min_records) {
  hot_key_options o;
  o.capacity = capacity;
  o.threshold = threshold;
  o.min_records = min_records;
  return o;
}

// --- space_saving --------------------------------------------------------------------------

TEST(SpaceSaving, ExactWhileKeysFit) {
  space_saving s(4);
  for (std::string_view k : {"a", "b", "a", "c", "a", "d", "b"})
    s.add(k);
  EXPECT_EQ(s.size(), 4u);
  EXPECT_EQ(s.total(), 7u);
  EXPECT_EQ(s.unmonitored_bound(), 0u); // nothing dropped yet
  ASSERT_NE(s.find("a"), nullptr);
  EXPECT_EQ(s.find("a")->count, 3u);
  EXPECT_EQ(s.find("b")->count, 2u);
  EXPECT_EQ(s.find("d")->count, 1u);
  EXPECT_EQ(s.find("a")->error, 0u);
  EXPECT_EQ(s.find("e"), nullptr);
}

TEST(SpaceSaving, NewKeyTakesOverTheSmallestCounter) {
  space_saving s(2);
  s.add("a", 5);
  s.add("b", 3);
  s.add("c", 1); // replaces b (3): count 4, error 3
  EXPECT_EQ(s.find("b"), nullptr);
  ASSERT_NE(s.find("c"), nullptr);
  EXPECT_EQ(s.find("c")->count, 4u);
  EXPECT_EQ(s.find("c")->error, 3u);
  EXPECT_EQ(s.unmonitored_bound(), 4u);
  s.add("b"); // replaces c (4): count 5, error 4
  EXPECT_EQ(s.find("b")->count, 5u);
  EXPECT_EQ(s.find("b")->error, 4u);
  EXPECT_EQ(s.find("a")->count, 5u);
  EXPECT_EQ(s.find("c"), nullptr);
}

TEST(SpaceSaving, IndexSurvivesManyTakeovers) {
  // Many keys through few counters exercise the index's backward-shift deletion: every
  // monitored key must stay findable and the sum of counts must equal the total.
  space_saving s(8);
  uint64_t seed = 7;
  for (int i = 0; i < 100'000; ++i) {
    s.add(key_name(splitmix(seed) % 1000), 1 + i % 3);
    if (i % 997 == 0) {
      uint64_t sum = 0;
      for (const auto& c : s.counters()) {
        ASSERT_EQ(s.find(c.key), &c);
        sum += c.count;
      }
      ASSERT_EQ(sum, s.total());
    }
  }
  EXPECT_EQ(s.size(), 8u);
}

// --- hot_key_tracker -----------------------------------------------------------------------

TEST(HotKeys, ExactForSmallStreams) {
  hot_key_tracker t(opts(8, 0.3, 1));
  for (std::string_view k : {"x", "y", "x", "z", "x", "y", "x", "w", "x", "v"})
    t.observe(k);
  const auto top = t.top(3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0], (hot_key{"x", 5, 0, 0.5, 0.5}));
  EXPECT_EQ(top[1], (hot_key{"y", 2, 0, 0.2, 0.2}));
  EXPECT_EQ(top[2].key, "v"); // ties at 1 are ordered by key
  EXPECT_EQ(t.top(100).size(), 5u);
  const auto hot = t.hot();
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].key, "x");
}

TEST(HotKeys, WeightsAndBatches) {
  hot_key_tracker a(opts(4, 0.5, 1));
  hot_key_tracker b(opts(4, 0.5, 1));
  const std::vector<std::string> keys = {"p", "q", "p", "p"};
  const std::vector<std::string_view> views(keys.begin(), keys.end());
  a.observe_batch(keys);
  b.observe_batch(views);
  EXPECT_EQ(a.top(4), b.top(4));
  a.observe("q", 10);
  a.observe("r", 0); // no-op
  EXPECT_EQ(a.total(), 14u);
  EXPECT_EQ(a.estimate("q")->count, 11u);
  EXPECT_FALSE(a.estimate("r"));
  EXPECT_EQ(a.hot()[0].key, "q");
}

TEST(HotKeys, CombinesCurrentAndPreviousEpochExactly) {
  hot_key_tracker t(opts(4, 0.2, 1));
  t.observe("a", 3);
  t.observe("b", 1);
  t.roll();
  t.observe("a", 2);
  t.observe("c", 4);
  EXPECT_EQ(t.total(), 10u);
  EXPECT_EQ(t.epoch_total(), 6u);
  EXPECT_EQ(t.estimate("a"), (hot_key{"a", 5, 0, 0.5, 0.5}));
  EXPECT_EQ(t.estimate("c"), (hot_key{"c", 4, 0, 0.4, 0.4}));
  EXPECT_EQ(t.estimate("b"), (hot_key{"b", 1, 0, 0.1, 0.1}));
}

TEST(HotKeys, FindsTheHeadOfAZipfStream) {
  const auto stream = zipf_stream(200'000, 10'000, 1.5, 42);
  const auto truth = exact(stream);
  hot_key_tracker t(opts(64, 0.2, 1000));
  for (const auto& k : stream)
    t.observe(k);
  expect_within_bounds(t, truth);
  const auto top = t.top(3);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].key, "k0");
  EXPECT_EQ(top[1].key, "k1");
  EXPECT_EQ(top[2].key, "k2");
  // k0 has ~38% of the stream, k1 ~13%: only k0 is hot.
  const auto hot = t.hot();
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].key, "k0");
  EXPECT_NEAR(hot[0].share, static_cast<double>(truth.at("k0")) / 200'000, 0.01);
}

TEST(HotKeys, FindsAKeyWithHalfTheTraffic) {
  const auto stream = half_hot_stream(100'000, 10'000, "celebrity", 3);
  const auto truth = exact(stream);
  hot_key_tracker t;
  for (const auto& k : stream)
    t.observe(k);
  expect_within_bounds(t, truth);
  const auto hot = t.hot();
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].key, "celebrity");
  EXPECT_LE(hot[0].count - hot[0].error, 50'000u);
  EXPECT_GE(hot[0].count, 50'000u);
  EXPECT_GE(hot[0].guaranteed_share, 0.45);
}

TEST(HotKeys, UniformKeysAreNeverHot) {
  hot_key_tracker t;
  uint64_t seed = 11;
  std::vector<std::string> stream;
  for (int i = 0; i < 100'000; ++i)
    stream.push_back(key_name(splitmix(seed) % 10'000));
  for (const auto& k : stream)
    t.observe(k);
  expect_within_bounds(t, exact(stream));
  EXPECT_TRUE(t.hot().empty());
  for (const auto& h : t.top(SIZE_MAX))
    EXPECT_LT(h.guaranteed_share, 0.01) << h.key;
}

TEST(HotKeys, NothingIsHotBelowMinRecords) {
  hot_key_tracker t(opts(64, 0.2, 1000));
  for (int i = 0; i < 999; ++i)
    t.observe("only");
  EXPECT_TRUE(t.hot().empty());
  EXPECT_EQ(t.top(1)[0].count, 999u); // top() reports regardless
  t.observe("only");
  EXPECT_EQ(t.hot().size(), 1u);
}

TEST(HotKeys, OldHotKeyDecaysAfterTrafficMoves) {
  auto o = opts(64, 0.2, 1000);
  o.period_records = 10'000;
  hot_key_tracker t(o);
  for (const auto& k : half_hot_stream(10'000, 10'000, "old", 1))
    t.observe(k);
  EXPECT_EQ(t.epochs(), 1u); // rolled at 10k records
  ASSERT_EQ(t.hot().size(), 1u);
  EXPECT_EQ(t.hot()[0].key, "old");

  const auto moved = half_hot_stream(10'000, 10'000, "new", 2);
  for (size_t i = 0; i < 8'000; ++i)
    t.observe(moved[i]);
  // 8k records in: the window still holds the old epoch; "new" has 4000 of 18000 (> 20%)
  // and "old" 5000: both are hot.
  auto hot = t.hot();
  ASSERT_EQ(hot.size(), 2u);
  EXPECT_EQ(hot[0].key, "old");
  EXPECT_EQ(hot[1].key, "new");

  for (size_t i = 8'000; i < moved.size(); ++i)
    t.observe(moved[i]);
  EXPECT_EQ(t.epochs(), 2u);
  hot = t.hot();
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].key, "new");
  EXPECT_FALSE(t.estimate("old")); // no trace of the old epoch
}

TEST(HotKeys, TickRollsPerElapsedPeriod) {
  auto o = opts(16, 0.2, 10);
  o.period_ms = 1000;
  hot_key_tracker t(o);
  t.tick(5'000); // starts the first epoch
  for (int i = 0; i < 100; ++i)
    t.observe("a");
  t.tick(5'999);
  EXPECT_EQ(t.epochs(), 0u);
  t.tick(6'000);
  EXPECT_EQ(t.epochs(), 1u);
  EXPECT_EQ(t.epoch_total(), 0u);
  EXPECT_EQ(t.total(), 100u); // still in the window as the previous epoch
  t.tick(6'500);
  EXPECT_EQ(t.epochs(), 1u);
  for (int i = 0; i < 100; ++i)
    t.observe("b");
  t.tick(9'100); // three periods later: both epochs are gone
  EXPECT_EQ(t.epochs(), 3u);
  EXPECT_EQ(t.total(), 0u);
  EXPECT_TRUE(t.top(10).empty());
  t.tick(9'999); // the epoch started at 9000
  EXPECT_EQ(t.epochs(), 3u);
  t.tick(10'000);
  EXPECT_EQ(t.epochs(), 4u);
}

TEST(HotKeys, CapacityIsRespected) {
  hot_key_tracker t(opts(16, 0.2, 1));
  uint64_t seed = 5;
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (int i = 0; i < 20'000; ++i) {
      t.observe(key_name(splitmix(seed) % 10'000));
      ASSERT_LE(t.monitored(), 16u);
    }
    t.roll();
  }
  t.observe("x");
  EXPECT_LE(t.top(SIZE_MAX).size(), 2 * 16u); // current + previous epoch
  EXPECT_EQ(t.options().capacity, 16u);
  EXPECT_EQ(hot_key_tracker(opts(0, 0.2, 1)).options().capacity, 1u);
}

TEST(HotKeys, HotNeedsTheGuaranteedShare) {
  hot_key_tracker t(opts(2, 0.3, 1));
  t.observe("a", 5);
  t.observe("b", 3);
  t.observe("c", 1); // takes over b's counter: count 4, error 3
  const auto c = t.estimate("c");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->count, 4u);
  EXPECT_EQ(c->error, 3u);
  EXPECT_GT(c->share, 0.3);            // its estimate passes the threshold ...
  EXPECT_LT(c->guaranteed_share, 0.3); // ... but only because of the error
  const auto hot = t.hot();
  ASSERT_EQ(hot.size(), 1u);
  EXPECT_EQ(hot[0].key, "a");
}

TEST(HotKeys, UnmonitoredEpochAddsToTheErrorOnly) {
  // "a" is in the previous epoch only; the current epoch has dropped keys, so "a" may have
  // up to its smallest count there: the upper bound grows, the lower bound does not.
  hot_key_tracker t(opts(2, 0.2, 1));
  t.observe("a", 10);
  t.roll();
  t.observe("x", 3);
  t.observe("y", 2);
  t.observe("z", 1); // takes over y: count 3, error 2; smallest count now 3
  const auto a = t.estimate("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->count, 13u);
  EXPECT_EQ(a->error, 3u);
}

TEST(HotKeys, ClearForgetsEverything) {
  hot_key_tracker t(opts(4, 0.2, 1));
  t.observe("a", 10);
  t.roll();
  t.observe("b", 10);
  t.clear();
  EXPECT_EQ(t.total(), 0u);
  EXPECT_EQ(t.epochs(), 0u);
  EXPECT_TRUE(t.top(10).empty());
  EXPECT_TRUE(t.hot().empty());
}

} // namespace
