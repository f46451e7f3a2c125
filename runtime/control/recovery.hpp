#pragma once
// How the job recovers when nodes are lost, decided in two steps the coordinator takes in
// turn (it collects the source replica's state in between):
//
// 1. plan_recovery: a replica survives when none of the nodes it runs on was lost. The first
//    survivor is the source every new pipeline starts from (all replicas hold the same state
//    at a step boundary). No survivor: only a checkpoint will do.
// 2. step_in_flight: the source's stages report the optimizer steps they have applied
//    (msg::stage_state::optimizer_steps; -1 for a stage with nothing to train). The job is at
//    `global_step` steps. Every trainable stage at global_step: the step in flight was not
//    applied and is redone. Every one at global_step + 1: the survivors had finished it; it
//    counts (without its statistics) and training goes on after it. Stages at different
//    steps (some applied the step, some not: a node was lost between two stages' optimizer
//    steps) leave no consistent state: only a checkpoint will do. Any other step count is an
//    inconsistency the job must not hide: it stops naming both counts.
#include <cstdint>
#include <string>
#include <vector>

namespace floe::runtime {

struct RecoveryPlan {
  std::vector<int> survivors;  // replica indices, in order
  int source = -1;             // the replica to rebuild from; -1: from the newest checkpoint
};

// `hosts[r]`: the nodes replica r runs on; `lost`: the nodes gone.
RecoveryPlan plan_recovery(const std::vector<std::vector<int>>& hosts, const std::vector<int>& lost);

enum class InFlight { redo, applied, checkpoint, inconsistent };

struct InFlightDecision {
  InFlight what = InFlight::redo;
  std::string why;  // checkpoint, inconsistent: the reason, for the log or the error
};

InFlightDecision step_in_flight(const std::vector<int64_t>& optimizer_steps, int64_t global_step);

}  // namespace floe::runtime
