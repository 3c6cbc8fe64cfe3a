#include "core/logging.hpp"

#include <chrono>
#include <ctime>
#include <stdexcept>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace keyflow::logging {

namespace {

thread_local const log_ctx* current = nullptr;

void append(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.append(s.data(), s.data() + s.size());
}

/// Text: the context of the call as " [operator=... key_group=... actor=...]" (pattern
/// flag %*); nothing without one.
class context_flag final : public spdlog::custom_flag_formatter {
public:
  void format(const spdlog::details::log_msg&, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const auto* c = current;
    if (c == nullptr || (c->op.empty() && c->key_group < 0 && c->actor.empty()))
      return;
    const char* sep = " [";
    auto field = [&](std::string_view name, std::string_view value) {
      append(dest, sep);
      sep = " ";
      append(dest, name);
      dest.push_back('=');
      if (!value.empty() && value.find_first_of(" \"=[]") == std::string_view::npos) {
        append(dest, value);
        return;
      }
      dest.push_back('"');
      for (char ch : value) {
        if (ch == '"' || ch == '\\')
          dest.push_back('\\');
        dest.push_back(ch);
      }
      dest.push_back('"');
    };
    if (!c->op.empty())
      field("operator", c->op);
    if (c->key_group >= 0)
      field("key_group", std::to_string(c->key_group));
    if (!c->actor.empty())
      field("actor", c->actor);
    dest.push_back(']');
  }

  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<context_flag>();
  }
};

/// The level names of --log-level ("warn", not spdlog's "warning").
std::string_view level_name(spdlog::level::level_enum l) {
  switch (l) {
  case spdlog::level::trace:
    return "trace";
  case spdlog::level::debug:
    return "debug";
  case spdlog::level::info:
    return "info";
  case spdlog::level::warn:
    return "warn";
  case spdlog::level::err:
    return "error";
  case spdlog::level::critical:
    return "critical";
  default:
    return "off";
  }
}

/// ISO-8601 UTC with milliseconds: 2024-05-01T12:00:00.123Z.
std::string iso8601(spdlog::log_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  auto frac = ms % 1000;
  if (frac < 0) { // before 1970
    frac += 1000;
    --secs;
  }
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/// JSON: one object per line.
class json_formatter final : public spdlog::formatter {
public:
  explicit json_formatter(uint32_t node_id) : node_id_(node_id) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json j;
    j["ts"] = iso8601(msg.time);
    j["level"] = std::string{level_name(msg.level)};
    j["node"] = node_id_;
    j["logger"] = std::string{msg.logger_name.data(), msg.logger_name.size()};
    j["msg"] = std::string{msg.payload.data(), msg.payload.size()};
    if (const auto* c = current) {
      if (!c->op.empty())
        j["operator"] = std::string{c->op};
      if (c->key_group >= 0)
        j["key_group"] = c->key_group;
      if (!c->actor.empty())
        j["actor"] = std::string{c->actor};
    }
    // Keys and messages may hold any bytes: invalid UTF-8 becomes U+FFFD, never an exception.
    append(dest, j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    dest.push_back('\n');
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_formatter>(node_id_);
  }

private:
  uint32_t node_id_;
};

} // namespace

const log_ctx* current_context() noexcept {
  return current;
}

detail::scoped_context::scoped_context(const log_ctx& ctx) noexcept : previous_(current) {
  current = &ctx;
}

detail::scoped_context::~scoped_context() {
  current = previous_;
}

std::unique_ptr<spdlog::formatter> make_formatter(const std::string& format, uint32_t node_id) {
  if (format == "json")
    return std::make_unique<json_formatter>(node_id);
  if (format != "text")
    throw std::invalid_argument("log format '" + format + "': expected text or json");
  // spdlog's default look ("[%Y-%m-%d %H:%M:%S.%e] [%n] [%l] %v", level coloured on a
  // terminal), with the node and the call's context.
  std::string node = node_id > 0 ? " [node " + std::to_string(node_id) + "]" : "";
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<context_flag>('*').set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n]" + node +
                                             " [%^%l%$] %v%*");
  return f;
}

void setup_logging(const std::string& format, const std::string& level, uint32_t node_id) {
  auto formatter = make_formatter(format, node_id);
  std::shared_ptr<spdlog::sinks::sink> sink;
  if (format == "json")
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  else
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  sink->set_formatter(std::move(formatter));
  auto logger = std::make_shared<spdlog::logger>("keyflowd", std::move(sink));
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

} // namespace keyflow::logging
