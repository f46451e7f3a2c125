#pragma once
// The coordinator: one per job. Builds the model replicas and pipelines, owns the epoch and
// step clock, the learning-rate schedule and the data order, drives training and the
// per-epoch evaluation on the full test set, asks the freeze controller at every freeze
// interval, carries out live transitions to the new plan, and answers `start` with the
// run's summary.
#include "actors/replica.hpp"
#include "messages/control.hpp"
#include "runtime/elastic_plan.hpp"
#include "runtime/freeze_policy.hpp"
#include "runtime/job_config.hpp"

#include <functional>

namespace floe::actors {

struct CoordinatorSpec {
  runtime::JobConfig config;
  std::shared_ptr<const models::Dataset> train, test;
  bool detached_stages = true;
  // A user policy instead of the one `freeze.*` names (see docs/freeze.md).
  std::function<std::unique_ptr<runtime::FreezePolicy>()> freeze_policy;
  // Compare all replicas' weights and optimizer state at every epoch end (tests, debugging).
  bool verify_replicas = false;
  // Called at each phase of a transition ("export", "spawn"); throwing aborts the transition
  // there, as a real failure would (fault injection in tests).
  std::function<void(const std::string& phase)> transition_fault;
};

msg::coordinator_actor spawn_coordinator(caf::actor_system& sys, CoordinatorSpec spec);

// The plan request for this job's model and devices with `frozen_blocks` frozen.
runtime::PlanRequest plan_request(const runtime::JobConfig& cfg, const models::UnitList& units, int frozen_blocks,
                                  int current_stages);

}  // namespace floe::actors
