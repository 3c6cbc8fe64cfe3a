#include "kafka/kafka_reader.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

#include "core/key_group.hpp"
#include "core/logging.hpp"

#include "state/ttl.hpp"

namespace keyflow::kafka {

kafka_reader::kafka_reader(std::shared_ptr<const pipeline::plan> plan, const properties& props,
                           int32_t partition, int64_t start_offset, metrics::metrics* m)
    : plan_(std::move(plan)), consumer_(props, plan_->cfg.source.topic, partition, start_offset),
      decoder_(plan_), metrics_(m) {
  if (metrics_ != nullptr) {
    in_ = &metrics_->records_in(plan_->cfg.source.id);
    out_ = &metrics_->records_out(plan_->cfg.source.id);
  }
}

std::string kafka_reader::name() const {
  return consumer_.topic() + "/" + std::to_string(consumer_.partition());
}

size_t kafka_reader::read(router& out, std::vector<kafka_message>& dead, size_t max) {
  size_t n = consumer_.poll(batch_, max, 0);
  if (n == 0)
    return 0;
  auto ingest = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  size_t good = 0;
  const auto& topic = consumer_.topic();
  for (auto* m : batch_.messages()) {
    record rec;
    std::string_view key{static_cast<const char*>(m->key), m->key_len};
    std::string_view value{static_cast<const char*>(m->payload), m->len};
    rd_kafka_timestamp_type_t tstype;
    ops::provenance from{topic, m->partition, m->offset, rd_kafka_message_timestamp(m, &tstype)};
    if (hints_ && !hints_->poison.empty() && dead_letter_poison(key, value, from, dead))
      continue;
    auto res = decoder_.decode(key, value, from, rec, dead);
    if (res == pipeline::decode_result::rejected) {
      spdlog::debug("dead letter: {}/{}@{} operator={} reason={}", topic, m->partition, m->offset,
                    decoder_.rejected_by(), decoder_.last_reason());
      count_rejection();
      continue;
    }
    if (res == pipeline::decode_result::filtered)
      continue;
    rec.ingest_ns = ingest;
    if (!combiner_ || !combiner_->absorb(rec))
      out.route(std::move(rec));
    ++good;
  }
  batch_.clear();
  if (combiner_)
    combiner_->flush(out, state::wall_clock_ms());
  if (in_ != nullptr) {
    in_->Increment(static_cast<double>(n));
    out_->Increment(static_cast<double>(good));
  }
  return n;
}

void kafka_reader::enable_fanout(double share, std::shared_ptr<const ops::watermark_bound> bound) {
  combiner_ = ops::make_combiner(*plan_, share, name(), std::move(bound));
}

bool kafka_reader::dead_letter_poison(std::string_view key, std::string_view value,
                                      const ops::provenance& from,
                                      std::vector<kafka_message>& dead) {
  auto i = hints_->poison.find({from.partition, from.offset});
  if (i == hints_->poison.end())
    return false;
  const auto& pipe = plan_->cfg;
  const auto& info = i->second;
  ops::rejection why{ec::poison, info.error};
  dead.push_back({pipe.dead_letter_topic, std::string{key},
                  ops::make_dead_letter(key, value, from, info.op, why, pipe.name, pipe.version,
                                        info.attempts)});
  logging::warn(
      {.op = info.op, .key_group = static_cast<int32_t>(key_group_of(key, pipe.max_parallelism))},
      "dead letter: poison record {}/{}@{} (operator '{}' failed {} times: {})", from.topic,
      from.partition, from.offset, info.op, info.attempts, info.error);
  if (metrics_ != nullptr)
    metrics_->dead_letters(info.op, "poison").Increment();
  return true;
}

void kafka_reader::count_rejection() {
  if (metrics_ == nullptr)
    return;
  auto key = decoder_.rejected_by() + "\n" + std::string{decoder_.last_reason()};
  auto i = dead_by_reason_.find(key);
  if (i == dead_by_reason_.end())
    i = dead_by_reason_
            .emplace(key, &metrics_->dead_letters(decoder_.rejected_by(),
                                                  std::string{decoder_.last_reason()}))
            .first;
  i->second->Increment();
}

} // namespace keyflow::kafka
