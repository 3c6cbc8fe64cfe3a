/// \file
/// Enrichment from Redis: the LRU cache with TTL, the enrich operator (prepare / complete /
/// process, missing-entity policies, failed lookups, conversions, cache hits) and the lookup
/// actor against a real redis-server started and stopped by the test (micro-batching,
/// deduplication, timeouts with retries, Redis down and back).

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "actors/lookup_spawn.hpp"
#include "operators/enrich.hpp"
#include "operators/lru_cache.hpp"
#include "proto/dead_letter.pb.h"
#include "redis/redis_client.hpp"
#include "redis_test_server.hpp"
#include "test_util.hpp"

namespace {

using namespace keyflow;
using namespace std::chrono_literals;

// --- lru_cache ------------------------------------------------------------------------------

TEST(LruCache, EvictsLeastRecentlyUsed) {
  ops::lru_cache<std::string, int> c{3};
  c.put("a", 1);
  c.put("b", 2);
  c.put("c", 3);
  ASSERT_NE(c.get("a"), nullptr); // a is now the most recently used; b the least
  c.put("d", 4);
  EXPECT_EQ(c.size(), 3u);
  EXPECT_EQ(c.get("b"), nullptr);
  EXPECT_EQ(c.evicted(), 1u);
  c.put("c", 30); // replace: c becomes the most recently used, nothing evicted
  c.put("e", 5);  // evicts a (order now: e, c, d, a)
  EXPECT_EQ(c.get("a"), nullptr);
  ASSERT_NE(c.get("c"), nullptr);
  EXPECT_EQ(*c.get("c"), 30);
  EXPECT_EQ(*c.get("d"), 4);
  EXPECT_EQ(*c.get("e"), 5);
  EXPECT_EQ(c.evicted(), 2u);
  EXPECT_TRUE(c.erase("d"));
  EXPECT_FALSE(c.erase("d"));
  EXPECT_EQ(c.size(), 2u);
}

TEST(LruCache, ZeroCapacityCachesNothing) {
  ops::lru_cache<std::string, int> c{0};
  c.put("a", 1);
  EXPECT_EQ(c.get("a"), nullptr);
  EXPECT_EQ(c.size(), 0u);
}

TEST(LruCache, EntriesExpireAfterTheirTtl) {
  int64_t now = 1000;
  ops::lru_cache<std::string, int> c{10, 100, [&] { return now; }};
  c.put("a", 1);
  c.put("short", 2, 10); // own TTL
  c.put("forever", 3, 0);
  now = 1009;
  EXPECT_NE(c.get("short"), nullptr);
  now = 1010;
  EXPECT_EQ(c.get("short"), nullptr); // expired: a miss, and dropped
  EXPECT_EQ(c.size(), 2u);
  now = 1099;
  ASSERT_NE(c.get("a"), nullptr); // a get does not extend the TTL
  now = 1100;
  EXPECT_EQ(c.get("a"), nullptr);
  EXPECT_EQ(c.expired(), 2u);
  c.put("a", 4); // a new put starts a new TTL
  now = 1199;
  ASSERT_NE(c.get("a"), nullptr);
  EXPECT_EQ(*c.get("a"), 4);
  now = 1'000'000'000;
  EXPECT_NE(c.get("forever"), nullptr);
}

// --- enrich operator ------------------------------------------------------------------------

/// An enrich operator over records (customer_id: string, amount: double) adding segment
/// (string), tier (int64) and ltv (double) from hashes "customer:<id>", with a fake clock.
class EnrichOperator : public ::testing::Test {
protected:
  ops::enrich_spec spec(ops::missing_policy policy, size_t cache_entries = 100) {
    layout in;
    in.add("customer_id", value_type::string);
    in.add("amount", value_type::dbl);
    ops::enrich_spec s;
    s.id = "enrich-customer";
    s.key_slot = 0;
    s.key_field = "customer_id";
    s.key_prefix = "customer:";
    s.fields = {{"segment", "seg", value_type::string, value::of(std::string{"none"}), -1},
                {"tier", "tier", value_type::int64, value::of(int64_t{0}), -1},
                {"ltv", "ltv", value_type::dbl, value::of(-1.0), -1}};
    s.on_missing = policy;
    s.cache_entries = cache_entries;
    s.cache_ttl_ms = 1000;
    out_layout = ops::enrich_output_layout(in, s);
    return s;
  }

  std::unique_ptr<ops::enrich_operator> make(ops::missing_policy policy,
                                             size_t cache_entries = 100) {
    ops::op_env env;
    env.pipeline = "shop";
    env.pipeline_version = 3;
    env.dead_letter_topic = "dead-letters";
    env.source_topic = "orders";
    env.now_ms = [this] { return now; };
    return std::make_unique<ops::enrich_operator>(spec(policy, cache_entries), env);
  }

  /// A record for customer `id` (absent when empty).
  static record rec(const std::string& id, int64_t offset = 7) {
    record r;
    r.key = id.empty() ? "anon" : id;
    r.event_time_ms = 5000 + offset;
    r.offset = offset;
    r.partition = 2;
    r.raw = "raw-" + id;
    r.fields.resize(2);
    if (!id.empty())
      r.fields[0] = value::of(id);
    r.fields[1] = value::of(9.5);
    return r;
  }

  /// A found entry with seg, tier, ltv (nullptr = unset).
  static lookup_entry found(const char* seg, const char* tier, const char* ltv) {
    lookup_entry e;
    e.status = lookup_status::found;
    for (const char* v : {seg, tier, ltv}) {
      e.values.emplace_back(v ? v : "");
      e.set.push_back(v != nullptr);
    }
    return e;
  }

  static lookup_entry missing() { return lookup_entry{}; }

  static lookup_entry failed(std::string why) {
    lookup_entry e;
    e.status = lookup_status::failed;
    e.error = std::move(why);
    return e;
  }

  /// Runs prepare, answers with `entries` (in request order), then process.
  ops::op_output run(ops::enrich_operator& op, std::vector<record> in,
                     std::vector<lookup_entry> entries, std::vector<std::string>* asked = nullptr) {
    auto req = op.prepare(in);
    if (asked)
      *asked = req.keys;
    if (!req.keys.empty()) {
      lookup_reply reply;
      reply.entries = std::move(entries);
      op.complete(req, reply);
    }
    ops::op_output out;
    op.process(in, out);
    return out;
  }

  static proto::DeadLetter parse(const kafka_message& m) {
    proto::DeadLetter dl;
    EXPECT_TRUE(dl.ParseFromString(m.value));
    return dl;
  }

  layout out_layout;
  int64_t now = 0;
};

TEST_F(EnrichOperator, OutputLayoutAppendsFields) {
  auto s = spec(ops::missing_policy::defaults);
  EXPECT_EQ(out_layout.names(), "customer_id, amount, segment, tier, ltv");
  EXPECT_EQ(s.fields[0].out_slot, 2);
  EXPECT_EQ(s.fields[2].out_slot, 4);
  EXPECT_EQ(s.output_fields, 5u);
}

TEST_F(EnrichOperator, FoundEntityFieldsAreConverted) {
  auto op = make(ops::missing_policy::dead_letter);
  std::vector<std::string> asked;
  auto out = run(*op, {rec("c1")}, {found("gold", "3", "12.5")}, &asked);
  EXPECT_EQ(asked, std::vector<std::string>{"customer:c1"});
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_TRUE(out.dead_letters.empty());
  const auto& f = out.records[0].fields;
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(f[0], value::of(std::string{"c1"}));
  EXPECT_EQ(f[1], value::of(9.5));
  EXPECT_EQ(f[2], value::of(std::string{"gold"}));
  EXPECT_EQ(f[3], value::of(int64_t{3}));
  EXPECT_EQ(f[4], value::of(12.5));
  EXPECT_EQ(op->cache_misses(), 1u);
  EXPECT_EQ(op->missing(), 0u);
}

TEST_F(EnrichOperator, UnsetAndUnparsableFieldsGetDefaults) {
  auto op = make(ops::missing_policy::dead_letter);
  auto out = run(*op, {rec("c1"), rec("c2"), rec("c3")},
                 {found(nullptr, "3.5", "abc"), found("", "-42", "1e3"), found("x", "+7", "nan")});
  ASSERT_EQ(out.records.size(), 3u);
  const auto& a = out.records[0].fields;
  EXPECT_EQ(a[2], value::of(std::string{"none"})); // unset
  EXPECT_EQ(a[3], value::of(int64_t{0}));          // not an integer
  EXPECT_EQ(a[4], value::of(-1.0));                // not a number
  const auto& b = out.records[1].fields;
  EXPECT_EQ(b[2], value::of(std::string{})); // set, empty
  EXPECT_EQ(b[3], value::of(int64_t{-42}));
  EXPECT_EQ(b[4], value::of(1000.0));
  const auto& c = out.records[2].fields;
  EXPECT_EQ(c[3], value::of(int64_t{7}));
  EXPECT_EQ(c[4], value::of(-1.0)); // not finite
}

TEST_F(EnrichOperator, MissingEntityGetsDefaults) {
  auto op = make(ops::missing_policy::defaults);
  auto out = run(*op, {rec("c9")}, {missing()});
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_TRUE(out.dead_letters.empty());
  const auto& f = out.records[0].fields;
  ASSERT_EQ(f.size(), 5u);
  EXPECT_EQ(f[2], value::of(std::string{"none"}));
  EXPECT_EQ(f[3], value::of(int64_t{0}));
  EXPECT_EQ(f[4], value::of(-1.0));
  EXPECT_EQ(op->missing(), 1u);
}

TEST_F(EnrichOperator, MissingEntityIsDeadLettered) {
  auto op = make(ops::missing_policy::dead_letter);
  auto out = run(*op, {rec("c9", 11), rec("c1", 12)}, {missing(), found("gold", "1", "2")});
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].key, "c1");
  ASSERT_EQ(out.dead_letters.size(), 1u);
  const auto& m = out.dead_letters[0];
  EXPECT_EQ(m.topic, "dead-letters");
  EXPECT_EQ(m.key, "c9");
  auto dl = parse(m);
  EXPECT_EQ(dl.error_code(), "enrich_missing");
  EXPECT_EQ(dl.error_message(), "no entity 'customer:c9' for field 'customer_id'");
  EXPECT_EQ(dl.original_value(), "raw-c9");
  EXPECT_EQ(dl.original_key(), "c9");
  EXPECT_EQ(dl.source_topic(), "orders");
  EXPECT_EQ(dl.source_partition(), 2);
  EXPECT_EQ(dl.source_offset(), 11);
  EXPECT_EQ(dl.record_timestamp_ms(), 5011);
  EXPECT_EQ(dl.operator_id(), "enrich-customer");
  EXPECT_EQ(dl.pipeline(), "shop");
  EXPECT_EQ(dl.pipeline_version(), 3u);
  EXPECT_EQ(op->missing(), 1u);
}

TEST_F(EnrichOperator, FailedLookupIsDeadLetteredAndNotCached) {
  for (auto policy : {ops::missing_policy::defaults, ops::missing_policy::dead_letter}) {
    auto op = make(policy);
    auto out = run(*op, {rec("c1")}, {failed("Redis at 127.0.0.1:1 did not answer within 5 ms")});
    EXPECT_TRUE(out.records.empty()); // never silently defaulted
    ASSERT_EQ(out.dead_letters.size(), 1u);
    auto dl = parse(out.dead_letters[0]);
    EXPECT_EQ(dl.error_code(), "enrich_failed");
    EXPECT_EQ(dl.error_message(),
              "lookup of 'customer:c1' failed: Redis at 127.0.0.1:1 did not answer within 5 ms");
    EXPECT_EQ(op->failed(), 1u);
    EXPECT_EQ(op->cache_size(), 0u);
    // The next batch asks again and succeeds.
    std::vector<std::string> asked;
    out = run(*op, {rec("c1")}, {found("gold", "1", "2")}, &asked);
    EXPECT_EQ(asked.size(), 1u);
    ASSERT_EQ(out.records.size(), 1u);
    EXPECT_EQ(out.records[0].fields[2], value::of(std::string{"gold"}));
  }
}

TEST_F(EnrichOperator, NoReplyAtAllFailsEveryKey) {
  auto op = make(ops::missing_policy::defaults);
  std::vector<record> in{rec("c1"), rec("c2")};
  auto req = op->prepare(in);
  ASSERT_EQ(req.keys.size(), 2u);
  op->fail(req, "request to the lookup actor timed out");
  ops::op_output out;
  op->process(in, out);
  EXPECT_TRUE(out.records.empty());
  EXPECT_EQ(out.dead_letters.size(), 2u);
  // A reply with too few entries fails the keys it does not answer.
  req = op->prepare(in);
  lookup_reply short_reply;
  short_reply.entries.push_back(found("a", "1", "1"));
  op->complete(req, short_reply);
  out.clear();
  op->process(in, out);
  EXPECT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.dead_letters.size(), 1u);
}

TEST_F(EnrichOperator, AbsentKeyFieldIsAMissingEntity) {
  auto op = make(ops::missing_policy::defaults);
  std::vector<std::string> asked;
  auto out = run(*op, {rec("")}, {}, &asked);
  EXPECT_TRUE(asked.empty()); // nothing to look up
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].fields[3], value::of(int64_t{0}));
  EXPECT_EQ(op->missing(), 1u);

  auto strict = make(ops::missing_policy::dead_letter);
  out = run(*strict, {rec("")}, {});
  EXPECT_TRUE(out.records.empty());
  ASSERT_EQ(out.dead_letters.size(), 1u);
  auto dl = parse(out.dead_letters[0]);
  EXPECT_EQ(dl.error_code(), "enrich_missing");
  EXPECT_EQ(dl.error_message(), "no entity for field 'customer_id': the record has no value");
}

TEST_F(EnrichOperator, CacheHitsSkipLookupsUntilTheTtl) {
  auto op = make(ops::missing_policy::defaults);
  std::vector<std::string> asked;
  auto out =
      run(*op, {rec("c1"), rec("c2"), rec("c1")}, {found("gold", "1", "2"), missing()}, &asked);
  EXPECT_EQ(asked, (std::vector<std::string>{"customer:c1", "customer:c2"})); // deduplicated
  EXPECT_EQ(out.records.size(), 3u);
  EXPECT_EQ(op->cache_misses(), 2u);
  now = 999;
  out = run(*op, {rec("c1"), rec("c2")}, {}, &asked);
  EXPECT_TRUE(asked.empty()); // found and missing entities are both cached
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(out.records[0].fields[2], value::of(std::string{"gold"}));
  EXPECT_EQ(out.records[1].fields[2], value::of(std::string{"none"}));
  EXPECT_EQ(op->cache_hits(), 2u);
  now = 1000; // TTL over: read again
  out = run(*op, {rec("c1")}, {found("silver", "1", "2")}, &asked);
  EXPECT_EQ(asked.size(), 1u);
  EXPECT_EQ(out.records[0].fields[2], value::of(std::string{"silver"}));
}

TEST_F(EnrichOperator, EvictionBetweenPrepareAndProcessLosesNothing) {
  auto op = make(ops::missing_policy::dead_letter, 1); // a cache of one entity
  run(*op, {rec("c1")}, {found("gold", "1", "2")});
  std::vector<std::string> asked;
  // c1 is a hit at prepare; the reply for c2 then evicts it from the cache.
  auto out = run(*op, {rec("c1"), rec("c2")}, {found("silver", "2", "3")}, &asked);
  EXPECT_EQ(asked, std::vector<std::string>{"customer:c2"});
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(out.records[0].fields[2], value::of(std::string{"gold"}));
  EXPECT_EQ(out.records[1].fields[2], value::of(std::string{"silver"}));
}

// --- lookup actor against a real redis-server -----------------------------------------------

using test::free_port;
using test::redis_server;

/// Writes hashes customer:0 .. customer:n-1 (every 10th missing; every 7th without tier).
void populate(const std::string& address, int n) {
  redis::client c{redis::address::parse(address)};
  for (int i = 0; i < n; ++i) {
    if (i % 10 == 9)
      continue;
    auto key = "customer:" + std::to_string(i);
    auto seg = "seg-" + std::to_string(i % 5);
    auto ltv = std::to_string(i * 2);
    if (i % 7 == 0)
      c.append({"HSET", key, "seg", seg, "ltv", ltv});
    else
      c.append({"HSET", key, "seg", seg, "tier", std::to_string(i), "ltv", ltv});
    if (i % 1000 == 999)
      c.exec();
  }
  c.exec();
}

/// Checks an entry of customer:i as populate() wrote it.
void expect_entry(int i, const lookup_entry& e) {
  SCOPED_TRACE("customer:" + std::to_string(i));
  if (i % 10 == 9) {
    EXPECT_EQ(e.status, lookup_status::missing);
    return;
  }
  ASSERT_EQ(e.status, lookup_status::found) << e.error;
  ASSERT_EQ(e.values.size(), 3u);
  ASSERT_EQ(e.set.size(), 3u);
  EXPECT_EQ(e.values[0], "seg-" + std::to_string(i % 5));
  EXPECT_EQ(e.set[1], i % 7 != 0);
  EXPECT_EQ(e.values[1], i % 7 == 0 ? "" : std::to_string(i));
  EXPECT_EQ(e.values[2], std::to_string(i * 2));
}

/// Calls of `command` (lower case) since the last CONFIG RESETSTAT.
uint64_t command_calls(const std::string& address, const std::string& command) {
  redis::client c{redis::address::parse(address)};
  auto info = c.command({"INFO", "commandstats"});
  auto tag = "cmdstat_" + command + ":calls=";
  auto at = info.find(tag);
  return at == std::string::npos ? 0 : std::stoull(info.substr(at + tag.size()));
}

/// An actor system with Keyflow's message types and a lookup actor for seg, tier, ltv.
class LookupActor : public ::testing::Test {
protected:
  LookupActor() { cfg.add_message_types<caf::id_block::keyflow>(); }
  ~LookupActor() override {
    if (lookup)
      caf::anon_send_exit(lookup, caf::exit_reason::user_shutdown);
  }

  void spawn(const std::string& address, lookup_params p = {}) {
    p.address = address;
    p.fields = {"seg", "tier", "ltv"};
    p.counters = counters;
    lookup = spawn_lookup(sys, p);
  }

  /// One request, waited for.
  lookup_reply ask(std::vector<std::string> keys) {
    lookup_reply out;
    self->request(lookup, 30s, lookup_request{std::move(keys)})
        .receive([&](lookup_reply& r) { out = std::move(r); },
                 [](caf::error& e) { FAIL() << caf::to_string(e); });
    return out;
  }

  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  std::shared_ptr<lookup_counters> counters = std::make_shared<lookup_counters>();
  lookup_actor lookup;
};

TEST_F(LookupActor, MicroBatchesConcurrentRequestsOf10kKeys) {
  redis_server server;
  constexpr int n = 10000;
  populate(server.address(), n);
  redis::client{redis::address::parse(server.address())}.command({"CONFIG", "RESETSTAT"});
  spawn(server.address()); // batch_size 512, max_delay 2 ms
  // 200 requests of 100 keys, each key in two requests, all sent before any answer is read.
  constexpr int requests = 200;
  using handle = decltype(self->request(lookup, 30s, lookup_request{}));
  std::vector<handle> handles;
  std::vector<std::vector<int>> ids(requests);
  for (int r = 0; r < requests; ++r) {
    lookup_request req;
    for (int k = 0; k < 100; ++k) {
      ids[r].push_back((r * 50 + k) % n);
      req.keys.push_back("customer:" + std::to_string(ids[r].back()));
    }
    handles.push_back(self->request(lookup, 30s, std::move(req)));
  }
  for (int r = 0; r < requests; ++r)
    handles[r].receive(
        [&](lookup_reply& reply) {
          ASSERT_EQ(reply.entries.size(), 100u);
          for (size_t k = 0; k < 100; ++k)
            expect_entry(ids[r][k], reply.entries[k]);
        },
        [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_EQ(counters->requests, uint64_t{requests});
  EXPECT_LT(counters->rounds, uint64_t{requests} / 4); // fewer Redis rounds than requests
  EXPECT_GE(counters->keys, uint64_t{n});
  EXPECT_LT(counters->keys, uint64_t{2 * n}); // duplicates across pending requests are read once
  EXPECT_EQ(command_calls(server.address(), "hmget"), counters->keys.load());
  EXPECT_EQ(counters->failed_keys, 0u);
}

TEST_F(LookupActor, DeduplicatesKeysAndWaitsAtMostMaxDelay) {
  redis_server server;
  populate(server.address(), 20);
  lookup_params p;
  p.batch_size = 100000; // only the delay sends a round
  p.max_delay = 300ms;
  spawn(server.address(), p);
  using handle = decltype(self->request(lookup, 30s, lookup_request{}));
  std::vector<handle> handles;
  auto start = std::chrono::steady_clock::now();
  for (int r = 0; r < 20; ++r) {
    lookup_request req;
    for (int k = 0; k < 10; ++k)
      req.keys.push_back("customer:" + std::to_string((r + k) % 20));
    handles.push_back(self->request(lookup, 30s, std::move(req)));
  }
  for (int r = 0; r < 20; ++r)
    handles[r].receive(
        [&](lookup_reply& reply) {
          ASSERT_EQ(reply.entries.size(), 10u);
          for (int k = 0; k < 10; ++k)
            expect_entry((r + k) % 20, reply.entries[k]);
        },
        [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
  EXPECT_EQ(counters->rounds, 1u);
  EXPECT_EQ(counters->keys, 20u);
  // An empty request is answered at once.
  EXPECT_TRUE(ask({}).entries.empty());
}

TEST_F(LookupActor, RedisErrorReplyFailsOnlyItsKey) {
  redis_server server;
  populate(server.address(), 3);
  redis::client{redis::address::parse(server.address())}.command({"SET", "customer:x", "plain"});
  spawn(server.address());
  auto reply = ask({"customer:0", "customer:x", "customer:9"});
  ASSERT_EQ(reply.entries.size(), 3u);
  expect_entry(0, reply.entries[0]);
  EXPECT_EQ(reply.entries[1].status, lookup_status::failed);
  EXPECT_NE(reply.entries[1].error.find("WRONGTYPE"), std::string::npos) << reply.entries[1].error;
  EXPECT_EQ(reply.entries[2].status, lookup_status::missing);
}

TEST_F(LookupActor, UnavailableRedisHoldsRequestsUntilItAnswers) {
  redis_server server;
  populate(server.address(), 3);
  lookup_params p;
  p.timeout = 200ms;
  p.retries = 2;
  p.retry_backoff = 20ms;
  spawn(server.address(), p);
  expect_entry(1, ask({"customer:1"}).entries.at(0)); // connected
  server.pause();
  auto pending = self->request(lookup, 60s, lookup_request{{"customer:0", "customer:1"}});
  // Redis stalled: no answer (no `failed`, no dead letter), the request waits.
  bool answered = false;
  self->receive([&](lookup_reply&) { answered = true; }, [&](caf::error&) { answered = true; },
                caf::after(1500ms) >> [] {});
  EXPECT_FALSE(answered);
  server.resume();
  pending.receive(
      [&](lookup_reply& reply) {
        ASSERT_EQ(reply.entries.size(), 2u);
        expect_entry(0, reply.entries[0]);
        expect_entry(1, reply.entries[1]);
      },
      [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_GE(counters->retries, 2u);
  EXPECT_GE(counters->failed_rounds, 1u);
  EXPECT_EQ(counters->failed_keys, 0u);
}

TEST_F(LookupActor, RedisDownAtStartWaitsUntilItIsUp) {
  int port = free_port();
  auto address = "127.0.0.1:" + std::to_string(port);
  lookup_params p;
  p.retries = 1;
  p.retry_backoff = 10ms;
  spawn(address, p);
  auto pending = self->request(lookup, 60s, lookup_request{{"customer:0", "customer:2"}});
  while (counters->failed_rounds == 0) // it has tried and found nothing listening
    std::this_thread::sleep_for(10ms);
  redis_server server{port};
  pending.receive( // answered once Redis is up (the keys do not exist yet: missing)
      [&](lookup_reply& reply) {
        ASSERT_EQ(reply.entries.size(), 2u);
        for (const auto& e : reply.entries)
          EXPECT_EQ(e.status, lookup_status::missing) << e.error;
      },
      [](caf::error& e) { FAIL() << caf::to_string(e); });
  EXPECT_EQ(counters->failed_keys, 0u);
  populate(server.address(), 3);
  auto reply = ask({"customer:0", "customer:2"});
  ASSERT_EQ(reply.entries.size(), 2u);
  expect_entry(0, reply.entries[0]);
  expect_entry(2, reply.entries[1]);
}

TEST_F(LookupActor, RejectsBadSettings) {
  lookup_params p;
  p.address = "127.0.0.1:notaport";
  p.fields = {"seg"};
  EXPECT_THROW(spawn_lookup(sys, p), std::invalid_argument);
  p.address = "127.0.0.1:6379";
  p.fields.clear();
  EXPECT_THROW(spawn_lookup(sys, p), std::invalid_argument);
}

TEST_F(LookupActor, EnrichOperatorEndToEnd) {
  redis_server server;
  populate(server.address(), 100);
  spawn(server.address());
  layout in;
  in.add("customer_id", value_type::string);
  ops::enrich_spec s;
  s.id = "enrich";
  s.key_slot = 0;
  s.key_field = "customer_id";
  s.key_prefix = "customer:";
  s.fields = {{"segment", "seg", value_type::string, value::of(std::string{"?"}), -1},
              {"tier", "tier", value_type::int64, value::of(int64_t{-1}), -1},
              {"ltv", "ltv", value_type::dbl, value::of(0.0), -1}};
  s.on_missing = ops::missing_policy::dead_letter;
  ops::enrich_output_layout(in, s);
  ops::enrich_operator op{s, ops::op_env{}};
  std::vector<record> batch;
  for (int i = 0; i < 100; ++i) {
    record r;
    r.key = std::to_string(i);
    r.fields.push_back(value::of(std::to_string(i)));
    batch.push_back(std::move(r));
  }
  auto req = op.prepare(batch);
  ASSERT_EQ(req.keys.size(), 100u);
  lookup_reply reply;
  self->request(lookup, 30s, req)
      .receive([&](lookup_reply& r) { reply = std::move(r); },
               [](caf::error& e) { FAIL() << caf::to_string(e); });
  op.complete(req, reply);
  ops::op_output out;
  op.process(batch, out);
  EXPECT_EQ(out.records.size(), 90u);
  EXPECT_EQ(out.dead_letters.size(), 10u);
  for (const auto& r : out.records) {
    auto i = std::stoi(r.key);
    EXPECT_EQ(r.fields[1], value::of("seg-" + std::to_string(i % 5)));
    EXPECT_EQ(r.fields[2], value::of(int64_t{i % 7 == 0 ? -1 : i}));
    EXPECT_EQ(r.fields[3], value::of(static_cast<double>(i * 2)));
  }
}

} // namespace
