#include "kafka/kafka_reader.hpp"

#include <chrono>

#include <spdlog/spdlog.h>

namespace keyflow::kafka {

kafka_reader::kafka_reader(const config::pipeline_config& cfg, const properties& props,
                           int32_t partition, int64_t start_offset, metrics::metrics* m)
    : cfg_(&cfg), consumer_(props, cfg.source.topic, partition, start_offset),
      validator_(cfg.validate), metrics_(m) {
  if (metrics_ != nullptr) {
    in_ = &metrics_->records_in(cfg.validate.id);
    out_ = &metrics_->records_out(cfg.validate.id);
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
  ops::rejection why;
  for (auto* m : batch_.messages()) {
    event_record rec;
    std::string_view value{static_cast<const char*>(m->payload), m->len};
    if (!validator_.decode(value, rec, why)) {
      reject(m, why, dead);
      continue;
    }
    rec.ingest_ns = ingest;
    rec.offset = m->offset;
    rec.partition = m->partition;
    out.route(std::move(rec));
    ++good;
  }
  batch_.clear();
  if (in_ != nullptr) {
    in_->Increment(static_cast<double>(n));
    out_->Increment(static_cast<double>(good));
  }
  return n;
}

void kafka_reader::reject(const rd_kafka_message_t* m, const ops::rejection& why,
                          std::vector<kafka_message>& dead) {
  rd_kafka_timestamp_type_t tstype;
  ops::provenance from{consumer_.topic(), m->partition, m->offset,
                       rd_kafka_message_timestamp(m, &tstype)};
  std::string_view key{static_cast<const char*>(m->key), m->key_len};
  std::string_view value{static_cast<const char*>(m->payload), m->len};
  spdlog::debug("dead letter: {}/{}@{} operator={} reason={}: {}", from.topic, from.partition,
                from.offset, validator_.id(), to_string(why.code), why.message);
  dead.push_back(
      {cfg_->dead_letter_topic, std::string{key},
       ops::make_dead_letter(key, value, from, validator_.id(), why, cfg_->name, cfg_->version)});
  if (metrics_ != nullptr) {
    auto reason = std::string{to_string(why.code)};
    auto i = dead_by_reason_.find(reason);
    if (i == dead_by_reason_.end())
      i = dead_by_reason_.emplace(reason, &metrics_->dead_letters(validator_.id(), reason)).first;
    i->second->Increment();
  }
}

} // namespace keyflow::kafka
