/// \file
/// Unit tests of keyflowd's node options: defaults, every option on the command line and in
/// a node YAML file, their precedence, and errors naming the option, file, line and key.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/node_options.hpp"
#include "config/pipeline_config.hpp"
#include "pipeline_util.hpp"

namespace {

using keyflow::config::config_error;
using keyflow::config::node_options;

using keyflow::test::config_error_of;
using keyflow::test::source_path;

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
  return config_error_of([&] { parse(std::move(args)); });
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

namespace {

/// A cluster node's minimal arguments plus `extra` (default cluster address: loopback).
std::vector<std::string> cluster_args(std::vector<std::string> extra, std::string id = "2") {
  std::vector<std::string> a{"--pipeline", "x.yaml",           "--embedded-kafka", "--node-id",
                             id,           "--checkpoint-dir", "/shared/chk"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

} // namespace

TEST(NodeOptions, ClusterOptions) {
  const auto o = parse(cluster_args({"--cluster-address", "127.0.0.1:7402", "--seeds",
                                     "127.0.0.1:7401,127.0.0.1:7402", "--heartbeat-ms", "200",
                                     "--failure-timeout-ms", "1500", "--regions", "4"}));
  EXPECT_EQ(o.node_id, 2u);
  EXPECT_EQ(o.cluster_address, "127.0.0.1:7402");
  EXPECT_EQ(o.seeds, "127.0.0.1:7401,127.0.0.1:7402");
  EXPECT_EQ(o.heartbeat_ms, 200u);
  EXPECT_EQ(o.failure_timeout_ms, 1500u);
  EXPECT_EQ(o.regions, 4u);
  EXPECT_FALSE(o.insecure_plaintext_cluster);
}

TEST(NodeOptions, ClusterErrorsNameTheOption) {
  // Shared checkpoint storage is required: a node-local default would make failover
  // restore nothing.
  EXPECT_NE(parse_error({"--pipeline", "x.yaml", "--embedded-kafka", "--node-id", "1"})
                .find("--checkpoint-dir: missing"),
            std::string::npos);
  EXPECT_NE(parse_error(cluster_args({"--seeds", "127.0.0.1"})).find("--seeds"), std::string::npos);
  EXPECT_NE(parse_error(cluster_args({"--tls-cert", "/etc/hostname"})).find("give all three"),
            std::string::npos);
  EXPECT_NE(parse_error(cluster_args({"--tls-cert", "/nonexistent.pem", "--tls-key",
                                      "/etc/hostname", "--tls-ca", "/etc/hostname"}))
                .find("TLS file '/nonexistent.pem' cannot be read"),
            std::string::npos);
  EXPECT_NE(parse_error({"--pipeline", "x.yaml", "--embedded-kafka", "--seeds", "127.0.0.1:1"})
                .find("only for a cluster node"),
            std::string::npos);
  EXPECT_NE(parse_error(cluster_args({}, "70000")).find("at most 65535"), std::string::npos);
  EXPECT_NE(parse_error(cluster_args({"--stop-snapshot", "x"})).find("not supported"),
            std::string::npos);
}

TEST(NodeOptions, NonLoopbackClusterAddressNeedsTlsOrTheLoudOverride) {
  const auto err = parse_error(cluster_args({"--cluster-address", "0.0.0.0:7402"}));
  EXPECT_NE(err.find("refusing to listen on a non-loopback address without TLS"), std::string::npos)
      << err;
  EXPECT_NE(err.find("--insecure-plaintext-cluster"), std::string::npos);
  const auto o =
      parse(cluster_args({"--cluster-address", "10.0.0.5:7402", "--insecure-plaintext-cluster"}));
  EXPECT_TRUE(o.insecure_plaintext_cluster);
  const auto t =
      parse(cluster_args({"--cluster-address", "10.0.0.5:7402", "--tls-cert", "/etc/hostname",
                          "--tls-key", "/etc/hostname", "--tls-ca", "/etc/hostname"}));
  EXPECT_EQ(t.tls_ca, "/etc/hostname");
  for (const char* loop : {"127.0.0.1:7402", "localhost:7402", "127.1.2.3:7402"})
    EXPECT_EQ(parse(cluster_args({"--cluster-address", loop})).cluster_address, loop);
}
