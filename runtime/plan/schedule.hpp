#pragma once
// Pipeline schedules as data. A schedule is one program per stage: an ordered list of actions
// that the stage executes, each waiting only for its own inputs. Communication is implied by
// position: F on a stage that is not last sends its output to the next stage; B on a stage
// that is not first sends the input gradient to the previous one; the last stage's F computes
// the loss. Text form follows torch.distributed.pipelining: "1F0" = stage 1, forward, mb 0;
// "1R" = stage 1 all-reduces its gradients; "1S" = stage 1 steps its optimizer.
// Split backward (zero-bubble schedules): "1I0" computes only the input gradient of mb 0 (and
// sends it on, as B does); "1W0" later computes the weight gradients that I kept the inputs
// for. B is I and W at once.
#include <iosfwd>
#include <string>
#include <vector>

namespace floe::runtime {

enum class ActionKind : char {
  forward = 'F',
  backward = 'B',
  input_backward = 'I',
  weight_backward = 'W',
  reduce = 'R',
  step = 'S'
};

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

// `automatic` ("auto") resolves per (stages, micro-batches) through choose_schedule.
enum class ScheduleKind { gpipe, one_f_one_b, zb_h1, zb_h2, automatic };

// Fill-drain: all forwards, then all backwards (ascending micro-batches), then R and S.
Schedule gpipe_schedule(int stages, int micro_batches);
// 1F1B: (stages - s - 1) warm-up forwards on stage s, then alternate, then drain.
Schedule one_f_one_b_schedule(int stages, int micro_batches);
// Zero bubble (Qi et al., ICLR 2024), with split backward: list scheduling of unit-cost F, I
// and W in which every stage, when free, runs an I whose gradient is here, else an F whose
// input is here if its activations allow, else a held-back W. ZB-H1 keeps at most (stages - s)
// micro-batches' activations on stage s, as 1F1B does, and forwards only while at most
// stages - 1 weight gradients are held back (so at most `stages` are); ZB-H2 allows
// 2 (stages - s) - 1 activations and 2 stages - 1 held ones, and fills the drain with W.
Schedule zb_h1_schedule(int stages, int micro_batches);
Schedule zb_h2_schedule(int stages, int micro_batches);
// Forward only (evaluation): each stage runs F for every micro-batch.
Schedule forward_only_schedule(int stages, int micro_batches);

Schedule make_schedule(ScheduleKind kind, int stages, int micro_batches);
// "gpipe" | "1f1b" | "zb-h1" | "zb-h2" | "auto"; throws InputError naming pipeline.schedule.
ScheduleKind parse_schedule_kind(const std::string& name);
const char* to_string(ScheduleKind kind);

std::string to_string(const Action& a);
std::string to_string(const StageProgram& p);  // space separated
StageProgram parse_program(const std::string& text);
std::ostream& operator<<(std::ostream& os, const Action& a);

// Checks the programs: every action at most once and, for micro_batches > 0, every
// micro-batch forwarded and backpropagated (B, or I then W) once on every stage; then executes
// them abstractly with the data dependencies above. Returns an empty string when every program
// runs to completion, else a description of the first fault (a missing or repeated action, a
// deadlock).
std::string check_schedule(const Schedule& s, int micro_batches);

// The memory high-water marks of one program, in micro-batches: `activations`, forwarded and
// not yet backpropagated through (F until B or I: the autograd graph); `held`, whose weight
// gradient waits (I until W: each linear layer's input and output gradient); `in_flight`, both.
struct ProgramMemory {
  int activations = 0, held = 0, in_flight = 0;
};
ProgramMemory peak_memory(const StageProgram& p);

// The time the programs take when each action costs what `costs` says and transfers are
// free, under the dependencies check_schedule enforces (R and S cost nothing). Throws
// std::invalid_argument when the programs deadlock. The default costs are the usual model: a
// backward twice a forward, its halves one forward each.
struct ActionCosts {
  double forward = 1, backward = 2, input = 1, weight = 1;
};
double modelled_makespan(const Schedule& s, const ActionCosts& costs = {});

// The same execution with a cost per stage (the simulator's step, runtime/sim): each stage's
// actions cost what its timing says, R and S included; F's output reaches the next stage
// `to_next` after F ends, and B's (or I's) input gradient the previous one `to_previous`
// after it ends; R and S wait for all `micro_batches` weight gradients of their stage.
struct StageTiming {
  ActionCosts costs;
  double reduce = 0, step = 0;
  double to_next = 0, to_previous = 0;
};
struct TimedAction {
  Action action;
  double start = 0, end = 0;
};
struct Timeline {
  double makespan = 0;
  std::vector<double> busy;                     // per stage, the seconds its actions took
  std::vector<std::vector<TimedAction>> actions;  // per stage, in program order
};
// Throws std::invalid_argument when the programs deadlock or the timings do not match them.
Timeline timed_execution(const Schedule& s, int micro_batches, const std::vector<StageTiming>& timing);

// pipeline.schedule = "auto": of the generated schedules whose activations stay within 1F1B's
// on every stage, the one with the smallest modelled makespan (ties: the earlier kind in
// gpipe, 1f1b, zb-h1, zb-h2).
ScheduleKind choose_schedule(int stages, int micro_batches);

}  // namespace floe::runtime
