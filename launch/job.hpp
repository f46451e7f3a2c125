#pragma once
// Running a whole training job in this process: load the data the config names, start an
// actor system, let the coordinator train, return its summary. Used by `floe train`, the
// benchmarks and the tests.
#include "actors/coordinator.hpp"
#include "models/dataset.hpp"
#include "runtime/job_config.hpp"
#include "runtime/summary.hpp"

namespace floe::launch {

// Throws floe::InputError naming the data file and the problem.
models::TrainTest load_job_data(const runtime::DataConfig& data, uint64_t seed);

// Throws std::runtime_error with the coordinator's reason when training fails.
runtime::TrainingSummary run_job(const runtime::JobConfig& cfg, const models::TrainTest& data);

// The same with every coordinator option (custom freeze policy, fault injection, checks).
runtime::TrainingSummary run_job(actors::CoordinatorSpec spec);

}  // namespace floe::launch
