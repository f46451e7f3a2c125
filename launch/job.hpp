#pragma once
// Running a whole training job in this process: load the data the config names, start an
// actor system, let the coordinator train, return its summary. Used by `floe train`, the
// benchmarks and the tests.
#include "actors/coordinator.hpp"
#include "messages/events.hpp"
#include "models/dataset.hpp"
#include "runtime/config/job_config.hpp"
#include "runtime/observe/summary.hpp"

namespace floe::launch {

// The data the job names (data.*, and for text the model's vocabulary and length). Throws
// floe::InputError naming the data file and the problem.
models::TrainTest load_job_data(const runtime::JobConfig& cfg);

// init_weights read and matched to the model before any actor starts (and before the data
// loads), so that a mismatch is bad input (exit code 2) naming the tensor, not a failed job.
// The coordinator takes them from CoordinatorSpec::init_weights and does not read them
// again. Null when init_weights is not set. Throws floe::InputError.
std::shared_ptr<const models::WeightMatch> read_init_weights(const runtime::JobConfig& cfg);

// The job's spec: its config, its data and the initial weights already read (or null).
actors::CoordinatorSpec job_spec(const runtime::JobConfig& cfg, const models::TrainTest& data,
                                 std::shared_ptr<const models::WeightMatch> init = nullptr);

// Throws std::runtime_error with the coordinator's reason when training fails.
runtime::TrainingSummary run_job(const runtime::JobConfig& cfg, const models::TrainTest& data);

// What a caller hooks into a job (docs/hooks.md): observers on its event stream, and a
// callback that gets the coordinator before training starts (to inject faults, script
// freezes, or hand the handle to the caller's own actors).
struct JobHooks {
  std::vector<std::function<msg::observer_actor(caf::actor_system&)>> observers;
  std::function<void(caf::actor_system&, const msg::coordinator_actor&)> attach;
  int scheduler_threads = 2;  // CAF worker threads (stages run on their own threads)
  // Devices per virtual node: node agents in this process, placed and reduced as separate
  // nodes are (pipelines stay in a node, replicas on different nodes meet in Gloo groups over
  // loopback). Empty: one node with `config.devices`.
  std::vector<int> virtual_nodes;
  // Virtual nodes that join the running job: (global training step, devices) each.
  std::vector<std::pair<int64_t, int>> late_nodes;
};

// The same with every coordinator option (custom freeze policy, fault injection, checks).
// The observers of `spec.config.observe` (metrics, trace, report) are attached as well.
// Without `spec.nodes`, one node agent in this process hosts every pipeline.
runtime::TrainingSummary run_job(actors::CoordinatorSpec spec, const JobHooks& hooks = {});

// The same in an actor system the caller made (a cluster's coordinator process).
runtime::TrainingSummary run_job(caf::actor_system& sys, actors::CoordinatorSpec spec, const JobHooks& hooks = {});

}  // namespace floe::launch
