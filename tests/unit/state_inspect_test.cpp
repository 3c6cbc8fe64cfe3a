/// \file
/// Unit tests of pipeline/state_inspect.hpp: state types of operators (what changes them and
/// what does not), reading real checkpoints written from the real operators' state (whole
/// operators, one key, limits, TTL, a checkpoint in parts, unknown operators and keys, state
/// type mismatches), diffs of two checkpoints, and deploy plans (keep, new, drop,
/// incompatible, stateless; actions; refusals; what cannot carry state at all).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/pipeline_config.hpp"
#include "core/key_group.hpp"
#include "core/record.hpp"
#include "operators/basic.hpp"
#include "operators/window.hpp"
#include "pipeline/plan.hpp"
#include "pipeline/state_inspect.hpp"
#include "pipeline_util.hpp"
#include "state/checkpoint_store.hpp"
#include "state/state_store.hpp"
#include "state/ttl.hpp"
#include "test_util.hpp"

namespace {

using json = nlohmann::json;
using keyflow::key_group_of;
using keyflow::record;
using keyflow::value;
using keyflow::pipeline::compare_plans;
using keyflow::pipeline::deploy_action;
using keyflow::pipeline::deploy_plan;
using keyflow::pipeline::diff_state;
using keyflow::pipeline::inspect_not_found;
using keyflow::pipeline::inspect_query;
using keyflow::pipeline::inspect_state;
using keyflow::pipeline::op_plan;
using keyflow::pipeline::plan;
using keyflow::pipeline::state_change;
using keyflow::pipeline::state_type;
using keyflow::state::checkpoint_info;
using keyflow::state::checkpoint_store;
using keyflow::state::state_store;
using keyflow::test::config_error_of;
using keyflow::test::event_pipeline;
using keyflow::test::plan_of;
using keyflow::test::temp_dir;

value s(std::string x) {
  return value::of(std::move(x));
}
value d(double x) {
  return value::of(x);
}

/// The operator `id` of a plan.
const op_plan& op_of(const plan& p, const std::string& id) {
  for (const auto& op : p.ops)
    if (op.cfg->id == id)
      return op;
  throw std::runtime_error("no operator " + id);
}

/// State type of operator `id` of the pipeline with these operators.
std::string type_of(const std::string& ops, const std::string& id) {
  return state_type(op_of(*plan_of(event_pipeline(ops)), id));
}

/// A source record of pipeline `p` (fields by name; customer_id and event_time_ms filled).
record rec(const plan& p, const std::string& key, int64_t t,
           const std::vector<std::pair<std::string, value>>& fields = {}) {
  record r;
  r.key = key;
  r.key_group = key_group_of(key, p.cfg.max_parallelism);
  r.event_time_ms = t;
  r.ingest_ns = t; // deterministic: the same input gives the same stored bytes
  r.fields.resize(p.source_layout.size());
  r.fields[static_cast<size_t>(p.key_slot)] = s(key);
  r.fields[static_cast<size_t>(p.event_time_slot)] = value::of(t);
  for (const auto& [name, v] : fields)
    r.fields[static_cast<size_t>(*p.source_layout.slot(name))] = v;
  return r;
}

/// A value as inspect_state renders it.
json rendered(const value& v) {
  switch (v.type) {
  case keyflow::value_type::int64:
    return v.i;
  case keyflow::value_type::dbl:
    return v.d;
  case keyflow::value_type::string:
    return v.s;
  default:
    return nullptr;
  }
}

/// The manifest the checkpoint coordinator writes for plan `p`.
keyflow::proto::CheckpointManifest manifest_of(const plan& p, uint64_t id,
                                               const std::string& name = {}) {
  keyflow::proto::CheckpointManifest m;
  m.set_id(id);
  m.set_pipeline(p.cfg.name);
  m.set_pipeline_version(p.cfg.version);
  m.set_max_parallelism(p.cfg.max_parallelism);
  m.set_snapshot_name(name);
  for (const auto& op : p.ops)
    if (op.stateful) {
      auto* o = m.add_operators();
      o->set_operator_id(op.cfg->id);
      o->set_state_type(state_type(op));
      o->set_first_key_group(0);
      o->set_last_key_group(p.cfg.max_parallelism);
    }
  return m;
}

/// The entries of operator `id` in an inspect_state answer, by key (event id appended).
std::map<std::string, json> entries_of(const json& answer, const std::string& id) {
  std::map<std::string, json> out;
  for (const auto& op : answer.at("operators"))
    if (op.at("id") == id)
      for (const auto& e : op.at("entries"))
        out[e.at("key").get<std::string>() +
            (e.contains("event_id") ? "/" + e.at("event_id").get<std::string>() : "")] = e;
  return out;
}

/// The operator `id` of an inspect_state or diff_state answer.
json op_answer(const json& answer, const std::string& id) {
  for (const auto& op : answer.at("operators"))
    if (op.at("id") == id)
      return op;
  ADD_FAILURE() << "no operator " << id << " in " << answer.dump();
  return json::object();
}

/// The message of the exception of type E that `f` throws.
template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "nothing thrown";
  return {};
}

/// Every file under `dir` with its size and modification time.
std::map<std::string, std::pair<uintmax_t, std::filesystem::file_time_type>>
files_in(const std::string& dir) {
  std::map<std::string, std::pair<uintmax_t, std::filesystem::file_time_type>> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file())
      out[e.path().string()] = {e.file_size(), e.last_write_time()};
  return out;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// --- state types ---------------------------------------------------------------------------

TEST(StateType, NamesOperatorKindAndAggregatesInOrder) {
  EXPECT_EQ(type_of("  - {id: dd, type: dedup, field: event_id, ttl_ms: 1000}\n", "dd"), "dedup");
  EXPECT_EQ(type_of("  - {id: f, type: filter, field: value, op: ge, value: '1', "
                    "once_per_key: true}\n",
                    "f"),
            "filter/once_per_key");
  EXPECT_EQ(type_of("  - {id: f, type: filter, field: value, op: ge, value: '1'}\n", "f"), "")
      << "stateless";
  EXPECT_EQ(type_of("  - {id: a, type: aggregate, aggregates: {n: {fn: count}, "
                    "total: {fn: sum, field: value}, t: {fn: max, field: event_time_ms}, "
                    "mean: {fn: avg, field: event_time_ms}, seg: {fn: last, field: type}}}\n",
                    "a"),
            "aggregate/global[count,sum:double,max:int64,avg:double,last:string]");
  EXPECT_EQ(type_of("  - {id: w, type: window, kind: tumbling, size_ms: 60000, "
                    "aggregates: {n: {fn: count}}}\n",
                    "w"),
            "window/tumbling(size=60000)[count]");
  EXPECT_EQ(type_of("  - {id: w, type: window, kind: sliding, size_ms: 60000, slide_ms: 10000, "
                    "aggregates: {lo: {fn: min, field: value}}}\n",
                    "w"),
            "window/sliding(size=60000,slide=10000)[min:double]");
  EXPECT_EQ(type_of("  - {id: w, type: window, kind: session, gap_ms: 30000, "
                    "aggregates: {f: {fn: first, field: event_id}}}\n",
                    "w"),
            "window/session(gap=30000)[first:string]");
  EXPECT_EQ(type_of("  - {id: a, type: aggregate, aggregates: {n: {fn: count}, "
                    "top: {fn: max_by, field: type, by: value}}}\n",
                    "a"),
            "aggregate/global[count,max_by(value):string]/record[customer_id:string,type:string,"
            "value:double,event_time_ms:int64]")
      << "max_by keeps whole input records";
}

TEST(StateType, ChangesExactlyWhenStoredBytesChangeMeaning) {
  const auto agg = [](const std::string& aggs, const std::string& extra = {}) {
    return type_of("  - {id: a, type: aggregate" + extra + ", aggregates: {" + aggs + "}}\n", "a");
  };
  const auto base = agg("n: {fn: count}, total: {fn: sum, field: value}");
  EXPECT_EQ(agg("events: {fn: count}, revenue: {fn: sum, field: value}"), base)
      << "output names are not stored";
  EXPECT_EQ(agg("n: {fn: count}, total: {fn: sum, field: value}", ", ttl_ms: 5000"), base)
      << "a TTL does not change the encoding";
  EXPECT_NE(agg("n: {fn: count}"), base) << "an aggregate less";
  EXPECT_NE(agg("total: {fn: sum, field: value}, n: {fn: count}"), base) << "order";
  EXPECT_NE(agg("n: {fn: count}, total: {fn: avg, field: value}"), base) << "function";
  EXPECT_NE(agg("n: {fn: count}, total: {fn: sum, field: event_time_ms}"), base)
      << "sum of an int64 is stored as an int64";
  const auto win = [](const std::string& kind) {
    return type_of("  - {id: w, type: window, " + kind + ", aggregates: {n: {fn: count}}}\n", "w");
  };
  EXPECT_NE(win("kind: tumbling, size_ms: 1000"), win("kind: tumbling, size_ms: 2000"));
  EXPECT_NE(win("kind: sliding, size_ms: 1000, slide_ms: 100"),
            win("kind: sliding, size_ms: 1000, slide_ms: 200"));
  EXPECT_NE(win("kind: session, gap_ms: 1000"), win("kind: session, gap_ms: 2000"));
  EXPECT_EQ(win("kind: tumbling, size_ms: 1000, allowed_lateness_ms: 500"),
            win("kind: tumbling, size_ms: 1000"))
      << "lateness only changes when windows expire";
  EXPECT_NE(agg("t: {fn: max_by, field: type, by: value}"),
            agg("t: {fn: max_by, field: type, by: event_time_ms}"))
      << "by field";
  EXPECT_NE(type_of("  - {id: a, type: aggregate, aggregates: {n: {fn: count}}}\n", "a"),
            type_of("  - {id: a, type: window, kind: tumbling, size_ms: 10, "
                    "aggregates: {n: {fn: count}}}\n",
                    "a"));
}

TEST(StateType, OfTheReferencePipeline) {
  const auto p =
      keyflow::pipeline::load_plan(keyflow::test::source_path("config/pipelines/cdp.yaml"));
  EXPECT_EQ(state_type(op_of(*p, "dedup")), "dedup");
  EXPECT_EQ(state_type(op_of(*p, "aggregate")),
            "aggregate/global[count,sum:double,max:int64,last:string,last:string]");
  EXPECT_EQ(state_type(op_of(*p, "activate")), "filter/once_per_key");
  EXPECT_EQ(state_type(op_of(*p, "score")), "");
}

// --- inspecting checkpoints -----------------------------------------------------------------

/// A pipeline of every kind of state, each operator reading the source, run by the real
/// operators on a real state store; checkpoints of that store.
struct Checkpoints : ::testing::Test {
  temp_dir dir;
  std::shared_ptr<const plan> p = plan_of(event_pipeline(
      "  - {id: dd, type: dedup, field: event_id, ttl_ms: 86400000}\n"
      "  - {id: agg, type: aggregate, input: source, aggregates: {events: {fn: count}, "
      "revenue: {fn: sum, field: value}, mean: {fn: avg, field: value}, "
      "kind: {fn: last, field: type}, top: {fn: max_by, field: type, by: value}}}\n"
      "  - {id: win, type: window, kind: tumbling, size_ms: 1000, input: source, "
      "aggregates: {n: {fn: count}, hi: {fn: max, field: value}}}\n"
      "  - {id: once, type: filter, input: source, field: value, op: ge, value: '100', "
      "once_per_key: true}\n"
      "  - {id: sc, type: score, input: source, weights: {value: 1}}\n"));
  std::unique_ptr<state_store> store;
  std::map<std::string, std::unique_ptr<keyflow::ops::keyed_operator>> ops;
  std::map<std::string, record> last_agg; ///< the aggregate's latest output per key
  checkpoint_store checkpoints{dir.path("checkpoints")};

  void SetUp() override {
    store = state_store::open(dir.path("state"), p->column_families());
    keyflow::ops::op_env env;
    env.store = store.get();
    env.pipeline = "t";
    env.dead_letter_topic = "dlq";
    env.first_key_group = 0;
    env.last_key_group = static_cast<keyflow::key_group_t>(p->cfg.max_parallelism - 1);
    for (const auto& op : p->ops) {
      const auto& t = op.cfg->type;
      if (t == "aggregate" || t == "window")
        ops[op.cfg->id] = keyflow::ops::make_window_operator(op.window, env);
      else
        ops[op.cfg->id] = keyflow::ops::make_basic_operator(op, env);
    }
  }

  /// Runs `in` through every operator, then advances the window watermark to `wm`.
  void run(const std::vector<record>& in, int64_t wm = keyflow::no_watermark) {
    for (auto& [id, op] : ops) {
      auto batch = in;
      keyflow::ops::op_output out;
      op->process(batch, out);
      if (wm != keyflow::no_watermark)
        op->advance_watermark(wm, out);
      if (id == "agg")
        for (auto& r : out.records)
          last_agg[r.key] = r;
    }
  }

  /// Flushes every operator and writes checkpoint `id` (snapshot `name` if given).
  checkpoint_info checkpoint(uint64_t id, const std::string& name = {}) {
    for (auto& [_, op] : ops)
      op->flush_state();
    return checkpoints.create(store->db(), manifest_of(*p, id, name));
  }

  /// The aggregate's latest output for `key` as inspect_state renders it.
  json agg_output(const std::string& key) {
    json out = json::object();
    const auto& layout = op_of(*p, "agg").out;
    const auto& r = last_agg.at(key);
    for (size_t i = 0; i < layout.size(); ++i)
      out[layout.at(static_cast<int>(i)).name] = rendered(r.fields[i]);
    return out;
  }

  std::vector<record> first_batch() {
    return {rec(*p, "alice", 100, {{"event_id", s("e1")}, {"value", d(10)}, {"type", s("view")}}),
            rec(*p, "alice", 200, {{"event_id", s("e2")}, {"value", d(150)}, {"type", s("buy")}}),
            rec(*p, "alice", 300, {{"event_id", s("e2")}, {"value", d(1)}, {"type", s("dup")}}),
            rec(*p, "bob", 1500, {{"event_id", s("e1")}, {"value", d(2.5)}}),
            rec(*p, "carol", 700, {{"event_id", s("e9")}, {"value", d(7)}, {"type", s("x")}})};
  }
};

TEST_F(Checkpoints, InspectShowsEveryOperatorsValuesAsTheOperatorsOutputThem) {
  run(first_batch());
  const auto chk = checkpoint(1, "snap-1");
  const auto files = files_in(chk.dir);
  const auto answer = inspect_state(*p, chk, {});
  EXPECT_EQ(files_in(chk.dir), files) << "read-only: no file added or changed";
  EXPECT_EQ(checkpoints.verify(chk.dir), "");
  EXPECT_EQ(answer.at("snapshot"), "snap-1");
  EXPECT_EQ(answer.at("id"), 1);
  EXPECT_EQ(answer.at("pipeline"), "t");
  ASSERT_EQ(answer.at("operators").size(), 4u) << "the stateful operators: " << answer.dump();

  // The aggregate: each key's named outputs, equal to what the operator last emitted.
  const auto agg = op_answer(answer, "agg");
  EXPECT_EQ(agg.at("type"), "aggregate");
  EXPECT_EQ(agg.at("state_type"), state_type(op_of(*p, "agg")));
  EXPECT_EQ(agg.at("keys"), 3);
  const auto aggs = entries_of(answer, "agg");
  ASSERT_EQ(aggs.size(), 3u);
  for (const auto* key : {"alice", "bob", "carol"}) {
    EXPECT_EQ(aggs.at(key).at("value"), agg_output(key)) << key;
    EXPECT_EQ(aggs.at(key).at("key_group"), key_group_of(key, p->cfg.max_parallelism));
    EXPECT_FALSE(aggs.at(key).contains("expires_at_ms")) << "no TTL";
  }
  EXPECT_EQ(
      aggs.at("alice").at("value"),
      (json{
          {"events", 3}, {"revenue", 161.0}, {"mean", 161.0 / 3}, {"kind", "dup"}, {"top", "buy"}}))
      << "avg is finished, max_by names the record";
  EXPECT_EQ(aggs.at("bob").at("value").at("kind"), nullptr) << "absent: no value seen";
  EXPECT_TRUE(aggs.at("bob").at("value").at("events").is_number_integer());
  EXPECT_TRUE(aggs.at("bob").at("value").at("revenue").is_number_float());

  // The window operator: open windows per key, by start.
  const auto wins = entries_of(answer, "win");
  ASSERT_EQ(wins.size(), 3u);
  EXPECT_EQ(wins.at("alice").at("value"),
            json::parse(R"([{"start_ms": 0, "end_ms": 1000, "records": 3,
                             "values": {"n": 3, "hi": 150.0}}])"));
  EXPECT_EQ(wins.at("bob").at("value"),
            json::parse(R"([{"start_ms": 1000, "end_ms": 2000, "records": 1,
                             "values": {"n": 1, "hi": 2.5}}])"));

  // Dedup: one marker per (key, event id), with its expiry; the repeated e2 once.
  const auto dd = op_answer(answer, "dd");
  EXPECT_EQ(dd.at("keys"), 4);
  const auto marks = entries_of(answer, "dd");
  ASSERT_EQ(marks.size(), 4u);
  for (const auto* k : {"alice/e1", "alice/e2", "bob/e1", "carol/e9"}) {
    ASSERT_TRUE(marks.count(k)) << k;
    EXPECT_EQ(marks.at(k).at("value"), true);
    EXPECT_GT(marks.at(k).at("expires_at_ms").get<int64_t>(), keyflow::state::wall_clock_ms());
  }
  EXPECT_EQ(marks.at("alice/e2").at("key_group"), key_group_of("alice", p->cfg.max_parallelism))
      << "the record key's key group";

  // Once-per-key filter: only keys that passed.
  const auto once = entries_of(answer, "once");
  ASSERT_EQ(once.size(), 1u);
  EXPECT_EQ(once.at("alice").at("value"), true);
}

TEST_F(Checkpoints, InspectOneOperatorOneKeyAndLimits) {
  run(first_batch());
  const auto chk = checkpoint(1);
  EXPECT_EQ(inspect_state(*p, chk, {}).at("snapshot"), "chk-1");

  inspect_query q;
  q.operator_id = "agg";
  q.limit = 2;
  auto answer = inspect_state(*p, chk, q);
  ASSERT_EQ(answer.at("operators").size(), 1u);
  EXPECT_EQ(answer["operators"][0].at("keys"), 3) << "counts every key";
  EXPECT_EQ(answer["operators"][0].at("entries").size(), 2u) << "shows `limit`";

  // One key in every operator: present in some, empty entries in the others.
  q = {};
  q.key = "bob";
  answer = inspect_state(*p, chk, q);
  EXPECT_EQ(op_answer(answer, "agg").at("entries").size(), 1u);
  EXPECT_EQ(op_answer(answer, "agg")["entries"][0].at("value"), agg_output("bob"));
  EXPECT_EQ(op_answer(answer, "agg")["entries"][0].at("key_group"),
            key_group_of("bob", p->cfg.max_parallelism));
  EXPECT_EQ(op_answer(answer, "once").at("keys"), 0);
  EXPECT_TRUE(op_answer(answer, "once").at("entries").empty());
  // A dedup key shows each event id remembered for it.
  q.key = "alice";
  q.operator_id = "dd";
  answer = inspect_state(*p, chk, q);
  ASSERT_EQ(answer.at("operators").size(), 1u);
  EXPECT_EQ(answer["operators"][0].at("keys"), 2);
  EXPECT_EQ(entries_of(answer, "dd").count("alice/e2"), 1u);
  // A key that is a prefix of another is not that other key.
  q.key = "ali";
  q.operator_id.clear();
  EXPECT_TRUE(has(error_of<inspect_not_found>([&] { inspect_state(*p, chk, q); }),
                  "key 'ali' (key group " +
                      std::to_string(key_group_of("ali", p->cfg.max_parallelism)) +
                      ") has no state in any operator of snapshot 'chk-1'"));
  // A key absent from the one operator asked.
  q.key = "bob";
  q.operator_id = "once";
  EXPECT_TRUE(has(error_of<inspect_not_found>([&] { inspect_state(*p, chk, q); }), "key 'bob'"));
}

TEST_F(Checkpoints, UnknownOperatorsAndStateTypeMismatches) {
  run(first_batch());
  const auto chk = checkpoint(1);
  inspect_query q;
  q.operator_id = "nope";
  EXPECT_EQ(error_of<inspect_not_found>([&] { inspect_state(*p, chk, q); }),
            "unknown operator 'nope' in pipeline 't' (operators with state: dd, agg, win, once)");
  q.operator_id = "sc";
  EXPECT_EQ(error_of<inspect_not_found>([&] { inspect_state(*p, chk, q); }),
            "operator 'sc' (score) keeps no state in pipeline 't' (operators with state: dd, "
            "agg, win, once)");
  EXPECT_TRUE(has(error_of<inspect_not_found>([&] { diff_state(*p, chk, chk, "nope", 5); }),
                  "unknown operator 'nope'"));

  // The snapshot's aggregate has another state type than this pipeline's: not decoded.
  auto other = chk;
  for (auto& o : *other.manifest.mutable_operators())
    if (o.operator_id() == "agg")
      o.set_state_type("aggregate/global[count]");
  q.operator_id = "agg";
  const auto msg =
      error_of<keyflow::pipeline::state_type_mismatch>([&] { inspect_state(*p, other, q); });
  EXPECT_TRUE(has(msg, "operator 'agg'")) << msg;
  EXPECT_TRUE(has(msg, "aggregate/global[count]")) << msg;
  EXPECT_TRUE(has(msg, state_type(op_of(*p, "agg")))) << msg;
  q.operator_id = "dd";
  EXPECT_NO_THROW(inspect_state(*p, other, q)) << "other operators still read";
}

TEST_F(Checkpoints, ExpiredEntriesAreLeftOut) {
  // Dedup markers written on a clock long past: their TTL ran out.
  const auto old = plan_of(event_pipeline("  - {id: dd, type: dedup, field: event_id, "
                                          "ttl_ms: 1000}\n"));
  auto st = state_store::open(dir.path("old"), old->column_families());
  keyflow::ops::op_env env;
  env.store = st.get();
  env.now_ms = [] { return int64_t{5000}; };
  auto dd = keyflow::ops::make_basic_operator(old->ops[0], env);
  std::vector<record> in{rec(*old, "a", 1, {{"event_id", s("e1")}})};
  keyflow::ops::op_output out;
  dd->process(in, out);
  dd->flush_state();
  checkpoint_store cs{dir.path("old-checkpoints")};
  const auto chk = cs.create(st->db(), manifest_of(*old, 1));
  EXPECT_EQ(inspect_state(*old, chk, {}).at("operators")[0].at("keys"), 0);
}

TEST_F(Checkpoints, ACheckpointInPartsReadsEveryPart) {
  // Two slices, as two nodes would own them: key groups [0, 64) and [64, 128), each with
  // its own state store and part checkpoint; the job checkpoint lists the parts.
  const auto max_p = p->cfg.max_parallelism;
  std::vector<record> all;
  for (int i = 0; i < 40; ++i)
    all.push_back(rec(*p, "k" + std::to_string(i), 10 + i,
                      {{"event_id", s("e" + std::to_string(i))}, {"value", d(i)}}));
  keyflow::proto::CheckpointManifest job;
  job.set_id(7);
  job.set_pipeline("t");
  job.set_max_parallelism(max_p);
  for (uint32_t slice = 0; slice < 2; ++slice) {
    const uint32_t first = slice * max_p / 2, last = (slice + 1) * max_p / 2;
    auto st = state_store::open(dir.path("slice-" + std::to_string(slice)), p->column_families());
    keyflow::ops::op_env env;
    env.store = st.get();
    env.first_key_group = static_cast<keyflow::key_group_t>(first);
    env.last_key_group = static_cast<keyflow::key_group_t>(last - 1);
    auto agg = keyflow::ops::make_window_operator(op_of(*p, "agg").window, env);
    std::vector<record> mine;
    for (const auto& r : all)
      if (r.key_group >= first && r.key_group < last)
        mine.push_back(r);
    keyflow::ops::op_output out;
    agg->process(mine, out);
    agg->flush_state();
    auto m = manifest_of(*p, 7);
    for (auto& o : *m.mutable_operators()) {
      o.set_first_key_group(first);
      o.set_last_key_group(last);
    }
    checkpoint_store part_store{dir.path("slice-" + std::to_string(slice) + "-chk")};
    const auto part = part_store.create(st->db(), m);
    auto* pp = job.add_parts();
    pp->set_slice(slice);
    pp->set_dir(part.dir);
  }
  *job.mutable_operators() = manifest_of(*p, 7).operators();
  checkpoint_store job_store{dir.path("job")};
  const auto chk = job_store.commit_parts(job);
  ASSERT_TRUE(std::filesystem::is_directory(chk.dir));
  ASSERT_FALSE(std::filesystem::exists(std::filesystem::path{chk.dir} / "rocksdb"));

  inspect_query q;
  q.operator_id = "agg";
  q.limit = 1000;
  const auto answer = inspect_state(*p, chk, q);
  EXPECT_EQ(answer["operators"][0].at("keys"), 40);
  const auto entries = entries_of(answer, "agg");
  ASSERT_EQ(entries.size(), 40u);
  EXPECT_EQ(entries.at("k7").at("value").at("revenue"), 7.0);
  // In state-key order (key group, then key) across the parts.
  std::vector<std::pair<int, std::string>> order;
  for (const auto& e : answer["operators"][0]["entries"])
    order.emplace_back(e.at("key_group").get<int>(), e.at("key").get<std::string>());
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  EXPECT_GT(order.back().first, 63) << "keys of the second part";
  EXPECT_LT(order.front().first, 64) << "keys of the first part";
  // One key, found in the part that owns its key group.
  for (const auto* key : {"k3", "k31"}) {
    q.key = key;
    const auto one = inspect_state(*p, chk, q);
    ASSERT_EQ(one["operators"][0].at("entries").size(), 1u) << key;
    EXPECT_EQ(one["operators"][0]["entries"][0].at("key"), key);
  }
}

// --- diffs -----------------------------------------------------------------------------------

TEST_F(Checkpoints, DiffFindsAddedRemovedAndChangedKeys) {
  run({rec(*p, "a", 100, {{"event_id", s("1")}, {"value", d(1)}}),
       rec(*p, "b", 200, {{"event_id", s("2")}, {"value", d(2)}}),
       rec(*p, "c", 300, {{"event_id", s("3")}, {"value", d(3)}})});
  const auto one = checkpoint(1, "before");
  // b gets a record in the next window, d is new; the watermark closes window [0, 1000) of
  // a, b and c (no lateness), so the window operator forgets a and c and b's first window.
  run({rec(*p, "b", 1500, {{"event_id", s("4")}, {"value", d(40)}}),
       rec(*p, "d", 1600, {{"event_id", s("5")}, {"value", d(5)}})},
      1100);
  const auto two = checkpoint(2, "after");

  const auto diff = diff_state(*p, one, two, "", 10);
  EXPECT_EQ(diff.at("a"), "before");
  EXPECT_EQ(diff.at("b"), "after");
  ASSERT_EQ(diff.at("operators").size(), 4u);

  const auto agg = op_answer(diff, "agg");
  EXPECT_EQ(agg.at("added"), 1);
  EXPECT_EQ(agg.at("removed"), 0);
  EXPECT_EQ(agg.at("changed"), 1);
  EXPECT_EQ(agg.at("unchanged"), 2);
  ASSERT_EQ(agg["examples"]["added"].size(), 1u);
  EXPECT_EQ(agg["examples"]["added"][0].at("key"), "d");
  EXPECT_EQ(agg["examples"]["added"][0].at("a"), nullptr);
  EXPECT_EQ(agg["examples"]["added"][0].at("b"), agg_output("d"));
  ASSERT_EQ(agg["examples"]["changed"].size(), 1u);
  const auto& b = agg["examples"]["changed"][0];
  EXPECT_EQ(b.at("key"), "b");
  EXPECT_EQ(b.at("key_group"), key_group_of("b", p->cfg.max_parallelism));
  EXPECT_EQ(b.at("a").at("events"), 1);
  EXPECT_EQ(b.at("b").at("events"), 2);
  EXPECT_EQ(b.at("b").at("revenue"), 42.0);

  const auto win = op_answer(diff, "win");
  EXPECT_EQ(win.at("added"), 1) << win.dump();
  EXPECT_EQ(win.at("removed"), 2);
  EXPECT_EQ(win.at("changed"), 1);
  EXPECT_EQ(win.at("unchanged"), 0);
  std::vector<std::string> removed;
  for (const auto& e : win["examples"]["removed"]) {
    removed.push_back(e.at("key"));
    EXPECT_EQ(e.at("b"), nullptr);
    EXPECT_EQ(e.at("a")[0].at("start_ms"), 0);
  }
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(win["examples"]["changed"][0].at("b"),
            json::parse(R"([{"start_ms": 1000, "end_ms": 2000, "records": 1,
                             "values": {"n": 1, "hi": 40.0}}])"));

  const auto dd = op_answer(diff, "dd");
  EXPECT_EQ(dd.at("added"), 2);
  EXPECT_EQ(dd.at("unchanged"), 3);
  EXPECT_EQ(dd.at("changed"), 0);

  // One operator, no examples: counts only.
  const auto counts = diff_state(*p, one, two, "agg", 0);
  ASSERT_EQ(counts.at("operators").size(), 1u);
  EXPECT_EQ(counts["operators"][0].at("changed"), 1);
  EXPECT_TRUE(counts["operators"][0]["examples"]["changed"].empty());
  // A checkpoint against itself: nothing changed.
  const auto same = diff_state(*p, two, two, "agg", 10);
  EXPECT_EQ(same["operators"][0].at("unchanged"), 4);
  EXPECT_EQ(same["operators"][0].at("changed"), 0);
}

// --- deploy plans ----------------------------------------------------------------------------

const std::string v1_ops = "  - {id: dd, type: dedup, field: event_id, ttl_ms: 1000}\n"
                           "  - {id: profile, type: aggregate, aggregates: {n: {fn: count}}}\n"
                           "  - {id: sc, type: score, weights: {n: 1}}\n";

std::shared_ptr<const plan> version(int v, const std::string& ops = v1_ops,
                                    const std::string& source = "{topic: events}",
                                    const std::string& name = "t", const std::string& extra = {}) {
  return plan_of(event_pipeline(
      ops, {}, source, "{name: " + name + ", version: " + std::to_string(v) + extra + "}"));
}

const keyflow::pipeline::operator_change& change_of(const deploy_plan& d, const std::string& id) {
  for (const auto& c : d.operators)
    if (c.id == id)
      return c;
  throw std::runtime_error("no operator " + id + " in the plan");
}

TEST(DeployPlan, StartKeepUnchangedAndTheJsonAnswer) {
  const auto v1 = version(1);
  auto start = compare_plans(nullptr, *v1);
  EXPECT_EQ(start.action, deploy_action::start);
  EXPECT_TRUE(start.compatible);
  EXPECT_EQ(change_of(start, "dd").state, state_change::fresh);
  EXPECT_EQ(change_of(start, "profile").state, state_change::fresh);
  EXPECT_EQ(change_of(start, "sc").state, state_change::stateless);
  EXPECT_EQ(keyflow::pipeline::to_json(start),
            json::parse(R"({"pipeline": "t", "from_version": null, "to_version": 1,
               "action": "start", "compatible": true, "operators": [
               {"id": "dd", "type": "dedup", "state_type": "dedup", "state": "new"},
               {"id": "profile", "type": "aggregate", "state_type": "aggregate/global[count]",
                "state": "new"},
               {"id": "sc", "type": "score", "state": "stateless"}]})"));
  EXPECT_EQ(keyflow::pipeline::refusal(start), "");

  auto same = compare_plans(v1.get(), *version(1));
  EXPECT_EQ(same.action, deploy_action::unchanged);
  EXPECT_EQ(change_of(same, "profile").state, state_change::keep);
  EXPECT_EQ(change_of(same, "sc").state, state_change::stateless);

  // A new version with renamed outputs and another score: state carries over.
  auto v2 = compare_plans(
      v1.get(),
      *version(2, "  - {id: dd, type: dedup, field: event_id, ttl_ms: 5000}\n"
                  "  - {id: profile, type: aggregate, aggregates: {events: {fn: count}}}\n"
                  "  - {id: sc, type: score, bias: 1, weights: {events: 2}}\n"));
  EXPECT_EQ(v2.action, deploy_action::update);
  EXPECT_TRUE(v2.compatible);
  EXPECT_EQ(v2.from_version, 1u);
  EXPECT_EQ(v2.to_version, 2u);
  EXPECT_EQ(change_of(v2, "dd").state, state_change::keep);
  EXPECT_EQ(change_of(v2, "profile").state, state_change::keep);
  const auto j = keyflow::pipeline::to_json(v2);
  EXPECT_EQ(j.at("action"), "update");
  EXPECT_EQ(j.at("from_version"), 1);
  EXPECT_EQ(j["operators"][1].at("state"), "keep");
  // The same version number with another setting is still an update.
  EXPECT_EQ(compare_plans(v1.get(),
                          *version(1, "  - {id: dd, type: dedup, field: event_id, ttl_ms: 1000}\n"
                                      "  - {id: profile, type: aggregate, aggregates: {n: {fn: "
                                      "count}}}\n"
                                      "  - {id: sc, type: score, weights: {n: 3}}\n"))
                .action,
            deploy_action::update);
}

TEST(DeployPlan, NewDropIncompatibleAndRefusals) {
  const auto v1 = version(1);
  // profile changes its aggregates, dd is removed, once is new.
  auto d = compare_plans(
      v1.get(), *version(2, "  - {id: profile, type: aggregate, aggregates: {n: {fn: count}, "
                            "total: {fn: sum, field: value}}}\n"
                            "  - {id: once, type: filter, field: n, op: ge, value: '3', "
                            "once_per_key: true}\n"));
  EXPECT_FALSE(d.compatible);
  EXPECT_EQ(d.action, deploy_action::update);
  EXPECT_EQ(change_of(d, "profile").state, state_change::incompatible);
  EXPECT_EQ(change_of(d, "profile").from_state_type, "aggregate/global[count]");
  EXPECT_EQ(change_of(d, "profile").state_type, "aggregate/global[count,sum:double]");
  EXPECT_EQ(change_of(d, "once").state, state_change::fresh);
  EXPECT_EQ(change_of(d, "dd").state, state_change::drop);
  EXPECT_EQ(change_of(d, "dd").type, "dedup");
  EXPECT_EQ(d.operators.back().id, "dd") << "dropped operators come last";
  EXPECT_EQ(keyflow::pipeline::refusal(d),
            "operator 'profile': state type changes from aggregate/global[count] to "
            "aggregate/global[count,sum:double]; operator 'dd' (dedup) is removed: its state "
            "would be dropped; deploy with --allow-drop-state to drop that state (operators "
            "whose state type changes start empty)");
  const auto j = keyflow::pipeline::to_json(d);
  EXPECT_EQ(j.at("compatible"), false);
  EXPECT_EQ(j["operators"].back().at("state"), "drop");
  EXPECT_EQ(j["operators"].back().at("from_state_type"), "dedup");

  // Another operator type under the same id.
  auto swap = compare_plans(
      v1.get(), *version(2, "  - {id: dd, type: dedup, field: event_id, ttl_ms: 1000}\n"
                            "  - {id: profile, type: dedup, field: event_id, ttl_ms: 1000}\n"));
  EXPECT_EQ(change_of(swap, "profile").state, state_change::incompatible);
  EXPECT_EQ(change_of(swap, "dd").state, state_change::keep);
}

TEST(DeployPlan, StatelessDroppedOperatorsAndRefusalWording) {
  const auto v1 = version(1);
  // Dropping a stateless operator drops nothing.
  auto d = compare_plans(
      v1.get(), *version(2, "  - {id: dd, type: dedup, field: event_id, ttl_ms: 1000}\n"
                            "  - {id: profile, type: aggregate, aggregates: {n: {fn: count}}}\n"));
  EXPECT_TRUE(d.compatible);
  EXPECT_THROW(change_of(d, "sc"), std::runtime_error) << "a stateless operator is just gone";

  auto one = compare_plans(
      v1.get(), *version(2, "  - {id: dd, type: dedup, field: event_id, ttl_ms: 1000}\n"
                            "  - {id: profile, type: dedup, field: event_id, ttl_ms: 1000}\n"));
  EXPECT_EQ(keyflow::pipeline::refusal(one),
            "operator 'profile': state type changes from aggregate/global[count] to dedup; "
            "deploy with --allow-drop-state to start it empty");
  auto gone = compare_plans(
      v1.get(), *version(2, "  - {id: profile, type: aggregate, aggregates: {n: {fn: count}}}\n"));
  EXPECT_EQ(keyflow::pipeline::refusal(gone),
            "operator 'dd' (dedup) is removed: its state would be dropped; deploy with "
            "--allow-drop-state to drop its state");
  // An operator that stops keeping state loses it.
  const auto once = version(1, "  - {id: f, type: filter, field: value, op: ge, value: '1', "
                               "once_per_key: true}\n");
  auto plain = compare_plans(
      once.get(), *version(2, "  - {id: f, type: filter, field: value, op: ge, value: '1'}\n"));
  EXPECT_EQ(change_of(plain, "f").state, state_change::drop);
  EXPECT_EQ(change_of(plain, "f").from_state_type, "filter/once_per_key");
  EXPECT_FALSE(plain.compatible);
}

TEST(DeployPlan, StateKeyedByAnotherFieldIsIncompatible) {
  const auto by_customer =
      version(1, "  - {id: agg, type: aggregate, aggregates: {n: {fn: count}}}\n");
  auto d =
      compare_plans(by_customer.get(),
                    *version(2, "  - {id: k, type: key_by, key: type}\n"
                                "  - {id: agg, type: aggregate, aggregates: {n: {fn: count}}}\n"));
  EXPECT_EQ(change_of(d, "agg").state, state_change::incompatible);
  EXPECT_EQ(change_of(d, "k").state, state_change::stateless);
  EXPECT_TRUE(has(keyflow::pipeline::refusal(d), "keyed by 'customer_id', the new version keys "
                                                 "it by 'type'"))
      << keyflow::pipeline::refusal(d);
}

TEST(DeployPlan, WhatCannotCarryStateIsAConfigError) {
  const auto v1 = version(1);
  EXPECT_TRUE(has(config_error_of([&] {
                    compare_plans(v1.get(), *version(2, v1_ops, "{topic: events}", "u"));
                  }),
                  "pipeline.name: 'u' differs from the running pipeline's 't'"));
  EXPECT_TRUE(has(config_error_of([&] {
                    compare_plans(v1.get(), *version(2, v1_ops, "{topic: events}", "t",
                                                     ", max_parallelism: 256"));
                  }),
                  "pipeline.max_parallelism: 256 differs from the running pipeline's 128"));
  EXPECT_TRUE(
      has(config_error_of([&] { compare_plans(v1.get(), *version(2, v1_ops, "{topic: clicks}")); }),
          "source.topic: 'clicks' differs from the running pipeline's 'events'"));
  EXPECT_NO_THROW(compare_plans(nullptr, *version(2, v1_ops, "{topic: clicks}", "u")))
      << "nothing runs: nothing to carry";
}

/// A manifest's operator states: {operator id, state type} each.
std::vector<keyflow::proto::OperatorState>
stored_states(const std::vector<std::pair<std::string, std::string>>& ops) {
  std::vector<keyflow::proto::OperatorState> out(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    out[i].set_operator_id(ops[i].first);
    out[i].set_state_type(ops[i].second);
  }
  return out;
}

TEST(DeployPlan, AgainstASnapshotsStoredStateTypes) {
  // A snapshot of another version: its manifest lists dd and an older profile and a dropped op.
  auto stored = stored_states({{"dd", "dedup"},
                               {"profile", "aggregate/global[count,sum:double]"},
                               {"old", "window/tumbling(size=1000)[count]"}});
  const auto v1 = version(1);
  auto d = compare_plans(nullptr, *v1, &stored);
  EXPECT_EQ(d.action, deploy_action::start);
  EXPECT_EQ(change_of(d, "dd").state, state_change::keep);
  EXPECT_EQ(change_of(d, "profile").state, state_change::incompatible);
  EXPECT_EQ(change_of(d, "old").state, state_change::drop);
  EXPECT_EQ(change_of(d, "old").type, "window");
  EXPECT_FALSE(d.compatible);
  // With the running pipeline too, the snapshot's types count, not the running ones.
  auto r = compare_plans(v1.get(), *v1, &stored);
  EXPECT_EQ(change_of(r, "profile").state, state_change::incompatible);
  EXPECT_EQ(change_of(r, "old").state, state_change::drop);
  stored.pop_back();
  stored[1].set_state_type("aggregate/global[count]");
  auto ok = compare_plans(nullptr, *v1, &stored);
  EXPECT_TRUE(ok.compatible);
  EXPECT_EQ(change_of(ok, "profile").state, state_change::keep);
}

TEST(DeployPlan, ManifestsOfOlderVersionsNameOnlyTheStateKind) {
  // Written before state types carried their signature: "aggregate", "dedup".
  auto stored = stored_states({{"dd", "dedup"}, {"profile", "aggregate"}});
  auto d = compare_plans(nullptr, *version(1), &stored);
  EXPECT_TRUE(d.compatible);
  EXPECT_EQ(change_of(d, "dd").state, state_change::keep);
  EXPECT_EQ(change_of(d, "profile").state, state_change::keep);
  EXPECT_NE(change_of(d, "profile").reason.find("older version"), std::string::npos);
  // Another kind is still another state.
  stored[1].set_state_type("window");
  auto w = compare_plans(nullptr, *version(1), &stored);
  EXPECT_FALSE(w.compatible);
  EXPECT_EQ(change_of(w, "profile").state, state_change::incompatible);
}

} // namespace
