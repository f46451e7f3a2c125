#pragma once
// What the coordinator does at a training step boundary, in the one order that holds:
//
//   1. recover     a node was lost: rebuild over the nodes left before anything else
//   2. admit       a node waits to join: re-plan over all nodes (its transition)
//   3. evaluate    the epoch's training steps are done: evaluate, end the epoch
//   4. checkpoint  one is due (interval, SIGUSR1 or a checkpoint_atom)
//   5. kill nodes  scripted node kills whose step has come, before a freeze of the same step,
//                  so that they strike during its transition
//   6. freeze      a scripted freeze whose step has come: a live transition mid-epoch
//   7. decide      with freeze.interval_steps = N, every N steps: the freeze controller
//                  decides, and its freeze is a live transition mid-epoch
//   8. faults      the other injected faults whose step has come go to their stages
//   9. train       the step itself
//
// The coordinator asks again after each action that returns to the boundary (a recovery, a
// join, a checkpoint, a freeze, a decision) and after 5 and 8, which only send messages and go on. An
// action's own work changes the facts (the lost set empties, the due faults are sent, the
// checkpoint request is taken), so the same boundary never repeats an action.
#include <cstdint>
#include <string>

namespace floe::runtime {

struct BoundaryFacts {
  bool nodes_lost = false;      // lost nodes not recovered from yet
  bool node_joins = false;      // a node is ready to join at this step
  bool epoch_trained = false;   // every training step of the epoch ran
  bool checkpoint_due = false;  // see checkpoint_due below
  bool node_kill_due = false;   // a scripted `kill node=` fault's step has come
  bool freeze_due = false;      // a scripted freeze's step has come
  bool decision_due = false;    // see freeze_decision_due below
  bool fault_due = false;       // another injected fault's step has come
};

enum class BoundaryAction { recover, admit, evaluate, checkpoint, kill_nodes, freeze, decide_freeze, inject_faults, train };

BoundaryAction next_at_boundary(const BoundaryFacts& facts);
std::string to_string(BoundaryAction a);

// Whether a checkpoint is written at this boundary: checkpointing is on (`dir_set`), none was
// written at this very step, and one was asked for or the interval (steps; 0: off) has come.
struct CheckpointFacts {
  bool dir_set = false;
  bool asked = false;
  int64_t interval = 0;
  int64_t global_step = 0;
  int64_t last_checkpoint_step = -1;
};
bool checkpoint_due(const CheckpointFacts& f);

// Whether the freeze controller decides at this boundary when decisions are counted in steps:
// every `interval_steps` (> 0) training steps of the job, not at step 0, once per step (a
// decision's transition returns to the same boundary), and only while blocks are left to freeze.
struct DecisionFacts {
  int64_t interval_steps = 0;
  int64_t global_step = 0;
  int64_t last_decision_step = -1;
  int frozen = 0, layers = 0;
};
bool freeze_decision_due(const DecisionFacts& f);

}  // namespace floe::runtime
