#pragma once
// The freeze policy a job's `freeze.*` keys name (docs/freeze.md), built from its config.
#include "runtime/config/job_config.hpp"
#include "runtime/train/freeze_policy.hpp"

#include <memory>

namespace floe::runtime {

// Throws floe::InputError naming the `freeze` key that does not fit.
std::unique_ptr<FreezePolicy> configured_freeze_policy(const JobConfig& cfg);

}  // namespace floe::runtime
