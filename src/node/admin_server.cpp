#include "node/admin_server.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>

#include <prometheus/registry.h>

#include <httplib.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "config/node_options.hpp"
#include "config/pipeline_config.hpp"
#include "kafka/dead_letters.hpp"
#include "state/checkpoint_store.hpp"

namespace keyflow::node {

namespace {

/// 32 random bytes as hex.
std::string random_token() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1)
    throw std::runtime_error("admin token: no randomness available");
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

/// True if the request carries "Authorization: Bearer <token>" (compared in constant time).
bool authorized(const httplib::Request& req, const std::string& token) {
  const auto header = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (header.size() != prefix.size() + token.size() || header.rfind(prefix, 0) != 0)
    return false;
  return CRYPTO_memcmp(header.data() + prefix.size(), token.data(), token.size()) == 0;
}

void reply_error(httplib::Response& res, int status, const std::string& why) {
  res.status = status;
  res.set_content(nlohmann::json{{"error", why}}.dump() + "\n", "application/json");
}

} // namespace

admin_token load_admin_token(const config::node_options& opts) {
  if (!opts.admin_token_file.empty()) {
    std::ifstream in{opts.admin_token_file};
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
      line.pop_back();
    if (line.empty())
      throw std::runtime_error("--admin-token-file " + opts.admin_token_file +
                               ": the first line (the token) is empty");
    return {line, "file " + opts.admin_token_file};
  }
  if (const char* env = std::getenv("KEYFLOW_ADMIN_TOKEN"); env != nullptr && *env != '\0')
    return {env, "$KEYFLOW_ADMIN_TOKEN"};
  auto state = std::filesystem::path{opts.state_dir}.lexically_normal();
  if (state.filename().empty())
    state = state.parent_path();
  const std::string path = state.string() + "-admin-token";
  auto token = random_token();
  {
    std::ofstream out{path, std::ios::trunc};
    out << token << "\n";
    if (!out.flush())
      throw std::runtime_error("cannot write the admin token to " + path);
  }
  ::chmod(path.c_str(), 0600);
  return {token, "generated into " + path};
}

std::string admin_request::param(const std::string& name, const std::string& fallback) const {
  if (http->params.count(name) > 1)
    throw bad_request("parameter '" + name + "' given more than once");
  auto it = http->params.find(name);
  return it == http->params.end() ? fallback : it->second;
}

std::string admin_request::capture(size_t i) const {
  return i < http->matches.size() ? std::string{http->matches[static_cast<int>(i)]} : std::string{};
}

void admin_request::allow_params(const std::string& allowed) const {
  for (const auto& [name, value] : http->params) {
    bool known = false;
    for (size_t start = 0; start <= allowed.size();) {
      auto end = allowed.find(',', start);
      if (end == std::string::npos)
        end = allowed.size();
      auto word = allowed.substr(start, end - start);
      while (!word.empty() && word.front() == ' ')
        word.erase(0, 1);
      if (word == name)
        known = true;
      start = end + 1;
    }
    if (!known)
      throw bad_request("unknown parameter '" + name +
                        "' (allowed: " + (allowed.empty() ? std::string{"none"} : allowed) + ")");
  }
}

admin_server::admin_server(const std::string& address, std::string token,
                           const std::string& tls_cert, const std::string& tls_key)
    : token_(std::move(token)), tls_(!tls_cert.empty()) {
  if (tls_) {
    auto ssl = std::make_unique<httplib::SSLServer>(tls_cert.c_str(), tls_key.c_str());
    if (!ssl->is_valid())
      throw std::runtime_error("--admin-tls-cert " + tls_cert + " / --admin-tls-key " + tls_key +
                               ": not a usable certificate and key");
    server_ = std::move(ssl);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  server_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (authorized(req, token_))
      return httplib::Server::HandlerResponse::Unhandled;
    res.set_header("WWW-Authenticate", "Bearer");
    reply_error(res, 401,
                req.has_header("Authorization")
                    ? "the bearer token is not this node's admin token"
                    : "missing 'Authorization: Bearer <token>' (keyflowctl --token-file FILE, "
                      "or $KEYFLOW_ADMIN_TOKEN)");
    return httplib::Server::HandlerResponse::Handled;
  });
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.body.empty())
      reply_error(res, res.status,
                  res.status == 404
                      ? "no such call: " + req.method + " " + req.path + " (see docs/admin-api.md)"
                      : "HTTP " + std::to_string(res.status));
  });
  auto colon = address.rfind(':');
  auto host = address.substr(0, colon);
  auto port = std::stoi(address.substr(colon + 1));
  port_ =
      port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  if (port_ < 0)
    throw std::runtime_error("cannot listen on --admin-address " + address);
}

admin_server::~admin_server() {
  server_->stop();
  if (thread_.joinable())
    thread_.join();
}

namespace {

/// Runs `h` and writes its answer or its error.
void answer(const admin_handler& h, const httplib::Request& req, httplib::Response& res,
            bool post) {
  try {
    admin_request r;
    r.http = &req;
    if (post && !req.body.empty()) {
      r.body = nlohmann::json::parse(req.body, nullptr, false);
      if (r.body.is_discarded() || !r.body.is_object())
        throw bad_request("the body is not a JSON object");
    }
    res.set_content(h(r).dump(2) + "\n", "application/json");
  } catch (const http_error& e) {
    reply_error(res, e.status(), e.what());
  } catch (const std::invalid_argument& e) {
    reply_error(res, 400, e.what());
  } catch (const config::config_error& e) {
    reply_error(res, 400, e.what());
  } catch (const nlohmann::json::exception& e) {
    reply_error(res, 400, std::string{"bad JSON field: "} + e.what());
  } catch (const std::exception& e) {
    spdlog::error("admin {} {}: {}", req.method, req.path, e.what());
    reply_error(res, 500, e.what());
  }
}

} // namespace

void admin_server::get(const std::string& pattern, admin_handler h) {
  server_->Get(pattern, [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
    answer(h, req, res, false);
  });
}

void admin_server::post(const std::string& pattern, admin_handler h) {
  server_->Post(pattern, [h = std::move(h)](const httplib::Request& req, httplib::Response& res) {
    answer(h, req, res, true);
  });
}

void admin_server::start() {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

namespace {

/// The integer `value` of parameter `name` in [min, max]; 400 naming the parameter.
int64_t parse_integer(const std::string& name, const std::string& value, int64_t min, int64_t max) {
  int64_t n = 0;
  auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
  if (err != std::errc{} || end != value.data() + value.size() || n < min || n > max)
    throw bad_request("parameter '" + name + "': expected an integer from " + std::to_string(min) +
                      " to " + std::to_string(max) + ", got '" + value + "'");
  return n;
}

/// The dead-letter filter of a request's query parameters: reason, operator, from, and for a
/// list also limit; 400 naming a parameter that is unknown or out of its domain.
kafka::dead_letter_filter parse_filter(const admin_request& r, bool listing) {
  r.allow_params(listing ? "reason, operator, from, limit" : "reason, operator, from");
  kafka::dead_letter_filter f;
  f.reason = r.param("reason");
  if (!f.reason.empty()) {
    auto known = kafka::dead_letter_reasons();
    if (std::find(known.begin(), known.end(), f.reason) == known.end()) {
      std::string words;
      for (const auto& w : known)
        words += (words.empty() ? "" : ", ") + w;
      throw bad_request("parameter 'reason': unknown error code '" + f.reason +
                        "' (known: " + words + ")");
    }
  }
  f.operator_id = r.param("operator");
  if (auto v = r.param("limit"); listing && !v.empty())
    f.limit = static_cast<size_t>(parse_integer("limit", v, 1, 100000));
  if (auto v = r.param("from"); !v.empty())
    f.from = parse_integer("from", v, 0, std::numeric_limits<int64_t>::max());
  return f;
}

} // namespace

void serve_dead_letters(admin_server& server, const std::map<std::string, std::string>& props,
                        const std::string& topic, const std::string& pipeline) {
  server.get("/dead-letters", [=](const admin_request& r) {
    auto filter = parse_filter(r, true);
    auto entries = kafka::list_dead_letters(props, topic, filter);
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : entries)
      list.push_back(kafka::to_json(e));
    return nlohmann::json{{"topic", topic},
                          {"pipeline", pipeline},
                          {"count", entries.size()},
                          {"limit", filter.limit},
                          {"dead_letters", std::move(list)}};
  });
  auto replay_mutex = std::make_shared<std::mutex>();
  server.post("/dead-letters/replay", [=](const admin_request& r) {
    auto filter = parse_filter(r, false);
    std::lock_guard<std::mutex> guard{*replay_mutex}; // one replay of the group at a time
    auto result =
        kafka::replay_dead_letters(props, topic, kafka::default_replay_group(pipeline), filter);
    spdlog::info("dead letters: replayed {} from {} (skipped {})", result.replayed, topic,
                 result.skipped);
    auto j = kafka::to_json(result);
    j["topic"] = topic;
    return j;
  });
}

std::string utc_stamp() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

void check_name(const std::string& what, const std::string& name) {
  if (!state::checkpoint_store::valid_snapshot_name(name))
    throw bad_request(what + " '" + name +
                      "': not a valid snapshot name (1-64 characters of A-Z a-z 0-9 . _ -, not "
                      "'.' or '..')");
}

std::string field(const nlohmann::json& body, const std::string& name, bool required) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required)
      throw bad_request("body: missing \"" + name + "\"");
    return {};
  }
  if (!it->is_string())
    throw bad_request("body: \"" + name + "\" must be a string");
  return it->get<std::string>();
}

bool flag(const nlohmann::json& body, const std::string& name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null())
    return false;
  if (!it->is_boolean())
    throw bad_request("body: \"" + name + "\" must be true or false");
  return it->get<bool>();
}

nlohmann::json summary(const state::checkpoint_info& c) {
  const auto& m = c.manifest;
  nlohmann::json ops = nlohmann::json::array();
  for (const auto& o : m.operators())
    ops.push_back({{"id", o.operator_id()}, {"state_type", o.state_type()}});
  return {{"name", m.snapshot_name().empty() ? "chk-" + std::to_string(m.id()) : m.snapshot_name()},
          {"kind", m.snapshot_name().empty() ? "checkpoint" : "snapshot"},
          {"id", m.id()},
          {"epoch", m.epoch()},
          {"pipeline", m.pipeline()},
          {"version", m.pipeline_version()},
          {"created_at_ms", m.created_at_ms()},
          {"size_bytes", m.size_bytes()},
          {"mode", m.mode()},
          {"operators", std::move(ops)},
          {"dir", c.dir}};
}

double metric_sum(prometheus::Registry& reg, const std::string& name, const std::string& label,
                  const std::string& value) {
  double sum = 0;
  for (const auto& fam : reg.Collect()) {
    if (fam.name != name)
      continue;
    for (const auto& m : fam.metric) {
      if (!label.empty() && std::none_of(m.label.begin(), m.label.end(), [&](const auto& l) {
            return l.name == label && l.value == value;
          }))
        continue;
      sum += fam.type == prometheus::MetricType::Counter ? m.counter.value : m.gauge.value;
    }
  }
  return sum;
}

pipeline::inspect_query inspect_query_of(const admin_request& r) {
  pipeline::inspect_query q;
  q.operator_id = r.param("operator");
  if (auto key = r.param("key", "\x01"); key != "\x01")
    q.key = key;
  if (auto limit = r.param("limit"); !limit.empty()) {
    try {
      q.limit = std::stoul(limit);
    } catch (const std::exception&) {
      throw bad_request("parameter 'limit': expected a number, got '" + limit + "'");
    }
  }
  return q;
}

nlohmann::json offsets_json(const proto::CheckpointManifest& m) {
  nlohmann::json offsets = nlohmann::json::array();
  for (const auto& o : m.offsets()) {
    nlohmann::json e{{"topic", o.topic()}, {"partition", o.partition()}, {"offset", o.offset()}};
    if (o.has_watermark_ms())
      e["watermark_ms"] = o.watermark_ms();
    offsets.push_back(std::move(e));
  }
  return offsets;
}

void copy_tree(const std::string& from, const std::string& to, bool hard_links) {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path{to}.parent_path());
  auto tmp = to + ".tmp";
  fs::remove_all(tmp);
  auto how = fs::copy_options::recursive;
  if (hard_links)
    how |= fs::copy_options::create_hard_links;
  fs::copy(from, tmp, how);
  fs::rename(tmp, to);
}

} // namespace keyflow::node
