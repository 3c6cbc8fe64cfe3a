// Redis sink: writes result records as hashes `<key_prefix><key>[:<key field>...]`. It
// coalesces records by hash (latest wins) and writes them, pipelined, every
// `flush_interval` or when `max_pending` hashes are buffered. Each write is a versioned
// upsert (Lua script): it applies only if its version (event time, sequence, offset) is
// newer than the one stored in the hash's `_v` field, so replaying records after a restore
// never moves a hash backwards or counts anything twice. Runs detached: it
// blocks on Redis, and while Redis is slow or down it stops answering with credit, which
// backpressures the partition actors and, through them, the sources.

#include <chrono>
#include <thread>
#include <tuple>
#include <unordered_map>

#include <caf/all.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "actors/spawn.hpp"
#include "redis/redis_client.hpp"

namespace keyflow {

namespace {

/// Upserts of several hashes in one call. KEYS[i] = hash i; ARGV[1] is the region's fence key
/// ('' for none) and ARGV[2] the writer's generation; then per key: its version, the number
/// of fields n, then n name/value pairs. Nothing is written if the fence holds a newer
/// generation than the writer's (-1 is returned: the writer was declared dead and its region
/// runs elsewhere). A hash is written only if its version is newer than the `_v` stored in
/// it (versions are fixed-width strings, so they compare as text). Returns the number
/// written.
constexpr const char* upsert_script = R"lua(
if ARGV[1] ~= '' then
  local fence = tonumber(redis.call('GET', ARGV[1]) or '0')
  if fence > tonumber(ARGV[2]) then
    return -1
  end
end
local written = 0
local a = 3
for i = 1, #KEYS do
  local v = ARGV[a]
  local n = tonumber(ARGV[a + 1])
  local cur = redis.call('HGET', KEYS[i], '_v')
  if not cur or cur < v then
    local args = {'_v', v}
    for j = 0, 2 * n - 1 do
      args[#args + 1] = ARGV[a + 2 + j]
    end
    redis.call('HSET', KEYS[i], unpack(args))
    written = written + 1
  end
  a = a + 2 + 2 * n
end
return written
)lua";

/// True if `a` has a newer version than `b`: (event time, sequence, source offset) compared
/// in that order, exactly as the `_v` strings the upsert script compares.
bool newer(const record& a, const record& b) {
  auto version = [](const record& r) {
    return std::make_tuple(r.event_time_ms, r.seq, r.offset < 0 ? 0 : r.offset);
  };
  return version(a) > version(b);
}

/// Profiles per script call: amortizes the call overhead in Redis.
constexpr size_t keys_per_call = 64;

struct redis_sink_state {
  redis_sink_params p;
  std::unique_ptr<redis::client> client;
  std::string script_sha;
  std::unordered_map<std::string, record> pending; // by hash key
  uint64_t written = 0;
  bool fenced = false; // a newer generation owns the region: every write is refused
  prometheus::Counter* fenced_writes = nullptr;
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
  // One EVALSHA per `keys_per_call` profiles (hiredis copies the arguments at append).
  std::vector<std::string> keys, values;
  std::vector<std::string_view> args;
  size_t errors = 0, calls = 0;
  const auto generation = std::to_string(st.p.generation);
  auto exec = [&] {
    for (const auto& reply : st.client->exec_arrays()) {
      if (reply.is_error)
        ++errors;
      else if (!reply.elements.empty() && reply.elements.front() == "-1")
        st.fenced = true;
    }
  };
  auto flush_call = [&] {
    if (keys.empty())
      return;
    auto n = std::to_string(keys.size());
    args.assign({"EVALSHA", st.script_sha, n});
    args.insert(args.end(), keys.begin(), keys.end());
    args.emplace_back(st.p.fence_key);
    args.emplace_back(generation);
    args.insert(args.end(), values.begin(), values.end());
    st.client->append(args);
    keys.clear();
    values.clear();
    if (++calls % 32 == 0)
      exec();
  };
  for (const auto& [k, u] : st.pending) {
    keys.push_back(k);
    // Version: event time, then sequence, then source offset; fixed width so that Redis
    // compares them as strings.
    values.push_back(
        fmt::format("{:020}:{:020}:{:020}", u.event_time_ms, u.seq, u.offset < 0 ? 0 : u.offset));
    values.push_back(std::to_string(st.p.slots.size()));
    for (size_t i = 0; i < st.p.slots.size(); ++i) {
      values.push_back(st.p.fields[i]);
      values.push_back(u.fields.size() > static_cast<size_t>(st.p.slots[i])
                           ? u.fields[static_cast<size_t>(st.p.slots[i])].to_string()
                           : std::string{});
    }
    if (keys.size() == keys_per_call)
      flush_call();
  }
  flush_call();
  exec();
  if (errors > 0)
    throw std::runtime_error(std::to_string(errors) + " hash upserts were refused");
  return true;
}

/// Drops pending writes once the region's fence has passed this sink's generation.
bool drop_if_fenced(redis_sink_state& st) {
  if (!st.fenced)
    return false;
  if (st.fenced_writes != nullptr)
    st.fenced_writes->Increment(static_cast<double>(st.pending.size()));
  st.pending.clear();
  return true;
}

void write_all(self_ptr self) {
  auto& st = self->state;
  if (st.pending.empty() || drop_if_fenced(st))
    return;
  auto backoff = std::chrono::milliseconds(50);
  for (;;) {
    try {
      try_write(st);
      break;
    } catch (const std::exception& e) {
      spdlog::warn("redis sink {}: write of {} hashes failed, retrying in {} ms: {}", st.p.sink_id,
                   st.pending.size(), backoff.count(), e.what());
      if (st.errors != nullptr)
        st.errors->Increment(static_cast<double>(st.pending.size()));
      st.client.reset();
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }
  if (st.fenced) {
    spdlog::warn("redis sink {}: generation {} of its region is fenced by a newer one; "
                 "dropping its writes (the region runs on another node)",
                 st.p.sink_id, st.p.generation);
    drop_if_fenced(st);
    return;
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
    st.fenced_writes = &m->fenced_writes(st.p.sink_id);
    st.latency = metrics::local_histogram{&m->end_to_end_latency(st.p.sink_id)};
  }
  self->delayed_send(self, st.p.flush_interval, atom::tick_v);
  return {
      [self](record_batch& batch) -> uint32_t {
        auto& st = self->state;
        std::string key;
        for (auto& u : batch.records) {
          key.assign(st.p.key_prefix);
          key += u.key;
          for (int slot : st.p.key_slots) {
            key.push_back(':');
            key += static_cast<size_t>(slot) < u.fields.size()
                       ? u.fields[static_cast<size_t>(slot)].to_string()
                       : std::string{};
          }
          auto [it, fresh] = st.pending.try_emplace(key, u);
          if (!fresh) {
            // The newer version wins, as in Redis (records of one hash may arrive out of
            // version order, e.g. per-event upserts written out of event-time order); the
            // oldest ingest time stays (a conservative latency).
            auto oldest = std::min(it->second.ingest_ns, u.ingest_ns);
            if (newer(u, it->second))
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
