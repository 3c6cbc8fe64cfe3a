#pragma once
/// \file
/// Structured logs. setup_logging() installs the node's default spdlog logger on stderr in
/// one of two formats:
///   text  today's lines, "[2024-05-01 12:00:00.123] [keyflowd] [node 2] [warning] msg",
///         with " [operator=... key_group=... actor=...]" appended when the call names them;
///   json  one JSON object per line: {"ts", "level", "node", "logger", "msg"} plus
///         "operator", "key_group" and "actor" when the call names them.
/// A log call about an operator, a key group or an actor passes a log_ctx:
///   logging::warn({.op = "dedup", .key_group = 17, .actor = "stage0/1"}, "... {}", x);
/// Plain spdlog calls keep working (without those fields).

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

namespace keyflow::logging {

/// What a log line is about; empty strings and a negative key group are left out.
struct log_ctx {
  std::string_view op{};    ///< operator id
  int32_t key_group = -1;   ///< key group
  std::string_view actor{}; ///< actor, e.g. "stage0/1" (partition actor) or "source events/3"
};

/// The formatter of `format` ("text" or "json") for node `node_id` (0: a standalone node,
/// no node shown in text). Throws std::invalid_argument for any other format.
std::unique_ptr<spdlog::formatter> make_formatter(const std::string& format, uint32_t node_id);

/// Makes the default spdlog logger "keyflowd" write to stderr in `format` ("text" or
/// "json", see make_formatter()) at `level` ("trace" ... "error").
void setup_logging(const std::string& format, const std::string& level, uint32_t node_id);

/// The context of the log call in progress on this thread (null outside a call given one).
const log_ctx* current_context() noexcept;

namespace detail {

/// Makes `ctx` the calling thread's current context for its lifetime (the formatters run
/// synchronously inside the log call, on the caller's thread).
class scoped_context {
public:
  /// Sets `ctx` as current.
  explicit scoped_context(const log_ctx& ctx) noexcept;
  /// Restores the previous context.
  ~scoped_context();
  scoped_context(const scoped_context&) = delete;
  scoped_context& operator=(const scoped_context&) = delete;

private:
  const log_ctx* previous_;
};

} // namespace detail

/// Logs `fmt` with `args` at `level` through the default logger, with `ctx`.
template <class... Args>
void log(const log_ctx& ctx, spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt,
         Args&&... args) {
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level))
    return;
  detail::scoped_context scope{ctx};
  logger->log(level, fmt, std::forward<Args>(args)...);
}

/// Logs at debug level with `ctx`.
template <class... Args>
void debug(const log_ctx& ctx, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  log(ctx, spdlog::level::debug, fmt, std::forward<Args>(args)...);
}

/// Logs at info level with `ctx`.
template <class... Args>
void info(const log_ctx& ctx, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  log(ctx, spdlog::level::info, fmt, std::forward<Args>(args)...);
}

/// Logs at warn level with `ctx`.
template <class... Args>
void warn(const log_ctx& ctx, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  log(ctx, spdlog::level::warn, fmt, std::forward<Args>(args)...);
}

/// Logs at error level with `ctx`.
template <class... Args>
void error(const log_ctx& ctx, spdlog::format_string_t<Args...> fmt, Args&&... args) {
  log(ctx, spdlog::level::err, fmt, std::forward<Args>(args)...);
}

} // namespace keyflow::logging
