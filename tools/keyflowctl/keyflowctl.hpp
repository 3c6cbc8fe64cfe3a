#pragma once
/// \file
/// keyflowctl's shared parts: exit codes, the options every command takes, the admin API
/// client (docs/admin-api.md) and how commands register themselves. The commands live in
/// job.cpp (status, deploy, stop, rescale), snapshots.cpp (snapshot, snapshots, inspect,
/// diff, restore, export, import) and dlq.cpp (dlq list, dlq replay); render.hpp formats
/// their answers.

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace httplib {
class ClientImpl;
}

namespace keyflowctl {

/// keyflowctl's exit codes (also listed in `keyflowctl --help` and tools/README.md).
enum exit_code : int {
  exit_ok = 0,         ///< done
  exit_node_error = 1, ///< the node answered 500 (or another error) or could not be reached
  exit_usage = 2,      ///< a usage error, or a bad request the node rejected (400, 404)
  exit_auth = 3,       ///< the node did not accept the token (401)
  exit_refused = 4,    ///< refused in the node's current state (409)
};

/// What ends keyflowctl early: printed as "keyflowctl: <message>" on stderr, then keyflowctl
/// exits with `code()`.
class failure : public std::runtime_error {
public:
  /// A failure exiting with `code` after printing `message`.
  failure(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  /// The exit code.
  int code() const noexcept { return code_; }

private:
  int code_;
};

/// The options every command takes (group "Global options" of each command's --help).
struct global_options {
  std::string node = "127.0.0.1:9465"; ///< the node's admin API, host:port
  bool node_given = false;             ///< --node was given (else $KEYFLOW_ADMIN, if set)
  std::string token_file;              ///< --token-file; else $KEYFLOW_ADMIN_TOKEN, else default
  bool tls = false;                    ///< HTTPS
  std::string ca_file;                 ///< CA to verify the node's certificate (implies --tls)
  std::string output = "table";        ///< table or json
  int timeout_s = 60;                  ///< seconds to wait for an answer
  /// True for --output json: print the node's answers as they are.
  bool json() const { return output == "json"; }
};

/// Adds --node, --token-file, --tls, --ca-file, --output and --timeout to `cmd`, into `g`.
void add_global_options(CLI::App& cmd, global_options& g);

/// Why `name` is not a valid snapshot name (1-64 of A-Z a-z 0-9 . _ -, not "." or ".."), or
/// "" if it is one.
std::string snapshot_name_problem(const std::string& name);

/// A CLI11 check of snapshot names (a usage error naming the argument otherwise).
CLI::Validator snapshot_name_check();

/// A CLI11 check of a whole number >= `min` ("<what> >= min, got 'x'" otherwise).
CLI::Validator at_least(long long min, const std::string& what);

/// `text` percent-encoded for a URL path segment or query value.
std::string url_encode(const std::string& text);

/// A query string ("" or "?a=b&c=d") of the non-empty values among `params`.
std::string query(const std::vector<std::pair<std::string, std::string>>& params);

/// The node's answer to one call: its HTTP status and JSON body.
struct answer {
  int status = 0;      ///< HTTP status
  nlohmann::json body; ///< the parsed JSON body (an object)
  std::string raw;     ///< the body as the node sent it
};

/// A client of one node's admin API: bearer token, HTTP or HTTPS, timeouts, and the mapping
/// of transport errors and HTTP statuses to keyflowctl's messages and exit codes.
class admin_client {
public:
  /// Connects (lazily) to `g.node` with the token of --token-file, $KEYFLOW_ADMIN_TOKEN or
  /// ./keyflow-state-admin-token. Throws failure(exit_usage) for a malformed --node or an
  /// unreadable or empty token file.
  explicit admin_client(const global_options& g);
  ~admin_client();
  admin_client(const admin_client&) = delete;
  admin_client& operator=(const admin_client&) = delete;

  /// GET `path` (with its query); the JSON of a 200 answer, else throws the failure.
  nlohmann::json get(const std::string& path);
  /// POST `path` with `body` as JSON (no body if null); the JSON of a 200 answer, else throws.
  nlohmann::json post(const std::string& path, const nlohmann::json& body);
  /// `method` ("GET" or "POST") `path` with `body` (POST; none if null): the answer whatever
  /// its status. Throws failure(exit_node_error) if the node cannot be reached or does not
  /// answer with JSON.
  answer call(const std::string& method, const std::string& path, const nlohmann::json& body);
  /// Throws the failure for `a`, a non-200 answer to `method` `path`: exit code by status,
  /// message with the node's error (and, for 401, where the token came from).
  [[noreturn]] void fail(const std::string& method, const std::string& path, const answer& a) const;
  /// The body of the last answer as the node sent it (for --output json).
  const std::string& last_body() const { return last_body_; }
  /// The node's "host:port" as given.
  const std::string& node() const { return node_; }

private:
  std::string node_;                          ///< as given (for messages)
  std::string host_;                          ///< host to connect to
  int port_ = 0;                              ///< port to connect to
  bool tls_ = false;                          ///< HTTPS
  std::string ca_file_;                       ///< --ca-file
  std::string token_;                         ///< bearer token ("" = none)
  std::string token_source_;                  ///< where the token came from, for messages
  int timeout_s_ = 60;                        ///< --timeout
  std::unique_ptr<httplib::ClientImpl> http_; ///< created on the first call
  std::string last_body_;                     ///< body of the last answer
};

/// A command: its CLI11 subcommand and what runs it once it was parsed (returns the exit code).
struct command {
  CLI::App* app = nullptr;  ///< the (leaf) subcommand
  std::function<int()> run; ///< runs it; may throw failure
};

/// Adds status, deploy, stop and rescale (group "Job") to `app`.
void add_job_commands(CLI::App& app, global_options& g, std::vector<command>& out);
/// Adds snapshot, snapshots, inspect, diff, restore, export and import (group "Snapshots").
void add_snapshot_commands(CLI::App& app, global_options& g, std::vector<command>& out);
/// Adds dlq list and dlq replay (group "Dead letters").
void add_dlq_commands(CLI::App& app, global_options& g, std::vector<command>& out);

/// Prints `raw`, a JSON answer, pretty on stdout with its members in the node's order: the
/// --output json form of an answer.
void print_json(const std::string& raw);

} // namespace keyflowctl
