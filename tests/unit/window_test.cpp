/// \file
/// Unit tests of the window operator (operators/window.hpp): tumbling, sliding and session
/// windows and the global running aggregate, every aggregate function with ties, lateness
/// (re-emission, dead letters), restore from RocksDB, expiry of state, and
/// keyed_state::scan. Random inputs are checked step by step against a brute-force
/// reference model that keeps every record of every window and recomputes the aggregates.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>

#include "core/key_group.hpp"
#include "core/layout.hpp"
#include "core/record.hpp"
#include "operators/window.hpp"
#include "proto/dead_letter.pb.h"
#include "proto/state.pb.h"
#include "state/keyed_state.hpp"
#include "state/state_store.hpp"
#include "state/ttl.hpp"
#include "test_util.hpp"

namespace {

using keyflow::key_group_t;
using keyflow::no_watermark;
using keyflow::record;
using keyflow::value;
using keyflow::value_type;
using keyflow::ops::agg_fn;
using keyflow::ops::agg_spec;
using keyflow::ops::op_output;
using keyflow::ops::window_kind;
using keyflow::ops::window_operator;
using keyflow::ops::window_spec;
using keyflow::state::state_store;
using keyflow::test::temp_dir;

constexpr uint32_t max_parallelism = 64;

// Input layout: slots of the test records.
enum slot : int { N = 0, X = 1, S = 2, B = 3, Y = 4 };

agg_spec agg(std::string name, agg_fn fn, int input = -1, value_type type = value_type::none,
             int by = -1) {
  return agg_spec{std::move(name), fn, input, type, by};
}

/// Every function, over int64, double and string inputs, with several max_by/min_by.
std::vector<agg_spec> all_aggregates() {
  using vt = value_type;
  return {agg("count", agg_fn::count),
          agg("sum_n", agg_fn::sum, N, vt::int64),
          agg("sum_x", agg_fn::sum, X, vt::dbl),
          agg("min_n", agg_fn::min, N, vt::int64),
          agg("max_n", agg_fn::max, N, vt::int64),
          agg("min_x", agg_fn::min, X, vt::dbl),
          agg("max_x", agg_fn::max, X, vt::dbl),
          agg("avg_n", agg_fn::avg, N, vt::int64),
          agg("avg_x", agg_fn::avg, X, vt::dbl),
          agg("first_s", agg_fn::first, S, vt::string),
          agg("last_s", agg_fn::last, S, vt::string),
          agg("first_n", agg_fn::first, N, vt::int64),
          agg("last_x", agg_fn::last, X, vt::dbl),
          agg("max_by_b_s", agg_fn::max_by, S, vt::string, B),
          agg("max_by_b_x", agg_fn::max_by, X, vt::dbl, B),
          agg("max_by_b_n", agg_fn::max_by, N, vt::int64, B),
          agg("min_by_b_n", agg_fn::min_by, N, vt::int64, B),
          agg("min_by_y_s", agg_fn::min_by, S, vt::string, Y)};
}

record make_record(std::string key, int64_t t, std::vector<value> fields, int64_t offset = 0) {
  record r;
  r.key_group = keyflow::key_group_of(key, max_parallelism);
  r.key = std::move(key);
  r.event_time_ms = t;
  r.ingest_ns = 1000 + offset;
  r.offset = offset;
  r.partition = static_cast<int32_t>(offset % 3);
  r.fields = std::move(fields);
  r.raw = fmt::format("raw-{}", offset);
  return r;
}

std::string describe(const value& v) {
  return std::string{keyflow::type_name(v.type)} + ":" + v.to_string();
}

std::string describe(const record& r) {
  std::string f;
  for (const auto& v : r.fields)
    f += describe(v) + " ";
  return fmt::format("{{key={} kg={} t={} ingest={} seq={} off={} part={} raw='{}' [{}]}}", r.key,
                     r.key_group, r.event_time_ms, r.ingest_ns, r.seq, r.offset, r.partition, r.raw,
                     f);
}

bool same(const record& a, const record& b) {
  return a.key == b.key && a.key_group == b.key_group && a.event_time_ms == b.event_time_ms &&
         a.ingest_ns == b.ingest_ns && a.seq == b.seq && a.offset == b.offset &&
         a.partition == b.partition && a.fields == b.fields && a.raw == b.raw;
}

// --- brute-force reference ---------------------------------------------------------------

const value& at(const record& r, int s) {
  return r.fields[static_cast<size_t>(s)];
}

double num(const value& v) {
  return v.type == value_type::int64 ? static_cast<double>(v.i)
                                     : (v.type == value_type::dbl ? v.d : 0.0);
}

int type_rank(value_type t) {
  switch (t) {
  case value_type::none:
    return 0;
  case value_type::int64:
    return 1;
  case value_type::dbl:
    return 2;
  default:
    return 3;
  }
}

bool fields_less(const std::vector<value>& a, const std::vector<value>& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (type_rank(a[i].type) != type_rank(b[i].type))
      return type_rank(a[i].type) < type_rank(b[i].type);
    if (a[i].type == value_type::int64 && a[i].i != b[i].i)
      return a[i].i < b[i].i;
    if (a[i].type == value_type::dbl && a[i].d != b[i].d)
      return a[i].d < b[i].d;
    if (a[i].type == value_type::string && a[i].s != b[i].s)
      return a[i].s < b[i].s;
  }
  return a.size() < b.size();
}

/// One aggregate over records in arrival order, from scratch.
value ref_aggregate(const agg_spec& a, const std::vector<const record*>& rs) {
  std::vector<const value*> vals;
  for (const auto* r : rs)
    if (a.input_slot >= 0 && at(*r, a.input_slot).present())
      vals.push_back(&at(*r, a.input_slot));
  const bool ints = a.input_type == value_type::int64;
  switch (a.fn) {
  case agg_fn::count:
    return value::of(static_cast<int64_t>(rs.size()));
  case agg_fn::sum:
  case agg_fn::avg: {
    if (vals.empty())
      return {};
    if (a.fn == agg_fn::sum && ints) {
      int64_t s = 0;
      for (const auto* v : vals)
        s += v->i;
      return value::of(s);
    }
    double s = num(*vals[0]);
    for (size_t i = 1; i < vals.size(); ++i)
      s += num(*vals[i]);
    return a.fn == agg_fn::sum ? value::of(s) : value::of(s / static_cast<double>(vals.size()));
  }
  case agg_fn::min:
  case agg_fn::max: {
    if (vals.empty())
      return {};
    auto less = [](const value* p, const value* q) { return num(*p) < num(*q); };
    const value* m = a.fn == agg_fn::min ? *std::min_element(vals.begin(), vals.end(), less)
                                         : *std::max_element(vals.begin(), vals.end(), less);
    return ints ? value::of(m->i) : value::of(num(*m));
  }
  case agg_fn::first:
  case agg_fn::last: {
    const record* best = nullptr;
    for (const auto* r : rs) {
      if (!at(*r, a.input_slot).present())
        continue;
      if (best == nullptr || (a.fn == agg_fn::first ? r->event_time_ms < best->event_time_ms
                                                    : r->event_time_ms >= best->event_time_ms))
        best = r;
    }
    return best == nullptr ? value{} : at(*best, a.input_slot);
  }
  default: {
    const record* best = nullptr;
    for (const auto* r : rs) {
      if (best == nullptr) {
        best = r;
        continue;
      }
      double by = num(at(*r, a.by_slot)), best_by = num(at(*best, a.by_slot));
      bool better = a.fn == agg_fn::max_by ? by > best_by : by < best_by;
      if (by == best_by)
        better = fields_less(r->fields, best->fields);
      if (better)
        best = r;
    }
    return at(*best, a.input_slot);
  }
  }
}

/// A dead letter the reference expects.
struct expected_dead_letter {
  std::string topic, key, raw, message;
  int32_t partition = -1;
  int64_t offset = -1, t = 0;
};

/// What one step produced.
struct outputs {
  std::vector<record> records;
  std::vector<expected_dead_letter> dead_letters;
};

/// The semantics of the brief, by brute force: windows keep their records' indices.
class reference {
public:
  explicit reference(window_spec spec) : spec_(std::move(spec)) {}

  void batch(const std::vector<record>& in, int64_t now, outputs& out) {
    if (spec_.kind == window_kind::global)
      return global_batch(in, now, out);
    for (const auto& r : in) {
      all_.push_back(r);
      if (spec_.kind == window_kind::session)
        session_record(all_.size() - 1, out);
      else
        fixed_record(all_.size() - 1, out);
    }
  }

  void watermark(int64_t wm, outputs& out) {
    if (wm <= wm_)
      return;
    wm_ = wm;
    std::vector<win*> due;
    for (auto& w : wins_)
      if (!w.fired && w.e - 1 <= wm)
        due.push_back(&w);
    std::sort(due.begin(), due.end(), [](const win* a, const win* b) {
      return std::tie(a->e, a->key, a->s) < std::tie(b->e, b->key, b->s);
    });
    for (auto* w : due) {
      w->fired = true;
      emit(*w, out);
    }
    std::erase_if(wins_, [&](const win& w) { return expired(w.e); });
  }

  /// Windows not yet dropped.
  size_t live_windows() const { return wins_.size(); }

private:
  struct win {
    std::string key;
    key_group_t kg = 0;
    int64_t s = 0, e = 0;
    std::vector<size_t> recs; // indices into all_, ascending = arrival order
    bool fired = false;
  };
  struct global_key {
    std::vector<size_t> recs;
    int64_t last_update = 0;
  };

  bool expired(int64_t e) const {
    return wm_ != no_watermark && wm_ >= e - 1 + spec_.allowed_lateness_ms;
  }
  bool complete(int64_t e) const { return wm_ != no_watermark && wm_ >= e - 1; }

  std::vector<value> aggregates(const std::vector<size_t>& recs) const {
    std::vector<const record*> rs;
    for (size_t i : recs)
      rs.push_back(&all_[i]);
    std::vector<value> out;
    for (const auto& a : spec_.aggregates)
      out.push_back(ref_aggregate(a, rs));
    return out;
  }

  void emit(const win& w, outputs& out) const {
    record o;
    o.key = w.key;
    o.key_group = w.kg;
    o.event_time_ms = w.e - 1;
    o.ingest_ns = INT64_MIN;
    for (size_t i : w.recs)
      o.ingest_ns = std::max(o.ingest_ns, all_[i].ingest_ns);
    o.seq = w.recs.size();
    o.fields = {value::of(w.s), value::of(w.e)};
    for (auto& v : aggregates(w.recs))
      o.fields.push_back(std::move(v));
    out.records.push_back(std::move(o));
  }

  void dead_letter(const record& r, int64_t s, int64_t e, outputs& out) const {
    out.dead_letters.push_back(
        {spec_.late_topic.empty() ? "dlq" : spec_.late_topic, r.key, r.raw,
         fmt::format("event time {} is behind the watermark {} by more than the allowed "
                     "lateness {} ms (window [{}, {}))",
                     r.event_time_ms, wm_, spec_.allowed_lateness_ms, s, e),
         r.partition, r.offset, r.event_time_ms});
  }

  void fixed_record(size_t i, outputs& out) {
    const record& r = all_[i];
    const int64_t t = r.event_time_ms, size = spec_.size_ms;
    const int64_t slide = spec_.kind == window_kind::sliding ? spec_.slide_ms : size;
    std::vector<int64_t> starts;
    for (int64_t k = (t - size) / slide - 2; k <= t / slide + 2; ++k)
      if (k * slide <= t && t < k * slide + size)
        starts.push_back(k * slide);
    if (starts.empty())
      return;
    if (std::all_of(starts.begin(), starts.end(), [&](int64_t s) { return expired(s + size); }))
      return dead_letter(r, starts.back(), starts.back() + size, out);
    for (int64_t s : starts) {
      if (expired(s + size))
        continue;
      auto w = std::find_if(wins_.begin(), wins_.end(),
                            [&](const win& x) { return x.key == r.key && x.s == s; });
      if (w == wins_.end())
        w = wins_.insert(wins_.end(), win{r.key, r.key_group, s, s + size, {}, false});
      w->recs.push_back(i);
      if (w->fired || complete(w->e)) {
        w->fired = true;
        emit(*w, out);
      }
    }
  }

  void session_record(size_t i, outputs& out) {
    const record& r = all_[i];
    const int64_t t = r.event_time_ms, e0 = t + spec_.gap_ms;
    win merged{r.key, r.key_group, t, e0, {i}, false};
    std::vector<size_t> parts;
    for (size_t j = 0; j < wins_.size(); ++j)
      if (wins_[j].key == r.key && wins_[j].s < e0 && t < wins_[j].e) {
        parts.push_back(j);
        merged.s = std::min(merged.s, wins_[j].s);
        merged.e = std::max(merged.e, wins_[j].e);
      }
    if (expired(merged.e))
      return dead_letter(r, merged.s, merged.e, out);
    for (size_t k = parts.size(); k-- > 0;) {
      merged.recs.insert(merged.recs.end(), wins_[parts[k]].recs.begin(),
                         wins_[parts[k]].recs.end());
      wins_.erase(wins_.begin() + static_cast<ptrdiff_t>(parts[k]));
    }
    std::sort(merged.recs.begin(), merged.recs.end());
    if (complete(merged.e)) {
      merged.fired = true;
      emit(merged, out);
    }
    wins_.push_back(std::move(merged));
  }

  void global_batch(const std::vector<record>& in, int64_t now, outputs& out) {
    std::vector<std::string> order;
    int64_t oldest = INT64_MAX;
    for (const auto& r : in) {
      all_.push_back(r);
      oldest = std::min(oldest, r.ingest_ns);
      auto& g = global_[r.key];
      if (spec_.ttl_ms > 0 && !g.recs.empty() && g.last_update + spec_.ttl_ms <= now)
        g.recs.clear();
      g.recs.push_back(all_.size() - 1);
      g.last_update = now;
      if (std::find(order.begin(), order.end(), r.key) == order.end())
        order.push_back(r.key);
    }
    for (const auto& key : order) {
      const auto& g = global_[key];
      record o;
      o.key = key;
      o.key_group = all_[g.recs.front()].key_group;
      o.event_time_ms = INT64_MIN;
      for (size_t i : g.recs)
        o.event_time_ms = std::max(o.event_time_ms, all_[i].event_time_ms);
      o.ingest_ns = oldest;
      o.seq = g.recs.size();
      o.fields = aggregates(g.recs);
      out.records.push_back(std::move(o));
    }
  }

  window_spec spec_;
  std::vector<record> all_;
  std::vector<win> wins_;
  std::map<std::string, global_key> global_;
  int64_t wm_ = no_watermark;
};

// --- harness -----------------------------------------------------------------------------

/// A state store in a temp dir and an op_env with a fake processing-time clock.
struct harness {
  explicit harness(std::string cf = "win") : cf_name(std::move(cf)) {
    open();
    env.pipeline = "pipe";
    env.pipeline_version = 7;
    env.dead_letter_topic = "dlq";
    env.source_topic = "events";
    env.first_key_group = 0;
    env.last_key_group = max_parallelism - 1;
    env.now_ms = [this] { return clock; };
  }
  void open() {
    store = state_store::open(dir.path(), {cf_name});
    env.store = store.get();
  }
  /// Closes and reopens the store (state as on disk).
  void reopen() {
    store.reset();
    open();
  }
  std::unique_ptr<window_operator> make(const window_spec& spec) {
    return keyflow::ops::make_window_operator(spec, env);
  }
  /// Windows stored in RocksDB over all keys.
  size_t stored_windows() {
    size_t n = 0;
    std::unique_ptr<rocksdb::Iterator> it{
        store->db()->NewIterator(rocksdb::ReadOptions{}, store->column_family(cf_name))};
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      keyflow::proto::WindowState st;
      EXPECT_TRUE(st.ParseFromArray(it->value().data(), static_cast<int>(it->value().size())));
      n += static_cast<size_t>(st.windows_size());
    }
    return n;
  }

  temp_dir dir;
  std::string cf_name;
  std::unique_ptr<state_store> store;
  keyflow::ops::op_env env;
  int64_t clock = 1'000'000;
};

/// Checks the operator's output of one step against the reference; false on a mismatch.
bool check_step(const outputs& want, const op_output& got, size_t step) {
  std::string errors;
  if (want.records.size() != got.records.size())
    errors += fmt::format("{} records, want {}\n", got.records.size(), want.records.size());
  for (size_t i = 0; i < std::min(want.records.size(), got.records.size()); ++i)
    if (!same(want.records[i], got.records[i]))
      errors += fmt::format("record {}:\n   got {}\n  want {}\n", i, describe(got.records[i]),
                            describe(want.records[i]));
  if (want.dead_letters.size() != got.dead_letters.size())
    errors += fmt::format("{} dead letters, want {}\n", got.dead_letters.size(),
                          want.dead_letters.size());
  for (size_t i = 0; i < std::min(want.dead_letters.size(), got.dead_letters.size()); ++i) {
    const auto& w = want.dead_letters[i];
    const auto& g = got.dead_letters[i];
    keyflow::proto::DeadLetter dl;
    if (!dl.ParseFromString(g.value) || g.topic != w.topic || g.key != w.key ||
        dl.original_key() != w.key || dl.original_value() != w.raw ||
        dl.source_topic() != "events" || dl.source_partition() != w.partition ||
        dl.source_offset() != w.offset || dl.operator_id() != "win" || dl.error_code() != "late" ||
        dl.error_message() != w.message || dl.record_timestamp_ms() != w.t ||
        dl.pipeline() != "pipe" || dl.pipeline_version() != 7)
      errors += fmt::format("dead letter {}: got topic {} '{}', want topic {} '{}'\n", i, g.topic,
                            dl.error_message(), w.topic, w.message);
  }
  if (!errors.empty())
    ADD_FAILURE() << "step " << step << ":\n" << errors;
  return errors.empty();
}

/// One step of a run: a batch (at processing time `clock`) or a watermark.
struct step {
  bool is_watermark = false;
  int64_t watermark = 0;
  int64_t clock = 0;
  std::vector<record> batch;
};

/// Random out-of-order input over a few keys, with ties in event time, `by` and fields,
/// absent values, random batch sizes and watermarks (some regress), and a final watermark
/// past everything. Doubles are multiples of 1/4, so sums are exact in any order.
std::vector<step> random_steps(uint64_t seed, int records) {
  std::mt19937_64 rng(seed);
  const std::array<const char*, 6> keys = {"k0", "k1", "k2",
                                           "k3", "k4", "a-customer-key-longer-than-sso-0042"};
  const std::array<const char*, 4> strings = {"a", "b", "c", "dd"};
  auto pick = [&](uint64_t n) { return rng() % n; };
  std::vector<step> out;
  int64_t now = -2000, clock = 1'000'000;
  for (int idx = 0; idx < records;) {
    step b;
    b.clock = clock;
    for (uint64_t n = 1 + pick(12); n > 0 && idx < records; --n, ++idx) {
      now += static_cast<int64_t>(pick(4));
      uint64_t p = pick(100);
      int64_t delay = static_cast<int64_t>(p < 80 ? pick(15) : (p < 95 ? pick(60) : pick(250)));
      std::vector<value> f(5);
      if (pick(10) != 0)
        f[N] = value::of(static_cast<int64_t>(pick(41)) - 20);
      if (pick(10) != 0)
        f[X] = value::of(static_cast<double>(static_cast<int64_t>(pick(81)) - 40) * 0.25);
      if (pick(10) != 0)
        f[S] = value::of(std::string{strings[pick(strings.size())]});
      if (pick(10) != 0)
        f[B] = value::of(static_cast<int64_t>(pick(4)));
      if (pick(10) != 0)
        f[Y] = value::of(std::array{0.5, 1.5, -0.5}[pick(3)]);
      record r = make_record(keys[pick(keys.size())], now - delay, std::move(f), idx);
      r.ingest_ns = 1'000'000 + static_cast<int64_t>(pick(1'000'000));
      b.batch.push_back(std::move(r));
    }
    out.push_back(std::move(b));
    clock += pick(10) == 0 ? 100 : static_cast<int64_t>(pick(10));
    if (pick(2) == 0)
      out.push_back({true, now - static_cast<int64_t>(pick(50)), clock, {}});
  }
  out.push_back({true, now + 1'000'000, clock, {}});
  return out;
}

/// How a run is disturbed.
struct disturbance {
  size_t restore_at = SIZE_MAX; ///< flush, destroy, rebuild the operator before this step
  bool reopen = false;          ///< ... and reopen the store from disk
  bool evict = false;           ///< flush and/or evict the working copy at random steps
};

/// Runs `steps` through the operator and the reference in lockstep; returns every output
/// record of the operator.
std::vector<record> check_run(const window_spec& spec, const std::vector<step>& steps,
                              const disturbance& d, uint64_t seed) {
  harness h;
  reference ref(spec);
  auto op = h.make(spec);
  std::mt19937_64 rng(seed);
  std::vector<record> all;
  uint64_t late = 0, want_late = 0;
  for (size_t k = 0; k < steps.size(); ++k) {
    if (k == d.restore_at) {
      op->flush_state();
      late += op->late_records();
      int64_t wm = op->watermark();
      op.reset(); // as after a crash: only what was flushed survives
      if (d.reopen)
        h.reopen();
      if (spec.kind != window_kind::global) {
        EXPECT_EQ(h.stored_windows(), ref.live_windows()) << "at step " << k;
      }
      op = h.make(spec);
      if (wm != no_watermark) { // the host re-establishes the watermark
        op_output o;
        op->advance_watermark(wm, o);
        EXPECT_TRUE(o.records.empty() && o.dead_letters.empty());
      }
    }
    const step& s = steps[k];
    h.clock = s.clock;
    outputs want;
    op_output got;
    if (s.is_watermark) {
      ref.watermark(s.watermark, want);
      op->advance_watermark(s.watermark, got);
    } else {
      ref.batch(s.batch, s.clock, want);
      auto in = s.batch;
      op->process(in, got);
    }
    want_late += want.dead_letters.size();
    if (!check_step(want, got, k))
      return all;
    all.insert(all.end(), got.records.begin(), got.records.end());
    if (d.evict) { // write back and/or shrink the working copy, as the host does
      auto what = rng() % 8;
      if (what == 0 || what == 1)
        op->flush_state();
      if (what == 1 || what == 2)
        op->evict_to(rng() % 3);
    }
  }
  EXPECT_EQ(late + op->late_records(), want_late);
  if (spec.kind != window_kind::global) { // expired windows are dropped
    op->flush_state();
    EXPECT_EQ(ref.live_windows(), 0u);
    EXPECT_EQ(h.stored_windows(), 0u);
  }
  return all;
}

window_spec make_spec(window_kind kind, int64_t size, int64_t slide, int64_t gap, int64_t lateness,
                      int64_t ttl = 0) {
  window_spec s;
  s.id = "win";
  s.kind = kind;
  s.size_ms = size;
  s.slide_ms = slide;
  s.gap_ms = gap;
  s.allowed_lateness_ms = lateness;
  s.ttl_ms = ttl;
  s.aggregates = all_aggregates();
  return s;
}

/// Every disturbance over several seeds; disturbed runs must equal the undisturbed one.
void check_random(const window_spec& spec) {
  for (uint64_t seed : {1u, 2u, 3u}) {
    SCOPED_TRACE(fmt::format("seed {}", seed));
    auto steps = random_steps(seed, 2500);
    auto plain = check_run(spec, steps, {}, seed);
    for (const auto& d : {disturbance{SIZE_MAX, false, true}, disturbance{steps.size() / 2},
                          disturbance{steps.size() / 3, true, true}}) {
      SCOPED_TRACE(
          fmt::format("restore_at {} reopen {} evict {}", d.restore_at, d.reopen, d.evict));
      auto disturbed = check_run(spec, steps, d, seed);
      ASSERT_EQ(disturbed.size(), plain.size());
      for (size_t i = 0; i < plain.size(); ++i)
        ASSERT_TRUE(same(plain[i], disturbed[i])) << i;
    }
  }
}

// --- random runs against the reference ---------------------------------------------------

TEST(WindowRandom, Tumbling) {
  check_random(make_spec(window_kind::tumbling, 20, 0, 0, 0));
  check_random(make_spec(window_kind::tumbling, 20, 0, 0, 30));
}

TEST(WindowRandom, Sliding) {
  check_random(make_spec(window_kind::sliding, 25, 5, 0, 0));
  check_random(make_spec(window_kind::sliding, 20, 5, 0, 20));
  check_random(make_spec(window_kind::sliding, 20, 8, 0, 10)); // size not a multiple of slide
}

TEST(WindowRandom, Session) {
  check_random(make_spec(window_kind::session, 0, 0, 10, 0));
  check_random(make_spec(window_kind::session, 0, 0, 15, 25));
}

TEST(WindowRandom, Global) {
  check_random(make_spec(window_kind::global, 0, 0, 0, 0));
  check_random(make_spec(window_kind::global, 0, 0, 0, 0, 60));
}

TEST(WindowRandom, LateTopic) {
  auto spec = make_spec(window_kind::tumbling, 20, 0, 0, 5);
  spec.late_topic = "late-events";
  check_run(spec, random_steps(9, 1500), {}, 9);
}

// --- targeted cases ----------------------------------------------------------------------

std::vector<value> nfield(int64_t n) {
  return {value::of(n), {}, {}, {}, {}};
}

TEST(Window, TumblingFiresReemitsThenDeadLetters) {
  harness h;
  auto spec = make_spec(window_kind::tumbling, 10, 0, 0, 5);
  spec.aggregates = {agg("count", agg_fn::count), agg("sum_n", agg_fn::sum, N, value_type::int64)};
  spec.late_topic = "late-events";
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in = {make_record("k", 1, nfield(1), 1), make_record("k", 2, nfield(2), 2)};
  op->process(in, out);
  EXPECT_TRUE(out.records.empty());
  op->advance_watermark(9, out);
  ASSERT_EQ(out.records.size(), 1u);
  const record& r = out.records[0];
  EXPECT_EQ(r.event_time_ms, 9);
  EXPECT_EQ(r.seq, 2u);
  EXPECT_EQ(r.ingest_ns, 1002);
  EXPECT_EQ(r.offset, -1);
  EXPECT_EQ(r.partition, -1);
  EXPECT_TRUE(r.raw.empty());
  EXPECT_EQ(r.fields, (std::vector<value>{value::of(int64_t{0}), value::of(int64_t{10}),
                                          value::of(int64_t{2}), value::of(int64_t{3})}));
  out.clear();
  in = {make_record("k", 3, nfield(4), 3)}; // behind the watermark, within lateness
  op->process(in, out);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].seq, 3u);
  EXPECT_EQ(out.records[0].fields[3], value::of(int64_t{7}));
  out.clear();
  op->advance_watermark(13, out);
  op->advance_watermark(12, out); // regressions are ignored
  EXPECT_EQ(op->watermark(), 13);
  in = {make_record("k", 4, nfield(1), 4)};
  op->process(in, out); // 13 < 9 + 5: still updatable
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].seq, 4u);
  out.clear();
  op->advance_watermark(14, out); // expired: dropped without output
  EXPECT_TRUE(out.records.empty());
  in = {make_record("k", 5, nfield(1), 5)};
  op->process(in, out);
  EXPECT_TRUE(out.records.empty());
  ASSERT_EQ(out.dead_letters.size(), 1u);
  EXPECT_EQ(out.dead_letters[0].topic, "late-events");
  EXPECT_EQ(out.dead_letters[0].key, "k");
  keyflow::proto::DeadLetter dl;
  ASSERT_TRUE(dl.ParseFromString(out.dead_letters[0].value));
  EXPECT_EQ(dl.error_code(), "late");
  EXPECT_EQ(dl.error_message(), "event time 5 is behind the watermark 14 by more than the "
                                "allowed lateness 5 ms (window [0, 10))");
  EXPECT_EQ(dl.original_value(), "raw-5");
  EXPECT_EQ(dl.source_topic(), "events");
  EXPECT_EQ(dl.source_offset(), 5);
  EXPECT_EQ(dl.source_partition(), 2);
  EXPECT_EQ(dl.record_timestamp_ms(), 5);
  EXPECT_EQ(dl.operator_id(), "win");
  EXPECT_EQ(op->late_records(), 1u);
}

TEST(Window, NegativeEventTimesUseFloorDivision) {
  harness h;
  auto spec = make_spec(window_kind::tumbling, 10, 0, 0, 0);
  spec.aggregates = {agg("count", agg_fn::count)};
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in = {make_record("k", -1, nfield(0)), make_record("k", -10, nfield(0)),
                            make_record("k", -11, nfield(0))};
  op->process(in, out);
  op->advance_watermark(-1, out);
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(out.records[0].fields[0], value::of(int64_t{-20}));
  EXPECT_EQ(out.records[0].fields[2], value::of(int64_t{1}));
  EXPECT_EQ(out.records[1].fields[0], value::of(int64_t{-10}));
  EXPECT_EQ(out.records[1].fields[1], value::of(int64_t{0}));
  EXPECT_EQ(out.records[1].fields[2], value::of(int64_t{2}));
}

TEST(Window, SlidingUpdatesOnlyLiveWindows) {
  harness h;
  auto spec = make_spec(window_kind::sliding, 10, 5, 0, 0);
  spec.aggregates = {agg("count", agg_fn::count)};
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in = {make_record("k", 7, nfield(0))}; // [0, 10) and [5, 15)
  op->process(in, out);
  op->advance_watermark(9, out);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].fields[0], value::of(int64_t{0}));
  out.clear();
  in = {make_record("k", 8, nfield(0))}; // [0, 10) expired, [5, 15) open
  op->process(in, out);
  EXPECT_TRUE(out.records.empty());
  EXPECT_TRUE(out.dead_letters.empty());
  EXPECT_EQ(op->late_records(), 0u);
  op->advance_watermark(14, out);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].fields[0], value::of(int64_t{5}));
  EXPECT_EQ(out.records[0].fields[2], value::of(int64_t{2}));
}

TEST(Window, FiresInEndKeyStartOrder) {
  harness h;
  auto spec = make_spec(window_kind::tumbling, 10, 0, 0, 0);
  spec.aggregates = {agg("count", agg_fn::count)};
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in = {make_record("b", 15, nfield(0)), make_record("b", 5, nfield(0)),
                            make_record("a", 12, nfield(0)), make_record("a", 3, nfield(0)),
                            make_record("c", 25, nfield(0))};
  op->process(in, out);
  op->advance_watermark(19, out);
  std::vector<std::pair<std::string, int64_t>> got;
  for (const auto& r : out.records)
    got.emplace_back(r.key, r.event_time_ms);
  EXPECT_EQ(got, (std::vector<std::pair<std::string, int64_t>>{
                     {"a", 9}, {"b", 9}, {"a", 19}, {"b", 19}}));
}

std::vector<value> tie_fields(int64_t n, double x, std::string s, value b) {
  return {value::of(n), value::of(x), value::of(std::move(s)), std::move(b), {}};
}

TEST(Window, TiesOfFirstLastAndMaxBy) {
  harness h;
  auto spec = make_spec(window_kind::tumbling, 100, 0, 0, 0);
  spec.aggregates = {agg("first_s", agg_fn::first, S, value_type::string),
                     agg("last_s", agg_fn::last, S, value_type::string),
                     agg("max_by_s", agg_fn::max_by, S, value_type::string, B),
                     agg("max_by_x", agg_fn::max_by, X, value_type::dbl, B),
                     agg("min_by_b", agg_fn::min_by, B, value_type::int64, B)};
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in = {
      make_record("k", 5, tie_fields(3, 1.0, "b", value::of(int64_t{1}))),
      make_record("k", 5, tie_fields(9, 0.5, "a", value::of(int64_t{2}))),
      make_record("k", 5, tie_fields(1, 2.0, "c", value::of(int64_t{2}))), // wins the by tie
      make_record("k", 5, tie_fields(0, 2.5, "y", value{})),               // absent by: 0
      make_record("k", 5, tie_fields(0, 2.5, "x", value::of(int64_t{0}))),
  };
  op->process(in, out);
  op->advance_watermark(99, out);
  ASSERT_EQ(out.records.size(), 1u);
  const auto& f = out.records[0].fields;
  EXPECT_EQ(f[2], value::of(std::string{"b"})); // first arrival among equal times
  EXPECT_EQ(f[3], value::of(std::string{"x"})); // last arrival among equal times
  EXPECT_EQ(f[4], value::of(std::string{"c"})); // by 2: fields (1, ...) < (9, ...)
  EXPECT_EQ(f[5], value::of(2.0));              // the same record
  EXPECT_EQ(f[6], value::of(int64_t{0}));       // by 0: (0, 2.5, "x") < (0, 2.5, "y")
  // Equal up to the by field itself: absent orders before int64.
  out.clear();
  in = {make_record("k", 105, tie_fields(0, 2.5, "y", value::of(int64_t{0}))),
        make_record("k", 105, tie_fields(0, 2.5, "y", value{}))};
  op->process(in, out);
  op->advance_watermark(199, out);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].fields[6], value{});
}

TEST(Window, SessionMergeKeepsFirstAndLastOfParts) {
  harness h;
  auto spec = make_spec(window_kind::session, 0, 0, 10, 100);
  spec.aggregates = {agg("count", agg_fn::count),
                     agg("first_s", agg_fn::first, S, value_type::string),
                     agg("last_s", agg_fn::last, S, value_type::string)};
  auto op = h.make(spec);
  op_output out;
  auto s = [](const char* x) {
    return std::vector<value>{{}, {}, value::of(std::string{x}), {}, {}};
  };
  std::vector<record> in = {make_record("k", 20, s("x")), make_record("k", 5, s("y")),
                            make_record("k", 5, s("w")), make_record("k", 20, s("v"))};
  op->process(in, out); // sessions [20, 30) and [5, 15)
  op->advance_watermark(14, out);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].fields[0], value::of(int64_t{5}));
  EXPECT_EQ(out.records[0].fields[1], value::of(int64_t{15}));
  out.clear();
  in = {make_record("k", 12, s("m"))}; // [12, 22) joins both: [5, 30), not complete yet
  op->process(in, out);
  EXPECT_TRUE(out.records.empty());
  op->advance_watermark(29, out);
  ASSERT_EQ(out.records.size(), 1u);
  const auto& f = out.records[0].fields;
  EXPECT_EQ(f[0], value::of(int64_t{5}));
  EXPECT_EQ(f[1], value::of(int64_t{30}));
  EXPECT_EQ(f[2], value::of(int64_t{5}));
  EXPECT_EQ(f[3], value::of(std::string{"y"})); // t=5: y arrived before w
  EXPECT_EQ(f[4], value::of(std::string{"v"})); // t=20: v arrived after x
  EXPECT_EQ(out.records[0].seq, 5u);
}

TEST(Window, FiredWindowReemitsAfterRestoreWithoutWatermark) {
  harness h;
  auto spec = make_spec(window_kind::tumbling, 10, 0, 0, 100);
  spec.aggregates = {agg("count", agg_fn::count)};
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in = {make_record("k", 1, nfield(0)), make_record("k", 15, nfield(0))};
  op->process(in, out);
  op->advance_watermark(9, out);
  ASSERT_EQ(out.records.size(), 1u);
  op->flush_state();
  op.reset();
  h.reopen();
  op = h.make(spec);
  EXPECT_EQ(op->watermark(), no_watermark);
  out.clear();
  in = {make_record("k", 2, nfield(0)), make_record("k", 16, nfield(0))};
  op->process(in, out); // [0, 10) had fired: re-emitted at once; [10, 20) waits
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].event_time_ms, 9);
  EXPECT_EQ(out.records[0].seq, 2u);
  out.clear();
  op->advance_watermark(19, out); // the rebuilt timer of [10, 20)
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].event_time_ms, 19);
  EXPECT_EQ(out.records[0].seq, 2u);
}

TEST(Window, FiredSessionReemitsAfterRestoreWithoutWatermark) {
  harness h;
  auto spec = make_spec(window_kind::session, 0, 0, 10, 100);
  spec.aggregates = {agg("count", agg_fn::count)};
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in = {make_record("k", 0, nfield(0)), make_record("k", 20, nfield(0))};
  op->process(in, out);
  op->advance_watermark(9, out);
  ASSERT_EQ(out.records.size(), 1u);
  op->flush_state();
  op.reset();
  op = h.make(spec);
  out.clear();
  in = {make_record("k", 0, nfield(0))}; // [0, 10) again: fired, re-emitted at once
  op->process(in, out);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].fields[1], value::of(int64_t{10}));
  EXPECT_EQ(out.records[0].seq, 2u);
  out.clear();
  in = {make_record("k", 5, nfield(0))}; // [0, 15): its end was never passed
  op->process(in, out);
  EXPECT_TRUE(out.records.empty());
  op->advance_watermark(14, out);
  ASSERT_EQ(out.records.size(), 1u);
  EXPECT_EQ(out.records[0].fields[1], value::of(int64_t{15}));
  EXPECT_EQ(out.records[0].seq, 3u);
}

TEST(Window, RestoreRebuildsTimersOfOwnKeyGroupsOnly) {
  harness h;
  auto spec = make_spec(window_kind::tumbling, 10, 0, 0, 0);
  spec.aggregates = {agg("count", agg_fn::count)};
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in;
  for (int i = 0; i < 40; ++i)
    in.push_back(make_record(fmt::format("key-{}", i), 5, nfield(0)));
  op->process(in, out);
  op->flush_state();
  op.reset();
  h.env.first_key_group = 10;
  h.env.last_key_group = 40;
  op = h.make(spec);
  op->advance_watermark(100, out);
  size_t want = 0;
  for (const auto& r : in)
    want += r.key_group >= 10 && r.key_group <= 40;
  ASSERT_GT(want, 0u);
  EXPECT_EQ(out.records.size(), want);
  for (const auto& r : out.records)
    EXPECT_TRUE(r.key_group >= 10 && r.key_group <= 40) << r.key;
}

TEST(Window, GlobalAggregateWithTtl) {
  harness h;
  auto spec = make_spec(window_kind::global, 0, 0, 0, 0, 100);
  spec.aggregates = {agg("count", agg_fn::count), agg("sum_n", agg_fn::sum, N, value_type::int64)};
  auto op = h.make(spec);
  op_output out;
  h.clock = 0;
  std::vector<record> in = {make_record("a", 50, nfield(1), 3), make_record("b", 7, nfield(2), 1),
                            make_record("a", 40, nfield(3), 2)};
  op->process(in, out);
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(out.records[0].key, "a");
  EXPECT_EQ(out.records[0].seq, 2u);
  EXPECT_EQ(out.records[0].event_time_ms, 50);
  EXPECT_EQ(out.records[0].ingest_ns, 1001); // the oldest of the batch
  EXPECT_EQ(out.records[0].fields,
            (std::vector<value>{value::of(int64_t{2}), value::of(int64_t{4})}));
  EXPECT_EQ(out.records[1].key, "b");
  out.clear();
  op->advance_watermark(1000, out); // no effect
  EXPECT_TRUE(out.records.empty());
  h.clock = 50;
  in = {make_record("b", 8, nfield(5))};
  op->process(in, out);
  EXPECT_EQ(out.records[0].fields[1], value::of(int64_t{7}));
  out.clear();
  h.clock = 120; // a expired at 100, b lives until 150
  in = {make_record("a", 1, nfield(10)), make_record("b", 1, nfield(1))};
  op->process(in, out);
  ASSERT_EQ(out.records.size(), 2u);
  EXPECT_EQ(out.records[0].seq, 1u);
  EXPECT_EQ(out.records[0].event_time_ms, 1);
  EXPECT_EQ(out.records[0].fields[1], value::of(int64_t{10}));
  EXPECT_EQ(out.records[1].seq, 3u);
  op->flush_state();
  op.reset();
  h.reopen();
  op = h.make(spec);
  out.clear();
  h.clock = 219; // a's expiry (220) survived the restore
  in = {make_record("a", 1, nfield(1))};
  op->process(in, out);
  EXPECT_EQ(out.records[0].seq, 2u);
}

TEST(Window, OutputLayout) {
  auto spec = make_spec(window_kind::sliding, 10, 5, 0, 0);
  auto l = keyflow::ops::window_output_layout(spec);
  ASSERT_EQ(l.size(), 2 + spec.aggregates.size());
  EXPECT_EQ(l.at(0).name, "window_start_ms");
  EXPECT_EQ(l.at(1).type, value_type::int64);
  auto type_of = [&](const char* n) { return l.at(*l.slot(n)).type; };
  EXPECT_EQ(type_of("count"), value_type::int64);
  EXPECT_EQ(type_of("sum_n"), value_type::int64);
  EXPECT_EQ(type_of("sum_x"), value_type::dbl);
  EXPECT_EQ(type_of("min_n"), value_type::int64);
  EXPECT_EQ(type_of("avg_n"), value_type::dbl);
  EXPECT_EQ(type_of("first_s"), value_type::string);
  EXPECT_EQ(type_of("max_by_b_x"), value_type::dbl);
  spec.kind = window_kind::global;
  l = keyflow::ops::window_output_layout(spec);
  EXPECT_EQ(l.size(), spec.aggregates.size());
  EXPECT_EQ(l.at(0).name, "count");
}

TEST(Window, RejectsInconsistentSpecsAndState) {
  harness h;
  auto bad = [&](auto change) {
    auto spec = make_spec(window_kind::sliding, 10, 5, 0, 0);
    change(spec);
    EXPECT_THROW(h.make(spec), std::invalid_argument);
  };
  bad([](window_spec& s) { s.size_ms = 0; });
  bad([](window_spec& s) { s.slide_ms = -1; });
  bad([](window_spec& s) { s.kind = window_kind::session; });
  bad([](window_spec& s) { s.aggregates.clear(); });
  bad([](window_spec& s) { s.aggregates[1].name = "count"; });
  bad([](window_spec& s) { s.aggregates[13].by_slot = -1; });
  bad([](window_spec& s) { s.id = "no-such-column-family"; });
  // State written with other aggregates is refused, not misread.
  auto spec = make_spec(window_kind::tumbling, 10, 0, 0, 0);
  auto op = h.make(spec);
  op_output out;
  std::vector<record> in = {make_record("k", 1, nfield(1))};
  op->process(in, out);
  op->flush_state();
  op.reset();
  spec.aggregates.pop_back();
  EXPECT_THROW(h.make(spec), std::runtime_error);
}

// --- keyed_state::scan -------------------------------------------------------------------

struct int_codec {
  static std::string encode(const int64_t& v) { return std::to_string(v); }
  static bool decode(std::string_view b, int64_t& v) {
    v = std::stoll(std::string{b});
    return true;
  }
};
using int_state = keyflow::state::keyed_state<int64_t, int_codec>;

using scan_result = std::map<std::pair<key_group_t, std::string>, int64_t>;

scan_result scan(int_state& s, key_group_t first, key_group_t last) {
  scan_result out;
  s.scan(first, last, [&](std::string_view key, key_group_t kg, const int64_t& v) {
    EXPECT_TRUE(out.emplace(std::make_pair(kg, std::string{key}), v).second) << key;
  });
  return out;
}

TEST(KeyedStateScan, MergesRocksDbAndWorkingCopyOverKeyGroupRange) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"s"});
  auto* cf = store->column_family("s");
  scan_result model;
  int_state s(*store, cf);
  auto put = [&](key_group_t kg, const std::string& key, int64_t v) {
    s.update(key, kg) = v;
    model[{kg, key}] = v;
  };
  for (key_group_t kg : {0, 1, 5, 300, 65534})
    for (int i = 0; i < 30; ++i)
      put(kg, fmt::format("key-{}-{}", kg, i), kg * 100 + i);
  s.flush();
  ASSERT_TRUE(store->db()->Flush(rocksdb::FlushOptions{}, cf).ok()); // into an SST file
  put(1, "key-1-3", -3);                                             // newer, in memory only
  put(5, "key-5-in-memtable", 55);
  s.flush();                   // in the memtable
  put(65535, "key-last", 9);   // never written
  put(300, "key-300-new", 77); // never written
  s.evict_to(10);
  size_t in_memory = s.size();
  auto in_range = [&](key_group_t first, key_group_t last) {
    scan_result out;
    for (const auto& [k, v] : model)
      if (k.first >= first && k.first <= last)
        out.emplace(k, v);
    return out;
  };
  for (auto [first, last] : std::vector<std::pair<key_group_t, key_group_t>>{
           {0, 65535}, {1, 5}, {2, 4}, {5, 5}, {6, 300}, {301, 65534}, {65535, 65535}})
    EXPECT_EQ(scan(s, first, last), in_range(first, last)) << first << ".." << last;
  EXPECT_EQ(s.size(), in_memory); // nothing loaded
}

TEST(KeyedStateScan, SkipsExpiredEntries) {
  temp_dir dir;
  auto store = state_store::open(dir.path(), {"t"});
  int64_t now = 0;
  int_state s(*store, store->column_family("t"));
  s.set_ttl(100, [&] { return now; });
  s.update("old", 1) = 1;
  now = 50;
  s.update("young", 1) = 2;
  s.flush();
  now = 60;
  s.update("fresh-unwritten", 1) = 3;
  s.evict_to(1);
  now = 120;
  EXPECT_EQ(scan(s, 0, 65535), (scan_result{{{1, "young"}, 2}, {{1, "fresh-unwritten"}, 3}}));
}

} // namespace
