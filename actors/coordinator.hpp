#pragma once
// The coordinator: one per job. Builds the model replicas and pipelines, owns the epoch and
// step clock, the learning-rate schedule and the data order, drives training and the
// per-epoch evaluation on the full test set, and answers `start` with the run's summary.
#include "actors/replica.hpp"
#include "messages/control.hpp"
#include "runtime/job_config.hpp"

namespace floe::actors {

struct CoordinatorSpec {
  runtime::JobConfig config;
  std::shared_ptr<const models::Dataset> train, test;
  bool detached_stages = true;
};

msg::coordinator_actor spawn_coordinator(caf::actor_system& sys, CoordinatorSpec spec);

// Units per stage for the configured pipeline: `pipeline.partition` when given, else the
// contiguous split with the smallest bottleneck by parameter count.
std::vector<int> stage_partition(const runtime::JobConfig& cfg, const models::UnitList& units);

}  // namespace floe::actors
