/// \file
/// Unit tests of the small operators (operators/basic.hpp) on resolved plans: validate_record
/// (required fields, non-finite numbers), filter_matches (every comparison over int64, double,
/// string and absent values; mod_eq), and the operators make_basic_operator builds: map,
/// dedup (keyed state with a TTL on a fake clock), filter once_per_key (across a state flush
/// and a restore), score and key_by. Also the dead-letter envelope.

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/key_group.hpp"
#include "core/record.hpp"
#include "operators/basic.hpp"
#include "operators/dead_letter.hpp"
#include "pipeline/plan.hpp"
#include "pipeline_util.hpp"
#include "proto/dead_letter.pb.h"
#include "state/state_store.hpp"
#include "test_util.hpp"

namespace {

using keyflow::ec;
using keyflow::record;
using keyflow::value;
using keyflow::ops::op_env;
using keyflow::ops::op_output;
using keyflow::pipeline::plan;
using keyflow::test::event_pipeline;
using keyflow::test::plan_of;
using keyflow::test::temp_dir;

using values = std::vector<value>;

/// An int64 value.
value i(int64_t x) {
  return value::of(x);
}
/// A double value.
value d(double x) {
  return value::of(x);
}
/// A string value.
value s(std::string x) {
  return value::of(std::move(x));
}
/// An absent value.
const value none{};

/// A record of `key` with `fields` (in the layout of the operator's input).
record rec(const std::string& key, values fields, int64_t time = 1000) {
  record r;
  r.key = key;
  r.key_group = keyflow::key_group_of(key, 128);
  r.event_time_ms = time;
  r.fields = std::move(fields);
  return r;
}

/// Keys of records, in order.
std::vector<std::string> keys(const std::vector<record>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs)
    out.push_back(r.key);
  return out;
}

/// Runs `op` over `in`; returns what it emitted.
std::vector<record> run(keyflow::ops::keyed_operator& op, std::vector<record> in) {
  op_output out;
  op.process(in, out);
  EXPECT_TRUE(out.dead_letters.empty());
  return std::move(out.records);
}

// --- validate ------------------------------------------------------------------------------

// The source layout of these plans is customer_id, then the fields in order of use, then
// event_time_ms.
/// A validate operator requiring event_id, value and type (the plan is built once).
const keyflow::pipeline::op_plan& validate_op() {
  static const auto p = plan_of(
      event_pipeline("  - {id: check, type: validate, required: [event_id, value, type]}\n"));
  return p->ops[0];
}

TEST(Validate, AcceptsCompleteRecords) {
  const auto& op = validate_op();
  ASSERT_EQ(op.required_slots, (std::vector<int>{1, 2, 3}));
  keyflow::ops::rejection why;
  EXPECT_TRUE(
      keyflow::ops::validate_record(op, rec("c", {s("c"), s("e-1"), d(2.5), s("buy"), i(1)}), why));
  EXPECT_EQ(why.code, ec::none);
  // Only required fields must be there.
  EXPECT_TRUE(keyflow::ops::validate_record(op, rec("c", {none, s("e"), d(0), s("t"), none}), why));
}

TEST(Validate, RejectsEachMissingOrEmptyRequiredFieldNamingIt) {
  const auto& op = validate_op();
  const values good = {s("c"), s("e-1"), d(2.5), s("buy"), i(1)};
  const std::vector<std::string> names = {"event_id", "value", "type"};
  for (size_t k = 0; k < names.size(); ++k) {
    for (const value& bad : {none, s("")}) {
      if (k == 1 && bad.present())
        continue; // an empty string is only "missing" for strings
      auto f = good;
      f[k + 1] = bad;
      keyflow::ops::rejection why;
      EXPECT_FALSE(keyflow::ops::validate_record(op, rec("c", f), why)) << names[k];
      EXPECT_EQ(why.code, ec::missing_field) << names[k];
      EXPECT_EQ(why.message, "required field '" + names[k] + "' is missing or empty");
    }
  }
}

TEST(Validate, RejectsNonFiniteNumbersEvenIfNotRequired) {
  const auto p = plan_of(event_pipeline("  - {id: v, type: validate, required: [event_id]}\n"
                                        "  - {id: f, type: filter, field: value, op: ge, value: "
                                        "'0'}\n"));
  const auto& op = p->ops[0];
  for (double bad :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity()}) {
    keyflow::ops::rejection why;
    EXPECT_FALSE(keyflow::ops::validate_record(op, rec("c", {s("c"), s("e"), d(bad), i(5)}), why));
    EXPECT_EQ(why.code, ec::invalid_field);
    EXPECT_EQ(why.message, "field 'value' is not a finite number");
  }
}

// --- filter --------------------------------------------------------------------------------

/// A plan of one filter `field op literal` (mod_eq with modulus 7).
std::shared_ptr<const plan> filter_plan(const std::string& field, const std::string& op,
                                        const std::string& literal) {
  const std::string modulus = op == "mod_eq" ? ", modulus: 7" : "";
  return plan_of(event_pipeline("  - {id: f, type: filter, field: " + field + ", op: " + op +
                                modulus + ", value: '" + literal + "'}\n"));
}

/// filter_matches over a record whose field has `v`.
bool matches(const plan& p, const value& v) {
  auto r = rec("c", values(p.source_layout.size()));
  r.fields[static_cast<size_t>(p.ops[0].filter.slot)] = v;
  return keyflow::ops::filter_matches(p.ops[0], r);
}

TEST(Filter, ComparesIntegers) {
  struct row {
    const char* op;
    bool lt, eq, gt; // result for a value below, equal to and above the literal
  };
  for (const row& c : {row{"eq", false, true, false}, row{"ne", true, false, true},
                       row{"lt", true, false, false}, row{"le", true, true, false},
                       row{"gt", false, false, true}, row{"ge", false, true, true}}) {
    SCOPED_TRACE(c.op);
    const auto p = filter_plan("event_time_ms", c.op, "100");
    EXPECT_EQ(matches(*p, i(99)), c.lt);
    EXPECT_EQ(matches(*p, i(100)), c.eq);
    EXPECT_EQ(matches(*p, i(101)), c.gt);
    // Exact beyond 2^53, where doubles would round both sides to the same number.
    const auto big = filter_plan("event_time_ms", c.op, "9007199254740993");
    EXPECT_EQ(matches(*big, i(9007199254740992)), c.lt);
    EXPECT_EQ(matches(*big, i(9007199254740993)), c.eq);
    // An absent field only passes `ne`.
    EXPECT_EQ(matches(*p, none), std::string(c.op) == "ne");
  }
}

TEST(Filter, ComparesDoubles) {
  for (const char* op : {"eq", "ne", "lt", "le", "gt", "ge"}) {
    SCOPED_TRACE(op);
    const auto p = filter_plan("value", op, "0.5");
    const std::string o = op;
    EXPECT_EQ(matches(*p, d(0.25)), o == "ne" || o == "lt" || o == "le");
    EXPECT_EQ(matches(*p, d(0.5)), o == "eq" || o == "le" || o == "ge");
    EXPECT_EQ(matches(*p, d(0.75)), o == "ne" || o == "gt" || o == "ge");
    EXPECT_EQ(matches(*p, d(std::nan(""))), o == "ne") << "NaN compares unequal to everything";
    EXPECT_EQ(matches(*p, none), o == "ne");
  }
}

TEST(Filter, ComparesStringsForEquality) {
  const auto eq = filter_plan("type", "eq", "buy");
  const auto ne = filter_plan("type", "ne", "buy");
  EXPECT_TRUE(matches(*eq, s("buy")));
  EXPECT_FALSE(matches(*eq, s("buyer")));
  EXPECT_FALSE(matches(*eq, s("")));
  EXPECT_FALSE(matches(*eq, none));
  EXPECT_FALSE(matches(*ne, s("buy")));
  EXPECT_TRUE(matches(*ne, s("sell")));
  EXPECT_TRUE(matches(*ne, none));
  const auto empty = filter_plan("type", "eq", "");
  EXPECT_TRUE(matches(*empty, s("")));
  EXPECT_FALSE(matches(*empty, none)) << "an absent string is not the empty string";
}

TEST(Filter, ModEq) {
  const auto p = filter_plan("event_time_ms", "mod_eq", "3");
  EXPECT_EQ(p->ops[0].filter.modulus, 7);
  EXPECT_TRUE(matches(*p, i(3)));
  EXPECT_TRUE(matches(*p, i(10)));
  EXPECT_TRUE(matches(*p, i(7000000003)));
  EXPECT_FALSE(matches(*p, i(4)));
  EXPECT_FALSE(matches(*p, i(0)));
  EXPECT_FALSE(matches(*p, none));
  EXPECT_FALSE(matches(*p, d(3))) << "only integers";
  const auto zero = filter_plan("event_time_ms", "mod_eq", "0");
  EXPECT_TRUE(matches(*zero, i(0)));
  EXPECT_TRUE(matches(*zero, i(49)));
  EXPECT_FALSE(matches(*zero, i(50)));
}

// --- basic operators -----------------------------------------------------------------------

/// A state store with the column families of a plan.
struct store_fixture : ::testing::Test {
  temp_dir dir;
  std::unique_ptr<keyflow::state::state_store> store;
  int64_t now = 1'000'000; ///< the operators' processing-time clock (ms)

  /// Opens (or reopens) the store with the plan's column families.
  void open(const plan& p) {
    store.reset();
    store = keyflow::state::state_store::open(dir.path(), p.column_families());
  }
  /// The environment of a partition actor owning every key group, on the fake clock.
  op_env env() {
    op_env e;
    e.store = store.get();
    e.pipeline = "t";
    e.dead_letter_topic = "dlq";
    e.last_key_group = 127;
    e.now_ms = [this] { return now; };
    return e;
  }
};

using BasicOperators = store_fixture;

TEST_F(BasicOperators, MapComputesDoubles) {
  const auto p = plan_of(
      event_pipeline("  - {id: m, type: map, set: {eur: {field: value, multiply: 0.5, add: 1}, "
                     "ms: {field: event_time_ms}}}\n"));
  auto op = keyflow::ops::make_basic_operator(p->ops[0], {});
  EXPECT_EQ(op->id(), "m");
  EXPECT_TRUE(op->column_families().empty());
  auto out = run(*op, {rec("a", {s("a"), d(3), i(7)}), rec("b", {s("b"), none, i(8)})});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].fields, (values{s("a"), d(3), i(7), d(2.5), d(7)}));
  EXPECT_EQ(out[1].fields, (values{s("b"), none, i(8), none, d(8)})) << "absent in, absent out";
}

TEST_F(BasicOperators, ScoreIsTheLogisticFunction) {
  const auto p = plan_of(event_pipeline(
      "  - {id: sc, type: score, bias: -6, weights: {value: 0.04, event_time_ms: 0.0001}}\n"));
  auto op = keyflow::ops::make_basic_operator(p->ops[0], {});
  auto out = run(*op, {rec("a", {s("a"), d(10), i(1000)}), rec("b", {s("b"), none, i(0)}),
                       rec("c", {s("c"), d(150), i(0)})});
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].fields.size(), 4u);
  // z = -6 + 0.4 + 0.1 = -5.5
  EXPECT_NEAR(out[0].fields[3].d, 0.004070137715896128, 1e-15);
  EXPECT_EQ(out[1].fields[3], d(1.0 / (1.0 + std::exp(6.0)))) << "absent features count 0";
  EXPECT_NEAR(out[2].fields[3].d, 0.5, 1e-12) << "z = 0";
}

TEST_F(BasicOperators, KeyByRekeysByTheFieldsText) {
  const auto p = plan_of(event_pipeline("  - {id: k, type: key_by, key: event_time_ms}\n"
                                        "  - {id: k2, type: key_by, key: value}\n"));
  auto k = keyflow::ops::make_basic_operator(p->ops[0], {});
  auto k2 = keyflow::ops::make_basic_operator(p->ops[1], {});
  auto out = run(*k, {rec("a", {s("a"), i(-42), d(0.5)})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].key, "-42");
  EXPECT_EQ(out[0].fields, (values{s("a"), i(-42), d(0.5)}));
  out = run(*k2, std::move(out));
  EXPECT_EQ(out[0].key, "0.5");
}

TEST_F(BasicOperators, DedupDropsRepeatsWithinTheTtl) {
  const auto p =
      plan_of(event_pipeline("  - {id: dd, type: dedup, field: event_id, ttl_ms: 1000}\n"));
  open(*p);
  auto op = keyflow::ops::make_basic_operator(p->ops[0], env());
  EXPECT_EQ(op->column_families(), std::vector<std::string>{"dd"});
  auto out = run(*op, {rec("a", {s("a"), s("e1"), i(1)}), rec("a", {s("a"), s("e2"), i(2)}),
                       rec("a", {s("a"), s("e1"), i(3)}), rec("b", {s("b"), s("e1"), i(4)}),
                       rec("a", {s("a"), none, i(5)}), rec("a", {s("a"), none, i(6)})});
  // The id is per key ("b"'s e1 is another event); records without an id always pass.
  EXPECT_EQ(keys(out), (std::vector<std::string>{"a", "a", "b", "a", "a"}));
  EXPECT_EQ(op->duplicates(), 1u);
  EXPECT_EQ(op->state_size(), 3u);
  // An event id is remembered for ttl_ms after it was first seen.
  now += 999;
  EXPECT_TRUE(run(*op, {rec("a", {s("a"), s("e1"), i(7)})}).empty());
  EXPECT_EQ(op->duplicates(), 2u);
  now += 1; // e1 and e2 are forgotten, b's e1 too
  auto again = run(*op, {rec("a", {s("a"), s("e1"), i(8)}), rec("a", {s("a"), s("e1"), i(9)}),
                         rec("a", {s("a"), s("e2"), i(10)})});
  ASSERT_EQ(again.size(), 2u) << "state dropped after the TTL";
  EXPECT_EQ(again[0].fields[2], i(8));
  EXPECT_EQ(again[1].fields[1], s("e2"));
  EXPECT_EQ(op->duplicates(), 3u) << "the second e1 is a duplicate of the first again";
  now += 999;
  EXPECT_TRUE(run(*op, {rec("a", {s("a"), s("e1"), i(11)})}).empty());
  EXPECT_EQ(run(*op, {rec("b", {s("b"), s("e1"), i(12)})}).size(), 1u);
}

TEST_F(BasicOperators, DedupStateSurvivesFlushAndRestore) {
  const auto p =
      plan_of(event_pipeline("  - {id: dd, type: dedup, field: event_id, ttl_ms: 60000}\n"));
  open(*p);
  {
    auto op = keyflow::ops::make_basic_operator(p->ops[0], env());
    EXPECT_EQ(
        run(*op, {rec("a", {s("a"), s("e1"), i(1)}), rec("b", {s("b"), s("e9"), i(2)})}).size(),
        2u);
    EXPECT_EQ(op->flush_state(), 2u);
    EXPECT_EQ(op->flush_state(), 0u);
  }
  open(*p);
  auto op = keyflow::ops::make_basic_operator(p->ops[0], env());
  EXPECT_EQ(op->state_size(), 0u);
  auto out = run(*op, {rec("a", {s("a"), s("e1"), i(3)}), rec("b", {s("b"), s("e9"), i(4)}),
                       rec("b", {s("b"), s("e1"), i(5)})});
  EXPECT_EQ(keys(out), std::vector<std::string>{"b"});
  EXPECT_EQ(op->duplicates(), 2u);
  now += 60000;
  EXPECT_EQ(run(*op, {rec("a", {s("a"), s("e1"), i(6)})}).size(), 1u);
}

TEST_F(BasicOperators, FilterOncePerKeyAcrossFlushAndRestore) {
  const auto p = plan_of(event_pipeline(
      "  - {id: once, type: filter, field: value, op: ge, value: '0.6', once_per_key: true}\n"));
  open(*p);
  ASSERT_EQ(p->column_families(), std::vector<std::string>{"once"});
  {
    auto op = keyflow::ops::make_basic_operator(p->ops[0], env());
    EXPECT_EQ(op->column_families(), std::vector<std::string>{"once"});
    auto out = run(*op, {rec("a", {s("a"), d(0.5), i(1)}), rec("a", {s("a"), d(0.7), i(2)}),
                         rec("a", {s("a"), d(0.9), i(3)}), rec("b", {s("b"), d(0.1), i(4)})});
    ASSERT_EQ(out.size(), 1u) << "each key passes once";
    EXPECT_EQ(out[0].event_time_ms, 1000);
    EXPECT_EQ(out[0].fields[1], d(0.7));
    EXPECT_EQ(op->state_size(), 1u) << "keys that never matched are not remembered";
    EXPECT_EQ(op->flush_state(), 1u);
    out = run(*op, {rec("b", {s("b"), d(0.6), i(5)}), rec("b", {s("b"), d(0.8), i(6)})});
    EXPECT_EQ(keys(out), std::vector<std::string>{"b"});
    op->flush_state();
  }
  open(*p); // a restart on the same state: neither key passes again
  auto op = keyflow::ops::make_basic_operator(p->ops[0], env());
  auto out = run(*op, {rec("a", {s("a"), d(1), i(7)}), rec("b", {s("b"), d(1), i(8)}),
                       rec("c", {s("c"), d(1), i(9)})});
  EXPECT_EQ(keys(out), std::vector<std::string>{"c"});
}

TEST_F(BasicOperators, StatefulOperatorsNeedTheirColumnFamily) {
  const auto p = plan_of(
      event_pipeline("  - {id: dd, type: dedup, field: event_id, ttl_ms: 1000}\n"
                     "  - {id: o, type: filter, field: value, value: '1', once_per_key: true}\n"
                     "  - {id: a, type: aggregate, aggregates: {n: {fn: count}}}\n"));
  store = keyflow::state::state_store::open(dir.path(), {"other"});
  EXPECT_THROW(keyflow::ops::make_basic_operator(p->ops[0], env()), std::runtime_error);
  EXPECT_THROW(keyflow::ops::make_basic_operator(p->ops[1], env()), std::runtime_error);
  EXPECT_THROW(keyflow::ops::make_basic_operator(p->ops[2], env()), std::invalid_argument)
      << "aggregates are window operators";
}

// --- dead letters --------------------------------------------------------------------------

TEST(DeadLetter, EnvelopeRoundTripsWithProvenance) {
  const std::string value("\x00\xff raw \x80 bytes", 14);
  const std::string key("c-\x00"
                        "1",
                        4);
  keyflow::ops::provenance from{"events", 3, 123456789012, 1767225600999};
  keyflow::ops::rejection why{ec::missing_field, "required field 'event_id' is missing or empty"};
  const auto now_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const auto before = now_ms();
  const auto bytes = keyflow::ops::make_dead_letter(key, value, from, "validate", why, "cdp", 7, 2);
  const auto after = now_ms();
  keyflow::proto::DeadLetter dl;
  ASSERT_TRUE(dl.ParseFromString(bytes));
  EXPECT_EQ(dl.original_value(), value);
  EXPECT_EQ(dl.original_key(), key);
  EXPECT_EQ(dl.source_topic(), "events");
  EXPECT_EQ(dl.source_partition(), 3);
  EXPECT_EQ(dl.source_offset(), 123456789012);
  EXPECT_EQ(dl.record_timestamp_ms(), 1767225600999);
  EXPECT_EQ(dl.operator_id(), "validate");
  EXPECT_EQ(dl.error_code(), "missing_field");
  EXPECT_EQ(dl.error_message(), why.message);
  EXPECT_EQ(dl.pipeline(), "cdp");
  EXPECT_EQ(dl.pipeline_version(), 7u);
  EXPECT_EQ(dl.attempts(), 2u);
  EXPECT_GE(dl.dead_lettered_at_ms(), before);
  EXPECT_LE(dl.dead_lettered_at_ms(), after);
}

} // namespace
