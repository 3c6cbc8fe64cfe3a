// An in-process Kafka cluster: librdkafka's mock cluster (rdkafka_mock.h), for first tries,
// tests and the keyflow-broker tool.
//
// Facts about the librdkafka 2.0.2 mock cluster (checked against the installed header, the
// library's config properties and by experiment):
// - Every mock broker listens on 127.0.0.1 with an ephemeral port chosen by the kernel.
//   There is no API or property to choose the port (the only test.mock.* properties are
//   test.mock.num.brokers and test.mock.broker.rtt). For a fixed port, embedded_kafka runs
//   a tcp_forwarder on 127.0.0.1:<port> that relays to broker 1; clients bootstrap through
//   it, learn the brokers' real addresses from Metadata and then connect to them directly.
//   Everything is loopback only: clients on other hosts cannot reach the mock brokers.
// - Topics are auto-created: a Metadata request naming an unknown topic creates it with 4
//   partitions and replication factor min(3, brokers). That happens for a producer's first
//   send, `kcat -L -t T`, and consumers (kcat -C, subscribe), even when the client sets
//   allow.auto.create.topics=false. Create topics explicitly (create_topic) before any
//   client names them when the partition count matters; creating an existing topic fails.
// - Retention: each partition keeps only its newest ~5 MiB of record batches or 100000
//   batches, whichever is less (fixed in librdkafka, no API to change it); older batches are
//   dropped and the log start offset moves up, as with Kafka retention. About 50 K
//   uncompressed ~100-byte events per partition; compressed batches (lz4 ~3x, zstd ~4x)
//   stretch that. Use enough partitions, or consume while producing, to lose nothing.
// - rd_kafka_mock_topic_create itself accepts 0 partitions and illegal names, so
//   create_topic validates both first.
// - Garbage bytes on a broker port are logged (PROTOERR) and the connection is dropped; the
//   cluster keeps serving.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace keyflow::kafka {

class tcp_forwarder;

/// A running librdkafka mock cluster; destroyed (with all its data) by the destructor.
class embedded_kafka {
public:
  /// Starts `brokers` mock brokers (1..32). If `port` is not 0, also accepts bootstrap
  /// connections on 127.0.0.1:port. Throws std::runtime_error on failure (e.g. port taken).
  explicit embedded_kafka(int brokers = 1, std::uint16_t port = 0);

  /// Stops the forwarder, destroys the cluster and its rd_kafka_t handle.
  ~embedded_kafka();

  embedded_kafka(const embedded_kafka&) = delete;
  embedded_kafka& operator=(const embedded_kafka&) = delete;

  /// Creates topic `name` with `partitions` partitions (1..10000) and replication factor
  /// min(3, brokers). Throws std::runtime_error on an illegal name or count, or if the topic
  /// exists already (including by auto-creation).
  void create_topic(const std::string& name, int partitions);

  /// The value for a client's `bootstrap.servers`: "127.0.0.1:<port>" with a fixed port,
  /// otherwise the brokers' own comma-separated addresses.
  std::string bootstrap_servers() const;

  /// The mock brokers' own comma-separated addresses (ephemeral ports).
  std::string broker_addresses() const;

  /// Number of brokers.
  int brokers() const noexcept { return brokers_; }

  /// The fixed bootstrap port, or 0 if none.
  std::uint16_t port() const noexcept;

  /// Raw cluster handle for fault injection with the rd_kafka_mock_* functions.
  rd_kafka_mock_cluster_s* mock_cluster() const noexcept { return cluster_; }

private:
  int brokers_;
  rd_kafka_s* rk_ = nullptr;
  rd_kafka_mock_cluster_s* cluster_ = nullptr;
  std::unique_ptr<tcp_forwarder> forwarder_;
};

/// True if `name` is a legal Kafka topic name: 1..249 of [a-zA-Z0-9._-], not "." or "..".
bool is_valid_topic_name(const std::string& name);

} // namespace keyflow::kafka
