#pragma once
/// \file
/// Calls that must run on the node's main thread. A blocking CAF call (scoped_actor) made
/// from an HTTP server thread leaves an actor behind that the actor system's shutdown then
/// waits for; admin calls that talk to actors are queued here and run by the main loop.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>

#include <nlohmann/json.hpp>

namespace keyflow::node {

/// A queue of admin calls for the main loop.
class main_queue {
public:
  /// Queues `fn` for the main loop and returns its answer (or throws its exception).
  nlohmann::json call(std::function<nlohmann::json()> fn) {
    std::packaged_task<nlohmann::json()> task{std::move(fn)};
    auto answer = task.get_future();
    {
      std::lock_guard guard{mutex_};
      calls_.push_back(std::move(task));
    }
    cv_.notify_one();
    return answer.get();
  }

  /// Main loop: runs the queued calls, waiting up to `wait` for the first one.
  void run(std::chrono::milliseconds wait) {
    std::unique_lock lock{mutex_};
    cv_.wait_for(lock, wait, [this] { return !calls_.empty(); });
    while (!calls_.empty()) {
      auto task = std::move(calls_.front());
      calls_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::packaged_task<nlohmann::json()>> calls_;
};

} // namespace keyflow::node
