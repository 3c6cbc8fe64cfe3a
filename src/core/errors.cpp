#include "core/errors.hpp"

namespace keyflow {

std::string_view to_string(ec code) noexcept {
  switch (code) {
  case ec::none:
    return "none";
  case ec::decode_error:
    return "decode_error";
  case ec::missing_field:
    return "missing_field";
  case ec::invalid_field:
    return "invalid_field";
  case ec::config_error:
    return "config_error";
  case ec::kafka_error:
    return "kafka_error";
  case ec::redis_error:
    return "redis_error";
  case ec::state_error:
    return "state_error";
  case ec::unknown_topic:
    return "unknown_topic";
  case ec::unexpected_shutdown:
    return "unexpected_shutdown";
  case ec::late:
    return "late";
  case ec::enrich_missing:
    return "enrich_missing";
  case ec::enrich_failed:
    return "enrich_failed";
  case ec::operator_failed:
    return "operator_failed";
  case ec::poison:
    return "poison";
  }
  return "unknown";
}

} // namespace keyflow
