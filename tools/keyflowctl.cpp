// keyflowctl: the admin tool, a client of a node's admin API (keyflowd --admin-address).
// - `status`: the cluster as that node sees it: members, the coordinator, the assignment of
//   regions to nodes and what each node runs.
// - `dlq list`, `dlq replay`: the pipeline's dead letters (GET /dead-letters,
//   POST /dead-letters/replay).
//
// Exit codes: 0 done; 1 the node cannot be reached or answers with an error (its reason is
// printed); 2 a usage error (CLI11 prints it).

#include <cctype>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <string>
#include <utility>

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

/// Options of `keyflowctl dlq list` and `dlq replay`.
struct dlq_options {
  std::string node = "127.0.0.1:9465"; ///< admin endpoint host:port
  std::string reason;                  ///< only letters with this error code
  std::string operator_id;             ///< only letters of this operator
  int limit = 100;                     ///< list: at most this many letters
  int64_t from = -1;                   ///< first dead-letter offset (-1: default)
  std::string output = "table";        ///< table or json
  int timeout_s = 60;                  ///< connect/read timeout
};

/// `text` percent-encoded for a URL query.
std::string url_encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

/// The query string of the dead-letter filter options ("" or "?a=b&...").
std::string dlq_query(const dlq_options& o, bool listing) {
  std::string q;
  auto add = [&q](const char* name, const std::string& value) {
    q += (q.empty() ? "?" : "&") + std::string{name} + "=" + url_encode(value);
  };
  if (!o.reason.empty())
    add("reason", o.reason);
  if (!o.operator_id.empty())
    add("operator", o.operator_id);
  if (listing)
    add("limit", std::to_string(o.limit));
  if (o.from >= 0)
    add("from", std::to_string(o.from));
  return q;
}

/// Calls `method` `path` on the node and parses its JSON answer into `out`. Returns 0, or 1
/// after printing why (unreachable, an error answer with the node's reason, not JSON), or 2
/// for a malformed --node.
int call_node(const std::string& node, const std::string& method, const std::string& path,
              int timeout_s, nlohmann::json& out) {
  auto colon = node.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "keyflowctl: --node: expected host:port, got '" << node << "'\n";
    return 2;
  }
  httplib::Client client{node.substr(0, colon), std::stoi(node.substr(colon + 1))};
  client.set_connection_timeout(timeout_s, 0);
  client.set_read_timeout(timeout_s, 0);
  auto res = method == "POST" ? client.Post(path.c_str()) : client.Get(path.c_str());
  const auto url = "http://" + node + path;
  if (!res) {
    std::cerr << "keyflowctl: cannot reach " << url << " (" << httplib::to_string(res.error())
              << " error; is keyflowd running with --admin-address " << node << "?)\n";
    return 1;
  }
  nlohmann::json body = nlohmann::json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    std::cerr << "keyflowctl: " << method << " " << url << " answered " << res->status;
    if (body.is_object() && body.contains("error"))
      std::cerr << ": " << body["error"].get<std::string>();
    std::cerr << "\n";
    return 1;
  }
  if (body.is_discarded()) {
    std::cerr << "keyflowctl: " << url << " is not JSON\n";
    return 1;
  }
  out = std::move(body);
  return 0;
}

/// `keyflowctl dlq list`: the dead letters as a table or JSON.
int run_dlq_list(const dlq_options& o) {
  nlohmann::json j;
  if (int rc = call_node(o.node, "GET", "/dead-letters" + dlq_query(o, true), o.timeout_s, j))
    return rc;
  if (o.output == "json") {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("%-12s %-28s %-12s %-16s %-8s %s\n", "DLQ", "SOURCE", "OPERATOR", "REASON",
              "ATTEMPTS", "MESSAGE");
  for (const auto& e : j["dead_letters"]) {
    auto at = fmt::format("{}/{}", e["partition"].get<int>(), e["offset"].get<int64_t>());
    auto source = fmt::format("{}/{}/{}", e["source_topic"].get<std::string>(),
                              e["source_partition"].get<int>(), e["source_offset"].get<int64_t>());
    std::printf("%-12s %-28s %-12s %-16s %-8u %s\n", at.c_str(), source.c_str(),
                e["operator"].get<std::string>().c_str(),
                e["error_code"].get<std::string>().c_str(), e["attempts"].get<unsigned>(),
                e["error_message"].get<std::string>().c_str());
  }
  auto count = j["count"].get<size_t>();
  std::printf("\n%zu dead letter(s) in %s (pipeline %s)%s\n", count,
              j["topic"].get<std::string>().c_str(), j["pipeline"].get<std::string>().c_str(),
              count >= j["limit"].get<size_t>() ? "; limit reached: --limit or --from for more"
                                                : "");
  return 0;
}

/// "a: 1, b: 2" of a JSON object of counts ("-" if empty).
std::string counts_text(const nlohmann::json& counts) {
  std::string out;
  for (const auto& [k, v] : counts.items())
    out += fmt::format("{}{}: {}", out.empty() ? "" : ", ", k, v.get<uint64_t>());
  return out.empty() ? "-" : out;
}

/// `keyflowctl dlq replay`: replays the matching dead letters and prints what it did.
int run_dlq_replay(const dlq_options& o) {
  nlohmann::json j;
  if (int rc =
          call_node(o.node, "POST", "/dead-letters/replay" + dlq_query(o, false), o.timeout_s, j))
    return rc;
  if (o.output == "json") {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("replayed %llu dead letter(s) from %s to their source partitions (%s); "
              "passed %llu other(s) (%s); consumer group %s\n",
              static_cast<unsigned long long>(j["replayed"].get<uint64_t>()),
              j["topic"].get<std::string>().c_str(), counts_text(j["replayed_by_reason"]).c_str(),
              static_cast<unsigned long long>(j["skipped"].get<uint64_t>()),
              counts_text(j["skipped_by_reason"]).c_str(), j["group"].get<std::string>().c_str());
  return 0;
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

/// Adds `dlq list` and `dlq replay` to `app`, parsing into `dlo`; returns both commands.
std::pair<CLI::App*, CLI::App*> add_dlq_commands(CLI::App& app, dlq_options& dlo) {
  auto* dlq = app.add_subcommand("dlq", "The pipeline's dead letters: list and replay");
  dlq->require_subcommand(1);
  auto* list = dlq->add_subcommand(
      "list", "List dead letters (dead-letter partition/offset, source, operator, reason)");
  auto* replay = dlq->add_subcommand(
      "replay",
      "Write the matching dead letters back to their source topic and partition; "
      "a second replay replays nothing new (consumer group keyflow-dlq-replay-<pipeline>)");
  for (auto* c : {list, replay}) {
    c->add_option("--node", dlo.node, "Admin endpoint of the node (keyflowd --admin-address)")
        ->capture_default_str();
    c->add_option("--reason", dlo.reason,
                  "Only dead letters with this error code, e.g. "
                  "enrich_missing");
    c->add_option("--operator", dlo.operator_id, "Only dead letters of this operator id");
    c->add_option("--from", dlo.from,
                  "First dead-letter offset, in every partition (replay: instead of the "
                  "group's committed offset)")
        ->check(CLI::NonNegativeNumber);
    c->add_option("--output", dlo.output, "table or json")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
    c->add_option("--timeout", dlo.timeout_s, "Seconds to wait for the node")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
  }
  list->add_option("--limit", dlo.limit, "At most this many dead letters")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  return {list, replay};
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
  dlq_options dlo;
  auto [list, replay] = add_dlq_commands(app, dlo);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2; // --help: 0; a usage error: 2
  }
  try {
    if (*status)
      return run_status(so);
    if (*list)
      return run_dlq_list(dlo);
    if (*replay)
      return run_dlq_replay(dlo);
  } catch (const std::exception& e) {
    std::cerr << "keyflowctl: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
