// keyflowctl: the admin tool. For now one command, `status`: asks a node's status endpoint
// (keyflowd --admin-address) and prints the cluster as that node sees it: members, the
// coordinator, the assignment of regions to nodes and what each node runs.
//
// Exit codes: 0 done; 1 the node cannot be reached or answers something else than its
// status; 2 a usage error (CLI11 prints it).

#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

namespace {

/// Options of `keyflowctl status`.
struct status_options {
  std::string node = "127.0.0.1:9465"; ///< status endpoint host:port
  std::string output = "table";        ///< table or json
  int timeout_s = 5;                   ///< connect/read timeout
};

/// "region:generation, ..." of a JSON list of running regions.
std::string regions_text(const nlohmann::json& running) {
  std::string out;
  for (const auto& r : running)
    out += fmt::format("{}{} (g{})", out.empty() ? "" : ", ", r["region"].get<int>(),
                       r["generation"].get<uint64_t>());
  return out.empty() ? "-" : out;
}

/// Prints a cluster node's status as tables.
void print_cluster(const nlohmann::json& s) {
  std::printf("pipeline %s, cluster seen from node %d; coordinator: node %d; assignment v%llu%s\n",
              s.value("pipeline", "?").c_str(), s["node"].get<int>(), s["coordinator"].get<int>(),
              static_cast<unsigned long long>(s["assignment"]["version"].get<uint64_t>()),
              s.value("tls", false) ? "; TLS between nodes" : "");
  std::printf("\n%-6s %-22s %-6s %-10s %s\n", "NODE", "ADDRESS", "ALIVE", "SILENT", "RUNS");
  for (const auto& m : s["members"]) {
    auto silent = m["silent_ms"].get<int64_t>();
    std::printf("%-6s %-22s %-6s %-10s %s\n",
                (std::to_string(m["id"].get<int>()) + (m["self"].get<bool>() ? "*" : "")).c_str(),
                m["address"].get<std::string>().c_str(), m["alive"].get<bool>() ? "yes" : "no",
                silent < 0 ? "-" : fmt::format("{} ms", silent).c_str(),
                regions_text(m["running"]).c_str());
  }
  const bool spread = s.value("spread", false);
  std::map<int, std::string> partitions;
  for (const auto& r : s["regions"]) {
    std::string p;
    for (const auto& x : r["partitions"])
      p += (p.empty() ? "" : ",") + std::to_string(x.get<int>());
    if (spread && r.contains("key_groups"))
      p = fmt::format("{:<17} [{}, {})", p, r["key_groups"][0].get<int>(),
                      r["key_groups"][1].get<int>());
    partitions[r["region"].get<int>()] = p;
  }
  if (spread)
    std::printf("\none job spread over the nodes: every slice restarts with one generation; "
                "records go to the node of their key group\n");
  std::printf("\n%-7s %-6s %-12s %s\n", spread ? "SLICE" : "REGION", "OWNER", "GENERATION",
              spread ? "SOURCE PARTITIONS KEY GROUPS" : "SOURCE PARTITIONS");
  for (const auto& r : s["assignment"]["regions"]) {
    auto node = r["node"].get<int>();
    std::printf("%-7d %-6s %-12llu %s\n", r["region"].get<int>(),
                node == 0 ? "-" : std::to_string(node).c_str(),
                static_cast<unsigned long long>(r["generation"].get<uint64_t>()),
                partitions[r["region"].get<int>()].c_str());
  }
}

int run_status(const status_options& o) {
  auto colon = o.node.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "keyflowctl: --node: expected host:port, got '" << o.node << "'\n";
    return 2;
  }
  httplib::Client client{o.node.substr(0, colon), std::stoi(o.node.substr(colon + 1))};
  client.set_connection_timeout(o.timeout_s, 0);
  client.set_read_timeout(o.timeout_s, 0);
  auto res = client.Get("/status");
  if (!res) {
    std::cerr << "keyflowctl: cannot reach http://" << o.node << "/status ("
              << httplib::to_string(res.error())
              << " error; is keyflowd running with --admin-address " << o.node << "?)\n";
    return 1;
  }
  if (res->status != 200) {
    std::cerr << "keyflowctl: http://" << o.node << "/status answered " << res->status << "\n";
    return 1;
  }
  nlohmann::json s;
  try {
    s = nlohmann::json::parse(res->body);
  } catch (const std::exception& e) {
    std::cerr << "keyflowctl: http://" << o.node << "/status is not JSON: " << e.what() << "\n";
    return 1;
  }
  if (o.output == "json") {
    std::cout << s.dump(2) << "\n";
    return 0;
  }
  if (s.value("mode", "") == "cluster") {
    print_cluster(s);
  } else {
    std::printf("pipeline %s, standalone node (no cluster), %d source partitions\n",
                s.value("pipeline", "?").c_str(), s.value("partitions", 0));
  }
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"keyflowctl: the Keyflow admin tool"};
  app.require_subcommand(1);
  status_options so;
  auto* status = app.add_subcommand(
      "status", "Members, coordinator and the assignment of regions to nodes, as one node sees "
                "them (exit 1 if the node cannot be reached)");
  status->add_option("--node", so.node, "Status endpoint of any node (keyflowd --admin-address)")
      ->capture_default_str();
  status->add_option("--output", so.output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  status->add_option("--timeout", so.timeout_s, "Seconds to wait for the node")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2; // --help: 0; a usage error: 2
  }
  try {
    if (*status)
      return run_status(so);
  } catch (const std::exception& e) {
    std::cerr << "keyflowctl: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
