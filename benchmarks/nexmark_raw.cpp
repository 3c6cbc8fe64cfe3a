#include "benchmarks/nexmark_raw.hpp"

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

namespace keyflow::bench {

namespace {

constexpr uint64_t raw_batch = 1024; // latency sample granularity (the engine's batch size)

// The queries' parameters, as in config/pipelines/nexmark/*.yaml.
constexpr double q1_eur_per_usd = 0.908;
constexpr int64_t q2_modulus = 123;
constexpr int64_t q5_size_ms = 10000, q5_slide_ms = 2000;
constexpr int64_t q7_size_ms = 10000;
constexpr int64_t q11_gap_ms = 10000;

int64_t floor_div(int64_t a, int64_t b) noexcept {
  int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

/// Decimal text of an id (the record key after key_by or of an int64 source key).
struct decimal {
  char buf[24];
  std::string_view text;
  explicit decimal(int64_t v) noexcept {
    auto end = std::to_chars(buf, buf + sizeof(buf), v).ptr;
    text = {buf, static_cast<size_t>(end - buf)};
  }
};

/// q1 currency conversion: every bid with price * 0.908.
struct q1_query {
  result_digest out;
  void bid(const nexmark::Bid& b, int64_t) {
    if (b.auction() <= 0)
      return;
    const double eur = static_cast<double>(b.price()) * q1_eur_per_usd + 0.0;
    out.add(record_hash{}
                .key(decimal{b.auction()}.text)
                .i64(b.auction())
                .i64(b.bidder())
                .dbl(eur)
                .i64(b.date_time())
                .done());
  }
  void advance(int64_t) {}
};

/// q2 selection: bids on auctions whose id is a multiple of 123.
struct q2_query {
  result_digest out;
  void bid(const nexmark::Bid& b, int64_t) {
    if (b.auction() <= 0 || b.auction() % q2_modulus != 0)
      return;
    out.add(record_hash{}.key(decimal{b.auction()}.text).i64(b.auction()).i64(b.price()).done());
  }
  void advance(int64_t) {}
};

/// q5 hot items: bids per auction in 10 s windows sliding by 2 s; per window the auction
/// with the most bids (ties: the smallest id).
struct q5_query {
  result_digest out;
  std::map<int64_t, std::unordered_map<int64_t, int64_t>> windows; // end -> auction -> bids
  void bid(const nexmark::Bid& b, int64_t t) {
    if (b.auction() <= 0)
      return;
    for (int64_t s = floor_div(t, q5_slide_ms) * q5_slide_ms; s > t - q5_size_ms; s -= q5_slide_ms)
      ++windows[s + q5_size_ms][b.auction()];
  }
  void advance(int64_t wm) {
    while (!windows.empty() && windows.begin()->first - 1 <= wm) {
      const auto& [end, counts] = *windows.begin();
      int64_t best = 0, bids = -1;
      for (const auto& [auction, n] : counts)
        if (n > bids || (n == bids && auction < best)) {
          best = auction;
          bids = n;
        }
      out.add(record_hash{}.key(decimal{end}.text).i64(end).i64(best).i64(bids).done());
      windows.erase(windows.begin());
    }
  }
};

/// q7 highest bid: per 10 s tumbling window the highest price, its bidder and auction
/// (ties: the smallest bidder, then the smallest auction).
struct q7_query {
  struct best {
    int64_t price, bidder, auction;
  };
  result_digest out;
  std::map<int64_t, best> windows; // end -> best bid so far
  void bid(const nexmark::Bid& b, int64_t t) {
    if (b.auction() <= 0)
      return;
    const int64_t end = floor_div(t, q7_size_ms) * q7_size_ms + q7_size_ms;
    auto [it, fresh] = windows.try_emplace(end, best{b.price(), b.bidder(), b.auction()});
    auto& w = it->second;
    if (!fresh && (b.price() > w.price ||
                   (b.price() == w.price && (b.bidder() < w.bidder ||
                                             (b.bidder() == w.bidder && b.auction() < w.auction)))))
      w = {b.price(), b.bidder(), b.auction()};
  }
  void advance(int64_t wm) {
    while (!windows.empty() && windows.begin()->first - 1 <= wm) {
      const auto& [end, w] = *windows.begin();
      out.add(record_hash{}
                  .key(decimal{end}.text)
                  .i64(end)
                  .i64(w.price)
                  .i64(w.bidder)
                  .i64(w.auction)
                  .done());
      windows.erase(windows.begin());
    }
  }
};

/// q11 user sessions: bids per bidder and session; a session ends after 10 s without bids.
/// Input times never decrease, so session ends come in order: a FIFO of (end, session)
/// entries (stale ones skipped) is the timer queue. Sessions live in a slab; a bidder's
/// previous session stays there until its end fires, as in the engine.
struct q11_query {
  struct session {
    int64_t bidder, start, end, bids;
  };
  result_digest out;
  std::unordered_map<int64_t, uint32_t> open; // bidder -> slab index of its newest session
  std::vector<session> slab;
  std::vector<uint32_t> free_slots;
  std::deque<std::pair<int64_t, uint32_t>> timers; // (end, slab index), ends non-decreasing
  uint32_t make(int64_t bidder, int64_t t) {
    uint32_t i = static_cast<uint32_t>(slab.size());
    if (!free_slots.empty()) {
      i = free_slots.back();
      free_slots.pop_back();
    } else {
      slab.emplace_back();
    }
    slab[i] = {bidder, t, t + q11_gap_ms, 0};
    return i;
  }
  void bid(const nexmark::Bid& b, int64_t t) {
    if (b.bidder() <= 0)
      return;
    auto it = open.find(b.bidder());
    if (it == open.end())
      it = open.emplace(b.bidder(), make(b.bidder(), t)).first;
    else if (t >= slab[it->second].end) // after the gap: a new session
      it->second = make(b.bidder(), t);
    auto& s = slab[it->second];
    ++s.bids;
    s.end = std::max(s.end, t + q11_gap_ms);
    timers.emplace_back(s.end, it->second);
  }
  void advance(int64_t wm) {
    while (!timers.empty() && timers.front().first - 1 <= wm) {
      auto [end, i] = timers.front();
      timers.pop_front();
      const session& s = slab[i];
      if (s.end != end || s.bids == 0)
        continue; // stale: the session was extended (or is already emitted)
      out.add(record_hash{}.key(decimal{s.bidder}.text).i64(s.start).i64(s.end).i64(s.bids).done());
      if (auto o = open.find(s.bidder); o != open.end() && o->second == i)
        open.erase(o);
      slab[i].bids = 0;
      free_slots.push_back(i);
    }
  }
};

/// The loop every raw baseline shares: generate, parse, query, advance the watermark.
template <class Query>
raw_run raw_loop(Query& q, const nexmark_options& opts, int64_t out_of_orderness_ms,
                 int64_t time_cap_ms) {
  raw_run r;
  r.phase.variant = "raw";
  memory_probe mem;
  nexmark_options all = opts;
  all.instance = 0;
  all.instances = 1;
  nexmark_generator gen(all);
  nexmark::Event ev;
  latency_samples lat;
  int64_t max_time = INT64_MIN;
  uint64_t n = 0;
  const double cpu0 = thread_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  for (bool more = true; more;) {
    const auto b0 = std::chrono::steady_clock::now();
    uint64_t i = 0;
    for (; i < raw_batch && (more = gen.next()); ++i) {
      const auto bytes = gen.value();
      if (!ev.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
        throw std::runtime_error("raw: undecodable Nexmark event");
      const int64_t t = ev.event_time_ms();
      if (ev.has_bid())
        q.bid(ev.bid(), t);
      if (t > max_time) {
        max_time = t;
        q.advance(std::min(max_time, time_cap_ms) - out_of_orderness_ms);
      }
    }
    n += i;
    if (i > 0)
      lat.add(seconds_since(b0), i);
  }
  if (max_time != INT64_MIN)
    q.advance(std::min(max_time, time_cap_ms) - out_of_orderness_ms);
  r.phase.seconds = seconds_since(t0);
  r.phase.cpu_s = thread_cpu_seconds() - cpu0;
  r.phase.events = n;
  r.phase.latency = lat.percentiles();
  r.phase.memory = mem.finish();
  r.digest = q.out;
  return r;
}

} // namespace

const std::vector<std::string>& nexmark_queries() {
  static const std::vector<std::string> q{"q1", "q2", "q5", "q7", "q11"};
  return q;
}

raw_run run_nexmark_raw(const std::string& query, const nexmark_options& opts,
                        int64_t out_of_orderness_ms, int64_t time_cap_ms) {
  raw_run r;
  if (query == "q1") {
    q1_query q;
    r = raw_loop(q, opts, out_of_orderness_ms, time_cap_ms);
    r.phase.detail = "1 thread: generate -> ParseFromArray -> price * 0.908 -> digest";
  } else if (query == "q2") {
    q2_query q;
    r = raw_loop(q, opts, out_of_orderness_ms, time_cap_ms);
    r.phase.detail = "1 thread: generate -> ParseFromArray -> auction % 123 == 0 -> digest";
  } else if (query == "q5") {
    q5_query q;
    r = raw_loop(q, opts, out_of_orderness_ms, time_cap_ms);
    r.phase.detail = "1 thread: generate -> ParseFromArray -> std::map<end, "
                     "unordered_map<auction, count>> (5 windows per bid) -> max per window";
  } else if (query == "q7") {
    q7_query q;
    r = raw_loop(q, opts, out_of_orderness_ms, time_cap_ms);
    r.phase.detail = "1 thread: generate -> ParseFromArray -> std::map<end, best bid>";
  } else if (query == "q11") {
    q11_query q;
    r = raw_loop(q, opts, out_of_orderness_ms, time_cap_ms);
    r.phase.detail = "1 thread: generate -> ParseFromArray -> unordered_map<bidder, session> + "
                     "FIFO of session ends";
  } else {
    throw std::invalid_argument("no raw baseline for query '" + query + "'");
  }
  return r;
}

int64_t final_source_time(nexmark_options opts, uint32_t sources) {
  if (opts.events < sources)
    return INT64_MIN; // a source without events never sends a watermark
  opts.instance = 0;
  opts.instances = 1;
  nexmark_generator gen(opts);
  nexmark::Event ev;
  int64_t lowest = INT64_MAX;
  for (uint32_t i = 0; i < sources; ++i) {
    // The last event number n < events with n % sources == i; the greatest time of that
    // instance, as times never decrease without disorder (max_delay_ms = 0)...
    const uint64_t last = opts.events - 1 - ((opts.events - 1 + sources - i) % sources);
    gen.generate(last, ev);
    int64_t t = ev.event_time_ms();
    if (opts.max_delay_ms > 0) // ... else the greatest over the instance's events
      for (uint64_t n = i; n < opts.events; n += sources) {
        gen.generate(n, ev);
        t = std::max<int64_t>(t, ev.event_time_ms());
      }
    lowest = std::min(lowest, t);
  }
  return lowest;
}

phase_result run_generator_only(const nexmark_options& opts) {
  phase_result r;
  r.variant = "generator";
  r.detail = "nexmark_generator::next() (generate + serialize) only";
  nexmark_options all = opts;
  all.instance = 0;
  all.instances = 1;
  nexmark_generator gen(all);
  uint64_t bytes = 0;
  const double cpu0 = thread_cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  while (gen.next()) {
    bytes += gen.value().size();
    ++r.events;
  }
  r.seconds = seconds_since(t0);
  r.cpu_s = thread_cpu_seconds() - cpu0;
  if (bytes == 0 && r.events > 0)
    throw std::runtime_error("generator produced empty events");
  return r;
}

} // namespace keyflow::bench
