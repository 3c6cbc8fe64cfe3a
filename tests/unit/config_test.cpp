/// \file
/// Unit tests of the configuration library: the reference pipeline, one bad pipeline file per
/// validation rule (tests/data/bad_pipelines), and keyflowd node options.

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "config/node_options.hpp"
#include "config/pipeline_config.hpp"

namespace {

using keyflow::config::config_error;
using keyflow::config::node_options;

/// A path below the repository root.
std::string source_path(const std::string& rel) {
  return std::string(KEYFLOW_SOURCE_DIR) + "/" + rel;
}

/// The message of the config_error `f` throws, or a failure if it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const config_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no config_error thrown";
  return {};
}

// --- pipelines ---------------------------------------------------------------------------

TEST(PipelineConfig, LoadsReferencePipeline) {
  const auto path = source_path("config/pipelines/cdp.yaml");
  const auto cfg = keyflow::config::load_pipeline_file(path);
  EXPECT_EQ(cfg.file, path);
  EXPECT_EQ(cfg.name, "cdp");
  EXPECT_EQ(cfg.version, 1u);
  EXPECT_EQ(cfg.max_parallelism, 128u);
  EXPECT_EQ(cfg.source.id, "source");
  EXPECT_EQ(cfg.source.topic, "events");
  EXPECT_EQ(cfg.source.start_offset, "earliest");
  EXPECT_EQ(cfg.dead_letter_topic, "events-dlq");
  EXPECT_EQ(cfg.validate.id, "validate");
  EXPECT_EQ(cfg.validate.required,
            (std::vector<std::string>{"event_id", "customer_id", "event_time_ms"}));
  EXPECT_EQ(cfg.aggregate.id, "aggregate");
  EXPECT_EQ(cfg.aggregate.key, "customer_id");
  // The model's numbers are tuned in cdp.yaml from time to time; exact number parsing is
  // checked on inline text below.
  ASSERT_TRUE(cfg.score.has_value());
  EXPECT_EQ(cfg.score->id, "score");
  EXPECT_FALSE(cfg.score->weights.empty());
  EXPECT_GT(cfg.score->threshold, 0.0);
  EXPECT_LT(cfg.score->threshold, 1.0);
  ASSERT_TRUE(cfg.redis_sink.has_value());
  EXPECT_EQ(cfg.redis_sink->id, "profiles");
  EXPECT_EQ(cfg.redis_sink->key_prefix, "profile:");
  ASSERT_TRUE(cfg.kafka_sink.has_value());
  EXPECT_EQ(cfg.kafka_sink->id, "activations");
  EXPECT_EQ(cfg.kafka_sink->topic, "activations");
}

TEST(PipelineConfig, MinimalPipelineGetsDefaults) {
  const auto cfg = keyflow::config::parse_pipeline(R"(
pipeline: {name: mini}
source: {topic: in}
dead_letters: {topic: in.dlq}
operators:
  - type: validate
  - type: aggregate
)");
  EXPECT_EQ(cfg.file, "<string>");
  EXPECT_EQ(cfg.version, 1u);
  EXPECT_EQ(cfg.max_parallelism, 128u);
  EXPECT_EQ(cfg.source.id, "source");
  EXPECT_EQ(cfg.source.start_offset, "earliest");
  EXPECT_EQ(cfg.validate.id, "validate");
  EXPECT_EQ(cfg.validate.required, keyflow::config::validate_config{}.required);
  EXPECT_EQ(cfg.aggregate.key, "customer_id");
  EXPECT_FALSE(cfg.score.has_value());
  EXPECT_FALSE(cfg.redis_sink.has_value());
  EXPECT_FALSE(cfg.kafka_sink.has_value());
}

TEST(PipelineConfig, ScoreNumbers) {
  const auto cfg = keyflow::config::parse_pipeline(R"(
pipeline: {name: cdp}
source: {topic: events}
dead_letters: {topic: events-dlq}
operators:
  - {id: validate, type: validate}
  - {id: aggregate, type: aggregate, key: customer_id}
  - id: score
    type: score
    bias: -3.0
    weights:
      count: 0.05
      avg: +0.02
    threshold: 0.8
)");
  ASSERT_TRUE(cfg.score.has_value());
  EXPECT_DOUBLE_EQ(cfg.score->bias, -3.0);
  EXPECT_EQ(cfg.score->weights.size(), 2u);
  EXPECT_DOUBLE_EQ(cfg.score->weights.at("count"), 0.05);
  EXPECT_DOUBLE_EQ(cfg.score->weights.at("avg"), 0.02);
  EXPECT_DOUBLE_EQ(cfg.score->threshold, 0.8);
}

TEST(PipelineConfig, ScoreDefaultsAndBoundaryValues) {
  const auto cfg = keyflow::config::parse_pipeline(R"(
pipeline: {name: edge, max_parallelism: 32768, version: 7}
source: {topic: a_b-c.d, start_offset: latest}
dead_letters: {topic: dlq}
operators:
  - {type: validate, required: [customer_id, value]}
  - {type: aggregate}
  - {type: score, threshold: 1, weights: {sum: 1e-3, last_value: -2}}
sinks:
  - {type: kafka, topic: out}
)");
  EXPECT_EQ(cfg.max_parallelism, 32768u);
  EXPECT_EQ(cfg.version, 7u);
  EXPECT_EQ(cfg.source.start_offset, "latest");
  ASSERT_TRUE(cfg.score.has_value());
  EXPECT_DOUBLE_EQ(cfg.score->bias, 0.0);
  EXPECT_DOUBLE_EQ(cfg.score->threshold, 1.0);
  EXPECT_DOUBLE_EQ(cfg.score->weights.at("sum"), 1e-3);
  EXPECT_DOUBLE_EQ(cfg.score->weights.at("last_value"), -2.0);
  ASSERT_TRUE(cfg.kafka_sink.has_value());
  EXPECT_EQ(cfg.kafka_sink->id, "activations");
}

TEST(PipelineConfig, StringErrorsNameTheStringSource) {
  const auto msg = error_of([] { keyflow::config::parse_pipeline("pipeline: [1]\n"); });
  EXPECT_NE(msg.find("<string>:1:11: pipeline: expected a map"), std::string::npos) << msg;
}

TEST(PipelineConfig, MissingFileIsNamed) {
  const std::string path = "/nonexistent/keyflow/pipeline.yaml";
  const auto msg = error_of([&] { keyflow::config::load_pipeline_file(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
}

TEST(PipelineConfig, DirectoryIsNotAFile) {
  const auto path = source_path("tests/data/bad_pipelines");
  const auto msg = error_of([&] { keyflow::config::load_pipeline_file(path); });
  EXPECT_NE(msg.find(path + ": cannot read pipeline file: is a directory"), std::string::npos)
      << msg;
}

/// One bad pipeline file and the error it must produce.
struct bad_case {
  const char* file;     ///< name under tests/data/bad_pipelines
  int line;             ///< 1-based line of the error
  int column;           ///< 1-based column, 0 = not checked
  const char* path;     ///< key path at fault
  const char* fragment; ///< part of the explanation
};

/// Prints a case by file name in test output.
void PrintTo(const bad_case& c, std::ostream* os) {
  *os << c.file;
}

const bad_case bad_cases[] = {
    {"syntax_error", 8, 0, "YAML syntax error", ""},
    {"unknown_top_key", 10, 1, "dead_letter",
     "unknown key 'dead_letter' (allowed: pipeline, source, dead_letters, operators, sinks)"},
    {"unknown_source_key", 10, 3, "source.partitions",
     "unknown key 'partitions' (allowed: id, topic, start_offset)"},
    {"max_parallelism_not_number", 5, 20, "pipeline.max_parallelism",
     "expected an unsigned integer, got 'abc'"},
    {"max_parallelism_too_large", 5, 20, "pipeline.max_parallelism", "must be in 1..32768"},
    {"max_parallelism_zero", 5, 20, "pipeline.max_parallelism", "must be in 1..32768"},
    {"max_parallelism_quoted", 5, 20, "pipeline.max_parallelism", "quoted string"},
    {"version_negative", 4, 12, "pipeline.version", "must not be negative"},
    {"source_is_list", 7, 3, "source", "expected a map"},
    {"missing_pipeline_name", 3, 3, "pipeline.name", "missing required key 'name'"},
    {"missing_source_topic", 7, 3, "source.topic", "missing required key 'topic'"},
    {"missing_dead_letters", 2, 1, "dead_letters", "missing required key 'dead_letters'"},
    {"dead_letters_empty_map", 10, 15, "dead_letters.topic", "missing required key 'topic'"},
    {"kafka_sink_without_topic", 30, 5, "sinks[1].topic", "missing required key 'topic'"},
    {"duplicate_operator_id", 19, 9, "operators[2].id",
     "duplicate id 'aggregate' (already used by operators[1].id)"},
    {"duplicate_sink_id", 30, 9, "sinks[1].id", "duplicate id 'score'"},
    {"unknown_operator_type", 17, 11, "operators[1].type",
     "unknown operator type 'dedup' (allowed: validate, aggregate, score)"},
    {"unknown_sink_type", 28, 11, "sinks[0].type",
     "unknown sink type 's3' (allowed: redis, kafka)"},
    {"operators_out_of_order", 14, 11, "operators[0].type",
     "expected an operator of type 'validate' here, got 'aggregate'"},
    {"missing_aggregate", 13, 3, "operators", "missing the 'aggregate' operator"},
    {"extra_operator", 26, 5, "operators[3]", "unexpected operator of type 'score' after 'score'"},
    {"missing_operator_type", 16, 5, "operators[1].type", "missing required key 'type'"},
    {"kafka_sink_without_score", 23, 5, "sinks[1]", "needs a 'score' operator"},
    {"two_redis_sinks", 31, 11, "sinks[1].type",
     "only one 'redis' sink is allowed (the first is sinks[0])"},
    {"threshold_out_of_range", 25, 16, "operators[2].threshold", "must be in [0, 1], got 1.5"},
    {"bad_start_offset", 9, 17, "source.start_offset", "must be earliest or latest"},
    {"unknown_required_field", 15, 39, "operators[0].required[2]", "unknown event field 'userid'"},
    {"unknown_weight_feature", 23, 7, "operators[2].weights.cnt",
     "unknown feature 'cnt' (allowed: count, sum, avg, last_value)"},
    {"weights_is_list", 22, 14, "operators[2].weights", "expected a map"},
    {"bias_not_finite", 21, 11, "operators[2].bias", "expected a number"},
    {"empty_topic", 8, 10, "source.topic", "must not be empty"},
    {"illegal_topic_chars", 32, 12, "sinks[1].topic", "contains '/'"},
    {"topic_too_long", 11, 10, "dead_letters.topic", "250 characters long; at most 249"},
    {"dead_letters_same_as_source", 11, 10, "dead_letters.topic", "already used by source.topic"},
    {"duplicate_key", 9, 3, "source.topic", "duplicate key 'topic'"},
    {"unknown_operator_key", 16, 5, "operators[0].key",
     "unknown key 'key' (allowed: id, type, required)"},
    {"aggregate_key_not_required", 18, 10, "operators[1].key",
     "must be listed in the validate operator's 'required'"},
    {"two_documents", 34, 1, "(document 2)", "only one YAML document"},
    {"empty", 1, 1, "(top level)", "expected a map"},
};

/// Each bad file fails with its file name, line, column, key path and explanation.
class BadPipeline : public testing::TestWithParam<bad_case> {};

TEST_P(BadPipeline, FailsAtTheRightPlace) {
  const bad_case& c = GetParam();
  const auto path = source_path(std::string("tests/data/bad_pipelines/") + c.file + ".yaml");
  const auto msg = error_of([&] { keyflow::config::load_pipeline_file(path); });
  std::string where = path + ":" + std::to_string(c.line) + ":";
  if (c.column > 0)
    where += std::to_string(c.column) + ": " + c.path + ": ";
  EXPECT_EQ(msg.rfind(where, 0), 0u) << "expected prefix: " << where << "\n   got: " << msg;
  EXPECT_NE(msg.find(std::string(": ") + c.path + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find(c.fragment), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(Files, BadPipeline, testing::ValuesIn(bad_cases),
                         [](const auto& info) { return std::string(info.param.file); });

TEST(BadPipelineFiles, EveryFileHasACase) {
  std::set<std::string> covered;
  for (const auto& c : bad_cases)
    covered.insert(c.file);
  size_t files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(source_path("tests/data/bad_pipelines"))) {
    ++files;
    EXPECT_TRUE(covered.count(entry.path().stem().string())) << entry.path() << " has no case";
  }
  EXPECT_EQ(files, covered.size());
}

// --- node options ------------------------------------------------------------------------

/// Parses an argument list (argv[0] is added).
node_options parse(std::vector<std::string> args) {
  args.insert(args.begin(), "keyflowd");
  std::vector<const char*> argv;
  for (const auto& a : args)
    argv.push_back(a.c_str());
  return keyflow::config::parse_node_options(static_cast<int>(argv.size()), argv.data());
}

/// The config_error message of parsing `args`.
std::string parse_error(std::vector<std::string> args) {
  return error_of([&] { parse(std::move(args)); });
}

TEST(NodeOptions, DefaultsFromTheStruct) {
  const auto o = parse({"--pipeline", "p.yaml", "--embedded-kafka"});
  const node_options d;
  EXPECT_EQ(o.pipeline, "p.yaml");
  EXPECT_TRUE(o.embedded_kafka);
  EXPECT_EQ(o.bootstrap_servers, "");
  EXPECT_EQ(o.embedded_partitions, d.embedded_partitions);
  EXPECT_EQ(o.redis, d.redis);
  EXPECT_EQ(o.state_dir, d.state_dir);
  EXPECT_EQ(o.metrics_address, d.metrics_address);
  EXPECT_EQ(o.workers, d.workers);
  EXPECT_EQ(o.partition_actors, d.partition_actors);
  EXPECT_EQ(o.batch_size, d.batch_size);
  EXPECT_EQ(o.credits, d.credits);
  EXPECT_EQ(o.flush_interval_ms, d.flush_interval_ms);
  EXPECT_EQ(o.sink_flush_ms, d.sink_flush_ms);
  EXPECT_EQ(o.sink_max_pending, d.sink_max_pending);
  EXPECT_EQ(o.group_id, d.group_id);
  EXPECT_EQ(o.log_level, d.log_level);
  EXPECT_EQ(o.node_config, "");
}

TEST(NodeOptions, EveryOptionFromTheCommandLine) {
  const auto o = parse({"--pipeline",
                        "x.yaml",
                        "--bootstrap-servers",
                        "k1:9092,k2:9092",
                        "--embedded-partitions",
                        "8",
                        "--redis",
                        "r:6379",
                        "--state-dir",
                        "/s",
                        "--metrics-address",
                        "0.0.0.0:0",
                        "--workers",
                        "3",
                        "--partition-actors",
                        "6",
                        "--batch-size",
                        "100",
                        "--credits",
                        "2",
                        "--flush-interval-ms",
                        "250",
                        "--sink-flush-ms",
                        "0",
                        "--sink-max-pending",
                        "10",
                        "--group-id",
                        "g",
                        "--log-level=trace"});
  EXPECT_EQ(o.pipeline, "x.yaml");
  EXPECT_EQ(o.bootstrap_servers, "k1:9092,k2:9092");
  EXPECT_FALSE(o.embedded_kafka);
  EXPECT_EQ(o.embedded_partitions, 8u);
  EXPECT_EQ(o.redis, "r:6379");
  EXPECT_EQ(o.state_dir, "/s");
  EXPECT_EQ(o.metrics_address, "0.0.0.0:0");
  EXPECT_EQ(o.workers, 3u);
  EXPECT_EQ(o.partition_actors, 6u);
  EXPECT_EQ(o.batch_size, 100u);
  EXPECT_EQ(o.credits, 2u);
  EXPECT_EQ(o.flush_interval_ms, 250u);
  EXPECT_EQ(o.sink_flush_ms, 0u);
  EXPECT_EQ(o.sink_max_pending, 10u);
  EXPECT_EQ(o.group_id, "g");
  EXPECT_EQ(o.log_level, "trace");
}

TEST(NodeOptions, FromYamlFile) {
  const auto file = source_path("tests/data/node_options/node.yaml");
  const auto o = parse({"--config", file});
  EXPECT_EQ(o.node_config, file);
  EXPECT_EQ(o.pipeline, "config/pipelines/cdp.yaml");
  EXPECT_EQ(o.bootstrap_servers, "kafka-1:9092,kafka-2:9092");
  EXPECT_EQ(o.redis, "127.0.0.1:6379");
  EXPECT_EQ(o.state_dir, "/var/lib/keyflow");
  EXPECT_EQ(o.workers, 8u);
  EXPECT_EQ(o.batch_size, 512u);
  EXPECT_EQ(o.log_level, "debug");
  EXPECT_EQ(o.credits, node_options{}.credits);
}

TEST(NodeOptions, CommandLineOverridesYamlFile) {
  const auto file = source_path("tests/data/node_options/node.yaml");
  const auto o = parse({"--batch-size", "64", "--config", file, "--log-level", "warn"});
  EXPECT_EQ(o.batch_size, 64u);
  EXPECT_EQ(o.log_level, "warn");
  EXPECT_EQ(o.workers, 8u); // from the file
}

TEST(NodeOptions, KafkaChoiceOnCommandLineReplacesTheFiles) {
  const auto dir = source_path("tests/data/node_options/");
  auto o = parse({"--config", dir + "node.yaml", "--embedded-kafka"});
  EXPECT_TRUE(o.embedded_kafka);
  EXPECT_EQ(o.bootstrap_servers, "");
  o = parse({"--config", dir + "embedded.yaml", "--bootstrap-servers", "k:9092"});
  EXPECT_FALSE(o.embedded_kafka);
  EXPECT_EQ(o.bootstrap_servers, "k:9092");
  const auto msg = parse_error({"--config", dir + "both_kafkas.yaml"});
  EXPECT_NE(msg.find("--bootstrap-servers (" + dir +
                     "both_kafkas.yaml:3:1) and "
                     "--embedded-kafka (" +
                     dir + "both_kafkas.yaml:4:1) exclude each other"),
            std::string::npos)
      << msg;
}

TEST(NodeOptions, EmptyRedisDisablesTheSink) {
  const auto o = parse({"--pipeline", "p", "--embedded-kafka", "--redis", ""});
  EXPECT_EQ(o.redis, "");
}

TEST(NodeOptions, CommandLineErrorsNameTheOption) {
  const std::vector<std::string> base = {"--pipeline", "p.yaml", "--embedded-kafka"};
  auto with = [&](std::vector<std::string> extra) {
    auto args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return parse_error(args);
  };
  EXPECT_NE(with({"--nope", "1"}).find("--nope"), std::string::npos);
  EXPECT_NE(with({"--workers", "abc"}).find("--workers: expected an unsigned integer"),
            std::string::npos);
  EXPECT_NE(with({"--workers=-1"}).find("--workers: must not be negative"), std::string::npos);
  EXPECT_NE(with({"--batch-size", "0"}).find("--batch-size: must be at least 1"),
            std::string::npos);
  EXPECT_NE(with({"--credits", "0"}).find("--credits: must be at least 1"), std::string::npos);
  EXPECT_NE(with({"--credits", "4294967296"}).find("--credits: must be"), std::string::npos);
  EXPECT_NE(with({"--log-level", "loud"}).find("--log-level: expected one of trace"),
            std::string::npos);
  EXPECT_NE(with({"--redis", "localhost"}).find("--redis: expected host:port"), std::string::npos);
  EXPECT_NE(with({"--metrics-address", "h:99999"}).find("--metrics-address: bad port"),
            std::string::npos);
  EXPECT_NE(with({"--batch-size"}).find("--batch-size"), std::string::npos);
  EXPECT_NE(with({"--bootstrap-servers", "k:9092"})
                .find("--bootstrap-servers (command line) and --embedded-kafka (command line) "
                      "exclude each other"),
            std::string::npos);
}

TEST(NodeOptions, RequiredOptions) {
  EXPECT_NE(parse_error({"--embedded-kafka"}).find("--pipeline: missing"), std::string::npos);
  EXPECT_NE(parse_error({"--pipeline", "p.yaml"}).find("--bootstrap-servers: missing"),
            std::string::npos);
  EXPECT_NE(parse_error({"--pipeline", "", "--embedded-kafka"}).find("--pipeline: must not be"),
            std::string::npos);
}

TEST(NodeOptions, YamlErrorsNameFileLineAndKey) {
  const auto dir = source_path("tests/data/node_options/");
  auto msg = parse_error({"--config", dir + "unknown_key.yaml"});
  EXPECT_EQ(msg.rfind(dir + "unknown_key.yaml:3:1: batchsize: unknown key 'batchsize'", 0), 0u)
      << msg;
  EXPECT_NE(msg.find("batch-size"), std::string::npos) << msg; // lists allowed keys
  msg = parse_error({"--pipeline", "p", "--config", dir + "bad_value.yaml"});
  EXPECT_EQ(msg.rfind(dir + "bad_value.yaml:3:10: credits: must be at least 1", 0), 0u) << msg;
  msg = parse_error({"--config", dir + "not_a_map.yaml"});
  EXPECT_NE(msg.find("not_a_map.yaml:2:1: (top level): expected a map"), std::string::npos) << msg;
  msg = parse_error({"--config", dir + "missing.yaml"});
  EXPECT_NE(msg.find(dir + "missing.yaml: cannot read node config file"), std::string::npos) << msg;
}

TEST(NodeOptions, YamlBadValueIsOverriddenOnlyIfValid) {
  // The file is read before the command line, so its errors are reported even when the
  // command line sets the same option.
  const auto dir = source_path("tests/data/node_options/");
  const auto msg =
      parse_error({"--pipeline", "p", "--config", dir + "bad_value.yaml", "--credits", "5"});
  EXPECT_NE(msg.find("credits: must be at least 1"), std::string::npos) << msg;
}

TEST(NodeOptions, KafkaPropertiesAreKeyValuePairs) {
  const auto o = parse({"--pipeline", "p.yaml", "--embedded-kafka", "--kafka-properties",
                        "queued.min.messages=1000000;security.protocol=plaintext"});
  EXPECT_EQ(o.kafka_properties, "queued.min.messages=1000000;security.protocol=plaintext");
  const auto msg =
      parse_error({"--pipeline", "p.yaml", "--embedded-kafka", "--kafka-properties", "a=1;oops"});
  EXPECT_NE(msg.find("--kafka-properties"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'oops'"), std::string::npos) << msg;
}

TEST(NodeOptions, HelpListsEveryOptionWithDefault) {
  const auto help = keyflow::config::node_options_help();
  for (const char* name :
       {"--pipeline", "--bootstrap-servers", "--embedded-kafka", "--embedded-partitions", "--redis",
        "--state-dir", "--metrics-address", "--workers", "--partition-actors", "--batch-size",
        "--credits", "--flush-interval-ms", "--sink-flush-ms", "--sink-max-pending", "--group-id",
        "--log-level", "--config"})
    EXPECT_NE(help.find(name), std::string::npos) << name;
  EXPECT_NE(help.find("[default: 1024]"), std::string::npos) << help;
  EXPECT_NE(help.find("[default: ./keyflow-state]"), std::string::npos) << help;
  EXPECT_NE(help.find("[default: false]"), std::string::npos) << help;
}

TEST(NodeOptionsDeathTest, HelpExitsZero) {
  EXPECT_EXIT(parse({"--help"}), testing::ExitedWithCode(0), "");
}

} // namespace
