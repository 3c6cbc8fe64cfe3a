// keyflow-broker: runs the embedded Kafka (librdkafka mock cluster) as its own process, so
// several local keyflowd nodes and outside clients (kcat, any Kafka client) can share it.
//
// Prints exactly one line "bootstrap.servers=<addr>" on stdout, optionally writes <addr> to
// --bootstrap-file (atomically), then serves until SIGINT or SIGTERM and exits 0.
// All data lives in memory and is gone when the process ends.
#include "kafka/embedded_kafka.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <signal.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

/// A topic to create at start: NAME[:PARTITIONS].
struct topic_spec {
  std::string name;
  int partitions = 4;
};

/// Parses "NAME[:PARTITIONS]"; returns an error message, empty on success.
std::string parse_topic_spec(const std::string& text, topic_spec& out) {
  auto colon = text.rfind(':');
  out.name = text.substr(0, colon);
  out.partitions = 4;
  if (colon != std::string::npos) {
    const std::string count = text.substr(colon + 1);
    std::size_t used = 0;
    try {
      out.partitions = std::stoi(count, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (count.empty() || used != count.size() || out.partitions < 1 || out.partitions > 10000)
      return "bad partition count '" + count + "' in --topic '" + text + "' (want 1..10000)";
  }
  if (!keyflow::kafka::is_valid_topic_name(out.name))
    return "illegal topic name '" + out.name + "' in --topic '" + text +
           "' (use 1..249 of a-z A-Z 0-9 . _ -)";
  return {};
}

/// Writes `content` to `path` via a temporary file in the same directory and rename(2),
/// so a reader never sees a partial file.
void write_file_atomically(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    out.flush();
    if (!out)
      throw std::runtime_error("cannot write '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "'");
  }
}

/// Blocks SIGINT/SIGTERM in this thread (and so in every thread started later) and returns
/// the set, for sigwait.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

/// Options of keyflow-broker.
struct options {
  int port = 0;
  int brokers = 1;
  std::vector<std::string> topics;
  std::string bootstrap_file;
};

/// Starts the cluster, announces it and waits for a stop signal. Returns the exit code.
int run(const options& opt, const std::vector<topic_spec>& topics) {
  sigset_t stop = block_stop_signals();
  keyflow::kafka::embedded_kafka kafka(opt.brokers, static_cast<std::uint16_t>(opt.port));
  for (const auto& t : topics)
    kafka.create_topic(t.name, t.partitions);
  const std::string bootstrap = kafka.bootstrap_servers();
  if (!opt.bootstrap_file.empty())
    write_file_atomically(opt.bootstrap_file, bootstrap + "\n");
  std::cerr << "keyflow-broker: " << opt.brokers << " broker(s) at " << kafka.broker_addresses();
  if (kafka.port() != 0)
    std::cerr << ", bootstrap port 127.0.0.1:" << kafka.port();
  for (const auto& t : topics)
    std::cerr << ", topic " << t.name << " (" << t.partitions << " partitions)";
  std::cerr << "; stop with SIGINT or SIGTERM\n"
            << "keyflow-broker: note: in-memory only; each partition keeps its newest ~5 MiB "
               "(or 100000 batches), older records are dropped like Kafka retention"
            << std::endl;
  std::cout << "bootstrap.servers=" << bootstrap << std::endl;
  int sig = 0;
  sigwait(&stop, &sig);
  std::cerr << "keyflow-broker: got " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", shutting down"
            << std::endl;
  if (!opt.bootstrap_file.empty()) {
    std::error_code ec;
    std::filesystem::remove(opt.bootstrap_file, ec); // no stale address for the next waiter
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyflow-broker: an embedded Kafka (librdkafka mock cluster) in its own "
               "process, for local runs and tests. Data is kept in memory only."};
  app.option_defaults()->always_capture_default();
  options opt;
  app.add_option("--port", opt.port,
                 "fixed bootstrap port on 127.0.0.1 (0 = print the brokers' own ephemeral "
                 "addresses)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--brokers", opt.brokers, "number of mock brokers")->check(CLI::Range(1, 32));
  app.add_option("--topic", opt.topics,
                 "topic to create, NAME[:PARTITIONS] (default 4 partitions); repeatable. "
                 "Unknown topics are also auto-created with 4 partitions on first use");
  app.add_option("--bootstrap-file", opt.bootstrap_file,
                 "write the bootstrap address to this file (atomically; removed at exit)");
  CLI11_PARSE(app, argc, argv);

  std::vector<topic_spec> topics;
  for (const auto& text : opt.topics) {
    topic_spec spec;
    if (auto err = parse_topic_spec(text, spec); !err.empty()) {
      std::cerr << "keyflow-broker: " << err << std::endl;
      return 2;
    }
    topics.push_back(spec);
  }
  try {
    return run(opt, topics);
  } catch (const std::exception& e) {
    std::cerr << "keyflow-broker: " << e.what() << std::endl;
    return 1;
  }
}
