#include "operators/window.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <set>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <fmt/format.h>

#include "operators/accumulator.hpp"
#include "operators/dead_letter.hpp"
#include "operators/preaggregate.hpp"
#include "proto/state.pb.h"
#include "state/keyed_state.hpp"

namespace keyflow::ops {

value from_proto(const proto::WindowValue& v) {
  switch (v.kind_case()) {
  case proto::WindowValue::kInt64Value:
    return value::of(static_cast<int64_t>(v.int64_value()));
  case proto::WindowValue::kDoubleValue:
    return value::of(v.double_value());
  case proto::WindowValue::kStringValue:
    return value::of(v.string_value());
  default:
    return {};
  }
}

namespace {

constexpr size_t npos = static_cast<size_t>(-1);

/// One window of a key (the global kind keeps a single one).
struct window_slot {
  int64_t start = 0;                 // inclusive
  int64_t end = 0;                   // exclusive
  uint64_t records = 0;              // records folded in = seq of its result
  int64_t max_ingest_ns = INT64_MIN; // largest ingest_ns folded in
  bool fired = false;                // result emitted at least once
};

/// State of one key: its windows, with their accumulators and best records stored flat
/// (window i owns accs[i*A, (i+1)*A) and bests[i*B, (i+1)*B)).
struct key_windows {
  std::vector<window_slot> windows;
  std::vector<accumulator> accs;
  std::vector<best_record> bests;
  int64_t max_event_time_ms = INT64_MIN; // global kind
  uint64_t batch_mark = 0;               // global kind, transient: last batch touching it
  uint64_t emit_mark = 0;                // global kind, transient: last batch emitting it
};

void to_proto(const value& v, proto::WindowValue* out) {
  switch (v.type) {
  case value_type::int64:
    out->set_int64_value(v.i);
    break;
  case value_type::dbl:
    out->set_double_value(v.d);
    break;
  case value_type::string:
    out->set_string_value(v.s);
    break;
  default:
    break;
  }
}

/// Codec of key_windows for state::keyed_state (proto::WindowState).
struct window_codec {
  static std::string encode(const key_windows& st) {
    thread_local proto::WindowState msg; // reused: Clear() keeps the allocated submessages
    msg.Clear();
    const size_t n = st.windows.size();
    const size_t na = n == 0 ? 0 : st.accs.size() / n, nb = n == 0 ? 0 : st.bests.size() / n;
    for (size_t i = 0; i < n; ++i) {
      const window_slot& w = st.windows[i];
      auto* pw = msg.add_windows();
      pw->set_start_ms(w.start);
      pw->set_end_ms(w.end);
      pw->set_records(w.records);
      pw->set_max_ingest_ns(w.max_ingest_ns);
      pw->set_fired(w.fired);
      for (size_t j = i * na; j < (i + 1) * na; ++j) {
        const accumulator& a = st.accs[j];
        auto* pa = pw->add_accumulators();
        to_proto(a.v, pa->mutable_value());
        pa->set_count(a.n);
        pa->set_event_time_ms(a.t);
      }
      for (size_t j = i * nb; j < (i + 1) * nb; ++j) {
        const best_record& b = st.bests[j];
        auto* pb = pw->add_best();
        pb->set_has(b.has);
        pb->set_by(b.by);
        for (const auto& f : b.fields)
          to_proto(f, pb->add_fields());
      }
    }
    if (st.max_event_time_ms != INT64_MIN) // global kind only: keeps other values small
      msg.set_max_event_time_ms(st.max_event_time_ms);
    return msg.SerializeAsString();
  }

  static bool decode(std::string_view bytes, key_windows& st) {
    thread_local proto::WindowState msg;
    if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
      return false;
    st = key_windows{};
    st.max_event_time_ms = msg.windows_size() > 0 ? msg.max_event_time_ms() : INT64_MIN;
    for (const auto& pw : msg.windows()) {
      if (pw.accumulators_size() != msg.windows(0).accumulators_size() ||
          pw.best_size() != msg.windows(0).best_size())
        return false;
      st.windows.push_back(
          {pw.start_ms(), pw.end_ms(), pw.records(), pw.max_ingest_ns(), pw.fired()});
      for (const auto& pa : pw.accumulators())
        st.accs.push_back({from_proto(pa.value()), pa.count(), pa.event_time_ms()});
      for (const auto& pb : pw.best()) {
        best_record& b = st.bests.emplace_back();
        b.has = pb.has();
        b.by = pb.by();
        for (const auto& f : pb.fields())
          b.fields.push_back(from_proto(f));
      }
    }
    return true;
  }
};

using window_state = state::keyed_state<key_windows, window_codec>;

int64_t saturating_add(int64_t a, int64_t b) noexcept {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

void check_spec(const window_spec& spec, const op_env& env) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument(fmt::format("window operator '{}': {}", spec.id, what));
  };
  if (spec.id.empty())
    throw std::invalid_argument("window operator: empty id");
  if (spec.aggregates.empty())
    fail("no aggregates");
  if ((spec.kind == window_kind::tumbling || spec.kind == window_kind::sliding) &&
      spec.size_ms <= 0)
    fail(fmt::format("size_ms must be > 0 (is {})", spec.size_ms));
  if (spec.kind == window_kind::sliding && spec.slide_ms <= 0)
    fail(fmt::format("slide_ms must be > 0 (is {})", spec.slide_ms));
  if (spec.kind == window_kind::session && spec.gap_ms <= 0)
    fail(fmt::format("gap_ms must be > 0 (is {})", spec.gap_ms));
  if (spec.allowed_lateness_ms < 0)
    fail(fmt::format("allowed_lateness_ms must be >= 0 (is {})", spec.allowed_lateness_ms));
  if (spec.ttl_ms < 0)
    fail(fmt::format("ttl_ms must be >= 0 (is {})", spec.ttl_ms));
  std::set<std::string> names;
  if (spec.kind != window_kind::global)
    names = {"window_start_ms", "window_end_ms"};
  for (const auto& a : spec.aggregates) {
    if (!names.insert(a.name).second)
      fail(fmt::format("duplicate output field '{}'", a.name));
    if (a.fn != agg_fn::count && a.input_slot < 0)
      fail(fmt::format("aggregate '{}' has no input field", a.name));
    if ((a.fn == agg_fn::max_by || a.fn == agg_fn::min_by) && a.by_slot < 0)
      fail(fmt::format("aggregate '{}' has no 'by' field", a.name));
  }
  if (env.store == nullptr)
    fail("no state store");
  if (env.store->column_family(spec.id) == nullptr)
    fail(fmt::format("the state store has no column family '{}'", spec.id));
}

/// The window operator.
class window_op final : public window_operator {
public:
  window_op(const window_spec& spec, const op_env& env)
      : spec_(spec), env_(env), aggs_(spec.aggregates), n_acc_(aggs_.accumulators()),
        n_best_(aggs_.bests()), state_(*env.store, env.store->column_family(spec.id)),
        late_topic_(spec.late_topic.empty() ? env.dead_letter_topic : spec.late_topic) {
    if (spec_.kind == window_kind::global) {
      if (spec_.ttl_ms > 0)
        state_.set_ttl(spec_.ttl_ms, env_.now_ms ? env_.now_ms : state::wall_clock_ms);
      return;
    }
    // Timers of every open window of the actor's key groups.
    state_.scan(env_.first_key_group, env_.last_key_group,
                [&](std::string_view key, key_group_t kg, const key_windows& st) {
                  check_shape(st, key);
                  if (st.windows.empty())
                    return;
                  uint32_t id = intern(key, kg, nullptr);
                  for (const auto& w : st.windows) {
                    if (w.fired)
                      push_cleanup(id, w.start, w.end);
                    else
                      push_fire(id, w.start, w.end);
                  }
                });
  }

  const std::string& id() const noexcept override { return spec_.id; }

  void process(std::vector<record>& in, op_output& out) override {
    switch (spec_.kind) {
    case window_kind::global:
      process_global(in, out);
      break;
    case window_kind::session:
      for (const auto& r : in)
        process_session(r, out);
      break;
    default:
      for (const auto& r : in)
        process_fixed(r, out);
    }
  }

  void advance_watermark(int64_t wm, op_output& out) override {
    if (wm <= wm_)
      return;
    wm_ = wm;
    due_.clear();
    while (!fire_.empty() && fire_.front().end - 1 <= wm) {
      std::pop_heap(fire_.begin(), fire_.end(), timer_later{});
      due_.push_back(fire_.back());
      fire_.pop_back();
    }
    // The heap orders by end only (cheap); results go out in (end, key, start) order.
    std::sort(due_.begin(), due_.end(), [this](const timer& a, const timer& b) {
      if (a.end != b.end)
        return a.end < b.end;
      if (a.key != b.key)
        if (int c = key_of(a.key).compare(key_of(b.key)); c != 0)
          return c < 0;
      return a.start < b.start;
    });
    for (const timer& t : due_) {
      on_fire_timer(t, out);
      release(t.key);
    }
    while (!cleanup_.empty() && expiry(cleanup_.front().end) <= wm) {
      std::pop_heap(cleanup_.begin(), cleanup_.end(), timer_later{});
      timer t = cleanup_.back();
      cleanup_.pop_back();
      on_cleanup_timer(t);
      release(t.key);
    }
  }

  size_t flush_state() override {
    new_epoch();
    return state_.flush();
  }
  size_t evict_to(size_t max_keys) override {
    new_epoch();
    return state_.evict_to(max_keys);
  }
  size_t state_size() const override { return state_.size(); }
  std::vector<std::string> column_families() const override { return {spec_.id}; }
  uint64_t late_records() const override { return late_; }
  int64_t watermark() const noexcept override { return wm_; }

private:
  /// A pending window end (fire) or expiry (cleanup) of key `key` (an interned key id).
  struct timer {
    int64_t end;
    int64_t start;
    uint32_t key;
  };
  /// A key with timers. `state` caches the key's state as returned by state_.update() in
  /// epoch `epoch`: valid while no flush happened since, as the entry then stays dirty and
  /// eviction keeps dirty entries (evictions start a new epoch all the same). Firing a
  /// window of a key just updated so needs no lookup.
  struct key_ref {
    uint32_t id;
    uint32_t timers; // timers referring to the key
    key_group_t kg;
    key_windows* state;
    uint64_t epoch;
  };
  using key_map = std::unordered_map<std::string, key_ref, state::string_hash, std::equal_to<>>;
  /// Min-heap order of timers by end.
  struct timer_later {
    bool operator()(const timer& a, const timer& b) const noexcept { return a.end > b.end; }
  };
  static constexpr uint32_t no_key = UINT32_MAX;

  // --- time --------------------------------------------------------------------------------

  /// The watermark at which a window ending at `end` expires.
  int64_t expiry(int64_t end) const noexcept {
    return saturating_add(end - 1, spec_.allowed_lateness_ms);
  }
  bool complete(int64_t end) const noexcept { return wm_ != no_watermark && wm_ >= end - 1; }
  bool expired(int64_t end) const noexcept { return wm_ != no_watermark && wm_ >= expiry(end); }

  // --- timers ------------------------------------------------------------------------------

  /// Id of `key` in the table of keys with timers (takes no reference); caches `st`, its
  /// state just returned by state_.update() (or nullptr).
  uint32_t intern(std::string_view key, key_group_t kg, key_windows* st) {
    auto i = keys_.find(key);
    if (i == keys_.end()) {
      uint32_t id = static_cast<uint32_t>(by_id_.size());
      if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
      } else {
        by_id_.push_back(nullptr);
      }
      i = keys_.emplace(std::string{key}, key_ref{id, 0, kg, nullptr, 0}).first;
      by_id_[id] = &*i;
      ++idle_keys_;
    }
    i->second.state = st;
    i->second.epoch = epoch_;
    return i->second.id;
  }

  /// Adds (drops) one timer's reference to key `id`. Keys without timers stay in the
  /// table (no allocation when they get timers again) until new_epoch() drops them.
  void retain(uint32_t id) {
    if (by_id_[id]->second.timers++ == 0)
      --idle_keys_;
  }
  void release(uint32_t id) {
    if (--by_id_[id]->second.timers == 0)
      ++idle_keys_;
  }

  /// After a flush or an eviction: cached states are no longer valid; keys without timers
  /// are dropped once they are the majority.
  void new_epoch() {
    ++epoch_;
    if (idle_keys_ <= keys_.size() / 2 + 1024)
      return;
    for (auto i = keys_.begin(); i != keys_.end();) {
      if (i->second.timers > 0) {
        ++i;
        continue;
      }
      by_id_[i->second.id] = nullptr;
      free_ids_.push_back(i->second.id);
      i = keys_.erase(i);
    }
    idle_keys_ = 0;
  }

  const std::string& key_of(uint32_t id) const noexcept { return by_id_[id]->first; }

  /// The state of key `id`, from the cache when valid.
  key_windows& state_of(uint32_t id) {
    auto& [key, ref] = *by_id_[id];
    if (ref.state == nullptr || ref.epoch != epoch_) {
      ref.state = &state_.update(key, ref.kg);
      ref.epoch = epoch_;
      check_shape(*ref.state, key);
    }
    return *ref.state;
  }

  void push_fire(uint32_t id, int64_t start, int64_t end) {
    retain(id);
    fire_.push_back({end, start, id});
    std::push_heap(fire_.begin(), fire_.end(), timer_later{});
  }

  void push_cleanup(uint32_t id, int64_t start, int64_t end) {
    retain(id);
    cleanup_.push_back({end, start, id});
    std::push_heap(cleanup_.begin(), cleanup_.end(), timer_later{});
  }

  /// A window end was reached: fire the window unless the timer is stale (window merged
  /// away or already fired); then drop it if expired, else wait for its expiry.
  void on_fire_timer(const timer& t, op_output& out) {
    key_windows& st = state_of(t.key);
    size_t i = find_window(st, t.start, t.end);
    if (i == npos || st.windows[i].fired)
      return;
    st.windows[i].fired = true;
    const auto& [key, ref] = *by_id_[t.key];
    emit(st, i, key, ref.kg, out);
    if (expired(t.end))
      remove_window(st, i);
    else
      push_cleanup(t.key, t.start, t.end);
  }

  /// A fired window expired: drop it (unless merged away already).
  void on_cleanup_timer(const timer& t) {
    key_windows& st = state_of(t.key);
    if (size_t i = find_window(st, t.start, t.end); i != npos)
      remove_window(st, i);
  }

  // --- windows of a key --------------------------------------------------------------------

  void check_shape(const key_windows& st, std::string_view key) const {
    if (st.accs.size() != st.windows.size() * n_acc_ ||
        st.bests.size() != st.windows.size() * n_best_)
      throw std::runtime_error(fmt::format(
          "window operator '{}': stored state of key '{}' does not match its aggregates", spec_.id,
          key));
  }

  static size_t find_window(const key_windows& st, int64_t start, int64_t end) noexcept {
    for (size_t i = 0; i < st.windows.size(); ++i)
      if (st.windows[i].start == start && st.windows[i].end == end)
        return i;
    return npos;
  }

  size_t add_window(key_windows& st, int64_t start, int64_t end) {
    if (st.windows.capacity() == 0) { // the windows a key usually has open at once, in one go
      const size_t n = spec_.kind == window_kind::sliding
                           ? static_cast<size_t>(spec_.size_ms / spec_.slide_ms) + 1
                           : 2;
      st.windows.reserve(n);
      st.accs.reserve(n * n_acc_);
      st.bests.reserve(n * n_best_);
    }
    st.windows.push_back({start, end, 0, INT64_MIN, false});
    st.accs.resize(st.accs.size() + n_acc_);
    st.bests.resize(st.bests.size() + n_best_);
    return st.windows.size() - 1;
  }

  /// Removes window `i`; the last window takes its place (window order is not kept).
  void remove_window(key_windows& st, size_t i) {
    const size_t last = st.windows.size() - 1;
    if (i != last) {
      st.windows[i] = st.windows[last];
      std::move(st.accs.begin() + static_cast<ptrdiff_t>(last * n_acc_), st.accs.end(),
                st.accs.begin() + static_cast<ptrdiff_t>(i * n_acc_));
      std::move(st.bests.begin() + static_cast<ptrdiff_t>(last * n_best_), st.bests.end(),
                st.bests.begin() + static_cast<ptrdiff_t>(i * n_best_));
    }
    st.windows.pop_back();
    st.accs.resize(last * n_acc_);
    st.bests.resize(last * n_best_);
    if (last == 0) { // no window left: give the capacity back (most keys stay quiet long)
      std::vector<window_slot>().swap(st.windows);
      std::vector<accumulator>().swap(st.accs);
      std::vector<best_record>().swap(st.bests);
    }
  }

  void fold(key_windows& st, size_t i, const record& r) {
    window_slot& w = st.windows[i];
    ++w.records;
    w.max_ingest_ns = std::max(w.max_ingest_ns, r.ingest_ns);
    aggs_.fold(st.accs.data() + i * n_acc_, st.bests.data() + i * n_best_, r);
  }

  /// Merges a source's partial aggregate of `r.folded` records of the key (hot-key fanout,
  /// operators/preaggregate.hpp) into window `i`, as if they had been folded one by one.
  void combine(key_windows& st, size_t i, const record& r) {
    if (!decode_partial(r.fields, n_acc_, partial_))
      throw std::runtime_error(fmt::format("window operator '{}': a partial aggregate of key "
                                           "'{}' has {} fields, expected {}",
                                           spec_.id, r.key, r.fields.size(), n_acc_ * 3));
    window_slot& w = st.windows[i];
    w.records += r.folded;
    w.max_ingest_ns = std::max(w.max_ingest_ns, r.ingest_ns);
    aggs_.merge(st.accs.data() + i * n_acc_, st.bests.data() + i * n_best_, partial_.data(),
                nullptr);
  }

  /// Merges window `from` into window `into` (records, ingest, aggregates).
  void merge(key_windows& st, size_t into, size_t from) {
    window_slot& a = st.windows[into];
    const window_slot& b = st.windows[from];
    a.records += b.records;
    a.max_ingest_ns = std::max(a.max_ingest_ns, b.max_ingest_ns);
    aggs_.merge(st.accs.data() + into * n_acc_, st.bests.data() + into * n_best_,
                st.accs.data() + from * n_acc_, st.bests.data() + from * n_best_);
  }

  void emit(const key_windows& st, size_t i, std::string_view key, key_group_t kg, op_output& out) {
    const window_slot& w = st.windows[i];
    record& r = out.records.emplace_back();
    r.key.assign(key);
    r.key_group = kg;
    r.event_time_ms = w.end - 1;
    r.ingest_ns = w.max_ingest_ns;
    r.seq = w.records;
    r.fields.reserve(2 + aggs_.size());
    r.fields.push_back(value::of(w.start));
    r.fields.push_back(value::of(w.end));
    aggs_.results(st.accs.data() + i * n_acc_, st.bests.data() + i * n_best_, r.fields);
  }

  /// After folding record `r` into window `i`: emit it now if it is complete, else make
  /// sure it has a fire timer (`new_interval`: no timer exists for its bounds yet). `id`:
  /// the record key's timer id, looked up on first use.
  void settle(key_windows& st, size_t i, const record& r, uint32_t& id, bool emit_now,
              bool new_interval, op_output& out) {
    window_slot& w = st.windows[i];
    if (emit_now) {
      if (!w.fired || new_interval)
        push_cleanup(id == no_key ? (id = intern(r.key, r.key_group, &st)) : id, w.start, w.end);
      w.fired = true;
      emit(st, i, r.key, r.key_group, out);
    } else {
      w.fired = false;
      if (new_interval)
        push_fire(id == no_key ? (id = intern(r.key, r.key_group, &st)) : id, w.start, w.end);
    }
  }

  // --- records -----------------------------------------------------------------------------

  void late(const record& r, int64_t start, int64_t end, op_output& out) {
    ++late_;
    provenance from{env_.source_topic, r.partition, r.offset, r.event_time_ms};
    rejection why{ec::late,
                  fmt::format("event time {} is behind the watermark {} by more than the allowed "
                              "lateness {} ms (window [{}, {}))",
                              r.event_time_ms, wm_, spec_.allowed_lateness_ms, start, end)};
    out.dead_letters.push_back({late_topic_, r.key,
                                make_dead_letter(r.key, r.raw, from, spec_.id, why, env_.pipeline,
                                                 env_.pipeline_version)});
  }

  /// Tumbling and sliding windows.
  void process_fixed(const record& r, op_output& out) {
    const int64_t t = r.event_time_ms, size = spec_.size_ms;
    starts_.clear();
    if (spec_.kind == window_kind::tumbling) {
      starts_.push_back(floor_div(t, size) * size);
    } else {
      const int64_t slide = spec_.slide_ms;
      for (int64_t s = floor_div(t, slide) * slide; s > t - size; s -= slide)
        starts_.push_back(s);
      std::reverse(starts_.begin(), starts_.end());
    }
    if (starts_.empty())
      return; // between two sliding windows (slide > size): belongs to none
    if (std::all_of(starts_.begin(), starts_.end(), [&](int64_t s) { return expired(s + size); })) {
      if (r.folded > 0) // the sources fold only records no watermark can have made late
        throw std::runtime_error(fmt::format("window operator '{}': a partial aggregate of key "
                                             "'{}' for expired windows (watermark {})",
                                             spec_.id, r.key, wm_));
      late(r, starts_.back(), starts_.back() + size, out);
      return;
    }
    key_windows& st = state_.update(r.key, r.key_group);
    check_shape(st, r.key);
    uint32_t id = no_key;
    for (int64_t s : starts_) {
      const int64_t end = s + size;
      if (expired(end))
        continue;
      size_t i = find_window(st, s, end);
      const bool created = i == npos;
      if (created)
        i = add_window(st, s, end);
      if (r.folded > 0)
        combine(st, i, r);
      else
        fold(st, i, r);
      settle(st, i, r, id, st.windows[i].fired || complete(end), created, out);
    }
  }

  /// Session windows: [t, t + gap) merged with every session of the key it overlaps.
  void process_session(const record& r, op_output& out) {
    const int64_t t = r.event_time_ms, e0 = saturating_add(t, spec_.gap_ms);
    if (expired(e0)) {
      // Late unless it joins a session that keeps the merged window alive.
      int64_t s = t, e = e0;
      if (const key_windows* found = state_.find(r.key, r.key_group))
        for (const auto& w : found->windows)
          if (w.start < e0 && t < w.end) {
            s = std::min(s, w.start);
            e = std::max(e, w.end);
          }
      if (expired(e)) {
        late(r, s, e, out);
        return;
      }
    }
    key_windows& st = state_.update(r.key, r.key_group);
    check_shape(st, r.key);
    overlaps_.clear();
    int64_t s = t, e = e0;
    for (size_t i = 0; i < st.windows.size(); ++i) {
      const window_slot& w = st.windows[i];
      if (w.start < e0 && t < w.end) {
        overlaps_.push_back(i);
        s = std::min(s, w.start);
        e = std::max(e, w.end);
      }
    }
    // A fired part ending where the merged window ends proves the watermark passed it.
    bool emit_now = complete(e);
    for (size_t i : overlaps_)
      emit_now = emit_now || (st.windows[i].fired && st.windows[i].end == e);
    size_t target = 0;
    bool new_interval = true;
    if (overlaps_.empty()) {
      target = add_window(st, s, e);
    } else {
      target = overlaps_.front();
      const window_slot& w = st.windows[target];
      new_interval = overlaps_.size() > 1 || w.start != s || w.end != e;
      for (size_t k = overlaps_.size(); k-- > 1;) {
        merge(st, target, overlaps_[k]);
        remove_window(st, overlaps_[k]); // descending: target and the rest stay in place
      }
      st.windows[target].start = s;
      st.windows[target].end = e;
    }
    fold(st, target, r);
    uint32_t id = no_key;
    settle(st, target, r, id, emit_now, new_interval, out);
  }

  /// Global kind: one running aggregate per key, emitted once per batch per touched key.
  void process_global(const std::vector<record>& in, op_output& out) {
    ++batch_;
    touched_.clear();
    int64_t oldest_ingest = INT64_MAX;
    for (const auto& r : in) {
      oldest_ingest = std::min(oldest_ingest, r.ingest_ns);
      auto [key, st] = state_.update_entry(r.key, r.key_group);
      if (st.windows.empty())
        add_window(st, 0, 0);
      check_shape(st, key);
      if (st.batch_mark != batch_) {
        st.batch_mark = batch_;
        touched_.push_back({key, r.key_group, &st});
      }
      if (r.folded > 0)
        combine(st, 0, r);
      else
        fold(st, 0, r);
      st.max_event_time_ms = std::max(st.max_event_time_ms, r.event_time_ms);
    }
    for (const auto& [key, kg, st] : touched_) {
      if (st->emit_mark == batch_)
        continue; // touched again after its TTL reset it within the batch
      st->emit_mark = batch_;
      record& o = out.records.emplace_back();
      o.key.assign(key);
      o.key_group = kg;
      o.event_time_ms = st->max_event_time_ms;
      o.ingest_ns = oldest_ingest;
      o.seq = st->windows[0].records;
      o.fields.reserve(aggs_.size());
      aggs_.results(st->accs.data(), st->bests.data(), o.fields);
    }
  }

  struct touched {
    std::string_view key;
    key_group_t kg;
    key_windows* state;
  };

  window_spec spec_;
  op_env env_;
  aggregate_set aggs_;
  size_t n_acc_;
  size_t n_best_;
  window_state state_;
  std::string late_topic_;
  int64_t wm_ = no_watermark;
  uint64_t late_ = 0;
  uint64_t batch_ = 0;

  // Timers: the keys they refer to (interned, counted) and two min-heaps by window end.
  key_map keys_;
  std::vector<key_map::value_type*> by_id_;
  std::vector<uint32_t> free_ids_;
  size_t idle_keys_ = 0;       // keys in keys_ without timers
  uint64_t epoch_ = 0;         // flushes + evictions so far (validity of cached states)
  std::vector<timer> fire_;    // min-heap of window ends
  std::vector<timer> cleanup_; // min-heap of window expiries
  std::vector<timer> due_;     // scratch: fire timers due at this watermark

  // Scratch, reused across records.
  std::vector<int64_t> starts_;
  std::vector<size_t> overlaps_;
  std::vector<touched> touched_;
  std::vector<accumulator> partial_; // a decoded partial aggregate (global kind)
};

} // namespace

layout window_output_layout(const window_spec& spec) {
  layout out;
  if (spec.kind != window_kind::global) {
    out.add("window_start_ms", value_type::int64);
    out.add("window_end_ms", value_type::int64);
  }
  for (const auto& a : spec.aggregates)
    out.add(a.name, aggregate_set::output_type(a));
  return out;
}

std::unique_ptr<window_operator> make_window_operator(const window_spec& spec, const op_env& env) {
  check_spec(spec, env);
  return std::make_unique<window_op>(spec, env);
}

} // namespace keyflow::ops
