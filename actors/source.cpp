// Source actor: reads a batch, routes it by key group, sends one sub-batch per partition
// actor, and never has more than `credits` unanswered batches per destination. Out of
// credit, it stops reading; still out of credit after `pause_after`, it pauses its input
// (Kafka stops fetching) until credit returns.
//
// Watermarks: the source's watermark is the greatest event time it has read minus the
// pipeline's bound on disorder. It rides on every batch and, for partition actors that got
// no batch, follows in a watermark message. Without input for the idle timeout the source
// declares itself idle, so it stops holding back the watermark of the partition actors.

#include <chrono>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "core/logging.hpp"

namespace keyflow {

namespace {

using clock_type = std::chrono::steady_clock;

struct source_state {
  source_params p;
  std::unique_ptr<router> routes;
  std::vector<uint32_t> in_flight; // per partition actor
  uint32_t dead_in_flight = 0;
  std::vector<kafka_message> dead;
  uint64_t records_read = 0;
  bool poll_scheduled = false;
  bool blocked = false;
  bool paused = false;
  bool stopping = false;
  clock_type::time_point blocked_since;
  clock_type::time_point accounted_since; // backpressured time counted up to here
  clock_type::time_point last_input = clock_type::now();
  int64_t watermark = no_watermark;
  std::vector<int64_t> sent_wm; // per partition actor: watermark it has been sent
  bool input_idle = false;      // no input for the idle timeout
  std::vector<caf::typed_response_promise<uint64_t>> stop_promises;
  prometheus::Counter* backpressured = nullptr;
  prometheus::Gauge* lag = nullptr;
  std::vector<bool> remote;                      // per partition actor: on another node
  prometheus::Counter* remote_batches = nullptr; // batches sent to another node
  static inline const char* name = "keyflow.source";

  bool has_credit() const {
    for (auto n : in_flight)
      if (n >= p.flow.credits)
        return false;
    return dead_in_flight < p.flow.credits;
  }

  bool idle() const {
    for (auto n : in_flight)
      if (n > 0)
        return false;
    return dead_in_flight == 0;
  }
};

using self_ptr = source_actor::stateful_pointer<source_state>;

void schedule_poll(self_ptr self, bool delayed) {
  auto& st = self->state;
  if (st.poll_scheduled || st.stopping)
    return;
  st.poll_scheduled = true;
  if (delayed)
    self->delayed_send(self, st.p.flow.idle_poll, atom::poll_v);
  else
    self->send(self, atom::poll_v);
}

void on_credit(self_ptr self) {
  auto& st = self->state;
  if (st.stopping) {
    if (st.idle()) {
      for (auto& rp : st.stop_promises)
        rp.deliver(st.records_read);
      st.stop_promises.clear();
    }
    return;
  }
  if (st.blocked && st.has_credit())
    schedule_poll(self, false);
}

/// Sends watermark messages to the partition actors that have not seen the current one.
void send_watermarks(self_ptr self) {
  auto& st = self->state;
  for (size_t i = 0; i < st.p.partitions.size(); ++i) {
    if (st.sent_wm[i] >= st.watermark)
      continue;
    st.sent_wm[i] = st.watermark;
    self->send(st.p.partitions[i], atom::watermark_v, st.watermark, st.p.index, false);
  }
}

/// Recomputes the watermark from the reader's greatest event time.
/// Adds the time blocked since the last count to keyflow_backpressured_seconds_total.
void count_backpressure(source_state& st) {
  auto now = clock_type::now();
  if (st.backpressured != nullptr)
    st.backpressured->Increment(std::chrono::duration<double>(now - st.accounted_since).count());
  st.accounted_since = now;
}

/// Raises the instance's watermark bound to this source's watermark.
void raise_bound(const source_state& st) {
  if (!st.p.watermark_bound)
    return;
  auto& b = *st.p.watermark_bound;
  int64_t cur = b.load(std::memory_order_relaxed);
  while (cur < st.watermark &&
         !b.compare_exchange_weak(cur, st.watermark, std::memory_order_release))
    ;
}

void update_watermark(source_state& st) {
  auto t = st.p.reader->max_event_time();
  if (t == no_watermark)
    return;
  auto wm = t - st.p.max_out_of_orderness_ms;
  if (wm > st.watermark)
    st.watermark = wm;
  raise_bound(st);
}

/// A link failed: whoever waits for this source's stop hears the error (CAF 0.17 drops
/// undelivered promises of a terminated actor silently), then the source stops.
void fail_and_quit(self_ptr self, const char* what, caf::error& err) {
  auto& st = self->state;
  auto actor = "source " + st.p.reader->name();
  logging::error({.actor = actor}, "source {}: {} failed: {}", st.p.reader->name(), what,
                 caf::to_string(err));
  for (auto& rp : st.stop_promises)
    rp.deliver(err);
  st.stop_promises.clear();
  self->quit(err);
}

void send_batches(self_ptr self) {
  auto& st = self->state;
  for (uint32_t i = 0; i < st.routes->parallelism(); ++i) {
    auto& b = st.routes->batch(i);
    if (b.records.empty())
      continue;
    ++st.in_flight[i];
    if (st.remote[i] && st.remote_batches != nullptr)
      st.remote_batches->Increment();
    record_batch out;
    out.source = st.p.index;
    out.watermark = st.watermark;
    st.sent_wm[i] = st.watermark;
    out.records.swap(b.records);
    b.records.reserve(out.records.size());
    self->request(st.p.partitions[i], caf::infinite, std::move(out))
        .then(
            [self, i](uint32_t credit) {
              self->state.in_flight[i] -= credit;
              on_credit(self);
            },
            [self](caf::error& err) { fail_and_quit(self, "partition actor", err); });
  }
  if (!st.dead.empty() && st.p.dead_letters) {
    ++st.dead_in_flight;
    kafka_batch out;
    out.messages.swap(st.dead);
    self->request(st.p.dead_letters, caf::infinite, std::move(out))
        .then(
            [self](uint32_t credit) {
              self->state.dead_in_flight -= credit;
              on_credit(self);
            },
            [self](caf::error& err) { fail_and_quit(self, "dead-letter sink", err); });
  }
  st.dead.clear();
}

void poll(self_ptr self) {
  auto& st = self->state;
  st.poll_scheduled = false;
  if (st.stopping)
    return;
  if (st.p.lease && !st.p.lease->valid()) {
    // The node may have been declared dead: read nothing until the lease is renewed (or
    // the region is stopped).
    st.poll_scheduled = true;
    self->delayed_send(self, std::chrono::milliseconds(20), atom::poll_v);
    return;
  }
  if (!st.has_credit()) {
    if (!st.blocked) {
      st.blocked = true;
      st.blocked_since = st.accounted_since = clock_type::now();
      self->delayed_send(self, st.p.flow.pause_after, atom::pause_v);
    }
    return; // on_credit() polls again
  }
  if (st.blocked) {
    st.blocked = false;
    if (st.paused) {
      st.paused = false;
      st.p.reader->resume();
    }
    count_backpressure(st);
  }
  auto n = st.p.reader->read(*st.routes, st.dead, st.p.flow.batch_size);
  st.records_read += n;
  if (n > 0) {
    st.last_input = clock_type::now();
    st.input_idle = false;
    update_watermark(st);
    send_batches(self);
    send_watermarks(self);
    schedule_poll(self, false);
    return;
  }
  // Idle only when the input is known to be read to its end: a partition whose first fetch
  // is slow, or that has records it has not read yet, keeps holding the watermark back (its
  // records would otherwise arrive late).
  if (!st.input_idle && st.p.idle_timeout.count() > 0 &&
      clock_type::now() - st.last_input >= st.p.idle_timeout && st.p.reader->lag() == 0) {
    st.input_idle = true;
    for (auto& p : st.p.partitions)
      self->send(p, atom::watermark_v, st.watermark, st.p.index, true);
    // Once input returns, every partition actor must hear that this source is active.
    std::fill(st.sent_wm.begin(), st.sent_wm.end(), no_watermark);
  }
  // An exhausted input still polls (slowly) so that it turns idle.
  schedule_poll(self, true);
}

source_actor::behavior_type source(self_ptr self, source_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  st.routes =
      std::make_unique<router>(st.p.max_parallelism, static_cast<uint32_t>(st.p.partitions.size()));
  st.in_flight.assign(st.p.partitions.size(), 0);
  st.sent_wm.assign(st.p.partitions.size(), no_watermark);
  for (const auto& p : st.p.partitions)
    st.remote.push_back(p.node() != self->node());
  if (st.p.metrics != nullptr) {
    st.remote_batches = &st.p.metrics->remote_batches("source");
    auto name = st.p.reader->name();
    st.backpressured = &st.p.metrics->backpressured_seconds("source " + name);
    auto slash = name.rfind('/');
    if (slash != std::string::npos)
      st.lag =
          &st.p.metrics->consumer_lag(name.substr(0, slash), std::stoi(name.substr(slash + 1)));
  }
  // A restored watermark holds from the start: records that were late before a restart
  // stay late when they are read again.
  st.watermark = st.p.initial_watermark;
  raise_bound(st);
  if (st.watermark != no_watermark)
    send_watermarks(self);
  schedule_poll(self, false);
  self->delayed_send(self, std::chrono::seconds(1), atom::tick_v);
  return {
      [self](atom::poll) { poll(self); },
      [self](atom::pause) {
        auto& st = self->state;
        // A timer from an earlier blocking episode finds blocked == false or a newer start.
        if (st.blocked && !st.paused &&
            clock_type::now() - st.blocked_since >= st.p.flow.pause_after) {
          st.paused = true;
          st.p.reader->pause();
        }
      },
      [self](atom::tick) {
        auto& st = self->state;
        if (st.blocked) // a long wait shows while it lasts, not only once credit returns
          count_backpressure(st);
        if (st.lag != nullptr) {
          auto lag = st.p.reader->lag();
          if (lag >= 0)
            st.lag->Set(static_cast<double>(lag));
        }
        self->delayed_send(self, std::chrono::seconds(1), atom::tick_v);
      },
      [self](atom::checkpoint, uint64_t id) -> source_position {
        auto& st = self->state;
        // Everything read so far has been sent; the barrier follows it on every link.
        for (auto& p : st.p.partitions)
          self->send(p, atom::barrier_v, id, st.p.index);
        auto pos = st.p.reader->position();
        pos.watermark = st.watermark; // sent before the barrier on every link
        return pos;
      },
      [self](atom::stop) -> caf::typed_response_promise<uint64_t> {
        auto& st = self->state;
        st.stopping = true;
        st.p.reader->pause();
        auto rp = self->make_response_promise<uint64_t>();
        if (st.idle())
          rp.deliver(st.records_read);
        else
          st.stop_promises.push_back(rp);
        return rp;
      },
  };
}

} // namespace

source_actor spawn_source(caf::actor_system& sys, source_params params) {
  return sys.spawn(source, std::move(params));
}

} // namespace keyflow
