#pragma once
// The freeze policy a job's `freeze.*` keys name (docs/freeze.md), built from its config.
#include "runtime/config/job_config.hpp"
#include "runtime/train/freeze_policy.hpp"

#include <memory>

namespace floe::runtime {

// Throws floe::InputError naming the `freeze` key that does not fit.
std::unique_ptr<FreezePolicy> configured_freeze_policy(const JobConfig& cfg);

// For policies whose decisions depend on nothing measured (none, schedule, manual): per block,
// the global training step before which its freeze is due, found by asking a fresh policy at
// the moments the coordinator will (every freeze.interval-th epoch boundary, or every
// freeze.interval_steps steps; never at step 0); `total_steps` where no freeze is due before
// the job ends. The guard is left out: it can only delay a freeze. freeze.anneal reads it.
// Throws floe::InputError for a policy that reads training signals (adaptive, plasticity).
std::vector<int64_t> planned_freeze_steps(const JobConfig& cfg, int64_t steps_per_epoch);

}  // namespace floe::runtime
