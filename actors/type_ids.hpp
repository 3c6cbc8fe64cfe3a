#pragma once
/// \file
/// The one CAF type-ID block of Keyflow: every message type and atom. Both ends of a remote
/// link must register it (`cfg.add_message_types<caf::id_block::keyflow>()`).

#include <caf/error.hpp>
#include <caf/type_id.hpp>

#include "core/cluster_messages.hpp"
#include "core/errors.hpp"
#include "core/lookup.hpp"
#include "core/record.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(keyflow, caf::first_custom_type_id)

CAF_ADD_TYPE_ID(keyflow, (keyflow::value))
CAF_ADD_TYPE_ID(keyflow, (keyflow::record))
CAF_ADD_TYPE_ID(keyflow, (keyflow::record_batch))
CAF_ADD_TYPE_ID(keyflow, (keyflow::lookup_request))
CAF_ADD_TYPE_ID(keyflow, (keyflow::lookup_entry))
CAF_ADD_TYPE_ID(keyflow, (keyflow::lookup_reply))
CAF_ADD_TYPE_ID(keyflow, (keyflow::kafka_message))
CAF_ADD_TYPE_ID(keyflow, (keyflow::kafka_batch))
CAF_ADD_TYPE_ID(keyflow, (keyflow::source_position))
CAF_ADD_TYPE_ID(keyflow, (keyflow::cluster::running_region))
CAF_ADD_TYPE_ID(keyflow, (keyflow::cluster::member_info))
CAF_ADD_TYPE_ID(keyflow, (keyflow::cluster::region_owner))
CAF_ADD_TYPE_ID(keyflow, (keyflow::cluster::assignment))
CAF_ADD_TYPE_ID(keyflow, (keyflow::cluster::heartbeat))
CAF_ADD_TYPE_ID(keyflow, (keyflow::cluster::spread_message))

CAF_ADD_ATOM(keyflow, keyflow::atom, poll, "poll")
CAF_ADD_ATOM(keyflow, keyflow::atom, tick, "tick")
CAF_ADD_ATOM(keyflow, keyflow::atom, flush, "flush")
CAF_ADD_ATOM(keyflow, keyflow::atom, drain, "drain")
CAF_ADD_ATOM(keyflow, keyflow::atom, stop, "stop")
CAF_ADD_ATOM(keyflow, keyflow::atom, pause, "pause")
CAF_ADD_ATOM(keyflow, keyflow::atom, checkpoint, "checkpoint")
CAF_ADD_ATOM(keyflow, keyflow::atom, barrier, "barrier")
CAF_ADD_ATOM(keyflow, keyflow::atom, done, "done")
CAF_ADD_ATOM(keyflow, keyflow::atom, watermark, "watermark")
CAF_ADD_ATOM(keyflow, keyflow::atom, hb, "hb")
CAF_ADD_ATOM(keyflow, keyflow::atom, connect, "connect")
CAF_ADD_ATOM(keyflow, keyflow::atom, monitor, "monitor")
CAF_ADD_ATOM(keyflow, keyflow::atom, job_stop, "jobstop")
CAF_ADD_ATOM(keyflow, keyflow::atom, job_restore, "jobrestore")

CAF_END_TYPE_ID_BLOCK(keyflow)

namespace keyflow {

/// CAF error category atom of keyflow::ec.
inline constexpr caf::atom_value ec_category = caf::atom("keyflow");

/// Wraps an error code (and context text) in a caf::error.
inline caf::error make_error(ec code, std::string context = {}) {
  return caf::error{static_cast<uint8_t>(code), ec_category,
                    context.empty() ? caf::message{} : caf::make_message(std::move(context))};
}

} // namespace keyflow
