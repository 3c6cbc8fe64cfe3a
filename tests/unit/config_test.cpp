/// \file
/// Unit tests of the pipeline YAML reader (config/pipeline_config.hpp): every example
/// pipeline under config/pipelines/ loads and resolves, values and defaults of each section
/// and operator type, and one bad file per validation rule (tests/data/bad_pipelines), each
/// failing with the exact file, line, column, key path and explanation written in its
/// second line ("# expect: LINE:COL: KEY.PATH: MESSAGE").

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/pipeline_config.hpp"
#include "pipeline/plan.hpp"
#include "pipeline_util.hpp"

namespace {

using keyflow::config::config_error;
using keyflow::config::parse_pipeline;
using keyflow::config::pipeline_config;

using keyflow::test::config_error_of;
using keyflow::test::source_path;

/// Field names of a list of references.
std::vector<std::string> names(const std::vector<keyflow::config::field_ref>& refs) {
  std::vector<std::string> out;
  for (const auto& r : refs)
    out.push_back(r.name);
  return out;
}

// --- good pipelines ----------------------------------------------------------------------

TEST(PipelineConfig, EveryExamplePipelineLoadsAndResolves) {
  std::vector<std::string> files;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(source_path("config/pipelines")))
    if (e.is_regular_file() && e.path().extension() == ".yaml")
      files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  EXPECT_GE(files.size(), 6u) << "cdp.yaml and the Nexmark queries";
  for (const auto& file : files) {
    SCOPED_TRACE(file);
    try {
      const auto cfg = keyflow::config::load_pipeline_file(file);
      EXPECT_EQ(cfg.file, file);
      EXPECT_FALSE(cfg.operators.empty());
      const auto plan = keyflow::pipeline::load_plan(file);
      EXPECT_EQ(plan->cfg.name, cfg.name);
      EXPECT_EQ(plan->ops.size(), cfg.operators.size());
      EXPECT_EQ(plan->sinks.size(), cfg.sinks.size());
    } catch (const std::exception& e) {
      ADD_FAILURE() << e.what();
    }
  }
}

TEST(PipelineConfig, ReferencePipeline) {
  const auto path = source_path("config/pipelines/cdp.yaml");
  const auto cfg = keyflow::config::load_pipeline_file(path);
  EXPECT_EQ(cfg.name, "cdp");
  EXPECT_GE(cfg.version, 1u);
  EXPECT_EQ(cfg.max_parallelism, 128u);
  EXPECT_EQ(cfg.mode, "exactly-once");
  EXPECT_EQ(cfg.schema.proto, "../proto/event.proto");
  EXPECT_EQ(cfg.schema.message, "keyflow.proto.Event");
  EXPECT_EQ(cfg.source.id, "source");
  EXPECT_EQ(cfg.source.topic, "events");
  EXPECT_EQ(cfg.source.key.name, "customer_id");
  EXPECT_EQ(cfg.source.event_time.name, "event_time_ms");
  EXPECT_EQ(cfg.dead_letter_topic, "events-dlq");
  // The chain: each operator reads the previous one.
  std::vector<std::string> ids, types, inputs;
  for (const auto& op : cfg.operators) {
    ids.push_back(op.id);
    types.push_back(op.type);
    inputs.push_back(op.input);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"validate", "dedup", "enrich", "aggregate", "score",
                                           "activate"}));
  EXPECT_EQ(types, (std::vector<std::string>{"validate", "dedup", "enrich", "aggregate", "score",
                                             "filter"}));
  EXPECT_EQ(inputs, (std::vector<std::string>{"source", "validate", "dedup", "enrich", "aggregate",
                                              "score"}));
  const auto& v = cfg.operators[0];
  EXPECT_EQ(names(v.required),
            (std::vector<std::string>{"event_id", "customer_id", "event_time_ms"}));
  EXPECT_EQ(cfg.operators[1].field.name, "event_id");
  EXPECT_GT(cfg.operators[1].ttl_ms, 0);
  const auto& e = cfg.operators[2];
  EXPECT_EQ(e.key.name, "customer_id");
  EXPECT_EQ(e.key_prefix, "customer:");
  ASSERT_EQ(e.fields.size(), 2u);
  EXPECT_EQ(e.fields[0].name, "segment");
  EXPECT_EQ(e.fields[0].hash_field, "segment");
  EXPECT_EQ(e.fields[0].type, "string");
  EXPECT_EQ(e.fields[0].default_value, "unknown");
  EXPECT_EQ(e.on_missing, "defaults");
  EXPECT_FALSE(cfg.operators[3].aggregates.empty());
  EXPECT_FALSE(cfg.operators[4].weights.empty()); // model numbers are tuned in the file
  EXPECT_EQ(cfg.operators[4].output, "score");
  const auto& a = cfg.operators[5];
  EXPECT_EQ(a.field.name, "score");
  EXPECT_EQ(a.op, "ge");
  EXPECT_TRUE(a.once_per_key);
  ASSERT_EQ(cfg.sinks.size(), 2u);
  EXPECT_EQ(cfg.sinks[0].id, "profiles");
  EXPECT_EQ(cfg.sinks[0].type, "redis");
  EXPECT_EQ(cfg.sinks[0].from, "score");
  EXPECT_EQ(cfg.sinks[0].key_prefix, "profile:");
  EXPECT_TRUE(cfg.sinks[0].fields.empty()) << "all fields by default";
  EXPECT_EQ(cfg.sinks[1].type, "kafka");
  EXPECT_EQ(cfg.sinks[1].from, "activate");
  EXPECT_EQ(cfg.sinks[1].topic, "activations");
  EXPECT_EQ(cfg.sinks[1].delivery, "at-least-once");
  EXPECT_EQ(cfg.find_operator("enrich"), &cfg.operators[2]);
  EXPECT_EQ(cfg.find_operator("nope"), nullptr);
}

/// The shared head of the inline pipelines below (lines 1-4).
constexpr const char* head = R"(pipeline: {name: t}
schema: {proto: event.proto, message: keyflow.proto.Event}
source: {topic: events}
dead_letters: {topic: dlq}
)";

TEST(PipelineConfig, DefaultsOfASmallPipeline) {
  const auto cfg = parse_pipeline(std::string(head) + "operators:\n  - {id: k, type: key_by, "
                                                      "key: type}\n");
  EXPECT_EQ(cfg.file, "<string>");
  EXPECT_EQ(cfg.version, 1u);
  EXPECT_EQ(cfg.max_parallelism, 128u);
  EXPECT_EQ(cfg.mode, "exactly-once");
  EXPECT_EQ(cfg.source.id, "source");
  EXPECT_EQ(cfg.source.start_offset, "earliest");
  EXPECT_EQ(cfg.source.watermark.max_out_of_orderness_ms, 0);
  EXPECT_EQ(cfg.source.watermark.idle_timeout_ms, 5000);
  // Default key and event time point at the source map, under their own key paths.
  EXPECT_EQ(cfg.source.key.name, "customer_id");
  EXPECT_EQ(cfg.source.key.where, "<string>:3:9: source.key");
  EXPECT_EQ(cfg.source.event_time.name, "event_time_ms");
  EXPECT_EQ(cfg.source.event_time.where, "<string>:3:9: source.event_time");
  EXPECT_EQ(cfg.schema.where, "<string>:2:9: schema");
  ASSERT_EQ(cfg.operators.size(), 1u);
  EXPECT_EQ(cfg.operators[0].input, "source");
  EXPECT_EQ(cfg.operators[0].where, "<string>:6:5: operators[0]");
  EXPECT_EQ(cfg.operators[0].key.where, "<string>:6:32: operators[0].key");
  EXPECT_TRUE(cfg.sinks.empty());
}

TEST(PipelineConfig, EveryOperatorTypeWithItsValues) {
  const auto cfg = parse_pipeline(std::string(head) + R"(operators:
  - {id: v, type: validate, required: [event_id, attributes.page]}
  - {id: f, type: filter, field: value, value: "2.5"}
  - {id: f2, type: filter, input: v, field: value, op: mod_eq, modulus: 7, value: "3", once_per_key: TRUE}
  - {id: m, type: map, set: {eur: {field: value, multiply: 0.9, add: -1}, copy: {field: value}}}
  - {id: d, type: dedup, field: event_id, ttl_ms: 86400000}
  - id: e
    type: enrich
    key: customer_id
    key_prefix: "c:"
    fields:
      tier:
      rank: {hash_field: r, type: int64, default: "-3"}
      weight: {type: double}
    on_missing: dead_letter
    cache_entries: 10
    cache_ttl_ms: 5
    batch_size: 100000
    max_delay_ms: 0
    timeout_ms: 600000
    retries: 0
  - {id: a, type: aggregate, ttl_ms: 1000, aggregates: {n: {fn: count}, top: {fn: max_by, field: type, by: value}}}
  - {id: w, type: window, input: d, kind: sliding, size_ms: 1000, slide_ms: 250, allowed_lateness_ms: 0, late_topic: late, aggregates: {s: {fn: sum, field: value}}}
  - {id: s, type: score, input: a, bias: -6.0, weights: {n: +0.04, top: 1e-3}, output: p}
  - {id: k, type: key_by, input: w, key: s}
  - {id: g, type: window, kind: session, gap_ms: 30000, aggregates: {first: {fn: first, field: s}}}
sinks:
  - {id: r, type: redis, from: s, key_prefix: "p:", key_fields: [n], fields: [n, score: p]}
  - {id: out, type: kafka, from: g, topic: out, delivery: exactly-once, fields: [first]}
)");
  ASSERT_EQ(cfg.operators.size(), 11u);
  const auto& v = cfg.operators[0];
  EXPECT_EQ(names(v.required), (std::vector<std::string>{"event_id", "attributes.page"}));
  EXPECT_EQ(v.required[1].where, "<string>:6:50: operators[0].required[1]");
  const auto& f = cfg.operators[1];
  EXPECT_EQ(f.input, "v");
  EXPECT_EQ(f.op, "eq") << "the default comparison";
  EXPECT_EQ(f.value, "2.5");
  EXPECT_EQ(f.modulus, 0);
  EXPECT_FALSE(f.once_per_key);
  const auto& f2 = cfg.operators[2];
  EXPECT_EQ(f2.input, "v") << "an explicit input, not the previous operator";
  EXPECT_EQ(f2.op, "mod_eq");
  EXPECT_EQ(f2.modulus, 7);
  EXPECT_EQ(f2.value, "3");
  EXPECT_TRUE(f2.once_per_key);
  const auto& m = cfg.operators[3];
  ASSERT_EQ(m.set.size(), 2u);
  EXPECT_EQ(m.set[0].name, "eur");
  EXPECT_EQ(m.set[0].field.name, "value");
  EXPECT_DOUBLE_EQ(m.set[0].multiply, 0.9);
  EXPECT_DOUBLE_EQ(m.set[0].add, -1);
  EXPECT_EQ(m.set[1].name, "copy");
  EXPECT_DOUBLE_EQ(m.set[1].multiply, 1);
  EXPECT_DOUBLE_EQ(m.set[1].add, 0);
  EXPECT_EQ(cfg.operators[4].ttl_ms, 86400000);
  const auto& e = cfg.operators[5];
  EXPECT_EQ(e.key_prefix, "c:");
  ASSERT_EQ(e.fields.size(), 3u);
  EXPECT_EQ(e.fields[0].name, "tier");
  EXPECT_EQ(e.fields[0].hash_field, "tier");
  EXPECT_EQ(e.fields[0].type, "string");
  EXPECT_EQ(e.fields[0].default_value, "");
  EXPECT_EQ(e.fields[1].hash_field, "r");
  EXPECT_EQ(e.fields[1].type, "int64");
  EXPECT_EQ(e.fields[1].default_value, "-3");
  EXPECT_EQ(e.fields[2].type, "double");
  EXPECT_EQ(e.on_missing, "dead_letter");
  EXPECT_EQ(e.cache_entries, 10u);
  EXPECT_EQ(e.cache_ttl_ms, 5);
  EXPECT_EQ(e.batch_size, 100000u);
  EXPECT_EQ(e.max_delay_ms, 0);
  EXPECT_EQ(e.timeout_ms, 600000);
  EXPECT_EQ(e.retries, 0u);
  const auto& a = cfg.operators[6];
  EXPECT_EQ(a.ttl_ms, 1000);
  ASSERT_EQ(a.aggregates.size(), 2u);
  EXPECT_EQ(a.aggregates[0].name, "n");
  EXPECT_EQ(a.aggregates[0].fn, "count");
  EXPECT_FALSE(a.aggregates[0].field.set());
  EXPECT_EQ(a.aggregates[1].fn, "max_by");
  EXPECT_EQ(a.aggregates[1].field.name, "type");
  EXPECT_EQ(a.aggregates[1].by.name, "value");
  const auto& w = cfg.operators[7];
  EXPECT_EQ(w.input, "d");
  EXPECT_EQ(w.kind, "sliding");
  EXPECT_EQ(w.size_ms, 1000);
  EXPECT_EQ(w.slide_ms, 250);
  EXPECT_EQ(w.late_topic, "late");
  const auto& s = cfg.operators[8];
  EXPECT_DOUBLE_EQ(s.bias, -6.0);
  ASSERT_EQ(s.weights.size(), 2u);
  EXPECT_EQ(s.weights[0].first.name, "n");
  EXPECT_DOUBLE_EQ(s.weights[0].second, 0.04);
  EXPECT_DOUBLE_EQ(s.weights[1].second, 1e-3);
  EXPECT_EQ(s.output, "p");
  EXPECT_EQ(cfg.operators[9].key.name, "s");
  const auto& g = cfg.operators[10];
  EXPECT_EQ(g.input, "k");
  EXPECT_EQ(g.gap_ms, 30000);
  EXPECT_EQ(g.size_ms, 0);
  ASSERT_EQ(cfg.sinks.size(), 2u);
  EXPECT_EQ(names(cfg.sinks[0].fields), (std::vector<std::string>{"n", "p"}));
  EXPECT_EQ(cfg.sinks[0].field_names, (std::vector<std::string>{"n", "score"}));
  EXPECT_EQ(names(cfg.sinks[0].key_fields), (std::vector<std::string>{"n"}));
  EXPECT_EQ(cfg.sinks[0].where, "<string>:32:5: sinks[0]");
  EXPECT_EQ(cfg.sinks[1].delivery, "exactly-once");
  EXPECT_EQ(cfg.sinks[1].topic, "out");
}

TEST(PipelineConfig, BoundaryValues) {
  const std::string topic(249, 't'), id(64, 'i');
  const auto cfg = parse_pipeline(
      "pipeline: {name: " + id +
      ", version: 4294967295, max_parallelism: 32768, mode: at-least-once}\n"
      "schema: {proto: e.proto, message: M}\n"
      "source: {id: src, topic: " +
      topic +
      ", start_offset: latest, watermark: {max_out_of_orderness_ms: 0, idle_timeout_ms: 0}}\n"
      "dead_letters: {topic: a_b-c.d}\n"
      "operators:\n  - {id: " +
      id + ", type: filter, input: src, field: x, op: lt, value: '-1'}\n");
  EXPECT_EQ(cfg.name, id);
  EXPECT_EQ(cfg.version, 4294967295u);
  EXPECT_EQ(cfg.max_parallelism, 32768u);
  EXPECT_EQ(cfg.mode, "at-least-once");
  EXPECT_EQ(cfg.source.id, "src");
  EXPECT_EQ(cfg.source.topic, topic);
  EXPECT_EQ(cfg.source.start_offset, "latest");
  EXPECT_EQ(cfg.source.watermark.idle_timeout_ms, 0);
  EXPECT_EQ(cfg.dead_letter_topic, "a_b-c.d");
  EXPECT_EQ(cfg.operators[0].input, "src");
  EXPECT_EQ(cfg.operators[0].value, "-1");
}

TEST(PipelineConfig, StringErrorsNameTheStringSource) {
  const auto msg = config_error_of([] { parse_pipeline("pipeline: [1]\n"); });
  EXPECT_EQ(msg.rfind("<string>:1:11: pipeline: expected a map", 0), 0u) << msg;
}

TEST(PipelineConfig, MissingFileIsNamed) {
  const std::string path = "/nonexistent/keyflow/pipeline.yaml";
  const auto msg = config_error_of([&] { keyflow::config::load_pipeline_file(path); });
  EXPECT_EQ(msg, path + ": cannot read pipeline file: No such file or directory");
  EXPECT_EQ(config_error_of([&] { keyflow::pipeline::load_plan(path); }), msg);
}

TEST(PipelineConfig, DirectoryIsNotAFile) {
  const auto path = source_path("tests/data/bad_pipelines");
  const auto msg = config_error_of([&] { keyflow::config::load_pipeline_file(path); });
  EXPECT_EQ(msg, path + ": cannot read pipeline file: is a directory");
}

// --- bad pipelines -------------------------------------------------------------------------

/// A bad pipeline file and the error written in its second line.
struct bad_file {
  std::string name;   ///< file name without .yaml
  std::string path;   ///< absolute path
  std::string expect; ///< "LINE:COL: KEY.PATH: MESSAGE"
};

/// Prints a case by file name in test output.
void PrintTo(const bad_file& c, std::ostream* os) {
  *os << c.name;
}

/// Every file of tests/data/bad_pipelines with its expectation (empty if it has none).
std::vector<bad_file> bad_files() {
  std::vector<bad_file> out;
  for (const auto& e :
       std::filesystem::directory_iterator(source_path("tests/data/bad_pipelines"))) {
    bad_file f{e.path().stem().string(), e.path().string(), {}};
    std::ifstream in{f.path};
    std::string line;
    std::getline(in, line);
    std::getline(in, line);
    const std::string tag = "# expect: ";
    if (line.rfind(tag, 0) == 0)
      f.expect = line.substr(tag.size());
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

/// Each bad file fails with exactly the message its header expects, also through load_plan.
class BadPipeline : public testing::TestWithParam<bad_file> {};

TEST_P(BadPipeline, FailsAtTheRightPlace) {
  const bad_file& c = GetParam();
  ASSERT_FALSE(c.expect.empty()) << c.path << " has no '# expect: ' line 2";
  const auto msg = config_error_of([&] { keyflow::config::load_pipeline_file(c.path); });
  EXPECT_EQ(msg, c.path + ":" + c.expect);
  EXPECT_EQ(config_error_of([&] { keyflow::pipeline::load_plan(c.path); }), msg);
}

INSTANTIATE_TEST_SUITE_P(Files, BadPipeline, testing::ValuesIn(bad_files()),
                         [](const auto& info) { return info.param.name; });

TEST(BadPipelineFiles, CoverEveryOperatorAndSinkType) {
  // At least one unknown-key case per operator type, and the files are many.
  const auto files = bad_files();
  EXPECT_GE(files.size(), 100u);
  for (const char* type :
       {"validate", "filter", "map", "dedup", "enrich", "aggregate", "window", "score", "key_by"})
    EXPECT_TRUE(std::any_of(files.begin(), files.end(), [&](const auto& f) {
      return f.name == std::string("unknown_key_") + type;
    })) << type;
}

} // namespace
