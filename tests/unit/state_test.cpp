/// \file
/// Unit tests of keyed state: the RocksDB key layout (2-byte big-endian key group prefix),
/// column families across reopen, the write-back keyed_state (flush, reload, dirty
/// tracking, lookups of absent keys) and state TTL (expiry, its stored header, compaction).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>

#include "core/key_group.hpp"
#include "proto/state.pb.h"
#include "state/checkpoint_store.hpp"
#include "state/keyed_state.hpp"
#include "state/state_store.hpp"
#include "state/ttl.hpp"
#include "test_util.hpp"

namespace {

using keyflow::key_group_of;
using keyflow::key_group_t;
using keyflow::state::state_store;

using keyflow::test::temp_dir;

/// A codec of int64 values as decimal text (so RocksDB contents are easy to check).
struct int_codec {
  static std::string encode(const int64_t& v) { return std::to_string(v); }
  static bool decode(std::string_view b, int64_t& v) {
    if (b.empty() || b.size() > 20)
      return false;
    try {
      size_t used = 0;
      v = std::stoll(std::string{b}, &used);
      return used == b.size();
    } catch (const std::exception&) {
      return false;
    }
  }
};

using int_state = keyflow::state::keyed_state<int64_t, int_codec>;

/// A codec of a protobuf state message (the on-disk layout of window state).
struct window_codec {
  static std::string encode(const keyflow::proto::WindowState& v) { return v.SerializeAsString(); }
  static bool decode(std::string_view b, keyflow::proto::WindowState& v) {
    return v.ParseFromArray(b.data(), static_cast<int>(b.size()));
  }
};

using window_state = keyflow::state::keyed_state<keyflow::proto::WindowState, window_codec>;

/// Every (key, value) of a column family, in RocksDB order.
std::vector<std::pair<std::string, std::string>> scan(state_store& store,
                                                      const std::string& cf_name) {
  std::vector<std::pair<std::string, std::string>> out;
  auto* cf = store.column_family(cf_name);
  if (cf == nullptr) {
    ADD_FAILURE() << "no column family " << cf_name;
    return out;
  }
  std::unique_ptr<rocksdb::Iterator> it{store.db()->NewIterator(rocksdb::ReadOptions{}, cf)};
  for (it->SeekToFirst(); it->Valid(); it->Next())
    out.emplace_back(it->key().ToString(), it->value().ToString());
  EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  return out;
}

// --- key layout ------------------------------------------------------------------------------

TEST(StateKey, IsTwoByteBigEndianKeyGroupThenKey) {
  EXPECT_EQ(keyflow::state::state_key(0, "abc"), std::string("\x00\x00"
                                                             "abc",
                                                             5));
  EXPECT_EQ(keyflow::state::state_key(1, "k"), std::string("\x00\x01"
                                                           "k",
                                                           3));
  EXPECT_EQ(keyflow::state::state_key(0x012c, "abc"), std::string("\x01\x2c"
                                                                  "abc",
                                                                  5));
  EXPECT_EQ(keyflow::state::state_key(0x7fff, ""), std::string("\x7f\xff", 2));
  EXPECT_EQ(keyflow::state::state_key(0xffff, "x"), std::string("\xff\xff"
                                                                "x",
                                                                3));
  for (uint32_t kg : {0u, 1u, 127u, 128u, 255u, 256u, 300u, 4095u, 32767u, 65535u}) {
    const auto k = keyflow::state::state_key(static_cast<key_group_t>(kg), "some-key");
    EXPECT_EQ(keyflow::state::key_group_of_state_key(k), kg);
    EXPECT_EQ(k.substr(2), "some-key");
  }
  std::string buf = "left over";
  keyflow::state::state_key_into(buf, 513, "z");
  EXPECT_EQ(buf, std::string("\x02\x01"
                             "z",
                             3));
}

TEST(StateStore, KeysInRocksDbArePrefixedByTheirKeyGroup) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"agg"});
  int_state st{*store, store->column_family("agg")};
  std::map<std::string, key_group_t> groups;
  const uint32_t max_p = 1024; // key groups above 255 exercise the high byte
  for (int i = 0; i < 500; ++i) {
    const auto key = "c-" + std::to_string(i);
    const auto kg = key_group_of(key, max_p);
    groups[key] = kg;
    st.update(key, kg) = i;
  }
  ASSERT_EQ(st.flush(), 500u);
  const auto rows = scan(*store, "agg");
  ASSERT_EQ(rows.size(), 500u);
  std::set<std::string> seen;
  uint32_t previous_kg = 0;
  bool high_byte_used = false;
  for (const auto& [k, v] : rows) {
    ASSERT_GE(k.size(), 2u);
    const uint32_t kg = (static_cast<unsigned char>(k[0]) << 8) | static_cast<unsigned char>(k[1]);
    const std::string key = k.substr(2);
    ASSERT_TRUE(groups.count(key)) << "unexpected key " << key;
    EXPECT_EQ(kg, groups[key]) << key;
    EXPECT_EQ(keyflow::state::key_group_of_state_key(k), kg);
    EXPECT_EQ(v, std::to_string(std::stoi(key.substr(2))));
    // Big-endian prefixes sort by key group: a key-group range is one contiguous key range.
    EXPECT_GE(kg, previous_kg) << "key groups out of order at " << key;
    previous_kg = kg;
    high_byte_used |= kg > 255;
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), 500u);
  EXPECT_TRUE(high_byte_used);
}

TEST(StateStore, ColumnFamiliesPersistAcrossReopen) {
  temp_dir dir;
  {
    auto store = state_store::open(dir.path(), {"a", "b"});
    ASSERT_NE(store->column_family("a"), nullptr);
    ASSERT_NE(store->column_family("b"), nullptr);
    EXPECT_EQ(store->column_family("c"), nullptr);
    EXPECT_EQ(store->dir(), dir.path());
    rocksdb::WriteBatch batch;
    batch.Put(store->column_family("a"), "ka", "va");
    batch.Put(store->column_family("b"), "kb", "vb");
    ASSERT_TRUE(store->write(batch).ok());
  }
  {
    // Reopened without naming them: the families on disk are opened too, with their data.
    auto store = state_store::open(dir.path(), {});
    ASSERT_NE(store->column_family("a"), nullptr);
    ASSERT_NE(store->column_family("b"), nullptr);
    std::string v;
    ASSERT_TRUE(store->get(store->column_family("a"), "ka", &v).ok());
    EXPECT_EQ(v, "va");
    ASSERT_TRUE(store->get(store->column_family("b"), "kb", &v).ok());
    EXPECT_EQ(v, "vb");
    EXPECT_TRUE(store->get(store->column_family("a"), "kb", &v).IsNotFound());
  }
  {
    // Adding a family keeps the others.
    auto store = state_store::open(dir.path(), {"c"});
    ASSERT_NE(store->column_family("a"), nullptr);
    ASSERT_NE(store->column_family("b"), nullptr);
    ASSERT_NE(store->column_family("c"), nullptr);
    std::string v;
    ASSERT_TRUE(store->get(store->column_family("b"), "kb", &v).ok());
    EXPECT_EQ(v, "vb");
  }
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions{}, dir.path(), &names).ok());
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
            (std::set<std::string>{"default", "a", "b", "c"}));
}

TEST(StateStore, OpenFailureNamesTheDirectory) {
  temp_dir dir;
  const auto file = dir.path("not-a-dir");
  std::ofstream{file} << "x";
  try {
    state_store::open(file, {"agg"});
    FAIL() << "opened a regular file as a database";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
  }
}

// --- keyed_state -----------------------------------------------------------------------------

TEST(KeyedState, FlushedValuesAreFoundAfterReopen) {
  temp_dir dir;
  {
    auto store = state_store::open(dir.path(), {"win"});
    window_state st{*store, store->column_family("win")};
    for (int i = 0; i < 100; ++i) {
      const auto key = "c-" + std::to_string(i);
      auto& s = st.update(key, key_group_of(key, 128));
      auto* w = s.add_windows();
      w->set_start_ms(1000 * i);
      w->set_end_ms(1000 * i + 500);
      w->set_records(static_cast<uint64_t>(i) + 1);
      w->set_fired(i % 3 == 0);
      w->add_accumulators()->mutable_value()->set_double_value(i * 0.25);
      s.set_max_event_time_ms(1000 + i);
    }
    EXPECT_EQ(st.size(), 100u);
    EXPECT_EQ(st.flush(), 100u);
  }
  auto store = state_store::open(dir.path(), {"win"});
  window_state st{*store, store->column_family("win")};
  EXPECT_EQ(st.size(), 0u) << "a new working copy starts empty";
  for (int i = 0; i < 100; ++i) {
    const auto key = "c-" + std::to_string(i);
    const auto* s = st.find(key, key_group_of(key, 128));
    ASSERT_NE(s, nullptr) << key;
    ASSERT_EQ(s->windows_size(), 1) << key;
    EXPECT_EQ(s->windows(0).start_ms(), 1000 * i);
    EXPECT_EQ(s->windows(0).end_ms(), 1000 * i + 500);
    EXPECT_EQ(s->windows(0).records(), static_cast<uint64_t>(i) + 1);
    EXPECT_EQ(s->windows(0).fired(), i % 3 == 0);
    EXPECT_EQ(s->windows(0).accumulators(0).value().double_value(), i * 0.25);
    EXPECT_EQ(s->max_event_time_ms(), 1000 + i);
  }
  // update() of a stored key continues from the stored value.
  auto& s = st.update("c-5", key_group_of("c-5", 128));
  EXPECT_EQ(s.windows(0).records(), 6u);
  EXPECT_EQ(st.dirty_count(), 1u);
}

TEST(KeyedState, FlushWritesOnlyChangedKeys) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  auto* cf = store->column_family("s");
  int_state st{*store, cf};
  st.update("a", 1) = 1;
  st.update("b", 2) = 2;
  st.update("c", 3) = 3;
  st.update("a", 1) = 10; // twice before a flush: one write
  EXPECT_EQ(st.dirty_count(), 3u);
  EXPECT_EQ(st.flush(), 3u);
  EXPECT_EQ(st.dirty_count(), 0u);
  EXPECT_EQ(st.flush(), 0u) << "nothing changed since the last flush";

  // Plant markers behind the cache's back: a flush that rewrote unchanged keys would
  // overwrite them.
  rocksdb::WriteBatch marks;
  marks.Put(cf, keyflow::state::state_key(2, "b"), "777");
  marks.Put(cf, keyflow::state::state_key(3, "c"), "888");
  ASSERT_TRUE(store->write(marks).ok());

  st.update("a", 1) += 5;
  EXPECT_EQ(st.dirty_count(), 1u);
  EXPECT_EQ(st.flush(), 1u);
  std::string v;
  ASSERT_TRUE(store->get(cf, keyflow::state::state_key(1, "a"), &v).ok());
  EXPECT_EQ(v, "15");
  ASSERT_TRUE(store->get(cf, keyflow::state::state_key(2, "b"), &v).ok());
  EXPECT_EQ(v, "777") << "unchanged key b was written again";
  ASSERT_TRUE(store->get(cf, keyflow::state::state_key(3, "c"), &v).ok());
  EXPECT_EQ(v, "888") << "unchanged key c was written again";

  // find() reads without marking dirty.
  ASSERT_NE(st.find("b", 2), nullptr);
  EXPECT_EQ(st.dirty_count(), 0u);
  EXPECT_EQ(st.flush(), 0u);
}

TEST(KeyedState, EvictionDropsOnlyUnchangedKeysWhichReloadFromRocksDb) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  int_state st{*store, store->column_family("s")};
  for (int i = 0; i < 100; ++i)
    st.update("k" + std::to_string(i), static_cast<key_group_t>(i % 8)) = i;
  st.flush();
  st.update("k7", 7) += 1000; // changed after the flush: must stay in memory
  EXPECT_EQ(st.evict_to(10), 90u);
  EXPECT_EQ(st.size(), 10u);
  EXPECT_EQ(st.dirty_count(), 1u);
  EXPECT_EQ(*st.find("k7", 7), 1007) << "a changed key was dropped";
  // Dropped keys come back from RocksDB with their flushed values.
  for (int i = 0; i < 100; ++i) {
    const auto* v = st.find("k" + std::to_string(i), static_cast<key_group_t>(i % 8));
    ASSERT_NE(v, nullptr) << i;
    EXPECT_EQ(*v, i == 7 ? 1007 : i);
  }
  // Nothing unchanged left to drop beyond the changed key.
  st.evict_to(0);
  EXPECT_EQ(st.size(), 1u);
  EXPECT_EQ(st.flush(), 1u);
}

TEST(KeyedState, FindOfAMissingKeyReturnsNull) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  int_state st{*store, store->column_family("s")};
  st.update("present", 4) = 1;
  EXPECT_EQ(st.find("absent", 4), nullptr);
  // Asking again must give the same answer: the first miss must not leave a phantom entry.
  EXPECT_EQ(st.find("absent", 4), nullptr) << "second find() of a missing key";
  EXPECT_EQ(st.find("absent", 4), nullptr) << "third find() of a missing key";
  // An updated but unflushed key is found in memory.
  const auto* p = st.find("present", 4);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 1);
  EXPECT_EQ(st.flush(), 1u);
}

TEST(KeyedState, FindOfMissingKeysDoesNotGrowTheWorkingCopy) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  int_state st{*store, store->column_family("s")};
  st.update("present", 0) = 1;
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(st.find("absent-" + std::to_string(i), 0), nullptr);
  EXPECT_EQ(st.size(), 1u) << "lookups of absent keys added entries to the working copy";
  std::vector<std::string> visited;
  st.for_each(
      [&](std::string_view key, key_group_t, const int64_t&) { visited.emplace_back(key); });
  EXPECT_EQ(visited.size(), 1u) << "for_each visits keys that were only looked up";
  EXPECT_NE(std::find(visited.begin(), visited.end(), "present"), visited.end());
}

TEST(KeyedState, CorruptStoredValueIsReportedWithTheKey) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  auto* cf = store->column_family("s");
  rocksdb::WriteBatch b;
  b.Put(cf, keyflow::state::state_key(9, "bad-key"), "not a number");
  ASSERT_TRUE(store->write(b).ok());
  int_state st{*store, cf};
  try {
    st.find("bad-key", 9);
    FAIL() << "corrupt value accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("bad-key"), std::string::npos) << e.what();
  }
}

TEST(KeyedState, RefusesAnUnknownColumnFamily) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  EXPECT_THROW((int_state{*store, store->column_family("nope")}), std::invalid_argument);
}

// --- TTL -------------------------------------------------------------------------------------

/// The TTL header of a stored value: 0xFF and the 8-byte big-endian expiry time.
std::string ttl_header(int64_t expire_at_ms) {
  std::string h;
  keyflow::state::append_ttl_header(h, expire_at_ms);
  return h;
}

TEST(StateTtl, HeaderIsMarkerThenBigEndianExpiry) {
  EXPECT_EQ(ttl_header(0x0102030405060708), std::string("\xff\x01\x02\x03\x04\x05\x06\x07\x08", 9));
  std::string_view stored = std::string_view{"\xff\x00\x00\x00\x00\x00\x00\x01\x00payload", 16};
  int64_t expire_at = 0;
  ASSERT_TRUE(keyflow::state::strip_ttl_header(stored, expire_at));
  EXPECT_EQ(expire_at, 256);
  EXPECT_EQ(stored, "payload");
  // No marker, or too short for a header: left alone.
  for (std::string_view plain :
       {std::string_view{"payload"}, std::string_view{"\xff\x00\x01", 3}, std::string_view{}}) {
    std::string_view v = plain;
    expire_at = 7;
    EXPECT_FALSE(keyflow::state::strip_ttl_header(v, expire_at));
    EXPECT_EQ(v, plain);
    EXPECT_EQ(expire_at, 7);
  }
}

TEST(StateTtl, ExpiredValuesReadAsAbsentAndRestartFromDefault) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  int64_t now = 1000;
  int_state st{*store, store->column_family("s")};
  st.set_ttl(100, [&] { return now; });
  st.update("a", 1) = 5; // expires at 1100
  now = 1050;
  st.update("b", 1) = 6; // expires at 1150
  now = 1099;
  ASSERT_NE(st.find("a", 1), nullptr);
  EXPECT_EQ(*st.find("a", 1), 5);
  now = 1100; // expiry is inclusive
  EXPECT_EQ(st.find("a", 1), nullptr) << "an expired value was found";
  ASSERT_NE(st.find("b", 1), nullptr);
  EXPECT_EQ(*st.find("b", 1), 6);
  // Updating an expired key starts from a default value and restarts its expiry.
  int64_t& a = st.update("a", 1);
  EXPECT_EQ(a, 0) << "update() of an expired key kept the old value";
  a = 42;
  now = 1199;
  ASSERT_NE(st.find("a", 1), nullptr);
  EXPECT_EQ(*st.find("a", 1), 42);
  EXPECT_EQ(st.find("b", 1), nullptr);
  // Updating a live key extends its expiry.
  now = 1190;
  st.update("a", 1) += 1; // now expires at 1290
  now = 1250;
  ASSERT_NE(st.find("a", 1), nullptr);
  EXPECT_EQ(*st.find("a", 1), 43);
}

TEST(StateTtl, ExpiryIsStoredAndSurvivesFlushAndReopen) {
  temp_dir dir;
  int64_t now = 10'000;
  {
    auto store = state_store::open(dir.path(), {"s"});
    int_state st{*store, store->column_family("s")};
    st.set_ttl(500, [&] { return now; });
    st.update("early", 3) = 1; // expires at 10500
    now = 10'200;
    st.update("late", 3) = 2; // expires at 10700
    EXPECT_EQ(st.flush(), 2u);
    // In RocksDB: the header, then the codec's bytes.
    std::string raw;
    ASSERT_TRUE(
        store->get(store->column_family("s"), keyflow::state::state_key(3, "early"), &raw).ok());
    EXPECT_EQ(raw, ttl_header(10'500) + "1");
    ASSERT_TRUE(
        store->get(store->column_family("s"), keyflow::state::state_key(3, "late"), &raw).ok());
    EXPECT_EQ(raw, ttl_header(10'700) + "2");
  }
  auto store = state_store::open(dir.path(), {"s"});
  int_state st{*store, store->column_family("s")};
  st.set_ttl(500, [&] { return now; });
  now = 10'499;
  ASSERT_NE(st.find("early", 3), nullptr);
  EXPECT_EQ(*st.find("early", 3), 1);
  now = 10'500;
  EXPECT_EQ(st.find("early", 3), nullptr) << "the stored expiry was lost by the reopen";
  ASSERT_NE(st.find("late", 3), nullptr);
  EXPECT_EQ(*st.find("late", 3), 2);
  now = 10'700;
  EXPECT_EQ(st.find("late", 3), nullptr);
  EXPECT_EQ(st.update("late", 3), 0) << "an expired stored value came back";
  // A state without a TTL reads the same column family, ignoring the headers.
  int_state plain{*store, store->column_family("s")};
  ASSERT_NE(plain.find("early", 3), nullptr);
  EXPECT_EQ(*plain.find("early", 3), 1);
}

TEST(StateTtl, ValuesWithoutHeaderNeverExpire) {
  // State written without a TTL (or by an older version) is read by a state with a TTL as
  // never expiring, until it is updated; protobuf values never start with the marker.
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"win"});
  auto* cf = store->column_family("win");
  keyflow::proto::WindowState v;
  v.set_max_event_time_ms(77);
  v.add_windows()->set_records(3);
  rocksdb::WriteBatch b;
  b.Put(cf, keyflow::state::state_key(0, "k"), v.SerializeAsString());
  ASSERT_TRUE(store->write(b).ok());
  ASSERT_NE(static_cast<unsigned char>(v.SerializeAsString()[0]), keyflow::state::ttl_marker);
  int64_t now = 1'000'000'000'000;
  window_state st{*store, cf};
  st.set_ttl(1, [&] { return now; });
  now *= 2;
  const auto* found = st.find("k", 0);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->max_event_time_ms(), 77);
  st.update("k", 0).set_max_event_time_ms(78); // now it has an expiry
  st.flush();
  std::string raw;
  ASSERT_TRUE(store->get(cf, keyflow::state::state_key(0, "k"), &raw).ok());
  EXPECT_EQ(raw.substr(0, 9), ttl_header(now + 1));
  now += 1;
  EXPECT_EQ(st.find("k", 0), nullptr);
}

TEST(StateTtl, ManualCompactionDropsExpiredEntries) {
  // The compaction filter compares expiry times with the wall clock.
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  auto* cf = store->column_family("s");
  const int64_t wall = keyflow::state::wall_clock_ms();
  int64_t now = wall - 3'600'000; // an hour ago
  int_state st{*store, cf};
  st.set_ttl(60'000, [&] { return now; });
  for (int i = 0; i < 50; ++i)
    st.update("gone-" + std::to_string(i), static_cast<key_group_t>(i)) = i; // expired 59 min ago
  now = wall;
  for (int i = 0; i < 50; ++i)
    st.update("kept-" + std::to_string(i), static_cast<key_group_t>(i)) = i; // a minute to live
  ASSERT_EQ(st.flush(), 100u);
  rocksdb::WriteBatch plain; // without a header: never dropped
  plain.Put(cf, keyflow::state::state_key(7, "plain"), "7");
  ASSERT_TRUE(store->write(plain).ok());
  ASSERT_TRUE(store->db()->Flush(rocksdb::FlushOptions{}, cf).ok());
  EXPECT_EQ(scan(*store, "s").size(), 101u) << "a flush alone must not drop anything";

  ASSERT_TRUE(store->db()->CompactRange(rocksdb::CompactRangeOptions{}, cf, nullptr, nullptr).ok());
  std::set<std::string> left;
  for (const auto& [k, v] : scan(*store, "s"))
    left.insert(k.substr(2));
  EXPECT_EQ(left.size(), 51u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_FALSE(left.count("gone-" + std::to_string(i))) << "expired entry survived compaction";
    EXPECT_TRUE(left.count("kept-" + std::to_string(i))) << "live entry dropped";
  }
  EXPECT_TRUE(left.count("plain"));
  // The live entries still read back with their values.
  int_state again{*store, cf};
  again.set_ttl(60'000, [&] { return now; });
  ASSERT_NE(again.find("kept-9", 9), nullptr);
  EXPECT_EQ(*again.find("kept-9", 9), 9);
  EXPECT_EQ(again.find("gone-9", 9), nullptr);
}

} // namespace

namespace {

/// A store with `n` keys "c-<i>" in column families "a" and "b", checkpointed.
keyflow::state::checkpoint_info checkpointed_store(const std::string& dir, const std::string& root,
                                                   int from, int to, uint32_t max_p) {
  auto store = state_store::open(dir, {"a", "b"});
  for (const char* cf : {"a", "b"}) {
    int_state st{*store, store->column_family(cf)};
    for (int i = from; i < to; ++i) {
      const auto key = "c-" + std::to_string(i);
      st.update(key, key_group_of(key, max_p)) = i;
    }
    st.flush();
  }
  keyflow::state::checkpoint_store chk{root};
  keyflow::proto::CheckpointManifest m;
  m.set_id(1);
  return chk.create(store->db(), m);
}

} // namespace

TEST(CheckpointStore, ImportKeyGroupsCopiesOnlyTheRangeFromEveryPart) {
  // Two parts (as two nodes would write them) with different keys; a third store takes key
  // groups [100, 300] of both.
  temp_dir d;
  std::filesystem::create_directories(d.path());
  const uint32_t max_p = 512;
  auto p1 = checkpointed_store(d.path() + "/s1", d.path() + "/c1", 0, 400, max_p);
  auto p2 = checkpointed_store(d.path() + "/s2", d.path() + "/c2", 400, 800, max_p);
  auto into = state_store::open(d.path() + "/into", {"a"}); // "b" is created by the import
  auto n = keyflow::state::checkpoint_store::import_key_groups(p1, *into, 100, 300) +
           keyflow::state::checkpoint_store::import_key_groups(p2, *into, 100, 300);
  size_t want = 0;
  for (int i = 0; i < 800; ++i) {
    auto kg = key_group_of("c-" + std::to_string(i), max_p);
    want += kg >= 100 && kg <= 300;
  }
  ASSERT_GT(want, 0u);
  EXPECT_EQ(n, 2 * want);
  for (const char* cf : {"a", "b"}) {
    auto rows = scan(*into, cf);
    EXPECT_EQ(rows.size(), want) << cf;
    for (const auto& [k, v] : rows) {
      auto kg = keyflow::state::key_group_of_state_key(k);
      EXPECT_GE(kg, 100u);
      EXPECT_LE(kg, 300u);
      EXPECT_EQ(v, k.substr(4)) << "value of " << k.substr(2);
    }
  }
}

TEST(CheckpointStore, AJobCheckpointInPartsVerifiesEveryPart) {
  // Two slices' parts written by their owners, then the job manifest listing them.
  temp_dir d;
  std::filesystem::create_directories(d.path());
  auto p1 = checkpointed_store(d.path() + "/s1", d.path() + "/slice-0", 0, 400, 128);
  auto p2 = checkpointed_store(d.path() + "/s2", d.path() + "/slice-1", 400, 800, 128);
  keyflow::state::checkpoint_store job{d.path() + "/job"};
  keyflow::proto::CheckpointManifest m;
  m.set_id(1);
  for (const auto* p : {&p1, &p2}) {
    auto* part = m.add_parts();
    part->set_slice(p == &p1 ? 0 : 1);
    part->set_dir(p->dir);
  }
  auto info = job.commit_parts(m);
  ASSERT_EQ(info.manifest.parts_size(), 2);
  EXPECT_EQ(info.manifest.size_bytes(), p1.manifest.size_bytes() + p2.manifest.size_bytes());
  EXPECT_EQ(info.manifest.parts(1).dir(), "../../slice-1/chk-1") << "stored relative";
  EXPECT_EQ(job.verify(info.dir), "");
  ASSERT_TRUE(job.latest_valid());
  // A damaged file of one part makes the whole checkpoint unusable, naming the part.
  const auto sst = std::filesystem::path{p2.dir} / p2.manifest.files(0).path();
  std::filesystem::resize_file(sst, std::filesystem::file_size(sst) - 1);
  EXPECT_NE(job.verify(info.dir).find("part 1: file"), std::string::npos) << job.verify(info.dir);
  EXPECT_FALSE(job.latest_valid());
  // So does a part manifest replaced after the job manifest was written.
  keyflow::state::checkpoint_store again{d.path() + "/job2"};
  auto p3 = checkpointed_store(d.path() + "/s3", d.path() + "/slice-2", 0, 10, 128);
  keyflow::proto::CheckpointManifest m2;
  m2.set_id(1);
  m2.add_parts()->set_dir(p3.dir);
  auto info2 = again.commit_parts(m2);
  auto pm = p3.manifest;
  pm.set_epoch(99);
  std::ofstream{std::filesystem::path{p3.dir} / "MANIFEST.pb", std::ios::binary | std::ios::trunc}
      << pm.SerializeAsString();
  EXPECT_NE(again.verify(info2.dir).find("fails its SHA-256 checksum"), std::string::npos);
}
