#pragma once
// Pipeline schedules as data. A schedule is one program per stage: an ordered list of actions
// that the stage executes, each waiting only for its own inputs. Communication is implied by
// position: F on a stage that is not last sends its output to the next stage; B on a stage
// that is not first sends the input gradient to the previous one; the last stage's F computes
// the loss. Text form follows torch.distributed.pipelining: "1F0" = stage 1, forward, mb 0;
// "1R" = stage 1 all-reduces its gradients; "1S" = stage 1 steps its optimizer.
#include <iosfwd>
#include <string>
#include <vector>

namespace floe::runtime {

enum class ActionKind : char { forward = 'F', backward = 'B', reduce = 'R', step = 'S' };

struct Action {
  int stage = 0;
  ActionKind kind = ActionKind::forward;
  int micro_batch = -1;  // -1 for R and S

  bool operator==(const Action& o) const {
    return stage == o.stage && kind == o.kind && micro_batch == o.micro_batch;
  }
};

using StageProgram = std::vector<Action>;
using Schedule = std::vector<StageProgram>;  // one program per stage

enum class ScheduleKind { gpipe, one_f_one_b };

// Fill-drain: all forwards, then all backwards (ascending micro-batches), then R and S.
Schedule gpipe_schedule(int stages, int micro_batches);
// 1F1B: (stages - s - 1) warm-up forwards on stage s, then alternate, then drain.
Schedule one_f_one_b_schedule(int stages, int micro_batches);
// Forward only (evaluation): each stage runs F for every micro-batch.
Schedule forward_only_schedule(int stages, int micro_batches);

Schedule make_schedule(ScheduleKind kind, int stages, int micro_batches);
ScheduleKind parse_schedule_kind(const std::string& name);  // "gpipe" | "1f1b"; throws InputError

std::string to_string(const Action& a);
std::string to_string(const StageProgram& p);  // space separated
StageProgram parse_program(const std::string& text);
std::ostream& operator<<(std::ostream& os, const Action& a);

// Executes the programs abstractly with the data dependencies above. Returns an empty
// string when every program runs to completion, else a description of the deadlock.
std::string check_schedule(const Schedule& s, int micro_batches);

}  // namespace floe::runtime
