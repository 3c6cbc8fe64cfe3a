/// \file
/// Unit tests of the Nexmark generator (core/nexmark.hpp): the kind of each event in its
/// block, ids and keys, determinism and random access, instances splitting the sequence,
/// event times with bounded disorder, the hot-auction / hot-bidder skew, average record
/// sizes and bad options.

#include "core/nexmark.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>

using keyflow::nexmark_generator;
using keyflow::nexmark_kind;
using keyflow::nexmark_options;

namespace {

/// Default options with `events` events.
nexmark_options small(uint64_t events = 5000) {
  nexmark_options o;
  o.events = events;
  return o;
}

/// Every event of a generator: number -> (Kafka key, serialized value).
std::map<uint64_t, std::pair<std::string, std::string>> run(const nexmark_options& o) {
  nexmark_generator g(o);
  std::map<uint64_t, std::pair<std::string, std::string>> out;
  while (g.next())
    out[g.number()] = {std::string(g.key()), std::string(g.value())};
  return out;
}

} // namespace

TEST(Nexmark, KindsPerBlock) {
  for (uint64_t n = 0; n < 200; ++n) {
    auto off = n % 50;
    auto want = off == 0   ? nexmark_kind::person
                : off <= 3 ? nexmark_kind::auction
                           : nexmark_kind::bid;
    EXPECT_EQ(keyflow::nexmark_kind_of(n), want) << n;
  }
  nexmark_generator g(small(5000));
  std::map<int, int> counts;
  while (g.next()) {
    counts[g.event().kind_case()]++;
    EXPECT_EQ(g.event().kind_case(), static_cast<int>(keyflow::nexmark_kind_of(g.number())) + 1);
  }
  EXPECT_EQ(counts[keyflow::nexmark::Event::kPerson], 100);
  EXPECT_EQ(counts[keyflow::nexmark::Event::kAuction], 300);
  EXPECT_EQ(counts[keyflow::nexmark::Event::kBid], 4600);
}

TEST(Nexmark, IdsGrowFrom1000AndKeys) {
  nexmark_generator g(small(5000));
  int64_t person = 1000, auction = 1000;
  while (g.next()) {
    const auto& e = g.event();
    if (e.has_person()) {
      EXPECT_EQ(e.person().id(), person++);
      EXPECT_EQ(g.key(), std::to_string(e.person().id()));
    } else if (e.has_auction()) {
      EXPECT_EQ(e.auction().id(), auction++);
      EXPECT_EQ(g.key(), std::to_string(e.auction().id()));
      EXPECT_GT(e.auction().expires(), e.auction().date_time());
      EXPECT_GT(e.auction().reserve(), e.auction().initial_bid());
      EXPECT_GE(e.auction().category(), 10);
      EXPECT_LE(e.auction().category(), 14);
    } else {
      ASSERT_TRUE(e.has_bid());
      EXPECT_EQ(g.key(), std::to_string(e.bid().auction()));
      EXPECT_GE(e.bid().auction(), 1000);
      EXPECT_LE(e.bid().auction(), auction + 10);
      EXPECT_GE(e.bid().bidder(), 1000);
      EXPECT_LE(e.bid().bidder(), person + 10);
      EXPECT_GE(e.bid().price(), 100);
      EXPECT_LT(e.bid().price(), 100000000);
    }
  }
}

TEST(Nexmark, DeterministicAndRandomAccess) {
  auto a = run(small());
  EXPECT_EQ(a, run(small()));
  auto other = small();
  other.seed = 7;
  EXPECT_NE(a, run(other));
  // Event n computed alone (in any order, into any message) equals the sequence's.
  nexmark_generator g(small());
  keyflow::nexmark::Event e;
  for (uint64_t n : {4999ULL, 0ULL, 3ULL, 17ULL, 50ULL, 1ULL, 2500ULL}) {
    auto key = g.generate(n, e);
    EXPECT_EQ(std::string(key), a[n].first);
    std::string bytes;
    ASSERT_TRUE(e.SerializeToString(&bytes));
    EXPECT_EQ(bytes, a[n].second) << n;
  }
}

TEST(Nexmark, InstancesSplitTheSequence) {
  auto whole = run(small(1001));
  std::map<uint64_t, std::pair<std::string, std::string>> joined;
  uint64_t total = 0;
  for (uint32_t i = 0; i < 3; ++i) {
    auto o = small(1001);
    o.instance = i;
    o.instances = 3;
    EXPECT_EQ(nexmark_generator(o).remaining(), i < 2 ? 334u : 333u);
    for (auto& [n, kv] : run(o)) {
      EXPECT_EQ(n % 3, i);
      joined[n] = kv;
      ++total;
    }
  }
  EXPECT_EQ(total, 1001u);
  EXPECT_EQ(joined, whole);
}

TEST(Nexmark, EventTimes) {
  auto o = small(3000);
  o.events_per_second = 300;
  nexmark_generator g(o);
  int64_t prev = 0;
  while (g.next()) {
    const auto& e = g.event();
    const int64_t want = o.base_time_ms + static_cast<int64_t>(g.number() * 1000 / 300);
    EXPECT_EQ(e.event_time_ms(), want);
    EXPECT_GE(e.event_time_ms(), prev);
    prev = e.event_time_ms();
    int64_t inner = e.has_bid()       ? e.bid().date_time()
                    : e.has_auction() ? e.auction().date_time()
                                      : e.person().date_time();
    EXPECT_EQ(inner, e.event_time_ms());
  }
  o.max_delay_ms = 250;
  nexmark_generator d(o);
  bool disordered = false;
  int64_t smallest_shift = 1000, largest_shift = -1;
  prev = 0;
  while (d.next()) {
    const int64_t nominal = o.base_time_ms + static_cast<int64_t>(d.number() * 1000 / 300);
    const int64_t shift = nominal - d.event().event_time_ms();
    smallest_shift = std::min(smallest_shift, shift);
    largest_shift = std::max(largest_shift, shift);
    disordered |= d.event().event_time_ms() < prev;
    prev = d.event().event_time_ms();
  }
  EXPECT_TRUE(disordered);
  EXPECT_EQ(smallest_shift, 0);
  EXPECT_EQ(largest_shift, 250);
}

TEST(Nexmark, SkewAndSizes) {
  nexmark_generator g(small(500000));
  std::map<int, std::pair<uint64_t, uint64_t>> size; // kind -> (count, bytes)
  uint64_t bids = 0, hot_auction = 0, hot_bidder = 0;
  int64_t min_price = INT64_MAX, max_price = 0;
  while (g.next()) {
    const auto& e = g.event();
    auto& s = size[e.kind_case()];
    ++s.first;
    s.second += g.value().size();
    if (!e.has_bid())
      continue;
    ++bids;
    const int64_t newest_auction = 1000 + static_cast<int64_t>(g.number() / 50) * 3 + 2;
    hot_auction += e.bid().auction() == 1000 + (newest_auction - 1000) / 100 * 100;
    hot_bidder += e.bid().bidder() == 1000 + static_cast<int64_t>(g.number() / 50) / 100 * 100 + 1;
    min_price = std::min(min_price, e.bid().price());
    max_price = std::max(max_price, e.bid().price());
  }
  EXPECT_NEAR(static_cast<double>(hot_auction) / bids, 0.5, 0.02);
  EXPECT_NEAR(static_cast<double>(hot_bidder) / bids, 0.75, 0.02);
  EXPECT_LT(min_price, 110);
  EXPECT_GT(max_price, 90000000);
  const std::map<int, double> want = {{1, 200}, {2, 500}, {3, 100}};
  for (auto& [kind, s] : size) {
    const double avg = static_cast<double>(s.second) / s.first;
    std::printf("kind %d: %llu events, %.1f bytes on average\n", kind,
                static_cast<unsigned long long>(s.first), avg);
    EXPECT_NEAR(avg, want.at(kind), want.at(kind) * 0.05);
  }
}

TEST(Nexmark, BadOptions) {
  auto o = small();
  o.events_per_second = 0;
  EXPECT_THROW(nexmark_generator{o}, std::invalid_argument);
  o = small();
  o.instance = 2;
  o.instances = 2;
  EXPECT_THROW(nexmark_generator{o}, std::invalid_argument);
  o = small();
  o.max_delay_ms = -1;
  EXPECT_THROW(nexmark_generator{o}, std::invalid_argument);
}
