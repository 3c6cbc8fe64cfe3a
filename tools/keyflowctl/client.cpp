// keyflowctl's admin API client (keyflowctl.hpp): global options, the bearer token, HTTP or
// HTTPS through cpp-httplib, and the mapping of what went wrong to a message and exit code.

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <httplib.h>
#include <openssl/x509.h>

#include "keyflowctl.hpp"
#include "render.hpp"

namespace keyflowctl {
namespace {

/// The token file a node writes by default when started in the current directory
/// (<state-dir>-admin-token with the default --state-dir).
constexpr const char* default_token_file = "keyflow-state-admin-token";

/// Where to connect: host, port and whether to speak HTTPS.
struct endpoint {
  std::string host; ///< name or address (IPv6 without brackets)
  int port = 0;     ///< 1..65535
  bool tls = false; ///< https:// was given
};

/// Parses --node: "host:port", "[v6]:port", optionally with "http://" or "https://" and a
/// trailing "/". Returns why it is not one in `why` (and an empty host).
endpoint parse_node(std::string node, std::string& why) {
  endpoint e;
  const std::string given = node;
  for (const char* scheme : {"http://", "https://"}) {
    if (node.rfind(scheme, 0) == 0) {
      e.tls = std::string{scheme} == "https://";
      node = node.substr(std::strlen(scheme));
    }
  }
  while (!node.empty() && node.back() == '/')
    node.pop_back();
  size_t colon = std::string::npos;
  if (!node.empty() && node.front() == '[') {
    auto close = node.find(']');
    if (close != std::string::npos && close + 1 < node.size() && node[close + 1] == ':') {
      e.host = node.substr(1, close - 1);
      colon = close + 1;
    }
  } else {
    colon = node.rfind(':');
    if (colon != std::string::npos)
      e.host = node.substr(0, colon);
  }
  std::string port = colon == std::string::npos ? "" : node.substr(colon + 1);
  bool digits =
      !port.empty() && port.size() <= 5 &&
      std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); });
  if (digits)
    e.port = std::stoi(port);
  if (e.host.empty() || e.host.find('/') != std::string::npos || !digits || e.port < 1 ||
      e.port > 65535) {
    why = fmt::format("expected HOST:PORT (e.g. 127.0.0.1:9465), got '{}'", given);
    e.host.clear();
  }
  return e;
}

/// The first line of `path` without surrounding blanks. Throws failure(exit_usage) naming
/// `what` if the file cannot be read or that line is empty.
std::string first_line(const std::string& path, const std::string& what) {
  std::ifstream in{path};
  if (!in)
    throw failure(exit_usage,
                  fmt::format("{} {}: cannot read it: {}", what, path, std::strerror(errno)));
  std::string line;
  std::getline(in, line);
  auto blank = [](unsigned char c) { return std::isspace(c) != 0; };
  line.erase(line.begin(), std::find_if_not(line.begin(), line.end(), blank));
  line.erase(std::find_if_not(line.rbegin(), line.rend(), blank).base(), line.end());
  if (line.empty())
    throw failure(exit_usage,
                  fmt::format("{} {}: its first line (the token) is empty", what, path));
  return line;
}

/// Why a TCP connection to host:port fails, found by trying one (waiting up to `timeout_ms`):
/// the system's reason such as "Connection refused", or the name lookup's error.
std::string why_unreachable(const std::string& host, int port, int timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0)
    return fmt::format("cannot resolve '{}': {}", host, gai_strerror(rc));
  std::string why = "connection failed";
  for (auto* a = found; a != nullptr; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      why = std::strerror(errno);
      continue;
    }
    int err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, timeout_ms) <= 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
    close(fd);
    if (err == 0) {
      why = "connection failed (it accepts connections now: try again)";
      break;
    }
    why = std::strerror(err);
  }
  freeaddrinfo(found);
  return why;
}

/// The error text of an answer's body: its "error", else the body itself, shortened.
std::string error_of(const nlohmann::json& body) {
  if (const auto* e = find(body, {"error", "message"}); e != nullptr)
    return text(*e);
  if (body.is_null() || (body.is_object() && body.empty()))
    return "(no reason given)";
  return value_text(body, 300);
}

} // namespace

void add_global_options(CLI::App& cmd, global_options& g) {
  const std::string group = "Global options";
  cmd.add_option("--node", g.node,
                 "The node's admin API (keyflowd --admin-address); default\n"
                 "$KEYFLOW_ADMIN, else 127.0.0.1:9465; https://HOST:PORT implies --tls")
      ->type_name("HOST:PORT")
      ->each([&g](const std::string&) { g.node_given = true; })
      ->check(CLI::Validator(
          [](std::string& v) {
            std::string why;
            parse_node(v, why);
            return why;
          },
          "", "node"))
      ->group(group);
  cmd.add_option("--token-file", g.token_file,
                 "The node's admin token: this file's first line (default\n"
                 "$KEYFLOW_ADMIN_TOKEN, else ./keyflow-state-admin-token if it exists)")
      ->type_name("FILE")
      ->check(CLI::Validator(CLI::ExistingFile).description(""))
      ->group(group);
  cmd.add_flag("--tls", g.tls, "Speak HTTPS to the node (keyflowd --admin-tls-cert)")->group(group);
  cmd.add_option("--ca-file", g.ca_file,
                 "CA certificate(s) (PEM) that signed the node's certificate;\n"
                 "implies --tls (default: the system's CAs)")
      ->type_name("FILE")
      ->check(CLI::Validator(CLI::ExistingFile).description(""))
      ->group(group);
  cmd.add_option("--output", g.output,
                 "table: for people (default); json: the node's answer as it is")
      ->type_name("table|json")
      ->check(CLI::Validator(CLI::IsMember({"table", "json"})).description(""))
      ->group(group);
  cmd.add_option("--timeout", g.timeout_s, "Seconds to wait for the node's answer (default 60)")
      ->type_name("SECONDS")
      ->check(CLI::Validator(CLI::Range(1, 86400)).description(""))
      ->group(group);
}

std::string snapshot_name_problem(const std::string& name) {
  auto allowed = [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '.' || c == '_' || c == '-';
  };
  if (name.empty() || name.size() > 64 || name == "." || name == ".." ||
      !std::all_of(name.begin(), name.end(), allowed))
    return fmt::format("invalid snapshot name '{}': use 1-64 of A-Z a-z 0-9 . _ - (not '.' or "
                       "'..')",
                       name);
  return {};
}

CLI::Validator snapshot_name_check() {
  return CLI::Validator([](std::string& v) { return snapshot_name_problem(v); }, "", "NAME");
}

CLI::Validator at_least(long long min, const std::string& what) {
  return CLI::Validator(
      [min, what](std::string& v) -> std::string {
        try {
          size_t used = 0;
          long long n = std::stoll(v, &used);
          if (used == v.size() && n >= min)
            return {};
        } catch (const std::exception&) {
        }
        return fmt::format("expected {} >= {}, got '{}'", what, min, v);
      },
      "", "at_least");
}

std::string url_encode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

std::string query(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [name, value] : params)
    if (!value.empty())
      q += (q.empty() ? "?" : "&") + name + "=" + url_encode(value);
  return q;
}

admin_client::admin_client(const global_options& g)
    : node_(g.node), ca_file_(g.ca_file), timeout_s_(g.timeout_s) {
  // $KEYFLOW_ADMIN by hand: CLI11 2.1's envname() would also fill the --node of every other
  // command, which share g.node, and override the one given.
  const char* env = std::getenv("KEYFLOW_ADMIN");
  if (!g.node_given && env != nullptr && *env != '\0')
    node_ = env;
  std::string why;
  auto e = parse_node(node_, why);
  if (e.host.empty())
    throw failure(
        exit_usage,
        (g.node_given || env == nullptr || *env == '\0' ? "--node: " : "$KEYFLOW_ADMIN: ") + why);
  host_ = e.host;
  port_ = e.port;
  tls_ = e.tls || g.tls || !g.ca_file.empty();
  if (!g.token_file.empty()) {
    token_ = first_line(g.token_file, "--token-file");
    token_source_ = "--token-file " + g.token_file;
  } else if (const char* t = std::getenv("KEYFLOW_ADMIN_TOKEN"); t != nullptr && *t) {
    token_ = t;
    while (!token_.empty() && std::isspace(static_cast<unsigned char>(token_.back())))
      token_.pop_back();
    token_source_ = "$KEYFLOW_ADMIN_TOKEN";
  } else if (std::error_code ec; std::filesystem::exists(default_token_file, ec)) {
    token_ = first_line(default_token_file, "token file");
    token_source_ = std::string{"./"} + default_token_file;
  }
}

admin_client::~admin_client() = default;

answer admin_client::call(const std::string& method, const std::string& path,
                          const nlohmann::json& body) {
  const int connect_s = std::min(timeout_s_, 10);
  if (!http_) {
    if (tls_) {
      auto ssl = std::make_unique<httplib::SSLClient>(host_, port_);
      if (!ca_file_.empty())
        ssl->set_ca_cert_path(ca_file_);
      ssl->enable_server_certificate_verification(true);
      http_ = std::move(ssl);
    } else {
      http_ = std::make_unique<httplib::ClientImpl>(host_, port_);
    }
    http_->set_connection_timeout(connect_s, 0);
    http_->set_read_timeout(timeout_s_, 0);
    http_->set_write_timeout(timeout_s_, 0);
    http_->set_default_headers({{"User-Agent", "keyflowctl"}, {"Accept", "application/json"}});
    if (!token_.empty())
      http_->set_bearer_token_auth(token_);
    const bool loopback = host_ == "localhost" || host_.rfind("127.", 0) == 0 || host_ == "::1";
    if (!tls_ && !token_.empty() && !loopback)
      std::cerr << "keyflowctl: warning: the admin token goes to " << node_
                << " unencrypted (no --tls)\n";
  }
  const auto start = std::chrono::steady_clock::now();
  httplib::Result res =
      method == "POST" ? (body.is_null() ? http_->Post(path)
                                         : http_->Post(path, compact(body), "application/json"))
                       : http_->Get(path);
  if (!res) {
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto unreachable = fmt::format("cannot reach {}: ", node_);
    const std::string hint_tls = tls_ ? "" : " (if the node serves HTTPS, add --tls)";
    std::string why;
    switch (res.error()) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
      why = waited + 0.5 >= connect_s ? fmt::format("Connection timed out after {} s", connect_s)
                                      : why_unreachable(host_, port_, connect_s * 1000);
      if (why.rfind("cannot resolve", 0) != 0)
        why += fmt::format(" (is keyflowd running with --admin-address {}?)", node_);
      why = unreachable + why;
      break;
    case httplib::Error::Read:
      why = waited + 0.5 >= timeout_s_
                ? fmt::format("{} did not answer {} {} within {} s (--timeout){}", node_, method,
                              path.substr(0, path.find('?')), timeout_s_,
                              method == "POST" ? "; it may still be doing it: see `keyflowctl "
                                                 "status` and `keyflowctl snapshots`"
                                               : "")
                : unreachable + "the connection closed without an answer" + hint_tls;
      break;
    case httplib::Error::Write:
      why = unreachable + "the connection closed while sending the request" + hint_tls;
      break;
    case httplib::Error::SSLConnection:
      why = unreachable + "TLS handshake failed (does the node serve HTTPS? keyflowd "
                          "--admin-tls-cert/--admin-tls-key; without them, drop --tls)";
      break;
    case httplib::Error::SSLServerVerification: {
      auto* ssl = dynamic_cast<httplib::SSLClient*>(http_.get());
      long v = ssl == nullptr ? X509_V_OK : ssl->get_openssl_verify_result();
      why = unreachable +
            (v == X509_V_OK ? fmt::format("its certificate is not for host '{}'", host_)
                            : fmt::format("its certificate is not trusted: {}",
                                          X509_verify_cert_error_string(v))) +
            (ca_file_.empty() ? " (--ca-file FILE names the CA that signed it)"
                              : fmt::format(" (--ca-file {})", ca_file_));
      break;
    }
    case httplib::Error::SSLLoadingCerts:
      throw failure(exit_usage,
                    fmt::format("--ca-file {}: cannot load it as PEM CA certificates", ca_file_));
    default:
      why = unreachable + httplib::to_string(res.error()) + " error";
    }
    throw failure(exit_node_error, why);
  }
  answer a;
  a.status = res->status;
  a.raw = res->body;
  last_body_ = res->body;
  a.body = nlohmann::json::parse(res->body, nullptr, false);
  if (a.body.is_discarded() || !a.body.is_object()) {
    if (a.status == 200)
      throw failure(exit_node_error,
                    fmt::format("{} {} on {} answered 200 but not with a JSON object (is it a "
                                "keyflowd admin API?)",
                                method, path, node_));
    std::string raw = res->body.substr(0, 200);
    a.body = {{"error", raw.empty() ? (a.status == 404 ? "no such call (is the node's keyflowd "
                                                         "older than this keyflowctl?)"
                                                       : "(no reason given)")
                                    : raw}};
  }
  return a;
}

void admin_client::fail(const std::string& method, const std::string& path, const answer& a) const {
  const auto why = error_of(a.body);
  if (a.status == 401) {
    const char* where =
        "the node's admin token is the first line of its --admin-token-file, its "
        "$KEYFLOW_ADMIN_TOKEN, or the <state-dir>-admin-token file it writes and names in its log";
    if (token_.empty())
      throw failure(exit_auth,
                    fmt::format("authentication failed: {} answered 401: {}; no token was sent: "
                                "pass it with --token-file FILE or $KEYFLOW_ADMIN_TOKEN ({})",
                                node_, why, where));
    throw failure(exit_auth,
                  fmt::format("authentication failed: {} answered 401: {}; the token from {} "
                              "was not accepted: pass the node's token with --token-file FILE ({})",
                              node_, why, token_source_, where));
  }
  int code = exit_node_error;
  if (a.status == 400 || a.status == 404)
    code = exit_usage;
  else if (a.status == 409)
    code = exit_refused;
  std::string p = path.substr(0, path.find('?'));
  throw failure(code, fmt::format("{} {} answered {}: {}", method, p, a.status, why));
}

nlohmann::json admin_client::get(const std::string& path) {
  auto a = call("GET", path, nullptr);
  if (a.status != 200)
    fail("GET", path, a);
  return std::move(a.body);
}

nlohmann::json admin_client::post(const std::string& path, const nlohmann::json& body) {
  auto a = call("POST", path, body);
  if (a.status != 200)
    fail("POST", path, a);
  return std::move(a.body);
}

void print_json(const std::string& raw) {
  auto j = nlohmann::ordered_json::parse(raw, nullptr, false);
  if (j.is_discarded())
    std::cout << raw << std::endl;
  else
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

} // namespace keyflowctl
