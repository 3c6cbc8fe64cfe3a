#include "operators/preaggregate.hpp"

#include <algorithm>

#include "core/logging.hpp"
#include "pipeline/plan.hpp"

namespace keyflow::ops {

int fanout_operator(const pipeline::plan& p) {
  int found = -1;
  for (size_t i = 0; i < p.ops.size(); ++i) {
    const auto& op = p.ops[i];
    if (op.at_source || op.stage != 0)
      continue;
    bool fed_by_source = op.input < 0 || p.ops[static_cast<size_t>(op.input)].at_source;
    if (!fed_by_source)
      continue;
    if (found >= 0)
      return -1; // two operators read the source's records
    found = static_cast<int>(i);
  }
  for (const auto& s : p.sinks)
    if (s.from < 0 || p.ops[static_cast<size_t>(s.from)].at_source)
      return -1; // a sink writes the source's records
  if (found < 0)
    return -1;
  const auto& op = p.ops[static_cast<size_t>(found)];
  if ((op.cfg->type != "aggregate" && op.cfg->type != "window") ||
      op.window.kind == window_kind::session)
    return -1;
  for (const auto& a : op.window.aggregates)
    if (a.fn != agg_fn::count && a.fn != agg_fn::sum && a.fn != agg_fn::min &&
        a.fn != agg_fn::max && a.fn != agg_fn::avg)
      return -1;
  return found;
}

std::unique_ptr<hot_key_combiner> make_combiner(const pipeline::plan& p, double share,
                                                std::string source,
                                                std::shared_ptr<const watermark_bound> bound) {
  int op = fanout_operator(p);
  if (op < 0 || share <= 0)
    return nullptr;
  const auto& spec = p.ops[static_cast<size_t>(op)].window;
  if (spec.kind != window_kind::global && !bound)
    return nullptr;
  return std::make_unique<hot_key_combiner>(spec, share, std::move(source), std::move(bound));
}

void encode_partial(const std::vector<accumulator>& accs, std::vector<value>& fields) {
  fields.clear();
  fields.reserve(accs.size() * 3);
  for (const auto& a : accs) {
    fields.push_back(a.v);
    fields.push_back(value::of(a.n));
    fields.push_back(value::of(a.t));
  }
}

bool decode_partial(const std::vector<value>& fields, size_t n, std::vector<accumulator>& out) {
  if (fields.size() != n * 3)
    return false;
  out.resize(n);
  for (size_t i = 0; i < n; ++i) {
    out[i].v = fields[i * 3];
    out[i].n = fields[i * 3 + 1].i;
    out[i].t = fields[i * 3 + 2].i;
  }
  return true;
}

hot_key_combiner::hot_key_combiner(const window_spec& spec, double share, std::string source,
                                   std::shared_ptr<const watermark_bound> bound)
    : spec_(spec), aggs_(spec.aggregates), tracker_([share] {
        hot_key_options o;
        o.threshold = share;
        o.period_ms = 10000;
        return o;
      }()),
      source_(std::move(source)), bound_(std::move(bound)) {}

bool hot_key_combiner::pane_of(int64_t t, int64_t& pane) const {
  if (spec_.kind == window_kind::global) {
    pane = 0;
    return true;
  }
  const int64_t size = spec_.size_ms;
  const int64_t step = spec_.kind == window_kind::sliding ? spec_.slide_ms : size;
  pane = floor_div(t, step) * step;
  // The record's first window ends first: [first, first + size) with first the smallest
  // multiple of `step` above t - size. It must outlive every watermark sent so far.
  const int64_t first = floor_div(t - size, step) * step + step;
  const int64_t expiry = first + size - 1 + spec_.allowed_lateness_ms;
  const int64_t wm = bound_ ? bound_->load(std::memory_order_acquire) : INT64_MAX;
  return first <= t && wm < expiry;
}

bool hot_key_combiner::absorb(const record& r) {
  tracker_.observe(r.key);
  if (hot_.empty() || std::find(hot_.begin(), hot_.end(), r.key) == hot_.end())
    return false;
  int64_t pane = 0;
  if (!pane_of(r.event_time_ms, pane))
    return false;
  auto [it, fresh] = partial_.try_emplace({r.key, pane});
  auto& p = it->second;
  if (fresh || p.accs.size() != aggs_.accumulators())
    p.accs.assign(aggs_.accumulators(), accumulator{});
  aggs_.fold(p.accs.data(), nullptr, r);
  ++p.n;
  p.max_event_time = std::max(p.max_event_time, r.event_time_ms);
  p.min_ingest = std::min(p.min_ingest, r.ingest_ns);
  ++folded_;
  return true;
}

void hot_key_combiner::flush(router& out, int64_t now_ms) {
  for (auto& [where, p] : partial_) {
    if (p.n == 0)
      continue;
    record r;
    r.key = where.first;
    r.event_time_ms = p.max_event_time;
    r.ingest_ns = p.min_ingest;
    r.folded = p.n;
    encode_partial(p.accs, r.fields);
    out.route(std::move(r));
    ++partials_;
    p = partial{};
  }
  tracker_.tick(now_ms);
  std::vector<std::string> hot;
  for (auto& k : tracker_.hot())
    hot.push_back(std::move(k.key));
  for (const auto& k : hot)
    if (std::find(hot_.begin(), hot_.end(), k) == hot_.end())
      logging::info({.op = spec_.id, .actor = "source " + source_},
                    "source {}: hot key '{}': its records are pre-aggregated here (fanout)",
                    source_, k);
  hot_ = std::move(hot);
  if (partial_.size() > 4 * (hot_.size() + 1))
    partial_.clear(); // keys no longer hot
}

} // namespace keyflow::ops
