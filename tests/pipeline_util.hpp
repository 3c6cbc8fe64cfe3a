#pragma once
/// \file
/// Helpers shared by the tests of pipelines: repository paths, pipeline YAML around a list
/// of operators, plans from YAML text, files and config_error messages.

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>

#include "config/pipeline_config.hpp"
#include "pipeline/plan.hpp"

namespace keyflow::test {

/// A path below the repository root.
inline std::string source_path(const std::string& rel) {
  return std::string(KEYFLOW_SOURCE_DIR) + "/" + rel;
}

/// Writes `text` to `path` (replacing it).
inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << text;
  if (!out)
    throw std::runtime_error("cannot write " + path);
}

/// Pipeline YAML over keyflow.proto.Event: lines 1-5 are the pipeline, schema, source,
/// dead_letters and "operators:" lines, so the first operator of `ops` is on line 6.
inline std::string event_pipeline(const std::string& ops, const std::string& sinks = {},
                                  const std::string& source = "{topic: events}",
                                  const std::string& pipeline = "{name: t}") {
  std::string y = "pipeline: " + pipeline +
                  "\nschema: {proto: " + source_path("config/proto/event.proto") +
                  ", message: keyflow.proto.Event}\nsource: " + source +
                  "\ndead_letters: {topic: dlq}\noperators:\n" + ops;
  if (!sinks.empty())
    y += "sinks:\n" + sinks;
  return y;
}

/// Resolves pipeline YAML text (relative schema paths are relative to the working directory).
inline std::shared_ptr<const pipeline::plan> plan_of(const std::string& yaml) {
  return pipeline::make_plan(config::parse_pipeline(yaml));
}

/// The message of the config_error `f` throws, or a test failure if it throws none.
template <class F>
std::string config_error_of(F&& f) {
  try {
    f();
  } catch (const config::config_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a config_error: " << e.what();
    return {};
  }
  ADD_FAILURE() << "no config_error thrown";
  return {};
}

} // namespace keyflow::test
