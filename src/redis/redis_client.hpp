#pragma once
/// \file
/// A synchronous hiredis connection with pipelined batch writes. Used by sink actors that
/// run on their own thread, so blocking here never stalls the actor scheduler.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;

namespace keyflow::redis {

/// host:port split; throws std::invalid_argument naming the address if malformed.
struct address {
  std::string host; ///< host name or IP
  int port = 6379;  ///< TCP port
  /// Parses "host:port" (or "host", port 6379).
  static address parse(const std::string& text);
};

/// One reply read by client::exec_arrays(): an error, or the elements of an array reply
/// (a string, status or integer reply is one element, a nil reply none).
struct array_reply {
  bool is_error = false;                            ///< Redis answered an error
  std::string error;                                ///< its text, when is_error
  std::vector<std::optional<std::string>> elements; ///< elements; nullopt = nil
};

/// One connection to a Redis server.
class client {
public:
  /// Connects with a timeout; throws std::runtime_error naming the address on failure.
  explicit client(const address& addr, int timeout_ms = 2000);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  /// Queues one command (arguments binary-safe) in the pipeline.
  void append(const std::vector<std::string_view>& args);

  /// Sends queued commands and reads every reply; returns the number of error replies.
  /// Throws std::runtime_error if the connection fails (the caller reconnects and retries).
  size_t exec();

  /// Sends queued commands and reads every reply, in order (e.g. pipelined HMGETs). Throws
  /// std::runtime_error if the connection fails or a reply does not come within the
  /// timeout; the connection is then unusable (the caller reconnects).
  std::vector<array_reply> exec_arrays();

  /// Runs one command and returns its reply as a string (bulk/status/integer as text;
  /// "" for nil). Throws on error replies and I/O errors.
  std::string command(const std::vector<std::string_view>& args);

  /// Runs HGETALL and returns field/value pairs.
  std::vector<std::pair<std::string, std::string>> hgetall(std::string_view key);

private:
  redisContext* ctx_ = nullptr;
  address addr_;
  int timeout_ms_ = 0;
  size_t pending_ = 0;
  std::vector<const char*> argv_;
  std::vector<size_t> argl_;
};

} // namespace keyflow::redis
