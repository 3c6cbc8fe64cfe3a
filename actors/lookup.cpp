// Lookup actor: reads entity hashes from Redis for enrich operators. Keys of concurrent
// requests are deduplicated and collected into rounds of up to `batch_size` keys, sent when
// that many are pending or `max_delay` after the first pending key. A round is one pipeline
// of HMGETs; a connection error or timeout reconnects and repeats the round up to `retries`
// times with a doubling backoff. If Redis is still unavailable, the round's keys go back to
// the pending keys and are tried again later (the backoff doubles up to 5 s): their requests
// stay unanswered, so the partition actors waiting for them stop taking input and their
// sources pause (backpressure); nothing is dead-lettered because Redis is down or slow. Only
// a key Redis answers with an error is answered `failed`.
// Runs detached: it blocks on Redis while a round is out, and its late answers hold back the
// partition actors waiting for them.

#include <algorithm>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/lookup_spawn.hpp"
#include "redis/redis_client.hpp"

namespace keyflow {

namespace {

using clock_type = std::chrono::steady_clock;

/// Where an answer goes: request id and position of the key in it.
struct waiter {
  uint64_t request;
  size_t index;
};

/// A request not answered yet.
struct open_request {
  caf::typed_response_promise<lookup_reply> promise;
  lookup_reply reply;
  size_t remaining = 0; // keys not answered yet
};

struct lookup_state {
  lookup_params p;
  redis::address addr;
  std::unique_ptr<redis::client> client;
  std::unordered_map<uint64_t, open_request> requests;
  uint64_t next_request = 0;
  std::unordered_map<std::string, std::vector<waiter>> waiters; // per pending key
  std::vector<std::string> pending;                             // keys in arrival order
  clock_type::time_point first_pending_at;
  bool tick_armed = false;
  std::chrono::milliseconds outage{0}; // Redis unavailable: delay before the next try
  lookup_counters own_counters;        // used when p.counters is null
  lookup_counters* counters = nullptr;
  static inline const char* name = "keyflow.lookup";
};

using self_ptr = lookup_actor::stateful_pointer<lookup_state>;

/// Entries of one HMGET reply per key; throws on I/O errors and timeouts.
std::vector<lookup_entry> read_keys(lookup_state& st, const std::vector<std::string>& keys) {
  if (!st.client)
    st.client = std::make_unique<redis::client>(st.addr, static_cast<int>(st.p.timeout.count()));
  std::vector<std::string_view> args;
  args.reserve(st.p.fields.size() + 2);
  for (const auto& key : keys) {
    args.assign({"HMGET", key});
    args.insert(args.end(), st.p.fields.begin(), st.p.fields.end());
    st.client->append(args);
  }
  auto replies = st.client->exec_arrays();
  std::vector<lookup_entry> out(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    auto& e = out[i];
    auto& r = replies[i];
    if (r.is_error || r.elements.size() != st.p.fields.size()) {
      st.counters->failed_keys += 1;
      e.status = lookup_status::failed;
      e.error = r.is_error ? "Redis error: " + r.error
                           : "HMGET gave " + std::to_string(r.elements.size()) + " values for " +
                                 std::to_string(st.p.fields.size()) + " fields";
      continue;
    }
    e.status = lookup_status::missing;
    e.values.resize(r.elements.size());
    e.set.resize(r.elements.size());
    for (size_t f = 0; f < r.elements.size(); ++f) {
      if (!r.elements[f])
        continue;
      e.status = lookup_status::found;
      e.values[f] = std::move(*r.elements[f]);
      e.set[f] = true;
    }
    if (e.status == lookup_status::missing) {
      e.values.clear();
      e.set.clear();
    }
  }
  return out;
}

/// One round: reads `keys`, retrying with backoff; nothing if Redis is still unavailable
/// after the last attempt.
std::optional<std::vector<lookup_entry>> read_round(lookup_state& st,
                                                    const std::vector<std::string>& keys) {
  st.counters->rounds += 1;
  st.counters->keys += keys.size();
  std::string error;
  auto backoff = st.p.retry_backoff;
  for (uint32_t attempt = 0; attempt <= st.p.retries; ++attempt) {
    if (attempt > 0) {
      st.counters->retries += 1;
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
    try {
      return read_keys(st, keys);
    } catch (const std::exception& e) {
      error = e.what();
      st.client.reset();
      spdlog::debug("lookup: round of {} keys failed (attempt {} of {}): {}", keys.size(),
                    attempt + 1, st.p.retries + 1, error);
    }
  }
  st.counters->failed_rounds += 1;
  st.outage =
      std::min(std::max(st.outage * 2, st.p.retry_backoff), std::chrono::milliseconds(5000));
  spdlog::warn("lookup: Redis unavailable ({}); {} keys wait, next try in {} ms", error,
               keys.size(), st.outage.count());
  return std::nullopt;
}

/// Gives `entry` to every request waiting for `key`; answers requests that are complete.
void answer(lookup_state& st, const std::string& key, lookup_entry&& entry) {
  auto it = st.waiters.find(key);
  if (it == st.waiters.end())
    return;
  auto& ws = it->second;
  for (size_t i = 0; i < ws.size(); ++i) {
    auto req = st.requests.find(ws[i].request);
    if (req == st.requests.end())
      continue;
    auto& o = req->second;
    if (i + 1 == ws.size())
      o.reply.entries[ws[i].index] = std::move(entry);
    else
      o.reply.entries[ws[i].index] = entry;
    if (--o.remaining == 0) {
      o.promise.deliver(std::move(o.reply));
      st.requests.erase(req);
    }
  }
  st.waiters.erase(it);
}

/// Reads pending keys in rounds of up to batch_size keys: all of them, or with `full_only`
/// only full rounds (the rest stays pending, as if it had just arrived).
/// Returns false if Redis is unavailable (the keys stay pending; retry after st.outage).
bool flush(lookup_state& st, bool full_only) {
  size_t batch = std::max<size_t>(st.p.batch_size, 1);
  std::vector<std::string> round;
  while (!st.pending.empty() && (!full_only || st.pending.size() >= batch)) {
    auto n = static_cast<ptrdiff_t>(std::min(batch, st.pending.size()));
    round.assign(st.pending.begin(), st.pending.begin() + n);
    auto entries = read_round(st, round);
    if (!entries)
      return false;
    if (st.outage.count() > 0) {
      spdlog::info("lookup: Redis answers again");
      st.outage = std::chrono::milliseconds{0};
    }
    st.pending.erase(st.pending.begin(), st.pending.begin() + n);
    for (size_t i = 0; i < round.size(); ++i)
      answer(st, round[i], std::move((*entries)[i]));
  }
  st.first_pending_at = clock_type::now();
  return true;
}

/// Sends a tick in `delay` unless one is on its way.
void arm_tick(self_ptr self, clock_type::duration delay) {
  auto& st = self->state;
  if (st.tick_armed)
    return;
  st.tick_armed = true;
  auto ms = std::chrono::ceil<std::chrono::milliseconds>(delay);
  self->delayed_send(self, std::max(ms, std::chrono::milliseconds(0)), atom::tick_v);
}

lookup_actor::behavior_type lookup(self_ptr self, lookup_params params, redis::address addr) {
  auto& st = self->state;
  st.p = std::move(params);
  st.addr = std::move(addr);
  st.counters = st.p.counters ? st.p.counters.get() : &st.own_counters;
  return {
      [self](lookup_request& req) -> caf::typed_response_promise<lookup_reply> {
        auto& st = self->state;
        st.counters->requests += 1;
        auto rp = self->make_response_promise<lookup_reply>();
        if (req.keys.empty()) {
          rp.deliver(lookup_reply{});
          return rp;
        }
        auto id = st.next_request++;
        auto& o = st.requests[id];
        o.promise = rp;
        o.reply.entries.resize(req.keys.size());
        o.remaining = req.keys.size();
        for (size_t i = 0; i < req.keys.size(); ++i) {
          auto [it, fresh] = st.waiters.try_emplace(std::move(req.keys[i]));
          if (fresh) {
            if (st.pending.empty())
              st.first_pending_at = clock_type::now();
            st.pending.push_back(it->first);
          }
          it->second.push_back(waiter{id, i});
        }
        if (st.outage.count() > 0) // the retry tick is armed
          return rp;
        if (st.pending.size() >= st.p.batch_size && !flush(st, true))
          arm_tick(self, st.outage);
        else if (!st.pending.empty())
          arm_tick(self, st.p.max_delay);
        return rp;
      },
      [self](atom::tick) {
        auto& st = self->state;
        st.tick_armed = false;
        if (st.pending.empty())
          return;
        auto due = st.first_pending_at + st.p.max_delay;
        auto now = clock_type::now();
        if (st.outage.count() == 0 && now < due)
          arm_tick(self, due - now);
        else if (!flush(st, false))
          arm_tick(self, st.outage);
      },
  };
}

} // namespace

lookup_actor spawn_lookup(caf::actor_system& sys, lookup_params params) {
  auto addr = redis::address::parse(params.address);
  if (params.fields.empty())
    throw std::invalid_argument("lookup of Redis hashes at '" + params.address +
                                "' needs at least one field");
  return sys.spawn<caf::detached>(lookup, std::move(params), std::move(addr));
}

} // namespace keyflow
