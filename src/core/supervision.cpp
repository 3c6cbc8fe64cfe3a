#include "core/supervision.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "core/logging.hpp"

namespace keyflow {

uint64_t supervision::started(uint32_t instance) {
  std::lock_guard lock{mu_};
  auto& st = instances_[instance];
  st.due.reset();
  return ++st.incarnation;
}

bool supervision::actor_failed(uint32_t instance, uint64_t incarnation, const std::string& what) {
  std::lock_guard lock{mu_};
  auto& st = instances_[instance];
  if (incarnation != st.incarnation || st.due)
    return false; // a cascade of the same failure, or an instance already stopped
  auto now = clock::now();
  st.consecutive =
      st.consecutive > 0 && now - st.last_failure < settings_.reset_after ? st.consecutive + 1 : 1;
  st.last_failure = now;
  auto delay = settings_.backoff;
  for (uint32_t i = 1; i < st.consecutive && delay < settings_.backoff_max; ++i)
    delay *= 2;
  delay = std::min(delay, settings_.backoff_max);
  st.due = restart_plan{now + delay, delay,
                        st.operator_failed == incarnation ? "operator_failed" : "actor_failed"};
  ++restarts_;
  spdlog::warn("supervisor: instance {} failed ({}); restarting from its last checkpoint in {} ms "
               "(failure {} in a row)",
               instance, what, delay.count(), st.consecutive);
  return true;
}

void supervision::operator_failed(const operator_failure& f) {
  std::lock_guard lock{mu_};
  instances_[f.instance].operator_failed = f.incarnation;
  auto next = std::make_shared<supervision_hints>(*hints_);
  if (f.record) {
    auto& a = attempts_[*f.record];
    a.op = f.op;
    a.error = f.error;
    ++a.attempts;
    const logging::log_ctx ctx{.op = f.op, .key_group = f.key_group};
    logging::warn(ctx, "supervisor: operator '{}' failed on record {}@{} (attempt {} of {}): {}",
                  f.op, f.record->first, f.record->second, a.attempts, settings_.max_attempts,
                  f.error);
    if (a.attempts >= settings_.max_attempts) {
      next->poison[*f.record] = a;
      logging::error(ctx, "supervisor: record {}@{} is poison: it goes to the dead-letter topic",
                     f.record->first, f.record->second);
    }
  } else {
    logging::warn({.op = f.op},
                  "supervisor: operator '{}' failed in a batch of {} partition(s): {}; its "
                  "records are processed one at a time after the restart",
                  f.op, f.batch.size(), f.error);
  }
  for (const auto& [p, offset] : f.batch) {
    auto [it, fresh] = next->suspects.emplace(p, offset);
    if (!fresh)
      it->second = std::max(it->second, offset);
  }
  hints_ = std::move(next);
}

void supervision::add_poison(const std::map<record_position, poison_info>& more) {
  std::lock_guard lock{mu_};
  auto next = std::make_shared<supervision_hints>(*hints_);
  bool changed = false;
  for (const auto& [at, info] : more) {
    auto [it, fresh] = next->poison.try_emplace(at, info);
    if (!fresh && it->second.attempts < info.attempts)
      it->second = info;
    changed = changed || fresh;
  }
  if (changed)
    hints_ = std::move(next);
}

std::optional<supervision::restart_plan> supervision::restart_due(uint32_t instance) const {
  std::lock_guard lock{mu_};
  auto i = instances_.find(instance);
  return i == instances_.end() ? std::nullopt : i->second.due;
}

std::shared_ptr<const supervision_hints> supervision::hints() const {
  std::lock_guard lock{mu_};
  return hints_;
}

uint64_t supervision::restarts() const {
  std::lock_guard lock{mu_};
  return restarts_;
}

} // namespace keyflow
