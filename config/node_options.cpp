/// \file
/// keyflowd node options. One table below defines every option once (name, field, checks,
/// help); it drives the command line (CLI11), the node YAML file and the help text. The
/// default of each option is the default initializer of its node_options field.

#include "config/node_options.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <map>
#include <string_view>
#include <variant>
#include <vector>

#include "config/pipeline_config.hpp"
#include "config/yaml_util.hpp"

namespace keyflow::config {
namespace {

/// The field an option sets; its type decides how values are parsed.
using member_ptr =
    std::variant<std::string node_options::*, uint32_t node_options::*, bool node_options::*>;

/// Extra check of a string value: an error description, or "" if the value is fine.
using check_fn = std::string (*)(const std::string&);

/// One option: the only place that defines it.
struct option_def {
  std::string_view name;    ///< "--name" on the command line, "name:" in the node YAML
  member_ptr field;         ///< where the value goes; its default initializer is the default
  std::string_view help;    ///< one line for --help
  check_fn check = nullptr; ///< extra check of string values
  uint32_t min = 0;         ///< smallest allowed value of integer options
  bool cli_only = false;    ///< not settable from the node YAML file (only --config)
};

constexpr std::array<std::string_view, 5> log_levels = {"trace", "debug", "info", "warn", "error"};

/// Accepts "text" or "json".
std::string check_log_format(const std::string& v) {
  return v == "text" || v == "json" ? "" : fmt::format("expected text or json, got '{}'", v);
}

/// Fails on an empty value.
std::string check_not_empty(const std::string& v) {
  return v.empty() ? "must not be empty" : "";
}

/// Checks "host:port" with a port in [min_port, 65535].
std::string check_address(const std::string& v, uint64_t min_port) {
  const auto colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return fmt::format("expected host:port, got '{}'", v);
  uint64_t port = 0;
  if (auto err =
          detail::parse_unsigned(std::string_view(v).substr(colon + 1), min_port, 65535, port);
      !err.empty())
    return fmt::format("bad port in '{}': {}", v, err);
  return {};
}

/// Checks the metrics listen address; port 0 picks a free port.
std::string check_metrics_address(const std::string& v) {
  return check_address(v, 0);
}

/// Checks the cluster address: host:port with a real port.
std::string check_cluster_address(const std::string& v) {
  return check_address(v, 1);
}

/// Checks a comma-separated list of seed addresses (may be empty).
std::string check_seeds(const std::string& v) {
  size_t start = 0;
  while (!v.empty()) {
    const auto comma = v.find(',', start);
    const std::string item = v.substr(start, comma == std::string::npos ? comma : comma - start);
    if (auto err = check_address(item, 1); !err.empty())
      return err;
    if (comma == std::string::npos)
      break;
    start = comma + 1;
  }
  return {};
}

/// Checks the Redis address; empty disables the Redis sink.
std::string check_redis(const std::string& v) {
  return v.empty() ? "" : check_address(v, 1);
}

/// Checks a comma-separated list of Kafka brokers.
std::string check_servers(const std::string& v) {
  size_t start = 0;
  while (true) {
    const auto comma = v.find(',', start);
    const std::string item = v.substr(start, comma == std::string::npos ? comma : comma - start);
    if (item.empty() || item.find_first_of(" \t") != std::string::npos)
      return fmt::format("expected host:port[,host:port...], got '{}'", v);
    if (comma == std::string::npos)
      return {};
    start = comma + 1;
  }
}

/// Checks "key=value;key=value" librdkafka properties.
std::string check_kafka_properties(const std::string& v) {
  size_t start = 0;
  while (start < v.size()) {
    auto end = v.find(';', start);
    auto item = v.substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return fmt::format("expected key=value[;key=value...], got '{}'", item);
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return {};
}

/// Checks a log level name.
std::string check_log_level(const std::string& v) {
  for (auto level : log_levels)
    if (v == level)
      return {};
  return fmt::format("expected one of trace, debug, info, warn, error, got '{}'", v);
}

/// Every option of a node, in help order.
const std::array<option_def, 46> options = {{
    {"pipeline", &node_options::pipeline, "Pipeline YAML file (required)", check_not_empty},
    {"bootstrap-servers", &node_options::bootstrap_servers,
     "Kafka bootstrap servers host:port[,host:port...]; required unless --embedded-kafka",
     check_servers},
    {"kafka-properties", &node_options::kafka_properties,
     "Extra librdkafka properties for every Kafka client, key=value;key=value (security, "
     "prefetch: e.g. queued.min.messages=1000000)",
     check_kafka_properties},
    {"embedded-kafka", &node_options::embedded_kafka,
     "Run an in-process Kafka (librdkafka mock cluster) instead of --bootstrap-servers"},
    {"embedded-partitions", &node_options::embedded_partitions,
     "Partitions of the topics the embedded Kafka creates", nullptr, 1},
    {"redis", &node_options::redis, "Redis address host:port; empty disables the Redis sink",
     check_redis},
    {"state-dir", &node_options::state_dir, "RocksDB state directory of this node",
     check_not_empty},
    {"metrics-address", &node_options::metrics_address,
     "Prometheus /metrics listen address host:port (port 0 picks a free port)",
     check_metrics_address},
    {"workers", &node_options::workers, "Actor scheduler threads; 0 = number of cores"},
    {"partition-actors", &node_options::partition_actors,
     "Partition actors; 0 = number of workers"},
    {"batch-size", &node_options::batch_size, "Max records per batch between actors", nullptr, 1},
    {"credits", &node_options::credits, "Batches in flight per sender->receiver link", nullptr, 1},
    {"flush-interval-ms", &node_options::flush_interval_ms,
     "Period of writing keyed state back to RocksDB, in ms", nullptr, 1},
    {"state-cache-keys", &node_options::state_cache_keys,
     "Keys a partition actor keeps in memory after each state write-back; the rest are read "
     "from RocksDB on access (0 = keep all)"},
    {"sink-flush-ms", &node_options::sink_flush_ms,
     "Max delay before a sink writes coalesced output, in ms"},
    {"sink-max-pending", &node_options::sink_max_pending,
     "Max coalesced keys a Redis sink holds before writing", nullptr, 1},
    {"poison-attempts", &node_options::poison_attempts,
     "Failures of an operator on the same record (each followed by a restart from the last "
     "checkpoint) before the record is dead-lettered as poison",
     nullptr, 1},
    {"restart-backoff-ms", &node_options::restart_backoff_ms,
     "Delay before the supervisor restarts a failed pipeline instance, in ms; doubles with "
     "each failure in a row",
     nullptr, 1},
    {"restart-backoff-max-ms", &node_options::restart_backoff_max_ms,
     "Longest delay between restarts of a failing pipeline instance, in ms", nullptr, 1},
    {"hot-key-percent", &node_options::hot_key_percent,
     "A key with at least this percentage of a partition actor's records (over the last "
     "10-20 s) is reported as hot (log line, keyflow_hot_keys); 0 = no detection"},
    {"no-hot-key-fanout", &node_options::no_hot_key_fanout,
     "Do not fan hot keys out. Fanout: when a running aggregate or a tumbling/sliding window "
     "of count/sum/min/max/avg is the only consumer of the source's records, each source "
     "pre-aggregates the records of keys with --hot-key-percent of its partition and the "
     "owning partition actor merges the partials"},
    {"checkpoint-dir", &node_options::checkpoint_dir,
     "Directory of checkpoints and snapshots; empty = <state-dir>-checkpoints"},
    {"checkpoint-interval-ms", &node_options::checkpoint_interval_ms,
     "Period of checkpoints in ms; 0 = only on demand and at a graceful stop"},
    {"checkpoint-timeout-ms", &node_options::checkpoint_timeout_ms,
     "A checkpoint not complete after this many ms fails and is retried at the next interval",
     nullptr, 1},
    {"checkpoints-retained", &node_options::checkpoints_retained,
     "Periodic checkpoints kept on disk (named snapshots are kept until deleted)", nullptr, 1},
    {"restore-snapshot", &node_options::restore_snapshot,
     "Start from this named snapshot instead of the latest checkpoint"},
    {"standby", &node_options::standby,
     "Start with the job stopped (a standby region): the admin API starts it with restore "
     "(e.g. an imported snapshot) or deploy; on a cluster give it to every node: the "
     "coordinator assigns no region until a restore"},
    {"stop-snapshot", &node_options::stop_snapshot,
     "At a graceful stop (SIGTERM/SIGINT), write the final checkpoint as this named snapshot"},
    {"group-id", &node_options::group_id, "Kafka consumer group id (offset commits)",
     check_not_empty},
    {"log-level", &node_options::log_level, "Log level: trace, debug, info, warn, error",
     check_log_level},
    {"log-format", &node_options::log_format,
     "Log lines as text or json (one object per line with time, level, node, operator, "
     "key_group, message)",
     check_log_format},
    {"config", &node_options::node_config,
     "Node YAML file read before the command line; keys are these option names without --",
     check_not_empty, 0, true},
    {"admin-address", &node_options::admin_address,
     "Admin API (docs/admin-api.md) listen address host:port (port 0 picks a free port)",
     check_metrics_address},
    {"admin-token-file", &node_options::admin_token_file,
     "File holding the admin API's bearer token; default: $KEYFLOW_ADMIN_TOKEN, else a random "
     "token written to <state-dir>-admin-token (mode 0600)"},
    {"admin-tls-cert", &node_options::admin_tls_cert,
     "PEM certificate: the admin API speaks HTTPS (with --admin-tls-key)"},
    {"admin-tls-key", &node_options::admin_tls_key, "PEM private key of --admin-tls-cert"},
    {"node-id", &node_options::node_id,
     "Cluster node id (unique, > 0); 0 runs a standalone node without a cluster"},
    {"cluster-address", &node_options::cluster_address,
     "Address this node listens on for other nodes and advertises to them, host:port",
     check_cluster_address},
    {"seeds", &node_options::seeds,
     "Nodes to join the cluster through, host:port[,host:port...]; only the first, named as "
     "its --cluster-address, starts a cluster by itself",
     check_seeds},
    {"heartbeat-ms", &node_options::heartbeat_ms, "Heartbeat interval between nodes, in ms",
     nullptr, 10},
    {"failure-timeout-ms", &node_options::failure_timeout_ms,
     "A node silent this long (ms) is declared dead and its regions move", nullptr, 100},
    {"regions", &node_options::regions,
     "Regions the job is split into (units of failover and rescale), or slices of a job "
     "spread over the nodes when the source is not partitioned_by_key or the pipeline has a "
     "key_by (1: the job runs whole on one node); 0 = one per source partition"},
    {"tls-cert", &node_options::tls_cert, "PEM certificate of this node for TLS between nodes"},
    {"tls-key", &node_options::tls_key, "PEM private key of --tls-cert"},
    {"tls-ca", &node_options::tls_ca,
     "PEM CA certificate that signs every node's certificate (mutual authentication)"},
    {"insecure-plaintext-cluster", &node_options::insecure_plaintext_cluster,
     "DANGEROUS: allow a non-loopback --cluster-address without TLS; anyone reaching the "
     "port can exhaust the node's memory"},
}};

/// The option named `name`, or nullptr.
const option_def* find_option(std::string_view name) {
  for (const auto& d : options)
    if (d.name == name)
      return &d;
  return nullptr;
}

/// The default of an option as text, from a default-constructed node_options.
std::string default_text(const option_def& d) {
  static const node_options defaults{};
  struct visitor {
    std::string operator()(std::string node_options::*m) const { return defaults.*m; }
    std::string operator()(uint32_t node_options::*m) const { return std::to_string(defaults.*m); }
    std::string operator()(bool node_options::*m) const { return defaults.*m ? "true" : "false"; }
  };
  return std::visit(visitor{}, d.field);
}

/// Parses `text` into the option's field; returns an error description or "".
std::string assign(const option_def& d, node_options& o, const std::string& text) {
  struct visitor {
    const option_def& d;
    node_options& o;
    const std::string& text;
    std::string operator()(std::string node_options::*m) const {
      if (d.check != nullptr)
        if (auto err = d.check(text); !err.empty())
          return err;
      o.*m = text;
      return {};
    }
    std::string operator()(uint32_t node_options::*m) const {
      uint64_t v = 0;
      auto err = detail::parse_unsigned(text, d.min, std::numeric_limits<uint32_t>::max(), v);
      if (err.empty())
        o.*m = static_cast<uint32_t>(v);
      return err;
    }
    std::string operator()(bool node_options::*m) const {
      bool v = false;
      auto err = detail::parse_bool(text, v);
      if (err.empty())
        o.*m = v;
      return err;
    }
  };
  return std::visit(visitor{d, o, text}, d.field);
}

/// All names allowed in the node YAML file, for messages.
std::string yaml_keys() {
  std::string out;
  for (const auto& d : options)
    if (!d.cli_only)
      out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

/// Where each option's value came from ("command line" or "file:line:col"), for messages.
using origins = std::map<std::string_view, std::string>;

/// Applies the node YAML file `path`: a map of option names to scalar values.
void apply_yaml_file(node_options& o, const std::string& path, origins& from) {
  const YAML::Node root =
      detail::load_document(detail::read_text_file(path, "node config file"), path);
  if (root.IsNull())
    return; // an empty file sets nothing
  if (!root.IsMap())
    throw config_error(detail::positioned(path, root.Mark(), "(top level)",
                                          "expected a map of option names to values, got " +
                                              detail::describe(root)));
  std::map<std::string, bool> seen;
  for (const auto& entry : root) {
    const YAML::Node key = entry.first; // Nodes are handles: copy, never bind to proxies
    const YAML::Node value = entry.second;
    const std::string name = key.IsScalar() ? key.Scalar() : detail::describe(key);
    auto error = [&](const YAML::Mark& m, const std::string& what) {
      return config_error(detail::positioned(path, m, name, what));
    };
    const option_def* d = find_option(name);
    if (!key.IsScalar() || d == nullptr || d->cli_only)
      throw error(key.Mark(), fmt::format("unknown key '{}' (allowed: {})", name, yaml_keys()));
    if (seen[name])
      throw error(key.Mark(), fmt::format("duplicate key '{}'", name));
    seen[name] = true;
    if (!value.IsScalar())
      throw error(value.IsNull() ? key.Mark() : value.Mark(),
                  "expected a single value, got " + detail::describe(value));
    if (auto err = assign(*d, o, value.Scalar()); !err.empty())
      throw error(value.Mark(), err);
    from[d->name] = fmt::format("{}:{}:{}", path, key.Mark().line + 1, key.Mark().column + 1);
  }
}

/// Registers every option with CLI11; values are kept as text and parsed by assign().
std::vector<CLI::Option*> register_options(CLI::App& app, std::vector<std::string>& values) {
  std::vector<CLI::Option*> registered;
  for (size_t i = 0; i < options.size(); ++i) {
    const option_def& d = options[i];
    const std::string flag = "--" + std::string(d.name);
    const std::string def = default_text(d);
    const std::string help = fmt::format("{} [default: {}]", d.help, def.empty() ? "\"\"" : def);
    if (std::holds_alternative<bool node_options::*>(d.field)) {
      registered.push_back(app.add_flag(flag, help));
      continue;
    }
    auto* opt = app.add_option(flag, values[i], help);
    opt->type_name(std::holds_alternative<uint32_t node_options::*>(d.field) ? "UINT" : "TEXT");
    registered.push_back(opt);
  }
  return registered;
}

/// The CLI11 application of keyflowd with every option registered.
void describe_app(CLI::App& app) {
  app.name("keyflowd");
  app.description("keyflowd: a node of the Keyflow stream processor.\nOptions may also come "
                  "from a node YAML file (--config FILE, keys = option names without --); "
                  "the command line wins.");
  app.get_formatter()->column_width(34);
}

/// True if `host` is a loopback address or name.
bool loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.rfind("127.", 0) == 0;
}

/// Checks the admin API's token file and TLS files: both TLS files or neither, all readable.
void resolve_admin(const node_options& o) {
  if (o.admin_tls_cert.empty() != o.admin_tls_key.empty())
    throw config_error("--admin-tls-cert and --admin-tls-key: give both (HTTPS needs the "
                       "certificate and its key) or neither");
  for (const auto* f : {&o.admin_token_file, &o.admin_tls_cert, &o.admin_tls_key}) {
    if (f->empty())
      continue;
    std::FILE* fp = std::fopen(f->c_str(), "r");
    if (fp == nullptr)
      throw config_error(fmt::format("admin file '{}' cannot be read", *f));
    std::fclose(fp);
  }
}

/// Checks the cluster options of a node with --node-id.
void resolve_cluster(const node_options& o) {
  const bool any_tls = !o.tls_cert.empty() || !o.tls_key.empty() || !o.tls_ca.empty();
  const bool all_tls = !o.tls_cert.empty() && !o.tls_key.empty() && !o.tls_ca.empty();
  if (any_tls && !all_tls)
    throw config_error("--tls-cert, --tls-key and --tls-ca: give all three (mutual TLS needs "
                       "this node's certificate, its key and the CA that signs every node)");
  for (const auto* f : {&o.tls_cert, &o.tls_key, &o.tls_ca}) {
    if (f->empty())
      continue;
    std::FILE* fp = std::fopen(f->c_str(), "r");
    if (fp == nullptr)
      throw config_error(fmt::format("TLS file '{}' cannot be read", *f));
    std::fclose(fp);
  }
  if (o.node_id > 65535)
    throw config_error(fmt::format("--node-id {}: must be at most 65535", o.node_id));
  if (o.node_id == 0) {
    if (!o.seeds.empty() || any_tls)
      throw config_error("--seeds and --tls-*: only for a cluster node; give --node-id N (> 0)");
    return;
  }
  if (3ull * o.heartbeat_ms > o.failure_timeout_ms)
    throw config_error(fmt::format("--failure-timeout-ms {}: must be at least three heartbeats "
                                   "(--heartbeat-ms {})",
                                   o.failure_timeout_ms, o.heartbeat_ms));
  if (o.checkpoint_dir.empty())
    throw config_error("--checkpoint-dir: missing; a cluster node needs checkpoint storage "
                       "every node can reach (a shared directory)");
  if (!o.restore_snapshot.empty() || !o.stop_snapshot.empty())
    throw config_error("--restore-snapshot and --stop-snapshot: not supported on a cluster "
                       "node yet (regions checkpoint on their own)");
  const auto host = o.cluster_address.substr(0, o.cluster_address.rfind(':'));
  if (!loopback(host) && !all_tls && !o.insecure_plaintext_cluster)
    throw config_error(fmt::format(
        "--cluster-address {}: refusing to listen on a non-loopback address without TLS: the "
        "plain CAF protocol lets anyone who reaches the port make this node allocate "
        "gigabytes before any check. Give --tls-cert, --tls-key and --tls-ca (or, knowing "
        "this, --insecure-plaintext-cluster)",
        o.cluster_address));
}

/// Checks options that depend on each other once all sources are applied. A Kafka choice on
/// the command line (--bootstrap-servers or --embedded-kafka) replaces the file's other one.
void resolve_combination(node_options& o, const origins& from) {
  auto where = [&](std::string_view name) {
    auto it = from.find(name);
    return it == from.end() ? std::string("default") : it->second;
  };
  auto from_cli = [&](std::string_view name) { return where(name) == "command line"; };
  if (o.pipeline.empty())
    throw config_error("--pipeline: missing; give the pipeline YAML file with --pipeline FILE "
                       "(or 'pipeline:' in the --config file)");
  if (!o.bootstrap_servers.empty() && o.embedded_kafka) {
    if (from_cli("embedded-kafka") && !from_cli("bootstrap-servers"))
      o.bootstrap_servers.clear();
    else if (from_cli("bootstrap-servers") && !from_cli("embedded-kafka"))
      o.embedded_kafka = false;
    else
      throw config_error(fmt::format("--bootstrap-servers ({}) and --embedded-kafka ({}) "
                                     "exclude each other; give only one",
                                     where("bootstrap-servers"), where("embedded-kafka")));
  }
  if (o.bootstrap_servers.empty() && !o.embedded_kafka)
    throw config_error("--bootstrap-servers: missing; give --bootstrap-servers HOST:PORT for a "
                       "real Kafka or --embedded-kafka for an in-process one");
  resolve_admin(o);
  resolve_cluster(o);
}

} // namespace

node_options parse_node_options(int argc, const char* const* argv) {
  CLI::App app;
  describe_app(app);
  std::vector<std::string> values(options.size());
  const std::vector<CLI::Option*> cli = register_options(app, values);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    std::exit(0);
  } catch (const CLI::ParseError& e) {
    throw config_error(fmt::format("command line: {} (see --help)", e.what()));
  }
  node_options o;
  origins from;
  const option_def& config = *find_option("config");
  const size_t config_index = static_cast<size_t>(&config - options.data());
  if (cli[config_index]->count() > 0) {
    if (auto err = assign(config, o, values[config_index]); !err.empty())
      throw config_error(fmt::format("--config: {}", err));
    apply_yaml_file(o, o.node_config, from);
  }
  for (size_t i = 0; i < options.size(); ++i) {
    if (i == config_index || cli[i]->count() == 0)
      continue;
    const option_def& d = options[i];
    const bool flag = std::holds_alternative<bool node_options::*>(d.field);
    const std::string text = flag ? cli[i]->as<std::string>() : values[i];
    if (auto err = assign(d, o, flag && text.empty() ? "true" : text); !err.empty())
      throw config_error(fmt::format("--{}: {}", d.name, err));
    from[d.name] = "command line";
  }
  resolve_combination(o, from);
  return o;
}

std::string node_options_help() {
  CLI::App app;
  describe_app(app);
  std::vector<std::string> values(options.size());
  register_options(app, values);
  return app.help();
}

std::vector<node_option_doc> node_option_docs() {
  std::vector<node_option_doc> out;
  out.reserve(options.size());
  for (const option_def& d : options) {
    std::string type = "string";
    if (std::holds_alternative<bool node_options::*>(d.field))
      type = "flag";
    else if (std::holds_alternative<uint32_t node_options::*>(d.field))
      type = "integer";
    out.push_back(node_option_doc{std::string(d.name), type, default_text(d), std::string(d.help),
                                  d.min, d.cli_only});
  }
  return out;
}

} // namespace keyflow::config
