// Partition actor: owns a key-group range of one stage, runs the stage's operators over its
// state (pipeline/stage_runner), hands outputs to the sinks and to the next stage with
// bounded credit, tracks watermarks and takes part in checkpoints.
//
// Inputs (batches, watermarks and barriers) go through one FIFO inbox. A batch is processed
// when every receiver downstream has credit; an enrich operator may suspend a batch until
// its lookups are answered, and the inbox waits behind it (order is kept, the actor is never
// blocked). A barrier marks its input as aligned. In exactly-once mode, items from an
// aligned input wait (unanswered, so that input runs out of credit) until the barriers of
// every input have arrived; then the state as of the barrier is written to RocksDB, the
// barrier is forwarded to the next stage and the checkpoint acknowledged. In at-least-once
// mode nothing waits. Changed state is also written on the flush timer, except between
// acknowledging a barrier and the coordinator's `done`: meanwhile the RocksDB checkpoint is
// being taken and must see exactly the state at the barrier.
//
// Watermarks: the input watermark is the minimum over the inputs that are not idle (the
// maximum if all are idle); operators see it after the batch that advanced it.

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "core/hot_keys.hpp"
#include "core/logging.hpp"
#include "core/router.hpp"
#include "operators/enrich.hpp"
#include "operators/window.hpp"
#include "pipeline/stage_runner.hpp"
#include "state/ttl.hpp"

namespace keyflow {

namespace {

using clock_type = std::chrono::steady_clock;

enum class item_kind : uint8_t { batch, watermark, barrier };

/// An inbox item: a batch (with the promise of its credit), a watermark or a barrier.
struct input {
  item_kind kind = item_kind::batch;
  record_batch batch; // batch.source = sender; batch.watermark for watermark items
  caf::typed_response_promise<uint32_t> promise;
  uint64_t barrier = 0;
  bool idle = false;
  size_t count = 0;                 // records in the batch (the runner takes them)
  int64_t first_ingest_ns = 0;      // ingest time of its first record (latency)
  int64_t max_event_ms = INT64_MIN; // newest event time in the batch (freshness)
  double busy_s = 0;                // time spent in the stage's operators (stage latency)
  int32_t key_group = -1;           // key group of the record when it runs alone (logs)
  // Supervision: highest source offset per partition in the batch, and the record itself
  // when it runs alone (a suspect after an operator failure).
  std::vector<record_position> span;
  std::optional<record_position> single;
};

struct partition_state {
  partition_params p;
  std::string actor; // "stage<k>/<index>": metrics and logs
  std::unique_ptr<pipeline::stage_runner> runner;
  std::deque<input> inbox;
  bool busy = false;   // the front batch waits for an enrichment lookup
  bool failed = false; // quitting after a failure: process nothing more
  // Watermarks per input.
  std::vector<int64_t> in_wm;
  std::vector<bool> in_idle;
  // Credit per receiver.
  std::vector<uint32_t> sink_in_flight;
  std::vector<uint32_t> down_in_flight;
  uint32_t dead_in_flight = 0;
  std::unique_ptr<router> down_routes;
  std::vector<int64_t> down_sent_wm;
  std::vector<bool> down_remote;                 // per next-stage actor: on another node
  prometheus::Counter* remote_batches = nullptr; // batches sent to another node
  // Checkpoint alignment.
  uint64_t aligning = 0;     // checkpoint id being aligned, 0 if none
  std::vector<bool> aligned; // per input: its barrier has arrived
  uint32_t aligned_count = 0;
  clock_type::time_point align_start;
  std::deque<input> held;     // items from aligned inputs (exactly-once mode)
  uint64_t completed = 0;     // last checkpoint whose state is written
  bool writes_allowed = true; // false from a barrier acknowledgement until `done`
  uint64_t last_alignment_us = 0;
  std::map<uint64_t, std::vector<caf::typed_response_promise<uint64_t>>> ack_promises;
  uint64_t processed = 0;
  std::vector<caf::typed_response_promise<uint64_t>> drain_promises;
  // Metrics.
  metrics::local_histogram latency;
  std::vector<prometheus::Counter*> op_in;
  std::vector<prometheus::Counter*> op_out;
  std::vector<prometheus::Counter*> op_dups;
  std::vector<uint64_t> dups_seen;
  std::vector<prometheus::Counter*> op_late;
  std::vector<uint64_t> late_seen;
  /// Enrichment counters of one enrich operator, published as deltas.
  struct enrich_metrics {
    const ops::enrich_operator* op = nullptr;
    prometheus::Counter* hit = nullptr;
    prometheus::Counter* miss = nullptr;
    prometheus::Counter* missing = nullptr;
    prometheus::Counter* failed = nullptr;
    // keyflow_dead_letters_total of its missing (dead_letter policy) and failed records.
    prometheus::Counter* dead_missing = nullptr;
    prometheus::Counter* dead_failed = nullptr;
    uint64_t seen[4] = {0, 0, 0, 0};
  };
  std::vector<enrich_metrics> enrich;
  // Hot keys: heaviest keys of this actor's input, the ones reported hot now, metrics.
  std::unique_ptr<hot_key_tracker> hot;
  std::vector<std::string> hot_now;
  prometheus::Gauge* hot_count = nullptr;
  prometheus::Gauge* hot_share = nullptr;
  prometheus::Counter* hot_detected = nullptr;
  // Backpressure: the inbox's front batch waits for credit of a sink or the next stage.
  bool blocked = false;
  clock_type::time_point accounted_since; // blocked time counted up to here
  prometheus::Counter* backpressured = nullptr;
  prometheus::Counter* flushed = nullptr;
  prometheus::Gauge* keys = nullptr;
  prometheus::Gauge* wm_gauge = nullptr;
  prometheus::Gauge* wm_lag = nullptr;
  metrics::freshness_probe freshness;
  prometheus::Histogram* stage_latency = nullptr;
  std::vector<prometheus::Histogram*> op_latency; // per operator of the stage
  // The flush timer ticks at least every second (freshness); flushes are due at this time.
  clock_type::time_point next_flush;
  static inline const char* name = "keyflow.partition";

  bool has_credit() const {
    for (auto n : sink_in_flight)
      if (n >= p.flow.credits)
        return false;
    for (auto n : down_in_flight)
      if (n >= p.flow.credits)
        return false;
    return dead_in_flight < p.flow.credits;
  }
  bool idle() const {
    if (!inbox.empty() || busy || dead_in_flight > 0)
      return false;
    for (auto n : sink_in_flight)
      if (n > 0)
        return false;
    for (auto n : down_in_flight)
      if (n > 0)
        return false;
    return true;
  }
  /// Minimum over active inputs; maximum if every input is idle.
  int64_t input_watermark() const {
    int64_t lo = INT64_MAX, hi = no_watermark;
    bool any_active = false;
    for (size_t i = 0; i < in_wm.size(); ++i) {
      hi = std::max(hi, in_wm[i]);
      if (!in_idle[i]) {
        any_active = true;
        lo = std::min(lo, in_wm[i]);
      }
    }
    return any_active ? lo : hi;
  }
};

using self_ptr = partition_actor::stateful_pointer<partition_state>;

void pump(self_ptr self);

/// A link failed: whoever waits for this actor (drain, checkpoint acknowledgement) hears
/// the error (CAF 0.17 drops undelivered promises of a terminated actor silently), then the
/// actor stops.
void fail_and_quit(self_ptr self, const std::string& what, caf::error& err,
                   logging::log_ctx ctx = {}) {
  auto& st = self->state;
  ctx.actor = st.actor;
  logging::error(ctx, "partition {}/{}: {} failed: {}", st.p.stage, st.p.index, what,
                 caf::to_string(err));
  st.failed = true; // the rest of the inbox must not run on half-changed state
  for (auto& rp : st.drain_promises)
    rp.deliver(err);
  st.drain_promises.clear();
  for (auto& [id, rps] : st.ack_promises)
    for (auto& rp : rps)
      rp.deliver(err);
  st.ack_promises.clear();
  self->quit(err);
}

/// An operator threw while processing `item`: the supervision hears which operator and
/// record (or batch), then the actor fails; the supervisor restarts the instance from its
/// last checkpoint (the state this batch half-changed is dropped).
void operator_failed(self_ptr self, const input& item, const char* what) {
  auto& st = self->state;
  const auto& op = st.runner->current_operator();
  if (auto& sup = st.p.supervised.sup)
    sup->operator_failed({st.p.supervised.instance, st.p.supervised.incarnation, op, what,
                          item.single, item.span, item.single ? item.key_group : -1});
  auto err = make_error(ec::operator_failed, "operator '" + op + "': " + what);
  fail_and_quit(self, "operator '" + op + "'", err, {.op = op, .key_group = item.key_group});
}

template <class Actor, class Batch>
void send_counted(self_ptr self, const Actor& to, uint32_t& in_flight, Batch&& batch,
                  const char* what) {
  ++in_flight;
  self->request(to, caf::infinite, std::forward<Batch>(batch))
      .then(
          [self, &in_flight](uint32_t c) {
            in_flight -= c;
            pump(self);
          },
          [self, what](caf::error& err) { fail_and_quit(self, what, err); });
}

/// Sends what the last batch produced: sink records, next-stage records, dead letters, and
/// watermarks to next-stage actors that got no batch.
void emit(self_ptr self) {
  auto& st = self->state;
  auto& r = *st.runner;
  for (size_t k = 0; k < st.p.sinks.size(); ++k) {
    auto& link = st.p.sinks[k];
    auto& recs = r.sink_output(link.index);
    if (recs.empty())
      continue;
    record_batch b;
    b.records.swap(recs);
    b.source = st.p.index;
    if (link.redis)
      send_counted(self, link.redis, st.sink_in_flight[k], std::move(b), "Redis sink");
    else
      send_counted(self, link.kafka, st.sink_in_flight[k], std::move(b), "Kafka sink");
  }
  if (!st.p.downstream.empty()) {
    for (auto& rec : r.downstream())
      st.down_routes->route(std::move(rec));
    auto wm = r.watermark();
    for (uint32_t i = 0; i < st.down_routes->parallelism(); ++i) {
      auto& b = st.down_routes->batch(i);
      if (b.records.empty())
        continue;
      record_batch out;
      out.records.swap(b.records);
      out.source = st.p.index;
      out.watermark = wm;
      st.down_sent_wm[i] = wm;
      if (st.down_remote[i] && st.remote_batches != nullptr)
        st.remote_batches->Increment();
      send_counted(self, st.p.downstream[i], st.down_in_flight[i], std::move(out), "next stage");
    }
    for (size_t i = 0; i < st.p.downstream.size(); ++i)
      if (st.down_sent_wm[i] < wm) {
        st.down_sent_wm[i] = wm;
        self->send(st.p.downstream[i], atom::watermark_v, wm, st.p.index, false);
      }
  }
  auto& dead = r.dead_letters();
  if (!dead.empty() && st.p.dead_letters) {
    kafka_batch b;
    b.messages.swap(dead);
    send_counted(self, st.p.dead_letters, st.dead_in_flight, std::move(b), "dead-letter sink");
  }
  r.clear_outputs();
}

void publish_metrics(self_ptr self, size_t n, int64_t first_ingest_ns) {
  auto& st = self->state;
  if (n > 0) {
    auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch())
            .count();
    st.latency.observe(static_cast<double>(ns - first_ingest_ns) * 1e-9, n);
    st.latency.publish();
  }
  if (st.op_in.empty())
    return;
  const auto& ops = st.runner->operators();
  const auto& outs = st.runner->last_outputs();
  const auto& inputs = st.runner->inputs();
  const auto& seconds = st.runner->last_seconds();
  for (size_t i = 0; i < ops.size(); ++i) {
    auto in = inputs[i] < 0 ? n : outs[static_cast<size_t>(inputs[i])];
    st.op_in[i]->Increment(static_cast<double>(in));
    st.op_out[i]->Increment(static_cast<double>(outs[i]));
    st.op_latency[i]->Observe(seconds[i]);
    auto l = ops[i]->late_records();
    if (st.op_late[i] != nullptr && l > st.late_seen[i]) {
      st.op_late[i]->Increment(static_cast<double>(l - st.late_seen[i]));
      st.late_seen[i] = l;
    }
    auto d = ops[i]->duplicates();
    if (d > st.dups_seen[i]) {
      st.op_dups[i]->Increment(static_cast<double>(d - st.dups_seen[i]));
      st.dups_seen[i] = d;
    }
  }
  for (auto& e : st.enrich) {
    uint64_t now[4] = {e.op->cache_hits(), e.op->cache_misses(), e.op->missing(), e.op->failed()};
    prometheus::Counter* c[4] = {e.hit, e.miss, e.missing, e.failed};
    prometheus::Counter* dead[4] = {nullptr, nullptr, e.dead_missing, e.dead_failed};
    for (int k = 0; k < 4; ++k)
      if (now[k] > e.seen[k]) {
        auto delta = static_cast<double>(now[k] - e.seen[k]);
        c[k]->Increment(delta);
        if (dead[k] != nullptr)
          dead[k]->Increment(delta);
        e.seen[k] = now[k];
      }
  }
  auto wm = st.runner->watermark();
  if (wm != no_watermark) {
    st.wm_gauge->Set(static_cast<double>(wm) * 1e-3);
    st.wm_lag->Set(static_cast<double>(state::wall_clock_ms() - wm) * 1e-3);
  }
}

/// Runs the runner until the batch is done or a lookup is outstanding.
void advance(self_ptr self, std::shared_ptr<input> item);

void finish(self_ptr self, input& item) {
  auto& st = self->state;
  st.busy = false;
  st.processed += item.count;
  emit(self);
  publish_metrics(self, item.count, item.first_ingest_ns);
  st.freshness.processed(item.max_event_ms);
  if (st.stage_latency != nullptr)
    st.stage_latency->Observe(item.busy_s);
  if (item.kind == item_kind::batch && item.promise.pending())
    item.promise.deliver(uint32_t{1});
}

void advance(self_ptr self, std::shared_ptr<input> item) {
  auto& st = self->state;
  lookup_request req;
  int op = -1;
  bool done = false;
  auto t0 = clock_type::now();
  try {
    done = st.runner->run(req, op);
  } catch (const std::exception& e) {
    operator_failed(self, *item, e.what());
    return;
  }
  item->busy_s += std::chrono::duration<double>(clock_type::now() - t0).count();
  if (done) {
    finish(self, *item);
    pump(self);
    return;
  }
  st.busy = true;
  auto lookup = st.p.lookups.at(st.runner->operators()[static_cast<size_t>(op)]->id());
  auto shared_req = std::make_shared<lookup_request>(std::move(req));
  self->request(lookup, caf::infinite, *shared_req)
      .then(
          [self, item, shared_req, op](lookup_reply& reply) {
            auto t0 = clock_type::now();
            try {
              self->state.runner->complete(op, *shared_req, reply);
            } catch (const std::exception& e) {
              operator_failed(self, *item, e.what());
              return;
            }
            item->busy_s += std::chrono::duration<double>(clock_type::now() - t0).count();
            advance(self, item);
          },
          [self](caf::error& err) { fail_and_quit(self, "lookup", err); });
}

/// Highest offset per source partition among `recs` (few partitions per batch).
std::vector<record_position> offset_span(const std::vector<record>& recs) {
  std::vector<record_position> span;
  for (const auto& r : recs) {
    auto i = std::find_if(span.begin(), span.end(),
                          [&r](const record_position& x) { return x.first == r.partition; });
    if (i == span.end())
      span.emplace_back(r.partition, r.offset);
    else
      i->second = std::max(i->second, r.offset);
  }
  return span;
}

/// A batch holding records suspected of failing an operator (supervision hints) is split:
/// its records go back to the front of the inbox one per item, so that a failure names its
/// record; the last item carries the batch's watermark and credit. Returns true if split.
bool split_suspects(self_ptr self, input& front) {
  auto& st = self->state;
  const auto& hints = st.p.supervised.hints;
  auto& recs = front.batch.records;
  if (!hints || hints->suspects.empty() || front.single || recs.empty())
    return false;
  if (std::none_of(recs.begin(), recs.end(),
                   [&](const record& r) { return hints->suspect(r.partition, r.offset); }))
    return false;
  for (size_t k = recs.size(); k-- > 0;) {
    input one;
    one.batch.source = front.batch.source;
    one.single = record_position{recs[k].partition, recs[k].offset};
    one.batch.records.push_back(std::move(recs[k]));
    if (k + 1 == recs.size()) {
      one.batch.watermark = front.batch.watermark;
      one.promise = std::move(front.promise);
    }
    st.inbox.push_front(std::move(one));
  }
  return true;
}

/// Starts processing an item (batch or watermark) that left the inbox.
void process(self_ptr self, input&& front) {
  auto& st = self->state;
  if (front.kind == item_kind::batch && st.p.supervised.sup && split_suspects(self, front))
    return; // its records wait at the front of the inbox, one by one
  auto src = front.batch.source;
  if (src < st.in_wm.size()) {
    if (front.kind == item_kind::batch)
      st.in_idle[src] = false;
    else
      st.in_idle[src] = front.idle;
    st.in_wm[src] = std::max(st.in_wm[src], front.batch.watermark);
  }
  auto wm = st.input_watermark();
  std::optional<int64_t> advanced;
  if (wm > st.runner->watermark())
    advanced = wm;
  if (front.kind == item_kind::watermark && !advanced)
    return; // nothing to do
  auto item = std::make_shared<input>(std::move(front));
  std::vector<record> recs;
  if (item->kind == item_kind::batch) {
    if (st.p.supervised.sup && !item->single)
      item->span = offset_span(item->batch.records);
    if (st.hot)
      for (const auto& r : item->batch.records)
        st.hot->observe(r.key);
    recs = std::move(item->batch.records);
    item->batch.records.clear();
    item->count = recs.size();
    if (!recs.empty())
      item->first_ingest_ns = recs.front().ingest_ns;
    for (const auto& r : recs)
      item->max_event_ms = std::max(item->max_event_ms, r.event_time_ms);
    if (item->single && !recs.empty())
      item->key_group = recs.front().key_group;
  }
  st.runner->start(std::move(recs), advanced);
  advance(self, item);
}

void flush_state(self_ptr self) {
  auto& st = self->state;
  auto n = st.runner->flush_state();
  if (st.p.max_state_keys > 0) // everything is in RocksDB now: unchanged keys may go
    st.runner->evict_to(st.p.max_state_keys);
  if (st.flushed != nullptr) {
    st.flushed->Increment(static_cast<double>(n));
    st.keys->Set(static_cast<double>(st.runner->state_size()));
  }
}

/// Reports keys that became hot (a log line naming each, metrics) and those no longer hot.
void report_hot_keys(self_ptr self) {
  auto& st = self->state;
  st.hot->tick(state::wall_clock_ms());
  auto hot = st.hot->hot();
  std::vector<std::string> now;
  for (auto& k : hot) {
    if (std::find(st.hot_now.begin(), st.hot_now.end(), k.key) == st.hot_now.end()) {
      logging::warn(
          {.key_group = key_group_of(k.key, st.p.plan->cfg.max_parallelism), .actor = st.actor},
          "hot key '{}' on partition actor {}/{}: at least {:.0f}% of its {} recent "
          "records",
          k.key, st.p.stage, st.p.index, k.guaranteed_share * 100, st.hot->total());
      if (st.hot_detected != nullptr)
        st.hot_detected->Increment();
    }
    now.push_back(std::move(k.key));
  }
  for (const auto& k : st.hot_now)
    if (std::find(now.begin(), now.end(), k) == now.end())
      logging::info(
          {.key_group = key_group_of(k, st.p.plan->cfg.max_parallelism), .actor = st.actor},
          "key '{}' on partition actor {}/{} is no longer hot", k, st.p.stage, st.p.index);
  st.hot_now = std::move(now);
  if (st.hot_count != nullptr) {
    st.hot_count->Set(static_cast<double>(st.hot_now.size()));
    auto top = st.hot->top(1);
    st.hot_share->Set(top.empty() || st.hot->total() < st.hot->options().min_records
                          ? 0.0
                          : top.front().guaranteed_share);
  }
}

/// Ends an alignment: held items came after their input's barrier, so they go to the
/// front of the inbox, in their order.
void release_held(partition_state& st) {
  st.aligned_count = 0;
  std::fill(st.aligned.begin(), st.aligned.end(), false);
  while (!st.held.empty()) {
    st.inbox.push_front(std::move(st.held.back()));
    st.held.pop_back();
  }
}

/// All barriers of the current checkpoint are in: write the state, pass the barrier on
/// and acknowledge.
void complete_alignment(self_ptr self) {
  auto& st = self->state;
  flush_state(self);
  if (st.p.checkpointing)
    st.writes_allowed = false;
  st.completed = st.aligning;
  for (auto& d : st.p.downstream) // after every record this state produced
    self->send(d, atom::barrier_v, st.aligning, st.p.index);
  st.last_alignment_us = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(clock_type::now() - st.align_start)
          .count());
  for (auto i = st.ack_promises.begin(); i != st.ack_promises.end() && i->first <= st.completed;
       i = st.ack_promises.erase(i))
    for (auto& rp : i->second)
      rp.deliver(st.last_alignment_us);
  st.aligning = 0;
  release_held(st);
}

void on_barrier(self_ptr self, uint64_t id, uint32_t source) {
  auto& st = self->state;
  if (source >= st.aligned.size()) {
    logging::error({.actor = st.actor}, "partition {}/{}: barrier from unknown input {}",
                   st.p.stage, st.p.index, source);
    return;
  }
  if (st.aligning == 0) {
    st.aligning = id;
    st.align_start = clock_type::now();
  } else if (id < st.aligning) {
    logging::warn({.actor = st.actor},
                  "partition {}/{}: stale barrier {} while aligning {}; ignored", st.p.stage,
                  st.p.index, id, st.aligning);
    return;
  } else if (id > st.aligning) {
    // The coordinator gave up on the older checkpoint: release what it held, align anew.
    logging::warn({.actor = st.actor}, "partition {}/{}: checkpoint {} abandoned for {}",
                  st.p.stage, st.p.index, st.aligning, id);
    release_held(st);
    st.aligning = id;
    st.align_start = clock_type::now();
  }
  if (!st.aligned[source]) {
    st.aligned[source] = true;
    ++st.aligned_count;
  }
  if (st.aligned_count == st.aligned.size())
    complete_alignment(self);
}

void try_finish_drain(self_ptr self) {
  auto& st = self->state;
  if (st.drain_promises.empty() || !st.idle() || !st.held.empty())
    return;
  for (auto& rp : st.drain_promises)
    rp.deliver(st.processed);
  st.drain_promises.clear();
}

/// Adds the time blocked since the last count to keyflow_backpressured_seconds_total.
void count_backpressure(partition_state& st) {
  auto now = clock_type::now();
  if (st.backpressured != nullptr)
    st.backpressured->Increment(std::chrono::duration<double>(now - st.accounted_since).count());
  st.accounted_since = now;
}

/// Arms the flush timer: at the next flush, or in a second if that comes first (freshness
/// is published every tick).
void schedule_flush_tick(self_ptr self) {
  auto& st = self->state;
  auto until_flush =
      std::chrono::ceil<std::chrono::milliseconds>(st.next_flush - clock_type::now());
  auto wait =
      std::clamp(until_flush, std::chrono::milliseconds{0}, std::chrono::milliseconds{1000});
  self->delayed_send(self, wait, atom::flush_v);
}

/// Works through the inbox as far as credit, lookups and alignment allow.
void pump(self_ptr self) {
  auto& st = self->state;
  while (!st.failed && !st.inbox.empty() && !st.busy) {
    auto& front = st.inbox.front();
    if (front.kind == item_kind::barrier) {
      auto id = front.barrier;
      auto src = front.batch.source;
      st.inbox.pop_front();
      on_barrier(self, id, src);
      continue;
    }
    if (st.p.exactly_once && st.aligning != 0 && front.batch.source < st.aligned.size() &&
        st.aligned[front.batch.source]) {
      st.held.push_back(std::move(front));
      st.inbox.pop_front();
      continue;
    }
    if (!st.has_credit()) {
      if (!st.blocked) {
        st.blocked = true;
        st.accounted_since = clock_type::now();
      }
      break;
    }
    if (st.blocked) {
      count_backpressure(st);
      st.blocked = false;
    }
    auto item = std::move(front);
    st.inbox.pop_front();
    process(self, std::move(item));
  }
  try_finish_drain(self);
}

partition_actor::behavior_type partition(self_ptr self, partition_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  st.actor = "stage" + std::to_string(st.p.stage) + "/" + std::to_string(st.p.index);
  const auto& plan = *st.p.plan;
  ops::op_env env;
  env.store = st.p.store;
  env.pipeline = plan.cfg.name;
  env.pipeline_version = plan.cfg.version;
  env.dead_letter_topic = plan.cfg.dead_letter_topic;
  env.source_topic = plan.cfg.source.topic;
  env.metrics = st.p.metrics;
  auto range = range_for_actor(plan.cfg.max_parallelism, st.p.parallelism, st.p.index);
  env.first_key_group = static_cast<key_group_t>(range.first);
  env.last_key_group = static_cast<key_group_t>(range.last - 1);
  env.instance = st.p.index;
  env.now_ms = state::wall_clock_ms;
  st.runner = std::make_unique<pipeline::stage_runner>(st.p.plan, st.p.stage, env);
  auto inputs = std::max(1u, st.p.sources);
  st.aligned.assign(inputs, false);
  st.in_wm.assign(inputs, no_watermark);
  st.in_idle.assign(inputs, false);
  st.sink_in_flight.assign(st.p.sinks.size(), 0);
  st.down_in_flight.assign(st.p.downstream.size(), 0);
  st.down_sent_wm.assign(st.p.downstream.size(), no_watermark);
  st.down_remote.assign(st.p.downstream.size(), false);
  if (!st.p.downstream.empty())
    st.down_routes = std::make_unique<router>(plan.cfg.max_parallelism,
                                              static_cast<uint32_t>(st.p.downstream.size()));
  if (auto* m = st.p.metrics) {
    const auto& ops = st.runner->operators();
    auto first = ops.empty() ? std::string{"stage"} : ops.front()->id();
    for (const auto& op : ops) {
      st.op_in.push_back(&m->records_in(op->id()));
      st.op_out.push_back(&m->records_out(op->id()));
      st.op_latency.push_back(&m->operator_latency(op->id()));
      st.op_dups.push_back(&m->duplicates(op->id()));
      st.op_late.push_back(dynamic_cast<const ops::window_operator*>(op.get()) != nullptr
                               ? &m->dead_letters(op->id(), "late")
                               : nullptr);
      if (auto* e = dynamic_cast<const ops::enrich_operator*>(op.get()))
        st.enrich.push_back(
            {e, &m->enrich_lookups(e->id(), "hit"), &m->enrich_lookups(e->id(), "miss"),
             &m->enrich_lookups(e->id(), "missing"), &m->enrich_lookups(e->id(), "failed"),
             e->dead_letters_missing() ? &m->dead_letters(e->id(), "enrich_missing") : nullptr,
             &m->dead_letters(e->id(), "enrich_failed")});
    }
    st.dups_seen.assign(ops.size(), 0);
    st.late_seen.assign(ops.size(), 0);
    const auto& name = st.actor;
    std::string op_ids;
    for (const auto& op : ops)
      op_ids += (op_ids.empty() ? "" : ",") + op->id();
    st.stage_latency = &m->stage_latency("stage" + std::to_string(st.p.stage), op_ids);
    st.freshness = m->freshness(name);
    st.flushed = &m->state_flushed_keys(first);
    st.keys = &m->state_keys(name);
    st.wm_gauge = &m->watermark(name);
    st.wm_lag = &m->watermark_lag(name);
    st.latency = metrics::local_histogram{&m->processing_latency()};
    st.remote_batches = &m->remote_batches("partition");
    st.backpressured = &m->backpressured_seconds(name);
    st.hot_count = &m->hot_keys(name);
    st.hot_share = &m->hot_key_share(name);
    st.hot_detected = &m->hot_keys_detected(name);
  }
  if (st.p.hot_key_share > 0) {
    hot_key_options ho;
    ho.threshold = st.p.hot_key_share;
    ho.period_ms = 10000;
    st.hot = std::make_unique<hot_key_tracker>(ho);
  }
  st.next_flush = clock_type::now() + st.p.flush_interval;
  schedule_flush_tick(self);
  return {
      [self](record_batch& batch) -> caf::typed_response_promise<uint32_t> {
        auto rp = self->make_response_promise<uint32_t>();
        input in;
        in.batch = std::move(batch);
        in.promise = rp;
        self->state.inbox.push_back(std::move(in));
        pump(self);
        return rp;
      },
      [self](atom::watermark, int64_t wm, uint32_t source, bool idle) {
        input in;
        in.kind = item_kind::watermark;
        in.batch.source = source;
        in.batch.watermark = wm;
        in.idle = idle;
        self->state.inbox.push_back(std::move(in));
        pump(self);
      },
      [self](atom::barrier, uint64_t id, uint32_t source) {
        input in;
        in.kind = item_kind::barrier;
        in.batch.source = source;
        in.barrier = id;
        self->state.inbox.push_back(std::move(in));
        pump(self);
      },
      [self](atom::checkpoint, uint64_t id) -> caf::typed_response_promise<uint64_t> {
        auto& st = self->state;
        auto rp = self->make_response_promise<uint64_t>();
        if (st.completed >= id)
          rp.deliver(st.last_alignment_us);
        else
          st.ack_promises[id].push_back(rp);
        return rp;
      },
      [self](atom::done, uint64_t id) {
        if (id >= self->state.completed)
          self->state.writes_allowed = true;
      },
      [self](atom::flush) {
        auto& st = self->state;
        // The actor's own timer ticks every second at least and flushes when a flush is due;
        // a flush from anyone else is done at once.
        const bool timer = self->current_sender().get() == self->ctrl();
        auto now = clock_type::now();
        if (!timer || now >= st.next_flush) {
          if (timer)
            st.next_flush = now + st.p.flush_interval;
          if (st.writes_allowed)
            flush_state(self);
          if (st.hot)
            report_hot_keys(self);
          if (st.blocked) // a long wait shows while it lasts
            count_backpressure(st);
        }
        st.freshness.publish(state::wall_clock_ms()); // grows while nothing arrives
        if (timer)
          schedule_flush_tick(self);
      },
      [self](atom::drain) -> caf::typed_response_promise<uint64_t> {
        auto& st = self->state;
        if (!st.p.checkpointing)
          flush_state(self);
        auto rp = self->make_response_promise<uint64_t>();
        st.drain_promises.push_back(rp);
        try_finish_drain(self);
        return rp;
      },
      [self](atom::connect, std::vector<caf::actor>& next) {
        auto& st = self->state;
        st.p.downstream.clear();
        for (auto& a : next)
          st.p.downstream.push_back(caf::actor_cast<partition_actor>(std::move(a)));
        st.down_in_flight.assign(st.p.downstream.size(), 0);
        st.down_sent_wm.assign(st.p.downstream.size(), no_watermark);
        st.down_remote.clear();
        for (const auto& d : st.p.downstream)
          st.down_remote.push_back(d.node() != self->node());
        st.down_routes =
            st.p.downstream.empty()
                ? nullptr
                : std::make_unique<router>(st.p.plan->cfg.max_parallelism,
                                           static_cast<uint32_t>(st.p.downstream.size()));
      },
  };
}

} // namespace

partition_actor spawn_partition(caf::actor_system& sys, partition_params params) {
  return sys.spawn(partition, std::move(params));
}

} // namespace keyflow
