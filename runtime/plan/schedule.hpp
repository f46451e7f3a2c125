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
// Virtual stages (interleaved 1F1B, ZB-V): a pipeline of K devices runs V = K·v stages, v
// chunks per device. A schedule then holds one program per device, and each action names its
// (virtual) stage: a stage lives on the device whose program holds its actions. With v = 1
// (every other schedule) device and stage coincide.
#include <cstdint>
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
using Schedule = std::vector<StageProgram>;  // one program per device

// `automatic` ("auto") resolves per (devices, micro-batches, chunks) through choose_schedule.
enum class ScheduleKind { gpipe, one_f_one_b, zb_h1, zb_h2, interleaved, zb_v, automatic };

// Where virtual stage `stage` of a pipeline of `devices` lives: `looped` (interleaved 1F1B:
// chunk c of device d is stage c·K + d) or `v_shape` (ZB-V: device d holds stages d and
// 2K − 1 − d, so the first and the last stage share device 0).
enum class ChunkPlacement { looped, v_shape };
// ZB-V (and "auto" with two chunks, which picks it) places in a V; the rest loop.
ChunkPlacement placement_of(ScheduleKind kind, int chunks);
int device_of_stage(ChunkPlacement placement, int devices, int stage);
// The stages of device d among devices · chunks, ascending.
std::vector<int> stages_on_device(ChunkPlacement placement, int devices, int chunks, int d);
// What stage `stage` runs of its device's program: its own actions, in the device's order.
StageProgram actions_of_stage(const StageProgram& device_program, int stage);
// Chunks per device a schedule needs: 2 for ZB-V; `configured` (pipeline.virtual_stages, at
// least 1) for interleaved; 1 for the others.
int chunks_for(ScheduleKind kind, int configured);

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
// Interleaved 1F1B (Narayanan et al., SC 2021) on `devices` devices with `chunks` looped
// chunks each: micro-batches go in rounds of K, each round through chunk 0, then chunk 1...,
// backwards through the chunks in reverse; device d warms up with 2 (K − d − 1) + (v − 1) K
// forwards (Megatron-LM's count, grown by one until the programs run when M is not a
// multiple of K), then alternates F and B. One chunk: 1F1B.
Schedule interleaved_schedule(int devices, int micro_batches, int chunks);
// ZB-V (Qi et al., ICLR 2024): two chunks per device in a V (placement v_shape), split
// backward, list scheduled as ZB-H1 is, within 1F1B's activation memory: at most 2K chunk
// micro-batches (K micro-batches of a device's layers) and K − 1 held weight gradients per
// device (past that, forwards wait). make_schedule runs ZB-H1 for zb-v with one chunk.
Schedule zb_v_schedule(int devices, int micro_batches);
// Forward only (evaluation): each device runs F for every micro-batch, stage by stage.
Schedule forward_only_schedule(int devices, int micro_batches, int chunks = 1,
                               ChunkPlacement placement = ChunkPlacement::looped);

// `chunks` > 1 only for interleaved (any) and ZB-V (2); throws std::invalid_argument else.
Schedule make_schedule(ScheduleKind kind, int devices, int micro_batches, int chunks = 1);
// "gpipe" | "1f1b" | "zb-h1" | "zb-h2" | "interleaved" | "zb-v" | "auto"; throws InputError
// naming pipeline.schedule.
ScheduleKind parse_schedule_kind(const std::string& name);
const char* to_string(ScheduleKind kind);

std::string to_string(const Action& a);
std::string to_string(const StageProgram& p);  // space separated
StageProgram parse_program(const std::string& text);
std::ostream& operator<<(std::ostream& os, const Action& a);

// Checks the programs: every stage 0..V−1 in exactly one device's program, every action at
// most once and, for micro_batches > 0, every micro-batch forwarded and backpropagated (B, or
// I then W) once on every stage; then executes them abstractly with the data dependencies
// above. Returns an empty string when every program runs to completion, else a description of
// the first fault (a missing, repeated or misplaced action, a deadlock).
std::string check_schedule(const Schedule& s, int micro_batches);

// Filling a wait: while a stage's next action (at `pc` of its program `p`) waits for a
// neighbour, the stage may run its first weight gradient W not yet run, if that W's I lies
// behind `pc`. W's still run in their program order and only W's touch the linear layers'
// gradients (I those of the norms and embeddings, models/weight_grads.hpp), so every gradient
// sums in the program's order and the step is the program's, bit for bit; the W only runs
// sooner, so no memory is held longer. `early` marks the actions after `pc` run so (one flag
// per action of `p`). Returns that W's index in `p`, or -1. The stage's interpreter does this on
// a device that runs one stage (actors/stage.cpp), and timed_execution models it.
int early_weight_gradient(const StageProgram& p, size_t pc, const std::vector<char>& early);

// The stages of a schedule (V: one more than the largest stage its actions name).
int stage_count(const Schedule& s);

// The memory high-water marks of one program, in micro-batches of one stage (a chunk, with
// virtual stages): `activations`, forwarded and
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

// The same execution with a cost per (virtual) stage (the simulator's step, runtime/sim):
// each stage's actions cost what its timing says, R and S included; F's output reaches the next stage
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
  std::vector<double> busy;                     // per device, the seconds its actions took
  std::vector<std::vector<TimedAction>> actions;  // per device, in the order they ran
};
// Throws std::invalid_argument when the programs deadlock or the timings do not match them.
// `weights`, when given (one per micro-batch, runtime::micro_batch_weights), scale each F, B,
// I and W by its micro-batch's size relative to the mean (tapered micro-batches).
Timeline timed_execution(const Schedule& s, int micro_batches, const std::vector<StageTiming>& timing,
                         const std::vector<double>& weights = {});

// Tapered micro-batches (pipeline.taper): the relative sizes of `parts` micro-batches for a
// pipeline of `depth` devices. Micro-batch i weighs min(depth, i + 1, parts − i): the first and
// the last depth − 1 grow and shrink in steps of 1/depth of the others, so that the pipeline
// fills and drains on less work (the bubble of 1F1B and the zero-bubble schedules is made of
// the first micro-batches' forwards and the last ones' backwards). Scaled to average 1; all 1
// when depth ≤ 1. runtime::micro_batch_sizes cuts a batch by them.
std::vector<double> micro_batch_weights(int64_t parts, int depth);
// "off": M equal micro-batches; "on": tapered; "auto": tapered where that shortens the modelled
// step (taper_pays).
enum class Taper : int8_t { off = 0, on = 1, automatic = 2 };
Taper parse_taper(const std::string& name);  // throws InputError naming pipeline.taper
const char* to_string(Taper taper);
// Whether tapered micro-batches shorten the modelled step of `kind` on `devices` devices, on
// average over two cost models (no transfers; "auto" resolved by choose_schedule first): the
// zero-bubble papers' (ActionCosts' default: B = 2F, I = W = F) and one whose W is half its I
// (B = 1.5F, I = F, W = F/2), since how a backward splits into I and W depends on the model and
// the machine (measured here: B = 1.35F, I = 1.15F, W = 0.35F). They do for 1F1B and the
// zero-bubble schedules once M ≥ 2K or so; they do not for GPipe, whose drain waits on the
// large middle micro-batches, nor for the interleaved schedules, nor for few micro-batches.
bool taper_pays(ScheduleKind kind, int devices, int micro_batches, int chunks = 1);
// Whether a training step of `kind` on a pipeline of `devices` devices cuts tapered
// micro-batches under `taper`: never without a pipeline; "on" always; "auto" where taper_pays.
bool tapers(Taper taper, ScheduleKind kind, int devices, int micro_batches, int chunks = 1);

// pipeline.schedule = "auto". One chunk per device: of gpipe, 1f1b, zb-h1 and zb-h2, those
// whose activations stay within 1F1B's largest (a device's memory), the one with the smallest
// modelled makespan (ties: the earlier). Two chunks: ZB-V (interleaved 1F1B holds more than
// 1F1B: 2 (K − 1) + K + 1 chunks on its first device). More: interleaved.
ScheduleKind choose_schedule(int devices, int micro_batches, int chunks = 1);
// `kind`, with "auto" resolved by choose_schedule: the schedule a pipeline runs.
ScheduleKind resolve_schedule(ScheduleKind kind, int devices, int micro_batches, int chunks = 1);

}  // namespace floe::runtime
