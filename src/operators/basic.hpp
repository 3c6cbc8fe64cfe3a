#pragma once
/// \file
/// The small operators: validate (in the sources), filter, map, dedup, score and key_by.
/// Each is a keyed_operator (operators/operator.hpp) built from its resolved plan.

#include <memory>
#include <string>
#include <vector>

#include "operators/dead_letter.hpp"
#include "operators/operator.hpp"

namespace keyflow::pipeline {
struct op_plan;
}

namespace keyflow::ops {

/// Checks a decoded record against a validate operator: every required field present (and
/// non-empty for strings), doubles finite. Returns false and fills `why` naming the field.
bool validate_record(const pipeline::op_plan& op, const record& r, rejection& why);

/// True if `r` passes a plain (stateless) filter.
bool filter_matches(const pipeline::op_plan& op, const record& r);

/// Builds the operator instance for a partition actor: filter, map, dedup, score or key_by
/// (aggregate, window and enrich have their own factories). Throws std::invalid_argument for
/// other types.
std::unique_ptr<keyed_operator> make_basic_operator(const pipeline::op_plan& op, const op_env& env);

} // namespace keyflow::ops
