/// \file
/// Unit tests of deploy-time resolution (pipeline/plan.hpp): field names resolved against
/// the schema with errors naming the operator, the field, the fields available and the
/// schema's explanation; numeric and integer requirements; the layout on every edge through
/// map, enrich, score, aggregate and window; stages cut at key_by; which operators run in
/// the sources; keep_raw; column families; schema files relative to the pipeline file and
/// schema errors.

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "pipeline/plan.hpp"
#include "pipeline_util.hpp"
#include "test_util.hpp"

namespace {

using keyflow::layout;
using keyflow::value;
using keyflow::value_type;
using keyflow::pipeline::plan;
using keyflow::test::config_error_of;
using keyflow::test::event_pipeline;
using keyflow::test::plan_of;
using keyflow::test::temp_dir;
using keyflow::test::write_file;

/// "name:type, ..." of a layout, for comparisons.
std::string describe(const layout& l) {
  std::string out;
  for (const auto& f : l.fields())
    out += (out.empty() ? "" : ", ") + f.name + ":" + std::string(keyflow::type_name(f.type));
  return out;
}

/// Ids of the operators the plan runs in the sources.
std::vector<std::string> source_ops(const plan& p) {
  std::vector<std::string> out;
  for (const auto* op : p.source_ops())
    out.push_back(op->cfg->id);
  return out;
}

/// The config_error message of resolving `yaml`.
std::string plan_error(const std::string& yaml) {
  return config_error_of([&] { plan_of(yaml); });
}

constexpr const char* event_fields =
    "(fields: event_id, customer_id, event_time_ms, type, value, attributes)";

// --- field names -------------------------------------------------------------------------

TEST(Plan, UnknownFieldNamesOperatorFieldsThereAndTheSchemasExplanation) {
  const auto msg = plan_error(event_pipeline("  - {id: v, type: validate, required: [event_id]}\n"
                                             "  - {id: f, type: filter, field: valu, op: gt, "
                                             "value: '1'}\n"));
  EXPECT_EQ(msg, "<string>:7:34: operators[1].field: unknown field 'valu' in the input of 'f' "
                 "(fields there: customer_id, event_id, event_time_ms); unknown field 'valu' in "
                 "keyflow.proto.Event: 'keyflow.proto.Event' has no field 'valu' " +
                     std::string(event_fields));
}

TEST(Plan, UnknownNestedFieldNamesTheInnerMessage) {
  const auto yaml = R"(pipeline: {name: q}
schema: {proto: )" + keyflow::test::source_path("config/proto/nexmark.proto") +
                    R"(, message: keyflow.nexmark.Event}
source: {topic: nexmark, key: bid.auction}
dead_letters: {topic: dlq}
operators:
  - {id: m, type: map, set: {eur: {field: bid.prise, multiply: 0.9}}}
)";
  const auto msg = plan_error(yaml);
  EXPECT_EQ(msg, "<string>:6:43: operators[0].set.eur.field: unknown field 'bid.prise' in the "
                 "input of 'm' (fields there: bid.auction, event_time_ms); unknown field "
                 "'bid.prise' in keyflow.nexmark.Event: 'keyflow.nexmark.Bid' has no field 'prise' "
                 "(fields: auction, bidder, price, channel, url, date_time, extra)");
}

TEST(Plan, FieldOfALaterOperatorIsUnknownWithoutSchemaExplanation) {
  // `n` is produced by the aggregate, after the score that reads it.
  const auto msg =
      plan_error(event_pipeline("  - {id: s, type: score, weights: {n: 1}}\n"
                                "  - {id: a, type: aggregate, aggregates: {n: {fn: count}}}\n"));
  EXPECT_EQ(msg, "<string>:6:36: operators[0].weights.n: unknown field 'n' in the input of 's' "
                 "(fields there: customer_id, event_time_ms)");
}

TEST(Plan, UnknownSourceKeyAndSinkFields) {
  auto msg = plan_error(event_pipeline("  - {id: v, type: validate}\n", {},
                                       "{topic: events, "
                                       "key: cust}"));
  EXPECT_EQ(msg, "<string>:3:30: source.key: unknown field 'cust' in the input of 'source' "
                 "(fields there: event_time_ms); unknown field 'cust' in keyflow.proto.Event: "
                 "'keyflow.proto.Event' has no field 'cust' " +
                     std::string(event_fields));
  msg = plan_error(event_pipeline("  - {id: a, type: aggregate, aggregates: {n: {fn: count}}}\n",
                                  "  - {id: out, type: kafka, from: a, topic: o, fields: [n, "
                                  "customer_id]}\n"));
  EXPECT_EQ(msg, "<string>:8:59: sinks[0].fields[1]: unknown field 'customer_id' in the input of "
                 "'out' (fields there: n)");
  msg = plan_error(
      event_pipeline("  - {id: a, type: aggregate, aggregates: {n: {fn: count}}}\n",
                     "  - {id: p, type: redis, from: a, key_prefix: 'p:', key_fields: [day]}\n"));
  EXPECT_EQ(msg.rfind("<string>:8:66: sinks[0].key_fields[0]: unknown field 'day' in the input of "
                      "'p' (fields there: n); unknown field 'day' in keyflow.proto.Event",
                      0),
            0u)
      << msg;
}

TEST(Plan, FieldsThatMustBeNumbers) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"  - {id: m, type: map, set: {x: {field: type}}}\n",
       "<string>:6:41: operators[0].set.x.field: field 'type' is a string; map needs a number"},
      {"  - {id: s, type: score, weights: {type: 1}}\n",
       "<string>:6:36: operators[0].weights.type: field 'type' is a string; a score feature "
       "needs a number"},
      {"  - {id: a, type: aggregate, aggregates: {x: {fn: sum, field: type}}}\n",
       "<string>:6:63: operators[0].aggregates.x.field: field 'type' is a string; sum needs a "
       "number"},
      {"  - {id: a, type: aggregate, aggregates: {x: {fn: avg, field: event_id}}}\n",
       "<string>:6:63: operators[0].aggregates.x.field: field 'event_id' is a string; avg needs "
       "a number"},
      {"  - {id: a, type: aggregate, aggregates: {x: {fn: max_by, field: value, by: type}}}\n",
       "<string>:6:77: operators[0].aggregates.x.by: field 'type' is a string; max_by needs a "
       "number"},
      {"  - {id: f, type: filter, field: type, op: lt, value: a}\n",
       "<string>:6:34: operators[0].field: 'lt' compares numbers; 'type' is a string (use eq or "
       "ne)"},
      {"  - {id: f, type: filter, field: value, op: mod_eq, modulus: 2, value: '0'}\n",
       "<string>:6:34: operators[0].field: mod_eq needs an integer field; 'value' is a double"},
      {"  - {id: f, type: filter, field: event_time_ms, value: '2.5'}\n",
       "<string>:6:5: operators[0]: value '2.5' is not an integer, but field 'event_time_ms' is "
       "an int64"},
      {"  - {id: f, type: filter, field: value, op: gt, value: abc}\n",
       "<string>:6:5: operators[0]: value 'abc' is not a number, but field 'value' is a double"},
  };
  for (const auto& [ops, want] : cases)
    EXPECT_EQ(plan_error(event_pipeline(ops)), want) << ops;
  // first / last / max_by of strings are fine.
  EXPECT_NO_THROW(plan_of(event_pipeline("  - {id: a, type: aggregate, aggregates: {x: {fn: "
                                         "first, field: type}, y: {fn: max_by, field: type, by: "
                                         "value}}}\n")));
}

TEST(Plan, EventTimeMustBeAnInteger) {
  for (const char* field : {"value", "type"}) {
    const auto msg =
        plan_error(event_pipeline("  - {id: v, type: validate}\n", {},
                                  std::string("{topic: events, event_time: ") + field + "}"));
    EXPECT_EQ(msg, std::string("<string>:3:37: source.event_time: event time field '") + field +
                       "' is a " + (field == std::string("value") ? "double" : "string") +
                       "; it must be an integer (ms since the epoch)");
  }
}

TEST(Plan, SinkMustNotReadAKeyBy) {
  const auto msg = plan_error(event_pipeline("  - {id: k, type: key_by, key: type}\n",
                                             "  - {id: out, type: kafka, from: k, topic: o}\n"));
  EXPECT_EQ(msg, "<string>:8:5: sinks[0]: sink 'out' reads from key_by operator 'k', which only "
                 "re-keys records; read from the operator before or after it");
}

TEST(Plan, FilterLiteralsAreTypedLikeTheirField) {
  const auto p = plan_of(event_pipeline("  - {id: a, type: filter, field: event_time_ms, op: ge, "
                                        "value: '-5'}\n"
                                        "  - {id: b, type: filter, field: value, value: '2.5'}\n"
                                        "  - {id: c, type: filter, field: type, op: ne, value: "
                                        "'2.5'}\n"
                                        "  - {id: d, type: filter, field: event_time_ms, op: "
                                        "mod_eq, modulus: 9, value: '4'}\n"));
  EXPECT_EQ(p->ops[0].filter.literal, value::of(int64_t{-5}));
  EXPECT_EQ(p->ops[0].filter.op, "ge");
  EXPECT_EQ(p->ops[1].filter.literal, value::of(2.5));
  EXPECT_EQ(p->ops[1].filter.op, "eq");
  EXPECT_EQ(p->ops[2].filter.literal, value::of(std::string("2.5")));
  EXPECT_EQ(p->ops[3].filter.literal, value::of(int64_t{4}));
  EXPECT_EQ(p->ops[3].filter.modulus, 9);
  EXPECT_EQ(p->ops[3].filter.slot, p->event_time_slot);
}

// --- layouts, stages, placement ------------------------------------------------------------

/// A two-stage pipeline touching every layout-changing operator.
const std::string layouts_yaml = event_pipeline(
    R"(  - {id: v, type: validate, required: [event_id]}
  - {id: m, type: map, set: {eur: {field: value, multiply: 0.9}, plus1: {field: value, add: 1}}}
  - {id: e, type: enrich, key: customer_id, key_prefix: "c:", fields: {tier: , rank: {type: int64, default: "-7"}, w: {type: double}}}
  - {id: s, type: score, bias: 1, weights: {eur: 0.5}}
  - {id: agg, type: aggregate, aggregates: {n: {fn: count}, total: {fn: sum, field: value}, best: {fn: max_by, field: tier, by: rank}, first_t: {fn: first, field: event_time_ms}}}
  - {id: d, type: dedup, input: s, field: event_id, ttl_ms: 1000}
  - {id: k, type: key_by, input: agg, key: best}
  - {id: w, type: window, kind: tumbling, size_ms: 1000, aggregates: {c: {fn: count}, avg: {fn: avg, field: total}, mx: {fn: max, field: n}}}
)",
    R"(  - {id: out, type: kafka, from: w, topic: out}
  - {id: prof, type: redis, from: s, key_prefix: "p:", key_fields: [tier], fields: [eur, p: score]}
)");

TEST(Plan, LayoutsThroughEveryOperator) {
  const auto p = plan_of(layouts_yaml);
  EXPECT_EQ(describe(p->source_layout),
            "customer_id:string, event_id:string, value:double, event_time_ms:int64");
  ASSERT_EQ(p->source_paths.size(), p->source_layout.size());
  for (size_t i = 0; i < p->source_paths.size(); ++i) {
    EXPECT_EQ(p->source_paths[i].path, p->source_layout.at(static_cast<int>(i)).name);
    EXPECT_EQ(p->source_paths[i].type, p->source_layout.at(static_cast<int>(i)).type);
  }
  EXPECT_EQ(p->key_slot, 0);
  EXPECT_EQ(p->event_time_slot, 3);
  ASSERT_EQ(p->ops.size(), 8u);
  const std::string src = describe(p->source_layout);
  EXPECT_EQ(describe(p->ops[0].out), src) << "validate keeps the layout";
  EXPECT_EQ(p->ops[0].required_slots, std::vector<int>{1});
  const std::string mapped = src + ", eur:double, plus1:double";
  EXPECT_EQ(describe(p->ops[1].out), mapped);
  ASSERT_EQ(p->ops[1].maps.size(), 2u);
  EXPECT_EQ(p->ops[1].maps[0].in_slot, 2);
  EXPECT_EQ(p->ops[1].maps[0].out_slot, 4);
  EXPECT_DOUBLE_EQ(p->ops[1].maps[0].multiply, 0.9);
  EXPECT_DOUBLE_EQ(p->ops[1].maps[1].add, 1);
  const std::string enriched = mapped + ", tier:string, rank:int64, w:double";
  EXPECT_EQ(describe(p->ops[2].out), enriched);
  const auto& e = p->ops[2].enrich;
  EXPECT_EQ(e.id, "e");
  EXPECT_EQ(e.key_slot, 0);
  EXPECT_EQ(e.key_prefix, "c:");
  EXPECT_EQ(e.output_fields, 9u);
  ASSERT_EQ(e.fields.size(), 3u);
  EXPECT_EQ(e.fields[0].default_value, value::of(std::string{}));
  EXPECT_EQ(e.fields[1].default_value, value::of(int64_t{-7}));
  EXPECT_EQ(e.fields[2].default_value, value::of(0.0));
  EXPECT_EQ(e.fields[2].out_slot, 8);
  EXPECT_EQ(describe(p->ops[3].out), enriched + ", score:double");
  EXPECT_EQ(p->ops[3].score.out_slot, 9);
  EXPECT_EQ(p->ops[3].score.weights, (std::vector<std::pair<int, double>>{{4, 0.5}}));
  EXPECT_EQ(describe(p->ops[4].out), "n:int64, total:double, best:string, first_t:int64")
      << "an aggregate outputs its aggregates only";
  EXPECT_EQ(p->ops[4].window.kind, keyflow::ops::window_kind::global);
  EXPECT_EQ(p->ops[4].window.aggregates[2].by_slot, 7);
  EXPECT_EQ(describe(p->ops[5].in), enriched + ", score:double") << "dedup reads the score";
  EXPECT_EQ(p->ops[5].dedup_slot, 1);
  EXPECT_EQ(describe(p->ops[6].out), describe(p->ops[4].out));
  EXPECT_EQ(p->ops[6].key_slot, 2);
  EXPECT_EQ(describe(p->ops[7].out),
            "window_start_ms:int64, window_end_ms:int64, c:int64, avg:double, mx:int64");
  // Sinks: all fields by default; chosen, renamed and key fields by slot.
  ASSERT_EQ(p->sinks.size(), 2u);
  EXPECT_EQ(p->sinks[0].slots, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(p->sinks[0].names,
            (std::vector<std::string>{"window_start_ms", "window_end_ms", "c", "avg", "mx"}));
  EXPECT_EQ(p->sinks[1].slots, (std::vector<int>{4, 9}));
  EXPECT_EQ(p->sinks[1].names, (std::vector<std::string>{"eur", "p"}));
  EXPECT_EQ(p->sinks[1].key_slots, std::vector<int>{6});
}

TEST(Plan, StagesAreCutAtKeyBy) {
  const auto p = plan_of(layouts_yaml);
  EXPECT_EQ(p->stages, 2);
  std::vector<int> stages, inputs;
  for (const auto& op : p->ops) {
    stages.push_back(op.stage);
    inputs.push_back(op.input);
  }
  EXPECT_EQ(stages, (std::vector<int>{0, 0, 0, 0, 0, 0, 0, 1})) << "key_by ends its stage";
  EXPECT_EQ(inputs, (std::vector<int>{-1, 0, 1, 2, 3, 3, 4, 6}));
  EXPECT_EQ(p->key_by_into(1), 6);
  EXPECT_EQ(p->key_by_into(2), -1);
  EXPECT_EQ(p->sinks[0].from, 7);
  EXPECT_EQ(p->sinks[0].stage, 1);
  EXPECT_EQ(p->sinks[1].stage, 0);
  EXPECT_EQ(p->column_families(), (std::vector<std::string>{"agg", "d", "w"}));
  EXPECT_TRUE(p->keep_raw);
  EXPECT_EQ(source_ops(*p), std::vector<std::string>{"v"});

  // Two key_bys: three stages; the records of stage 2 are keyed by the second key.
  const auto three = plan_of(event_pipeline(
      R"(  - {id: a, type: aggregate, aggregates: {n: {fn: count}, t: {fn: last, field: type}}}
  - {id: k1, type: key_by, key: t}
  - {id: b, type: aggregate, aggregates: {n2: {fn: sum, field: n}}}
  - {id: k2, type: key_by, key: n2}
  - {id: c, type: aggregate, aggregates: {n3: {fn: count}}}
)"));
  EXPECT_EQ(three->stages, 3);
  EXPECT_EQ(three->ops[4].stage, 2);
  EXPECT_EQ(three->key_by_into(1), 1);
  EXPECT_EQ(three->key_by_into(2), 3);
  EXPECT_EQ(three->column_families(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(three->keep_raw) << "no operator after the source dead-letters records";
  EXPECT_TRUE(source_ops(*three).empty());
}

TEST(Plan, LeadingValidateAndPlainFiltersRunInTheSources) {
  auto at_source = [](const std::string& ops, const std::string& sinks = {}) {
    return source_ops(*plan_of(event_pipeline(ops, sinks)));
  };
  using ids = std::vector<std::string>;
  const std::string v = "  - {id: v, type: validate, required: [event_id]}\n";
  const std::string f1 = "  - {id: f1, type: filter, field: value, op: gt, value: '0'}\n";
  const std::string f2 = "  - {id: f2, type: filter, field: type, value: buy}\n";
  const std::string agg = "  - {id: a, type: aggregate, aggregates: {n: {fn: count}}}\n";
  EXPECT_EQ(at_source(v + f1 + f2 + agg), (ids{"v", "f1", "f2"}));
  EXPECT_EQ(at_source(f1 + v + agg), (ids{"f1", "v"}));
  // A stateful filter, or one after another operator, runs in the partition actors.
  EXPECT_EQ(at_source("  - {id: o, type: filter, field: value, value: '1', once_per_key: true}\n" +
                      f1 + agg),
            ids{});
  EXPECT_EQ(at_source(v + "  - {id: m, type: map, set: {x: {field: value}}}\n" + f1 + agg),
            ids{"v"});
  EXPECT_EQ(at_source(v + "  - {id: d, type: dedup, field: event_id, ttl_ms: 9}\n" + f1), ids{"v"});
  // An operator a sink writes must be in a partition actor (sinks are fed from there).
  EXPECT_EQ(at_source(v + f1 + agg, "  - {id: o, type: kafka, from: f1, topic: o}\n"), ids{"v"});
  // A branch: the operator before it may run in the sources, its readers not.
  EXPECT_EQ(
      at_source(v + f1 + "  - {id: f3, type: filter, input: v, field: value, value: '2'}\n" + agg),
      ids{"v"});
  // Two operators read the source itself: a filter in the sources would filter both.
  EXPECT_EQ(at_source(f1 + "  - {id: all, type: aggregate, input: source, aggregates: {n: {fn: "
                           "count}}}\n"),
            ids{});
  EXPECT_FALSE(plan_of(event_pipeline(v + f1 + agg))->keep_raw);
  EXPECT_TRUE(plan_of(event_pipeline(v + "  - {id: w, type: window, kind: session, gap_ms: 5, "
                                         "aggregates: {n: {fn: count}}}\n"))
                  ->keep_raw);
}

TEST(Plan, ValidateThatCannotRunInTheSourcesIsRefused) {
  const std::string why =
      "must run in the sources: it must read the source (or only validate and stateless filter "
      "operators before it), be the only operator reading its input, and not be written by a "
      "sink";
  const std::string v = "  - {id: v, type: validate, required: [event_id]}\n";
  const std::string agg = "  - {id: a, type: aggregate, aggregates: {n: {fn: count}}}\n";
  EXPECT_EQ(plan_error(event_pipeline("  - {id: m, type: map, set: {x: {field: value}}}\n" + v)),
            "<string>:7:5: operators[1]: validate operator 'v' " + why);
  EXPECT_EQ(plan_error(event_pipeline(v + agg, "  - {id: o, type: kafka, from: v, topic: o}\n")),
            "<string>:6:5: operators[0]: validate operator 'v' " + why);
  EXPECT_EQ(
      plan_error(event_pipeline(
          v + "  - {id: all, type: aggregate, input: source, aggregates: {n: {fn: count}}}\n")),
      "<string>:6:5: operators[0]: validate operator 'v' " + why);
}

TEST(Plan, ExamplePipelines) {
  struct want {
    const char* file;
    int stages;
    std::vector<std::string> at_source;
    std::vector<std::string> column_families;
  };
  const std::vector<want> cases = {
      {"cdp.yaml", 1, {"validate"}, {"dedup", "aggregate", "activate"}},
      {"nexmark/q1.yaml", 1, {"bids"}, {}},
      {"nexmark/q2.yaml", 1, {"bids"}, {}},
      {"nexmark/q5.yaml", 2, {"bids"}, {"counts", "hot"}},
      {"nexmark/q7.yaml", 2, {"bids"}, {"per_auction", "highest"}},
      {"nexmark/q11.yaml", 1, {"bids"}, {"sessions"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    const auto p =
        keyflow::pipeline::load_plan(keyflow::test::source_path("config/pipelines/") + c.file);
    EXPECT_EQ(p->stages, c.stages);
    EXPECT_EQ(source_ops(*p), c.at_source);
    EXPECT_EQ(p->column_families(), c.column_families);
  }
}

// --- schema files --------------------------------------------------------------------------

/// A schema with every kind of field the decoder supports, and some it does not.
constexpr const char* reading_proto = R"(syntax = "proto3";
package t;
message Meta {
  string site = 1;
  int32 floor = 2;
}
message Reading {
  enum Unit { C = 0; F = 1; }
  string device = 1;
  int64 ts = 2;
  double temp = 3;
  bool ok = 4;
  Unit unit = 5;
  Meta meta = 6;
  repeated double samples = 7;
  map<string, int64> counters = 8;
  float level = 9;
  bytes blob = 10;
}
)";

/// Pipeline text over t.Reading with schema path `proto` and one map operator over `fields`.
std::string reading_pipeline(const std::string& proto, const std::string& fields,
                             const std::string& message = "t.Reading") {
  return "pipeline: {name: r}\nschema: {proto: " + proto + ", message: " + message +
         "}\nsource: {topic: readings, key: device, event_time: ts}\n"
         "dead_letters: {topic: dlq}\noperators:\n  - {id: v, type: validate, required: [" +
         fields + "]}\n";
}

TEST(PlanSchema, ResolvesRelativeToThePipelineFile) {
  temp_dir dir;
  std::filesystem::create_directories(dir.path("proto"));
  std::filesystem::create_directories(dir.path("pipelines/sub"));
  write_file(dir.path("proto/reading.proto"), reading_proto);
  const auto file = dir.path("pipelines/sub/r.yaml");
  write_file(file, reading_pipeline("../../proto/reading.proto",
                                    "temp, ok, unit, meta.site, meta.floor, counters.x.y, level, "
                                    "blob"));
  const auto p = keyflow::pipeline::load_plan(file);
  EXPECT_EQ(p->schema->type_name(), "t.Reading");
  EXPECT_EQ(describe(p->source_layout),
            "device:string, temp:double, ok:int64, unit:int64, meta.site:string, "
            "meta.floor:int64, counters.x.y:int64, level:double, blob:string, ts:int64");
  EXPECT_EQ(p->source_paths[6].map_key, "x.y");
}

TEST(PlanSchema, UnsupportedFieldIsExplained) {
  temp_dir dir;
  write_file(dir.path("reading.proto"), reading_proto);
  write_file(dir.path("r.yaml"), reading_pipeline("reading.proto", "samples"));
  const auto msg = config_error_of([&] { keyflow::pipeline::load_plan(dir.path("r.yaml")); });
  EXPECT_EQ(msg, dir.path("r.yaml") +
                     ":6:40: operators[0].required[0]: unknown field 'samples' in the input of 'v' "
                     "(fields there: device, ts); unsupported field 'samples' in t.Reading: field "
                     "'samples' of 't.Reading' is a repeated field; repeated fields are not "
                     "supported");
}

TEST(PlanSchema, MissingFileOrTypeIsNamed) {
  temp_dir dir;
  write_file(dir.path("reading.proto"), reading_proto);
  write_file(dir.path("a.yaml"), reading_pipeline("nowhere.proto", "temp"));
  EXPECT_EQ(config_error_of([&] { keyflow::pipeline::load_plan(dir.path("a.yaml")); }),
            dir.path("a.yaml") + ":2:9: schema: cannot read proto file '" +
                dir.path("nowhere.proto") + "'");
  write_file(dir.path("b.yaml"), reading_pipeline("reading.proto", "temp", "t.Nope"));
  EXPECT_EQ(config_error_of([&] { keyflow::pipeline::load_plan(dir.path("b.yaml")); }),
            dir.path("b.yaml") + ":2:9: schema: no message type 't.Nope' in '" +
                dir.path("reading.proto") + "' (types: t.Meta, t.Reading)");
  // A proto file that does not parse: its own file, line and column are named.
  write_file(dir.path("broken.proto"), "syntax = \"proto3\";\nmessage M {\n  int64 x = ;\n}\n");
  write_file(dir.path("c.yaml"), reading_pipeline("broken.proto", "temp", "M"));
  const auto msg = config_error_of([&] { keyflow::pipeline::load_plan(dir.path("c.yaml")); });
  EXPECT_EQ(msg.rfind(dir.path("c.yaml") + ":2:9: schema: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("broken.proto:3:"), std::string::npos) << msg;
}

} // namespace
