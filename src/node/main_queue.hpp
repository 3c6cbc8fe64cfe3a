#pragma once
/// \file
/// Calls that must run on the node's main thread. A blocking CAF call (scoped_actor) made
/// from an HTTP server thread leaves an actor behind that the actor system's shutdown then
/// waits for; admin calls that talk to actors are queued here and run by the main loop.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <utility>

#include <nlohmann/json.hpp>

#include "node/admin_server.hpp"

namespace keyflow::node {

/// A queue of admin calls for the main loop.
class main_queue {
public:
  /// Queues `fn` for the main loop and returns its answer (or throws its exception); 503 once
  /// the queue is closed (the node stops).
  nlohmann::json call(std::function<nlohmann::json()> fn) {
    std::future<nlohmann::json> answer;
    {
      std::lock_guard guard{mutex_};
      if (closed_)
        throw stopping();
      calls_.emplace_back(std::move(fn), std::promise<nlohmann::json>{});
      answer = calls_.back().second.get_future();
    }
    cv_.notify_one();
    return answer.get();
  }

  /// Main loop: runs the queued calls, waiting up to `wait` for the first one.
  void run(std::chrono::milliseconds wait) {
    std::unique_lock lock{mutex_};
    cv_.wait_for(lock, wait, [this] { return !calls_.empty(); });
    while (!calls_.empty()) {
      auto [fn, promise] = std::move(calls_.front());
      calls_.pop_front();
      lock.unlock();
      try {
        promise.set_value(fn());
      } catch (...) {
        promise.set_exception(std::current_exception());
      }
      lock.lock();
    }
  }

  /// The main loop ends: calls waiting and calls to come are answered 503.
  void close() {
    std::lock_guard guard{mutex_};
    closed_ = true;
    for (auto& [fn, promise] : calls_)
      promise.set_exception(std::make_exception_ptr(stopping()));
    calls_.clear();
  }

private:
  static http_error stopping() { return {503, "the node is stopping"}; }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<nlohmann::json()>, std::promise<nlohmann::json>>> calls_;
  bool closed_ = false;
};

} // namespace keyflow::node
