#include "pipeline/stage_runner.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

#include "operators/basic.hpp"
#include "operators/enrich.hpp"
#include "operators/window.hpp"

namespace keyflow::pipeline {

namespace {

/// The failpoint of KEYFLOW_FAILPOINT="<operator id>:<field>=<value>", if set: the operator
/// throws on every batch holding a record whose input field has that text value (a value
/// "*<suffix>" matches every text ending with <suffix>). A test facility, like the
/// failpoints of other storage systems, to exercise supervision and poison records.
struct failpoint_spec {
  std::string op, field, text;
};

std::optional<failpoint_spec> failpoint_from_env() {
  const char* v = std::getenv("KEYFLOW_FAILPOINT");
  if (v == nullptr || *v == '\0')
    return std::nullopt;
  std::string s{v};
  auto colon = s.find(':');
  auto eq = s.find('=', colon == std::string::npos ? 0 : colon);
  if (colon == std::string::npos || eq == std::string::npos)
    throw std::invalid_argument("KEYFLOW_FAILPOINT: expected <operator>:<field>=<value>, got '" +
                                s + "'");
  return failpoint_spec{s.substr(0, colon), s.substr(colon + 1, eq - colon - 1), s.substr(eq + 1)};
}

} // namespace

stage_runner::stage_runner(std::shared_ptr<const plan> p, int stage, ops::op_env env)
    : plan_(std::move(p)), stage_(stage) {
  const auto& ops = plan_->ops;
  std::vector<int> local(ops.size(), -1); // plan index -> local producer index
  for (size_t i = 0; i < ops.size(); ++i) {
    const auto& op = ops[i];
    if (op.stage != stage || op.at_source)
      continue;
    if (op.cfg->type == "validate")
      throw std::invalid_argument("operator '" + op.cfg->id +
                                  "': validate runs in the sources and must come first");
    int producer = -1;
    if (op.input >= 0 && !ops[static_cast<size_t>(op.input)].at_source &&
        ops[static_cast<size_t>(op.input)].stage == stage)
      producer = local[static_cast<size_t>(op.input)];
    local[i] = static_cast<int>(ops_.size());
    plan_index_.push_back(static_cast<int>(i));
    input_.push_back(producer);
    const auto& t = op.cfg->type;
    if (t == "aggregate" || t == "window") {
      ops_.push_back(ops::make_window_operator(op.window, env));
      enrich_.push_back(nullptr);
    } else if (t == "enrich") {
      auto e = std::make_unique<ops::enrich_operator>(op.enrich, env);
      enrich_.push_back(e.get());
      ops_.push_back(std::move(e));
      has_enrich_ = true;
    } else {
      ops_.push_back(ops::make_basic_operator(op, env));
      enrich_.push_back(nullptr);
    }
    if (t == "key_by")
      key_by_ = local[i];
    static const auto fp = failpoint_from_env();
    fail_slot_.push_back(-1);
    if (fp && fp->op == op.cfg->id) {
      auto slot = op.in.slot(fp->field);
      if (!slot)
        throw std::invalid_argument("KEYFLOW_FAILPOINT: operator '" + fp->op +
                                    "' has no input "
                                    "field '" +
                                    fp->field + "'");
      fail_slot_.back() = *slot;
      fail_text_ = fp->text;
    }
    per_record_.push_back(t != "aggregate" && t != "window");
  }
  const auto n = ops_.size();
  consumers_.assign(n + 1, 0);
  auto slot = [n](int producer) { return producer < 0 ? n : static_cast<size_t>(producer); };
  for (auto producer : input_)
    ++consumers_[slot(producer)];
  sink_out_.resize(plan_->sinks.size());
  for (size_t s = 0; s < plan_->sinks.size(); ++s) {
    const auto& sp = plan_->sinks[s];
    if (sp.stage != stage)
      continue;
    int producer = local[static_cast<size_t>(sp.from)];
    sinks_.emplace_back(s, producer);
    ++consumers_[slot(producer)];
  }
  if (key_by_ >= 0)
    ++consumers_[static_cast<size_t>(key_by_)];
  out_.resize(n);
  last_out_.assign(n, 0);
  last_seconds_.assign(n, 0.0);
}

stage_runner::~stage_runner() = default;

std::vector<record> stage_runner::take(int producer) {
  auto& src = producer < 0 ? input_records_ : out_[static_cast<size_t>(producer)].records;
  auto& left = remaining_[producer < 0 ? ops_.size() : static_cast<size_t>(producer)];
  if (left <= 1) {
    left = 0;
    return std::move(src);
  }
  --left;
  return src;
}

void stage_runner::start(std::vector<record>&& in, std::optional<int64_t> watermark) {
  input_records_ = std::move(in);
  pending_wm_.reset();
  if (watermark && *watermark > watermark_)
    pending_wm_ = *watermark;
  remaining_ = consumers_;
  for (auto& o : out_)
    o.records.clear();
  next_ = 0;
  enrich_ready_ = false;
  std::fill(last_seconds_.begin(), last_seconds_.end(), 0.0);
}

bool stage_runner::run(lookup_request& request, int& op_index) {
  for (; next_ < ops_.size(); ++next_) {
    auto i = next_;
    auto& op = *ops_[i];
    // Inputs stay in place until the operator really runs (an enrich may suspend first).
    auto& src = input_[i] < 0 ? input_records_ : out_[static_cast<size_t>(input_[i])].records;
    if (enrich_[i] != nullptr && !enrich_ready_) {
      request = enrich_[i]->prepare(src);
      if (!request.keys.empty()) {
        op_index = static_cast<int>(i);
        return false;
      }
    }
    enrich_ready_ = false;
    auto in = take(input_[i]);
    if (fail_slot_[i] >= 0)
      check_failpoint(i, in);
    auto before = out_[i].records.size();
    if (per_record_[i]) // outputs are moved out each batch: grow once, not record by record
      out_[i].records.reserve(before + in.size());
    const auto t0 = std::chrono::steady_clock::now();
    op.process(in, out_[i]);
    if (pending_wm_)
      op.advance_watermark(*pending_wm_, out_[i]);
    last_seconds_[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    last_out_[i] = out_[i].records.size() - before;
    for (auto& d : out_[i].dead_letters)
      dead_.push_back(std::move(d));
    out_[i].dead_letters.clear();
  }
  if (pending_wm_)
    watermark_ = *pending_wm_;
  for (auto [s, producer] : sinks_) {
    auto recs = take(producer);
    auto& dst = sink_out_[s];
    if (dst.empty())
      dst = std::move(recs);
    else
      for (auto& r : recs)
        dst.push_back(std::move(r));
  }
  if (key_by_ >= 0) {
    auto recs = take(key_by_);
    for (auto& r : recs)
      downstream_.push_back(std::move(r));
  }
  return true;
}

void stage_runner::check_failpoint(size_t i, const std::vector<record>& in) const {
  auto slot = static_cast<size_t>(fail_slot_[i]);
  const bool suffix = !fail_text_.empty() && fail_text_[0] == '*';
  auto matches = [&](const std::string& t) {
    return suffix ? t.size() >= fail_text_.size() - 1 &&
                        t.compare(t.size() - (fail_text_.size() - 1), std::string::npos, fail_text_,
                                  1) == 0
                  : t == fail_text_;
  };
  for (const auto& r : in)
    if (slot < r.fields.size() && matches(r.fields[slot].to_string()))
      throw std::runtime_error(fmt::format("failpoint: operator '{}' fails on {}@{} (key '{}')",
                                           ops_[i]->id(), r.partition, r.offset, r.key));
}

const std::string& stage_runner::current_operator() const {
  static const std::string none = "stage";
  return next_ < ops_.size() ? ops_[next_]->id() : none;
}

void stage_runner::complete(int op_index, const lookup_request& request,
                            const lookup_reply& reply) {
  enrich_[static_cast<size_t>(op_index)]->complete(request, reply);
  enrich_ready_ = true;
}

void stage_runner::clear_outputs() {
  for (auto& s : sink_out_)
    s.clear();
  downstream_.clear();
  dead_.clear();
}

size_t stage_runner::flush_state() {
  size_t n = 0;
  for (auto& op : ops_)
    n += op->flush_state();
  return n;
}

void stage_runner::evict_to(size_t max_keys) {
  for (auto& op : ops_)
    op->evict_to(max_keys);
}

size_t stage_runner::state_size() const {
  size_t n = 0;
  for (const auto& op : ops_)
    n += op->state_size();
  return n;
}

} // namespace keyflow::pipeline
