/// \file
/// Unit tests of the stage runner (pipeline/stage_runner.hpp): the operator tree of a stage
/// run in config order, a branch feeding several sinks and operators (each gets its own
/// copy), key_by output handed to the next stage, watermarks passed to windows only when
/// they advance, late records as dead letters, an enrich operator suspending the batch for
/// its lookup, and records read from the source by two operators.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/key_group.hpp"
#include "core/lookup.hpp"
#include "core/record.hpp"
#include "pipeline/source_decoder.hpp"
#include "pipeline/stage_runner.hpp"
#include "pipeline_util.hpp"
#include "proto/dead_letter.pb.h"
#include "proto/event.pb.h"
#include "state/state_store.hpp"
#include "test_util.hpp"

namespace {

using keyflow::lookup_reply;
using keyflow::lookup_request;
using keyflow::record;
using keyflow::value;
using keyflow::pipeline::plan;
using keyflow::pipeline::stage_runner;
using keyflow::test::event_pipeline;
using keyflow::test::plan_of;
using keyflow::test::temp_dir;

using values = std::vector<value>;

/// A record of `key` at event time `t` with `fields`.
record rec(const std::string& key, int64_t t, values fields) {
  record r;
  r.key = key;
  r.key_group = keyflow::key_group_of(key, 128);
  r.event_time_ms = t;
  r.offset = t;
  r.raw = "raw-" + std::to_string(t);
  r.fields = std::move(fields);
  return r;
}

/// A state store with a plan's column families and the environment of a partition actor
/// that owns every key group.
struct runner_fixture : ::testing::Test {
  temp_dir dir;
  std::unique_ptr<keyflow::state::state_store> store;

  /// The environment for `p` (opens the store with its column families).
  keyflow::ops::op_env env(const plan& p) {
    store = keyflow::state::state_store::open(dir.path(), p.column_families());
    keyflow::ops::op_env e;
    e.store = store.get();
    e.pipeline = p.cfg.name;
    e.dead_letter_topic = p.cfg.dead_letter_topic;
    e.source_topic = p.cfg.source.topic;
    e.last_key_group = 127;
    e.now_ms = [] { return int64_t{1'000'000}; };
    return e;
  }

  /// Runs a batch that needs no lookup to the end.
  static void run(stage_runner& r, std::vector<record> in,
                  std::optional<int64_t> wm = std::nullopt) {
    r.start(std::move(in), wm);
    lookup_request req;
    int op = -1;
    ASSERT_TRUE(r.run(req, op)) << "the batch waits for a lookup";
  }
};

/// "key:field0" of each record, for comparisons.
std::vector<std::string> summary(const std::vector<record>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs)
    out.push_back(r.key + ":" + (r.fields.empty() ? "" : r.fields[0].to_string()));
  return out;
}

using StageRunner = runner_fixture;

TEST_F(StageRunner, BranchesGiveEverySinkAndOperatorItsOwnCopy) {
  // Source layout: customer_id, value, event_time_ms. m feeds a sink, two filters and an
  // aggregate; each filter and the aggregate feed a sink of their own.
  const auto p = plan_of(event_pipeline(
      R"(  - {id: m, type: map, set: {half: {field: value, multiply: 0.5}}}
  - {id: big, type: filter, field: value, op: gt, value: '10'}
  - {id: small, type: filter, input: m, field: value, op: le, value: '10'}
  - {id: n, type: aggregate, input: m, aggregates: {n: {fn: count}, h: {fn: sum, field: half}}}
)",
      R"(  - {id: all, type: kafka, from: m, topic: all}
  - {id: bigs, type: kafka, from: big, topic: bigs}
  - {id: smalls, type: redis, from: small, key_prefix: 's:'}
  - {id: counts, type: kafka, from: n, topic: counts}
)"));
  stage_runner r{p, 0, env(*p)};
  EXPECT_FALSE(r.has_enrich());
  ASSERT_EQ(r.operators().size(), 4u);
  EXPECT_EQ(r.inputs(), (std::vector<int>{-1, 0, 0, 0}));
  run(r, {rec("a", 1, {value::of(std::string("a")), value::of(4.0), value::of(int64_t{1})}),
          rec("b", 2, {value::of(std::string("b")), value::of(20.0), value::of(int64_t{2})}),
          rec("a", 3, {value::of(std::string("a")), value::of(12.0), value::of(int64_t{3})})});
  EXPECT_EQ(r.last_outputs(), (std::vector<size_t>{3, 2, 1, 2}));
  EXPECT_EQ(summary(r.sink_output(0)), (std::vector<std::string>{"a:a", "b:b", "a:a"}));
  EXPECT_EQ(summary(r.sink_output(1)), (std::vector<std::string>{"b:b", "a:a"}));
  EXPECT_EQ(summary(r.sink_output(2)), (std::vector<std::string>{"a:a"}));
  EXPECT_EQ(summary(r.sink_output(3)), (std::vector<std::string>{"a:2", "b:1"}));
  // Every copy is complete and independent.
  ASSERT_EQ(r.sink_output(0).size(), 3u);
  for (const auto& x : r.sink_output(0)) {
    ASSERT_EQ(x.fields.size(), 4u);
    EXPECT_EQ(x.fields[3], value::of(x.fields[1].d * 0.5));
    EXPECT_EQ(x.raw, "raw-" + std::to_string(x.event_time_ms));
  }
  r.sink_output(0)[1].fields[1] = value::of(-1.0);
  EXPECT_EQ(r.sink_output(1)[0].fields[1], value::of(20.0));
  EXPECT_EQ(r.sink_output(3)[0].fields[1], value::of(8.0)) << "a's halves: 2 + 6";
  EXPECT_TRUE(r.downstream().empty());
  EXPECT_TRUE(r.dead_letters().empty());
  r.clear_outputs();
  for (size_t i = 0; i < 4; ++i)
    EXPECT_TRUE(r.sink_output(i).empty());
  // The next batch starts from empty outputs; the aggregate goes on counting.
  run(r, {rec("a", 4, {value::of(std::string("a")), value::of(1.0), value::of(int64_t{4})})});
  EXPECT_EQ(summary(r.sink_output(3)), (std::vector<std::string>{"a:3"}));
  EXPECT_EQ(r.sink_output(0).size(), 1u);
  EXPECT_EQ(r.state_size(), 2u);
  EXPECT_EQ(r.flush_state(), 2u);
}

TEST_F(StageRunner, KeyByOutputGoesToTheNextStage) {
  const auto p = plan_of(event_pipeline(
      R"(  - {id: a, type: aggregate, aggregates: {n: {fn: count}}}
  - {id: k, type: key_by, key: n}
  - {id: b, type: aggregate, aggregates: {keys: {fn: count}}}
)",
      R"(  - {id: first, type: kafka, from: a, topic: first}
  - {id: second, type: kafka, from: b, topic: second}
)"));
  ASSERT_EQ(p->stages, 2);
  auto e = env(*p);
  stage_runner s0{p, 0, e};
  stage_runner s1{p, 1, e};
  EXPECT_EQ(s0.operators().size(), 2u);
  ASSERT_EQ(s1.operators().size(), 1u);
  EXPECT_EQ(s1.operators()[0]->id(), "b");
  const auto v = [](const std::string& k) { return values{value::of(k), value::of(int64_t{1})}; };
  run(s0, {rec("x", 1, v("x")), rec("y", 2, v("y")), rec("x", 3, v("x"))});
  EXPECT_EQ(summary(s0.sink_output(0)), (std::vector<std::string>{"x:2", "y:1"}));
  EXPECT_TRUE(s0.sink_output(1).empty()) << "a sink of stage 1 got stage 0 records";
  // The aggregate's output, re-keyed by its count.
  auto down = std::move(s0.downstream());
  EXPECT_EQ(summary(down), (std::vector<std::string>{"2:2", "1:1"}));
  for (auto& d : down)
    d.key_group = keyflow::key_group_of(d.key, 128); // the partition actor's router does this
  run(s1, std::move(down));
  EXPECT_TRUE(s1.sink_output(0).empty());
  EXPECT_EQ(summary(s1.sink_output(1)), (std::vector<std::string>{"2:1", "1:1"}));
  EXPECT_TRUE(s1.downstream().empty());
}

TEST_F(StageRunner, WindowsSeeTheWatermarkOnlyWhenItAdvances) {
  const auto p = plan_of(event_pipeline(
      "  - {id: v, type: validate, required: [customer_id]}\n"
      "  - {id: w, type: window, kind: tumbling, size_ms: 10, aggregates: {n: {fn: count}}}\n",
      "  - {id: out, type: kafka, from: w, topic: out}\n"));
  stage_runner r{p, 0, env(*p)};
  ASSERT_EQ(r.operators().size(), 1u) << "validate runs in the sources";
  EXPECT_EQ(r.watermark(), keyflow::no_watermark);
  const auto v = [](int64_t t) { return values{value::of(std::string("k")), value::of(t)}; };
  run(r, {rec("k", 1, v(1)), rec("k", 9, v(9)), rec("k", 12, v(12))});
  EXPECT_TRUE(r.sink_output(0).empty()) << "no watermark, no window result";
  run(r, {}, 8);
  EXPECT_EQ(r.watermark(), 8);
  EXPECT_TRUE(r.sink_output(0).empty()) << "window [0, 10) fired before its end";
  run(r, {}, 9); // the window ends at 10: everything up to 9 is in
  EXPECT_EQ(r.watermark(), 9);
  ASSERT_EQ(r.sink_output(0).size(), 1u);
  const auto& out = r.sink_output(0)[0];
  EXPECT_EQ(out.fields,
            (values{value::of(int64_t{0}), value::of(int64_t{10}), value::of(int64_t{2})}));
  r.clear_outputs();
  // An older watermark does not go back, and fires nothing.
  run(r, {}, 5);
  EXPECT_EQ(r.watermark(), 9);
  EXPECT_TRUE(r.sink_output(0).empty());
  // A record behind the watermark (no allowed lateness) is a dead letter naming the window.
  run(r, {rec("k", 3, v(3))}, 19);
  EXPECT_EQ(r.watermark(), 19);
  ASSERT_EQ(r.sink_output(0).size(), 1u) << "window [10, 20) fired";
  EXPECT_EQ(r.sink_output(0)[0].fields[2], value::of(int64_t{1}));
  ASSERT_EQ(r.dead_letters().size(), 1u);
  keyflow::proto::DeadLetter dl;
  ASSERT_TRUE(dl.ParseFromString(r.dead_letters()[0].value));
  EXPECT_EQ(r.dead_letters()[0].topic, "dlq");
  EXPECT_EQ(dl.operator_id(), "w");
  EXPECT_EQ(dl.error_code(), "late");
  EXPECT_EQ(dl.original_value(), "raw-3");
}

TEST_F(StageRunner, EnrichSuspendsTheBatchUntilItsLookupIsAnswered) {
  const auto p = plan_of(event_pipeline(
      "  - {id: e, type: enrich, key: customer_id, key_prefix: 'c:', fields: {tier: {default: "
      "none}}}\n"
      "  - {id: f, type: filter, field: tier, op: ne, value: gold}\n",
      "  - {id: out, type: kafka, from: e, topic: out}\n"
      "  - {id: rest, type: kafka, from: f, topic: rest}\n"));
  stage_runner r{p, 0, env(*p)};
  EXPECT_TRUE(r.has_enrich());
  const auto v = [](const std::string& k) { return values{value::of(k), value::of(int64_t{1})}; };
  r.start({rec("a", 1, v("a")), rec("b", 2, v("b")), rec("a", 3, v("a"))}, std::nullopt);
  lookup_request req;
  int op = -1;
  ASSERT_FALSE(r.run(req, op)) << "the batch ran without its lookup";
  EXPECT_EQ(op, 0);
  EXPECT_EQ(req.keys, (std::vector<std::string>{"c:a", "c:b"}));
  EXPECT_TRUE(r.sink_output(0).empty());
  lookup_reply reply;
  reply.entries.resize(2);
  reply.entries[0].status = keyflow::lookup_status::found;
  reply.entries[0].values = {"gold"};
  reply.entries[0].set = {true};
  reply.entries[1].status = keyflow::lookup_status::missing;
  r.complete(op, req, reply);
  ASSERT_TRUE(r.run(req, op));
  std::vector<std::string> tiers;
  for (const auto& x : r.sink_output(0))
    tiers.push_back(x.key + "=" + x.fields[2].s);
  EXPECT_EQ(tiers, (std::vector<std::string>{"a=gold", "b=none", "a=gold"}));
  EXPECT_EQ(summary(r.sink_output(1)), std::vector<std::string>{"b:b"});
  // Cached now: the next batch runs through without a lookup.
  r.clear_outputs();
  run(r, {rec("b", 4, v("b"))});
  EXPECT_EQ(r.sink_output(0).size(), 1u);
}

TEST_F(StageRunner, TwoOperatorsReadingTheSourceSeeEveryRecord) {
  // `big` filters, `all` reads the source too: the filter must not run in the sources,
  // or `all` would miss records.
  const auto p = plan_of(event_pipeline(
      "  - {id: big, type: filter, field: value, op: gt, value: '10'}\n"
      "  - {id: all, type: aggregate, input: source, aggregates: {n: {fn: count}}}\n",
      "  - {id: bigs, type: kafka, from: big, topic: bigs}\n"
      "  - {id: counts, type: kafka, from: all, topic: counts}\n"));
  keyflow::pipeline::source_decoder decoder{p};
  std::vector<record> in;
  std::vector<keyflow::kafka_message> dead;
  for (int i = 1; i <= 4; ++i) {
    keyflow::proto::Event ev;
    ev.set_customer_id("k");
    ev.set_event_id("e" + std::to_string(i));
    ev.set_event_time_ms(i);
    ev.set_value(i * 5.0); // 5, 10, 15, 20
    record r;
    if (decoder.decode("k", ev.SerializeAsString(), {"events", 0, i, 0}, r, dead) ==
        keyflow::pipeline::decode_result::ok) {
      r.key_group = keyflow::key_group_of(r.key, 128);
      in.push_back(std::move(r));
    }
  }
  stage_runner r{p, 0, env(*p)};
  run(r, std::move(in));
  EXPECT_EQ(r.sink_output(0).size(), 2u);
  EXPECT_EQ(summary(r.sink_output(1)), std::vector<std::string>{"k:4"});
}

} // namespace
