#pragma once
/// \file
/// What a source actor reads from: Kafka (kafka/kafka_reader.hpp) or the in-process event
/// generator (core/datagen.hpp). A reader returns decoded records routed by key group and
/// dead letters for records it could not decode.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/record.hpp"
#include "core/router.hpp"

namespace keyflow {

/// A pull-based input of one source actor. Never blocks for long: read() returns what is
/// available now.
class source_reader {
public:
  virtual ~source_reader() = default;

  /// Reads up to `max` records: valid ones go to `out` (routed), rejected ones are
  /// appended to `dead` as ready-to-send dead-letter messages. Returns records consumed
  /// (valid + rejected); 0 means nothing is available right now.
  virtual size_t read(router& out, std::vector<kafka_message>& dead, size_t max) = 0;

  /// Stops fetching ahead (backpressure).
  virtual void pause() {}
  /// Resumes fetching.
  virtual void resume() {}
  /// Records available but not yet read, or -1 if unknown.
  virtual int64_t lag() const { return -1; }
  /// Next offset to read (the position recorded in a checkpoint).
  virtual source_position position() const = 0;
  /// True when the input has ended for good (a bounded generator); Kafka never ends.
  virtual bool exhausted() const { return false; }
  /// Greatest event time among the records read so far (watermarks), or no_watermark.
  virtual int64_t max_event_time() const { return no_watermark; }
  /// Human-readable name, e.g. "events/3".
  virtual std::string name() const = 0;
};

} // namespace keyflow
