#pragma once
/// \file
/// Options of one keyflowd node. Each option is defined once (name, default, help) in
/// node_options.cpp and works the same from the command line (`--name value`) and from a
/// node YAML file (`--config node.yaml`, keys = option names); the command line wins.

#include <cstdint>
#include <string>
#include <vector>

namespace keyflow::config {

/// All options of a keyflowd node. Defaults are the values below.
struct node_options {
  std::string pipeline;          ///< pipeline YAML file; required
  std::string bootstrap_servers; ///< Kafka bootstrap servers; empty with --embedded-kafka
  /// Extra librdkafka properties for every client, "key=value;key=value"; default none.
  std::string kafka_properties;
  bool embedded_kafka = false;      ///< run an in-process librdkafka mock cluster; default off
  uint32_t embedded_partitions = 4; ///< partitions of topics the embedded Kafka creates; default 4
  std::string redis = "";           ///< Redis address host:port; empty disables the Redis sink
  std::string state_dir = "./keyflow-state";      ///< RocksDB directory of this node
  std::string metrics_address = "127.0.0.1:9464"; ///< Prometheus /metrics listen address
  uint32_t workers = 0;                           ///< CAF scheduler threads; 0 = number of cores
  uint32_t partition_actors = 0;                  ///< partition actors; 0 = number of workers
  uint32_t batch_size = 1024;        ///< max records per batch between actors; default 1024
  uint32_t credits = 4;              ///< batches in flight per sender->receiver link; default 4
  uint32_t flush_interval_ms = 1000; ///< write-back period of keyed state to RocksDB (ms)
  /// Keys a partition actor keeps in memory after each write-back (0 = all); default 2M.
  uint32_t state_cache_keys = 2000000;
  uint32_t sink_flush_ms = 50;       ///< max delay before a sink writes coalesced output (ms)
  uint32_t sink_max_pending = 20000; ///< max coalesced keys a Redis sink holds before writing
  uint32_t poison_attempts = 3; ///< failures naming a record before it is dead-lettered as poison
  uint32_t restart_backoff_ms = 100;       ///< delay before restarting after a failure (doubles)
  uint32_t restart_backoff_max_ms = 30000; ///< longest delay between restarts
  uint32_t hot_key_percent = 20; ///< a key with this % of a partition actor's records is hot
  /// Sources do not pre-aggregate hot keys (no fanout); default off (fanout on).
  bool no_hot_key_fanout = false;
  std::string checkpoint_dir; ///< checkpoints and snapshots; empty = "<state_dir>-checkpoints"
  uint32_t checkpoint_interval_ms = 5000; ///< checkpoint period; 0 = on demand/at stop only
  uint32_t checkpoint_timeout_ms = 60000; ///< a checkpoint not done by then fails
  uint32_t checkpoints_retained = 3;      ///< periodic checkpoints kept
  std::string restore_snapshot;           ///< start from this named snapshot
  /// Start with the job stopped; the admin API starts it (restore, deploy). Default off.
  bool standby = false;
  std::string stop_snapshot; ///< at a graceful stop, write the final checkpoint as this snapshot
  std::string group_id = "keyflow"; ///< Kafka consumer group id (offset commits)
  std::string log_level = "info";   ///< trace, debug, info, warn, error
  std::string node_config;          ///< node YAML file read before the command line
  /// Admin API (docs/admin-api.md) listen address host:port; default 127.0.0.1:9465, port 0
  /// picks a free one.
  std::string admin_address = "127.0.0.1:9465";
  /// File holding the admin API's bearer token; empty: $KEYFLOW_ADMIN_TOKEN, else a random
  /// token written to "<state_dir>-admin-token".
  std::string admin_token_file;
  std::string admin_tls_cert;      ///< PEM certificate: the admin API speaks HTTPS; default off
  std::string admin_tls_key;       ///< PEM private key of admin_tls_cert
  std::string log_format = "text"; ///< text or json (one JSON object per line)
  uint32_t node_id = 0;            ///< cluster node id (> 0, unique); 0 = a standalone node
  /// Address other nodes reach this node at (and it listens on); loopback by default.
  std::string cluster_address = "127.0.0.1:7400";
  std::string seeds;                  ///< nodes to join through, host:port[,host:port...]
  uint32_t heartbeat_ms = 500;        ///< heartbeat interval between nodes (ms)
  uint32_t failure_timeout_ms = 3000; ///< silence after which a node is declared dead (ms)
  uint32_t regions = 0;               ///< regions of the job; 0 = one per source partition (or 1)
  std::string tls_cert;               ///< PEM certificate of this node (TLS between nodes)
  std::string tls_key;                ///< PEM private key of tls_cert
  std::string tls_ca;                 ///< PEM CA certificate peers' certificates must be signed by
  /// Allow a non-loopback --cluster-address without TLS (anyone who reaches the port can
  /// make the node allocate memory before any check). Default off.
  bool insecure_plaintext_cluster = false;
};

/// Parses argv (and the node YAML named by --config) into options. On --help prints the
/// help and exits 0; on a bad option throws config_error naming the option (and file:line).
node_options parse_node_options(int argc, const char* const* argv);

/// Human-readable help text listing every option with its default.
std::string node_options_help();

/// One node option as the generated documentation (docs/configuration.md) shows it, taken
/// from the option table in node_options.cpp.
struct node_option_doc {
  std::string name;          ///< option name: "--name" on the command line, "name:" in YAML
  std::string type;          ///< "string", "integer" or "flag"
  std::string default_value; ///< default as text: "" for an empty string, "false" for a flag
  std::string help;          ///< the option's --help text
  uint32_t min = 0;          ///< smallest allowed value of an integer option
  bool cli_only = false;     ///< only on the command line, not in the node YAML file
};

/// Every node option in --help order, with its type and default, for generated docs.
std::vector<node_option_doc> node_option_docs();

} // namespace keyflow::config
