#include "runtime/control/step_boundary.hpp"

namespace floe::runtime {

BoundaryAction next_at_boundary(const BoundaryFacts& f) {
  if (f.nodes_lost) return BoundaryAction::recover;
  if (f.node_joins) return BoundaryAction::admit;
  if (f.epoch_trained) return BoundaryAction::evaluate;
  if (f.checkpoint_due) return BoundaryAction::checkpoint;
  if (f.node_kill_due) return BoundaryAction::kill_nodes;
  if (f.freeze_due) return BoundaryAction::freeze;
  if (f.decision_due) return BoundaryAction::decide_freeze;
  if (f.fault_due) return BoundaryAction::inject_faults;
  return BoundaryAction::train;
}

std::string to_string(BoundaryAction a) {
  switch (a) {
    case BoundaryAction::recover: return "recover";
    case BoundaryAction::admit: return "admit";
    case BoundaryAction::evaluate: return "evaluate";
    case BoundaryAction::checkpoint: return "checkpoint";
    case BoundaryAction::kill_nodes: return "kill_nodes";
    case BoundaryAction::freeze: return "freeze";
    case BoundaryAction::decide_freeze: return "decide_freeze";
    case BoundaryAction::inject_faults: return "inject_faults";
    case BoundaryAction::train: return "train";
  }
  return "?";
}

bool checkpoint_due(const CheckpointFacts& f) {
  if (!f.dir_set || f.global_step == f.last_checkpoint_step) return false;
  return f.asked || (f.interval > 0 && f.global_step > 0 && f.global_step % f.interval == 0);
}

bool freeze_decision_due(const DecisionFacts& f) {
  if (f.interval_steps <= 0 || f.global_step <= 0 || f.frozen >= f.layers) return false;
  return f.global_step % f.interval_steps == 0 && f.global_step != f.last_decision_step;
}

}  // namespace floe::runtime
