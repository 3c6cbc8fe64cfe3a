/// \file
/// Unit tests of key routing: Kafka-compatible murmur2, key groups, key-group ranges of
/// partition actors, and the router that splits records into one batch per owner.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/key_group.hpp"
#include "core/record.hpp"
#include "core/router.hpp"

namespace {

using keyflow::actor_for_key_group;
using keyflow::key_group_of;
using keyflow::key_group_range;
using keyflow::murmur2;
using keyflow::range_for_actor;

// --- murmur2 -------------------------------------------------------------------------------

// Kafka's own vectors (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
// testMurmur2): Utils.murmur2 returns a Java int.
TEST(Murmur2, MatchesKafkaJavaUtilsMurmur2) {
  const std::vector<std::pair<std::string, int32_t>> cases = {
      {"21", -973932308},
      {"foobar", -790332482},
      {"a-little-bit-long-string", -985981536},
      {"a-little-bit-longer-string", -1486304829},
      {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
      {"abc", 479470107},
  };
  for (const auto& [key, want] : cases)
    EXPECT_EQ(static_cast<int32_t>(murmur2(key)), want) << "key '" << key << "'";
}

TEST(Murmur2, CoversEveryTailLength) {
  // Kafka's vectors have tails of 0, 2 and 3 bytes; these add the empty key and 1-byte tails.
  // Expected values from Kafka's Java Utils.murmur2 (run with javac/java on the same bytes).
  EXPECT_EQ(static_cast<int32_t>(murmur2("")), 275646681);
  EXPECT_EQ(static_cast<int32_t>(murmur2("a")), -1563381124);
  EXPECT_EQ(static_cast<int32_t>(murmur2("abcde")), 461995741);
  EXPECT_EQ(static_cast<int32_t>(murmur2("c-000001")), -773120935);
}

TEST(Murmur2, ReadsBytesUnsigned) {
  // Bytes >= 0x80 must be read unsigned (Java masks with & 0xff), in the block and the tail.
  const std::string key = "\xc3\xa9t\xff\x80";
  EXPECT_EQ(static_cast<int32_t>(murmur2(key)), -1609915214);
}

TEST(KeyGroup, IsPositiveMurmur2ModMaxParallelism) {
  for (uint32_t max_p : {1u, 2u, 7u, 128u, 1000u, 32768u}) {
    for (const char* key : {"21", "foobar", "abc", "c-000001", "c-000999", ""}) {
      const uint32_t positive = murmur2(key) & 0x7fffffffu; // Kafka's Utils.toPositive
      EXPECT_EQ(key_group_of(key, max_p), positive % max_p) << key << " / " << max_p;
      EXPECT_LT(key_group_of(key, max_p), max_p);
    }
  }
  // Java: (murmur2(key) & 0x7fffffff) % 128; "21" hashes negative, so toPositive, not abs(),
  // decides its group.
  EXPECT_EQ(key_group_of("21", 128), 108);
  EXPECT_EQ(key_group_of("c-000001", 128), 89);
  EXPECT_EQ(key_group_of("c-000042", 128), 65);
}

// --- key-group ranges ---------------------------------------------------------------------

/// Checks that the ranges of `p` actors tile [0, max_p) in order, balanced within one key
/// group, and agree with actor_for_key_group.
void check_layout(uint32_t max_p, uint32_t p) {
  SCOPED_TRACE("max_parallelism=" + std::to_string(max_p) + " parallelism=" + std::to_string(p));
  uint32_t next = 0, smallest = UINT32_MAX, largest = 0;
  for (uint32_t i = 0; i < p; ++i) {
    const key_group_range r = range_for_actor(max_p, p, i);
    ASSERT_EQ(r.first, next) << "gap or overlap before actor " << i;
    ASSERT_LE(r.first, r.last) << "actor " << i;
    smallest = std::min(smallest, r.size());
    largest = std::max(largest, r.size());
    for (uint32_t kg = r.first; kg < r.last; ++kg) {
      ASSERT_TRUE(r.contains(kg));
      ASSERT_EQ(actor_for_key_group(max_p, p, kg), i) << "key group " << kg;
    }
    next = r.last;
  }
  ASSERT_EQ(next, max_p) << "the ranges do not end at max_parallelism";
  ASSERT_LE(largest - smallest, 1u) << "unbalanced ranges";
  for (uint32_t kg = 0; kg < max_p; ++kg)
    ASSERT_LT(actor_for_key_group(max_p, p, kg), p) << "key group " << kg;
}

TEST(KeyGroupRange, TilesAllKeyGroupsForSmallLayouts) {
  for (uint32_t max_p = 1; max_p <= 160; ++max_p)
    for (uint32_t p = 1; p <= max_p; ++p)
      check_layout(max_p, p);
}

TEST(KeyGroupRange, TilesAllKeyGroupsForLargeLayouts) {
  for (uint32_t max_p : {128u, 1000u, 4096u, 32767u, 32768u})
    for (uint32_t p : {1u, 2u, 3u, 5u, 7u, 10u, 16u, 63u, 64u, 100u, 127u, 128u})
      check_layout(max_p, std::min(p, max_p));
  check_layout(32768, 32768);
  check_layout(32768, 32767);
}

TEST(KeyGroupRange, ContainsIsHalfOpen) {
  const key_group_range r{3, 7};
  EXPECT_FALSE(r.contains(2));
  EXPECT_TRUE(r.contains(3));
  EXPECT_TRUE(r.contains(6));
  EXPECT_FALSE(r.contains(7));
  EXPECT_EQ(r.size(), 4u);
}

TEST(KeyGroupRange, FlinkLayoutExamples) {
  // 128 key groups over 3 actors: 43 + 42 + 43 in Flink's operator layout.
  EXPECT_EQ(range_for_actor(128, 3, 0), (key_group_range{0, 43}));
  EXPECT_EQ(range_for_actor(128, 3, 1), (key_group_range{43, 86}));
  EXPECT_EQ(range_for_actor(128, 3, 2), (key_group_range{86, 128}));
  EXPECT_EQ(range_for_actor(10, 4, 0), (key_group_range{0, 3}));
  EXPECT_EQ(range_for_actor(10, 4, 3), (key_group_range{8, 10}));
}

// --- router --------------------------------------------------------------------------------

/// A record of `key` read from `partition` at `offset`, with a wrong key group.
keyflow::record make_record(std::string key, int32_t partition, int64_t offset) {
  keyflow::record r;
  r.key = std::move(key);
  r.fields = {keyflow::value::of("e-" + std::to_string(offset)), keyflow::value::of(offset)};
  r.partition = partition;
  r.offset = offset;
  r.key_group = 0xbeef; // garbage: the router must compute it
  return r;
}

TEST(Router, SendsEveryRecordToTheOwnerOfItsKeyGroup) {
  for (uint32_t p : {1u, 2u, 3u, 8u}) {
    const uint32_t max_p = 128;
    keyflow::router router{max_p, p};
    ASSERT_EQ(router.parallelism(), p);
    ASSERT_EQ(router.max_parallelism(), max_p);
    std::mt19937 gen{p};
    std::uniform_int_distribution<int> key_dist{1, 500}, part_dist{0, 15};
    const int64_t n = 5000;
    for (int64_t i = 0; i < n; ++i) {
      // The partition field is whatever the producer chose: it must not matter.
      router.route(make_record("c-" + std::to_string(key_dist(gen)), part_dist(gen), i));
    }
    EXPECT_EQ(router.pending(), static_cast<size_t>(n));
    std::vector<bool> seen(n, false);
    for (uint32_t d = 0; d < p; ++d) {
      int64_t last_offset = -1;
      for (const auto& r : router.batch(d).records) {
        const auto kg = key_group_of(r.key, max_p);
        EXPECT_EQ(r.key_group, kg) << r.key;
        EXPECT_EQ(router.owner(kg), d) << r.key;
        EXPECT_EQ(actor_for_key_group(max_p, p, kg), d) << r.key;
        EXPECT_TRUE(range_for_actor(max_p, p, d).contains(kg)) << r.key;
        EXPECT_GT(r.offset, last_offset) << "records of one destination left source order";
        last_offset = r.offset;
        ASSERT_GE(r.offset, 0);
        ASSERT_LT(r.offset, n);
        // The fields travel with the record, untouched.
        ASSERT_EQ(r.fields.size(), 2u);
        EXPECT_EQ(r.fields[0], keyflow::value::of("e-" + std::to_string(r.offset)));
        EXPECT_EQ(r.fields[1], keyflow::value::of(r.offset));
        EXPECT_FALSE(seen[r.offset]) << "record routed twice";
        seen[r.offset] = true;
      }
    }
    EXPECT_EQ(std::count(seen.begin(), seen.end(), true), n) << "records lost";
  }
}

TEST(Router, IgnoresTheKafkaPartitionTheProducerChose) {
  // The same key on different Kafka partitions reaches one destination with one key group.
  keyflow::router router{128, 4};
  for (int32_t part = 0; part < 32; ++part)
    router.route(make_record("c-000042", part, part));
  const auto kg = key_group_of("c-000042", 128);
  const auto owner = actor_for_key_group(128, 4, kg);
  for (uint32_t d = 0; d < 4; ++d) {
    const auto& records = router.batch(d).records;
    if (d != owner) {
      EXPECT_TRUE(records.empty()) << "destination " << d;
      continue;
    }
    ASSERT_EQ(records.size(), 32u);
    for (const auto& r : records)
      EXPECT_EQ(r.key_group, kg);
  }
}

TEST(Router, NewBatchesCarryNoWatermark) {
  keyflow::router router{8, 3};
  for (uint32_t d = 0; d < 3; ++d) {
    EXPECT_EQ(router.batch(d).watermark, keyflow::no_watermark);
    EXPECT_EQ(router.batch(d).source, 0u);
    EXPECT_TRUE(router.batch(d).records.empty());
  }
  EXPECT_EQ(router.pending(), 0u);
}

TEST(Router, BatchesCanBeMovedOutAndRefilled) {
  keyflow::router router{16, 2};
  for (int i = 0; i < 100; ++i)
    router.route(make_record("k" + std::to_string(i), 0, i));
  size_t taken = 0;
  for (uint32_t d = 0; d < 2; ++d) {
    keyflow::record_batch out;
    out.records.swap(router.batch(d).records);
    taken += out.records.size();
  }
  EXPECT_EQ(taken, 100u);
  EXPECT_EQ(router.pending(), 0u);
  router.route(make_record("k1", 0, 100));
  EXPECT_EQ(router.pending(), 1u);
}

} // namespace
