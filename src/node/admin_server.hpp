#pragma once
/// \file
/// The node's admin API transport (docs/admin-api.md): HTTP or HTTPS with JSON answers,
/// every call authenticated with a bearer token, errors mapped to status codes. The calls
/// themselves are registered by the node (src/node/main.cpp, standalone_job.hpp).

#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "pipeline/state_inspect.hpp"

namespace httplib {
class Server;
struct Request;
} // namespace httplib

namespace keyflow::config {
struct node_options;
}

namespace keyflow::state {
struct checkpoint_info;
}

namespace prometheus {
class Registry;
}

namespace keyflow::node {

/// An answer other than 200: its HTTP status and the reason returned as {"error": reason}.
class http_error : public std::runtime_error {
public:
  /// `status` 4xx/5xx with `reason`.
  http_error(int status, const std::string& reason) : std::runtime_error(reason), status_(status) {}
  /// The HTTP status.
  int status() const noexcept { return status_; }

private:
  int status_;
};

/// 400: a bad parameter, body or name.
inline http_error bad_request(const std::string& why) {
  return {400, why};
}

/// Where the admin API's bearer token came from, and the token.
struct admin_token {
  std::string token;  ///< the secret
  std::string source; ///< "file X", "$KEYFLOW_ADMIN_TOKEN" or "generated into X"
};

/// The token of --admin-token-file (its first line), else $KEYFLOW_ADMIN_TOKEN, else a random
/// token written to "<state_dir>-admin-token" (mode 0600). Throws std::runtime_error if the
/// file is empty or cannot be written.
admin_token load_admin_token(const config::node_options& opts);

/// One call's request: query parameters and, for POST, the JSON body ({} if none).
struct admin_request {
  const httplib::Request* http = nullptr;         ///< the raw request (path matches, headers)
  nlohmann::json body = nlohmann::json::object(); ///< POST body, parsed
  /// Query parameter `name`, or `fallback` if absent; 400 if given twice.
  std::string param(const std::string& name, const std::string& fallback = {}) const;
  /// Path capture `i` (1-based) of the route's pattern.
  std::string capture(size_t i) const;
  /// Throws 400 naming the first query parameter not in `allowed` (comma-separated).
  void allow_params(const std::string& allowed) const;
};

/// A handler: answers 200 with the JSON it returns, or throws http_error (or
/// std::invalid_argument: 400, config::config_error: 400, anything else: 500).
using admin_handler = std::function<nlohmann::json(const admin_request&)>;

/// The admin API server: bearer-token check on every call, JSON errors, optional TLS.
class admin_server {
public:
  /// Listens on `address` (host:port, port 0 = any free) with `token`; with `tls_cert` and
  /// `tls_key`, HTTPS only. Throws std::runtime_error if it cannot listen.
  admin_server(const std::string& address, std::string token, const std::string& tls_cert = {},
               const std::string& tls_key = {});
  ~admin_server();
  admin_server(const admin_server&) = delete;
  admin_server& operator=(const admin_server&) = delete;

  /// Registers GET `pattern` (an httplib regex such as "/snapshots/([^/]+)").
  void get(const std::string& pattern, admin_handler h);
  /// Registers POST `pattern`.
  void post(const std::string& pattern, admin_handler h);
  /// Starts answering on its own thread (after the calls are registered).
  void start();
  /// The port it listens on.
  int port() const noexcept { return port_; }
  /// "http" or "https".
  const char* scheme() const noexcept { return tls_ ? "https" : "http"; }

private:
  std::unique_ptr<httplib::Server> server_;
  std::string token_;
  bool tls_ = false;
  int port_ = -1;
  std::thread thread_;
};

/// Registers GET /dead-letters and POST /dead-letters/replay for the dead-letter topic
/// `topic` of pipeline `pipeline` (kafka/dead_letters.hpp); `props` are the Kafka client
/// properties.
void serve_dead_letters(admin_server& server, const std::map<std::string, std::string>& props,
                        const std::string& topic, const std::string& pipeline);

/// The time now in UTC as "20261202T190405Z", usable in a snapshot name.
std::string utc_stamp();

/// 400 unless `name` is a valid snapshot name; `what` says which argument it is.
void check_name(const std::string& what, const std::string& name);

/// The string field `name` of a JSON body; 400 if missing (when `required`) or not a string.
std::string field(const nlohmann::json& body, const std::string& name, bool required);

/// The boolean field `name` of a JSON body (false if absent); 400 if not a boolean.
bool flag(const nlohmann::json& body, const std::string& name);

/// A checkpoint's or snapshot's summary for listings: name, kind, id, pipeline, version,
/// created_at_ms, size_bytes, operators with their state types, dir.
nlohmann::json summary(const state::checkpoint_info& c);

/// Sum of every series of metric family `name` in `reg` (counters and gauges), with labels
/// matching `label`=`value` if given.
double metric_sum(prometheus::Registry& reg, const std::string& name, const std::string& label = {},
                  const std::string& value = {});

/// The inspect query of GET /snapshots/{name}/state: parameters operator, key and limit; 400
/// for a limit that is not a number.
pipeline::inspect_query inspect_query_of(const admin_request& r);

/// A manifest's source offsets as [{"topic", "partition", "offset"[, "watermark_ms"]}].
nlohmann::json offsets_json(const proto::CheckpointManifest& m);

/// Copies directory `from` to `to` (which must not exist) through a temporary name; with
/// `hard_links`, files are hard-linked instead of copied (same file system only).
void copy_tree(const std::string& from, const std::string& to, bool hard_links = false);

} // namespace keyflow::node
