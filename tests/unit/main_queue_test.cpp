// The node's queue of admin calls for its main loop (src/node/main_queue.hpp): calls run on
// the thread that runs the queue, their answers and exceptions reach the caller, and once the
// queue is closed (the node stops) waiting and new calls are answered 503 instead of hanging.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include "node/main_queue.hpp"

namespace {

using keyflow::node::http_error;
using keyflow::node::main_queue;
using namespace std::chrono_literals;

TEST(MainQueue, CallsRunOnTheThreadThatRunsTheQueue) {
  main_queue q;
  std::thread::id ran_on;
  std::thread caller([&] {
    auto j = q.call([&] {
      ran_on = std::this_thread::get_id();
      return nlohmann::json{{"ok", true}};
    });
    EXPECT_EQ(j, (nlohmann::json{{"ok", true}}));
  });
  while (ran_on == std::thread::id{})
    q.run(10ms);
  caller.join();
  EXPECT_EQ(ran_on, std::this_thread::get_id());
}

TEST(MainQueue, ExceptionsReachTheCaller) {
  main_queue q;
  std::atomic<bool> done{false};
  std::thread caller([&] {
    try {
      q.call([]() -> nlohmann::json { throw http_error(409, "busy"); });
      ADD_FAILURE() << "no exception";
    } catch (const http_error& e) {
      EXPECT_EQ(e.status(), 409);
      EXPECT_STREQ(e.what(), "busy");
    }
    done = true;
  });
  while (!done)
    q.run(10ms);
  caller.join();
}

TEST(MainQueue, CloseAnswersWaitingAndLaterCalls503) {
  main_queue q;
  std::atomic<int> status{0};
  std::thread caller([&] {
    try {
      q.call([] { return nlohmann::json{}; }); // never run: the main loop has ended
    } catch (const http_error& e) {
      status = e.status();
    }
  });
  std::this_thread::sleep_for(50ms); // the call is queued
  q.close();
  caller.join();
  EXPECT_EQ(status, 503);
  EXPECT_THROW(q.call([] { return nlohmann::json{}; }), http_error);
}

} // namespace
