// Redis sink: coalesces profile updates by key (latest wins) and writes them, pipelined,
// every `flush_interval` or when `max_pending` keys are buffered. Each write is a versioned
// upsert (Lua script): it applies only if its sequence is newer than the one stored in the
// hash's `_seq` field, so replaying records after a restore never moves a profile backwards
// or counts anything twice. Runs detached: it
// blocks on Redis, and while Redis is slow or down it stops answering with credit, which
// backpressures the partition actors and, through them, the sources.

#include <chrono>
#include <thread>
#include <unordered_map>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "redis/redis_client.hpp"

namespace keyflow {

namespace {

/// KEYS[1] = profile hash; ARGV[1] = sequence; ARGV[2..] = field/value pairs.
/// Returns 1 if applied, 0 if the stored version is as new or newer.
constexpr const char* upsert_script = R"lua(
local cur = redis.call('HGET', KEYS[1], '_seq')
if cur and tonumber(cur) >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], '_seq', ARGV[1], unpack(ARGV, 2))
return 1
)lua";

struct redis_sink_state {
  redis_sink_params p;
  std::unique_ptr<redis::client> client;
  std::string script_sha;
  std::unordered_map<std::string, profile_update> pending;
  uint64_t written = 0;
  metrics::local_histogram latency;
  prometheus::Counter* writes = nullptr;
  prometheus::Counter* errors = nullptr;
  static inline const char* name = "keyflow.redis_sink";
};

using self_ptr = redis_sink_actor::stateful_pointer<redis_sink_state>;

/// Sends all pending updates; returns false (and keeps them) if Redis failed.
bool try_write(redis_sink_state& st) {
  if (!st.client) {
    st.client = std::make_unique<redis::client>(redis::address::parse(st.p.address));
    st.script_sha = st.client->command({"SCRIPT", "LOAD", upsert_script});
  }
  std::string key, seq, count, sum, last, score;
  size_t queued = 0, errors = 0;
  for (const auto& [k, u] : st.pending) {
    key = st.p.key_prefix + k;
    count = fmt::format("{}", u.count);
    sum = fmt::format("{}", u.sum);
    last = fmt::format("{}", u.last_event_time_ms);
    score = fmt::format("{}", u.score);
    seq = fmt::format("{}", u.seq);
    st.client->append({"EVALSHA", st.script_sha, "1", key, seq, "count", count, "sum", sum,
                       "last_event_time_ms", last, "score", score});
    if (++queued % 1000 == 0)
      errors += st.client->exec();
  }
  errors += st.client->exec();
  if (errors > 0)
    throw std::runtime_error(std::to_string(errors) + " profile upserts were refused");
  return true;
}

void write_all(self_ptr self) {
  auto& st = self->state;
  if (st.pending.empty())
    return;
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    try {
      try_write(st);
      break;
    } catch (const std::exception& e) {
      spdlog::warn("redis sink {}: write of {} profiles failed, retrying in {} ms: {}",
                   st.p.sink_id, st.pending.size(), backoff.count(), e.what());
      if (st.errors != nullptr)
        st.errors->Increment(static_cast<double>(st.pending.size()));
      st.client.reset();
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  for (const auto& [k, u] : st.pending)
    st.latency.observe(static_cast<double>(now - u.ingest_ns) * 1e-9);
  st.latency.publish();
  st.written += st.pending.size();
  if (st.writes != nullptr)
    st.writes->Increment(static_cast<double>(st.pending.size()));
  st.pending.clear();
}

redis_sink_actor::behavior_type redis_sink(self_ptr self, redis_sink_params params) {
  auto& st = self->state;
  st.p = std::move(params);
  if (auto* m = st.p.metrics) {
    st.writes = &m->sink_writes(st.p.sink_id);
    st.errors = &m->sink_errors(st.p.sink_id);
    st.latency = metrics::local_histogram{&m->end_to_end_latency(st.p.sink_id)};
  }
  self->delayed_send(self, st.p.flush_interval, atom::tick_v);
  return {
      [self](profile_batch& batch) -> uint32_t {
        auto& st = self->state;
        for (auto& u : batch.updates) {
          auto [it, fresh] = st.pending.try_emplace(u.key, u);
          if (!fresh) {
            auto oldest = std::min(it->second.ingest_ns, u.ingest_ns);
            it->second = std::move(u);
            it->second.ingest_ns = oldest;
          }
        }
        if (st.pending.size() >= st.p.max_pending)
          write_all(self);
        return 1;
      },
      [self](atom::tick) {
        write_all(self);
        self->delayed_send(self, self->state.p.flush_interval, atom::tick_v);
      },
      [self](atom::drain) -> uint64_t {
        write_all(self);
        return self->state.written;
      },
  };
}

} // namespace

redis_sink_actor spawn_redis_sink(caf::actor_system& sys, redis_sink_params params) {
  return sys.spawn<caf::detached>(redis_sink, std::move(params));
}

} // namespace keyflow
