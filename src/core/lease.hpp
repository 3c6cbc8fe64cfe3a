#pragma once
/// \file
/// work_lease: the time until which a cluster node may go on reading input and producing
/// output for the regions it runs. The membership actor renews it at every heartbeat tick;
/// a node that stalls past the failure timeout (the others then move its regions) finds the
/// lease expired when it wakes, before it has even noticed the stall itself, so its sources
/// read nothing more and its Kafka sinks hold what is in flight until the node has stopped
/// those regions. A standalone node's lease never expires.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

namespace keyflow {

/// A deadline on the steady clock, renewed by one thread and read by many.
class work_lease {
public:
  using clock_type = std::chrono::steady_clock;

  /// Extends (or shortens) the lease to `deadline`.
  void renew_until(clock_type::time_point deadline) noexcept {
    deadline_ns_.store(deadline.time_since_epoch().count(), std::memory_order_release);
  }

  /// True while the deadline has not passed.
  bool valid(clock_type::time_point now = clock_type::now()) const noexcept {
    return now.time_since_epoch().count() < deadline_ns_.load(std::memory_order_acquire);
  }

private:
  std::atomic<int64_t> deadline_ns_{std::numeric_limits<int64_t>::max()};
};

} // namespace keyflow
