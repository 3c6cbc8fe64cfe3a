#include "redis/redis_client.hpp"

#include <cerrno>
#include <stdexcept>

#include <hiredis/hiredis.h>

namespace keyflow::redis {

address address::parse(const std::string& text) {
  address a;
  auto colon = text.rfind(':');
  a.host = colon == std::string::npos ? text : text.substr(0, colon);
  if (a.host.empty())
    throw std::invalid_argument("Redis address '" + text + "' has no host");
  if (colon != std::string::npos) {
    try {
      size_t used = 0;
      a.port = std::stoi(text.substr(colon + 1), &used);
      if (used != text.size() - colon - 1 || a.port <= 0 || a.port > 65535)
        throw std::invalid_argument("port");
    } catch (const std::exception&) {
      throw std::invalid_argument("Redis address '" + text + "' has an invalid port");
    }
  }
  return a;
}

client::client(const address& addr, int timeout_ms) : addr_(addr), timeout_ms_(timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ctx_ = redisConnectWithTimeout(addr.host.c_str(), addr.port, tv);
  if (ctx_ == nullptr || ctx_->err) {
    std::string why = ctx_ ? ctx_->errstr : "out of memory";
    if (ctx_)
      redisFree(ctx_);
    ctx_ = nullptr;
    throw std::runtime_error("cannot connect to Redis at " + addr.host + ":" +
                             std::to_string(addr.port) + ": " + why);
  }
  redisSetTimeout(ctx_, tv);
}

client::~client() {
  if (ctx_ != nullptr)
    redisFree(ctx_);
}

void client::append(const std::vector<std::string_view>& args) {
  argv_.clear();
  argl_.clear();
  for (auto a : args) {
    argv_.push_back(a.data());
    argl_.push_back(a.size());
  }
  if (redisAppendCommandArgv(ctx_, static_cast<int>(argv_.size()), argv_.data(), argl_.data()) !=
      REDIS_OK)
    throw std::runtime_error(std::string{"Redis append failed: "} + ctx_->errstr);
  ++pending_;
}

size_t client::exec() {
  size_t errors = 0;
  while (pending_ > 0) {
    void* reply = nullptr;
    if (redisGetReply(ctx_, &reply) != REDIS_OK) {
      pending_ = 0;
      throw std::runtime_error(std::string{"Redis I/O error: "} + ctx_->errstr);
    }
    --pending_;
    auto* r = static_cast<redisReply*>(reply);
    if (r->type == REDIS_REPLY_ERROR)
      ++errors;
    freeReplyObject(r);
  }
  return errors;
}

std::vector<array_reply> client::exec_arrays() {
  std::vector<array_reply> out;
  out.reserve(pending_);
  while (pending_ > 0) {
    void* reply = nullptr;
    errno = 0;
    if (redisGetReply(ctx_, &reply) != REDIS_OK) {
      pending_ = 0;
      bool timed_out = ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
      throw std::runtime_error(
          timed_out ? "Redis at " + addr_.host + ":" + std::to_string(addr_.port) +
                          " did not answer within " + std::to_string(timeout_ms_) + " ms"
                    : std::string{"Redis I/O error: "} + ctx_->errstr);
    }
    --pending_;
    auto* r = static_cast<redisReply*>(reply);
    auto& a = out.emplace_back();
    auto text = [](const redisReply* x) -> std::optional<std::string> {
      if (x->type == REDIS_REPLY_STRING || x->type == REDIS_REPLY_STATUS ||
          x->type == REDIS_REPLY_ERROR)
        return std::string{x->str, x->len};
      if (x->type == REDIS_REPLY_INTEGER)
        return std::to_string(x->integer);
      return std::nullopt;
    };
    if (r->type == REDIS_REPLY_ERROR) {
      a.is_error = true;
      a.error.assign(r->str, r->len);
    } else if (r->type == REDIS_REPLY_ARRAY) {
      a.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i)
        a.elements.push_back(text(r->element[i]));
    } else if (r->type != REDIS_REPLY_NIL) {
      a.elements.push_back(text(r));
    }
    freeReplyObject(r);
  }
  return out;
}

std::string client::command(const std::vector<std::string_view>& args) {
  append(args);
  void* reply = nullptr;
  --pending_;
  if (redisGetReply(ctx_, &reply) != REDIS_OK)
    throw std::runtime_error(std::string{"Redis I/O error: "} + ctx_->errstr);
  auto* r = static_cast<redisReply*>(reply);
  std::string out;
  if (r->type == REDIS_REPLY_ERROR) {
    out.assign(r->str, r->len);
    freeReplyObject(r);
    throw std::runtime_error("Redis error: " + out);
  }
  if (r->type == REDIS_REPLY_INTEGER)
    out = std::to_string(r->integer);
  else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
    out.assign(r->str, r->len);
  freeReplyObject(r);
  return out;
}

std::vector<std::pair<std::string, std::string>> client::hgetall(std::string_view key) {
  append({"HGETALL", key});
  void* reply = nullptr;
  --pending_;
  if (redisGetReply(ctx_, &reply) != REDIS_OK)
    throw std::runtime_error(std::string{"Redis I/O error: "} + ctx_->errstr);
  auto* r = static_cast<redisReply*>(reply);
  std::vector<std::pair<std::string, std::string>> out;
  if (r->type == REDIS_REPLY_ARRAY)
    for (size_t i = 0; i + 1 < r->elements; i += 2)
      out.emplace_back(std::string{r->element[i]->str, r->element[i]->len},
                       std::string{r->element[i + 1]->str, r->element[i + 1]->len});
  freeReplyObject(r);
  return out;
}

} // namespace keyflow::redis
