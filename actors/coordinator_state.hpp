#pragma once
// The coordinator's private house: its state and the functions its phase files share. Not
// for use outside actors/coordinator*.cpp.
//
//   coordinator.cpp            the behaviour, and the step/epoch loop: train_step (one
//                              decision per boundary, runtime/control/step_boundary.hpp),
//                              eval_step, the epoch's start and end, finish
//   coordinator_pipelines.cpp  building, joining, collecting and installing pipelines:
//                              transitions (freezes) and node joins
//   coordinator_recovery.cpp   failures, recovery (runtime/control/recovery.hpp),
//                              checkpoints, resume (runtime/control/resume.hpp), faults
//   coordinator_state.cpp      what all of them use: events, the end of the job, the plan
//
// Phase files never call the loop: they get continuations from it.
#include "actors/coordinator.hpp"
#include "messages/events.hpp"
#include "messages/freeze.hpp"
#include "runtime/control/resume.hpp"
#include "runtime/control/faults.hpp"
#include "runtime/observe/events.hpp"
#include "runtime/plan/microbatch_profile.hpp"
#include "runtime/state/checkpoint.hpp"
#include "runtime/train/freeze_policy.hpp"
#include "runtime/train/lr_schedule.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <set>

namespace floe::actors::coord {

using clock_type = std::chrono::steady_clock;
inline double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// What one epoch (or its evaluation) added up to: the replicas' step reports summed
// (msg::add_to); `seconds` is then the makespan, `stage_busy_seconds` the busy time per
// pipeline position over all replicas.
struct Totals {
  msg::step_report sum;
  double mean_loss() const { return sum.targets ? sum.loss_sum / sum.targets : 0; }
  double accuracy() const { return sum.targets ? double(sum.correct) / sum.targets : 0; }
};

struct CoordinatorState {
  static inline const char* name = "floe.coordinator";
  CoordinatorSpec spec;
  models::UnitList model;  // unit names, blocks and sizes for planning (replica 0's at start)
  runtime::Plan plan;
  std::vector<PipelineHandles> pipelines;
  std::vector<std::vector<caf::actor_addr>> hosts;  // per replica: the agents of the nodes it runs on
  msg::freeze_controller_actor freezer;
  runtime::BlockSignal signal = runtime::BlockSignal::none;  // what the freeze policy reads per block
  std::vector<NodeSlot> nodes;  // where the pipelines run (each has its AutoCache)
  int64_t generation = 0;       // pipeline sets built so far (names their gradient groups)
  bool concluding = false;      // the result is on its way: later failures change nothing
  bool telling_done = false;    // training finished; the nodes are being told (msg::job_done_atom)
  std::set<caf::actor_addr> lost;  // agents of nodes gone, not yet recovered from
  std::vector<msg::node_ready> joining;  // nodes ready to join the job at a step boundary
  // Ends what is in flight towards the nodes (a step, a build, a state collection) when a node
  // leaves: its answers would never come. Set while something is in flight (a fan-in's cancel).
  std::function<void(const std::string&)> abort_pending;
  runtime::CacheStats cache_before;  // at the start of the epoch
  runtime::WarmupCosine lr;
  runtime::BlockAnneal anneal;  // freeze.anneal; no blocks when off
  std::vector<int64_t> order;  // this epoch's sample order
  std::vector<int64_t> lengths;  // tokens per training text (data.length_buckets), computed once
  int epoch = 0;
  int64_t step = 0;  // within the epoch (training) or evaluation batch
  int64_t steps_in_epoch = 0;
  int64_t global_step = 0;
  int64_t eval_start_us = 0, epoch_start_us = 0;
  Totals train, eval;
  runtime::GradientWindow grad_window;  // the blocks' gradient norms for the next freeze decision
  runtime::PlasticityWindow plasticity;  // the blocks' plasticity measured since the last decision
  std::vector<double> policy_state;   // the freeze policy's, after its last decision
  int frozen_target = 0;  // the last freeze decided (a transition to it may have failed)
  int64_t last_decision_step = -1;  // freeze.interval_steps: the global step of the last decision
  int64_t last_checkpoint_step = -1;  // global step of the last checkpoint written or resumed from
  bool checkpoint_requested = false;  // by a checkpoint_atom or SIGUSR1, latched until written
  clock_type::time_point job_start, epoch_start;
  double train_seconds = 0;
  runtime::TrainingSummary summary;
  caf::typed_response_promise<runtime::TrainingSummary> promise;
  // Observation and hooks.
  msg::event_bus_actor bus;
  bool observed = false;  // an observer is subscribed: events are sent
  bool spans = false;     // one wants the stages' spans: they record them
  std::vector<runtime::Fault> faults;            // injected, waiting for their step
  std::vector<msg::scripted_freeze> freezes;     // scripted, waiting for their step
  // pipeline.micro_batches = 0: the profile of M per K, and the sweep in progress, if any.
  std::optional<runtime::MicroBatchProfile> profile;
  std::optional<runtime::MicroBatchSweep> sweep;
};

using coord_ptr = msg::coordinator_actor::stateful_pointer<CoordinatorState>;

// How the loop goes on after a phase: `retry` the boundary it was at, or `restart` at a
// checkpoint's point (a recovery that found no surviving replica rewinds the clock).
struct Continue {
  std::function<void()> retry;
  std::function<void(const runtime::ResumePoint&)> restart;
};

// Matched weights as a message's tensors.
inline msg::named_tensors named(models::WeightMatch m) {
  msg::named_tensors out{std::move(m.names), {}};
  for (auto& t : m.values) out.values.push_back({std::move(t)});
  return out;
}

// --- coordinator_state.cpp ---
inline int replicas(coord_ptr self) { return static_cast<int>(self->state.pipelines.size()); }
inline runtime::Layout layout_of(const runtime::Plan& p) { return {p.stages, p.micro_batches, p.replicas}; }
void emit(coord_ptr self, runtime::Event e);
runtime::Event event(coord_ptr self, runtime::EventKind kind, int64_t start_us);
// Ends the job: the observers write everything out first, then the caller hears the result.
void conclude(coord_ptr self, runtime::TrainingSummary summary);
void fail(coord_ptr self, caf::error err);
void fail(coord_ptr self, const std::string& why);  // a runtime_error
std::string lost_names(coord_ptr self);  // the nodes in state.lost, "a, b"
std::vector<int> node_devices(coord_ptr self);
runtime::ProfileKey profile_key(coord_ptr self, const runtime::Plan& plan);
// The plan for `frozen` blocks on the nodes' devices as they are now; with the micro-batch
// profiler on, M is the profiled one where this K has been profiled.
runtime::Plan plan_for(coord_ptr self, int frozen, int current_stages);
// A profiled training step took `seconds`; the sweep's end sets M and keeps it in the profile.
void profiled(coord_ptr self, double seconds);

// --- coordinator_pipelines.cpp ---
// Every stage's exported state of the given replicas, merged per replica.
void collect_states(coord_ptr self, std::vector<int> which, std::function<void(std::vector<msg::stage_state>&)> done,
                    std::function<void(const std::string&)> failed);
// Whether two replicas' states hold the same parameters and optimizer state, bit for bit.
bool same_state(const msg::stage_state& a, const msg::stage_state& b);
using Hosts = std::vector<std::vector<caf::actor_addr>>;  // per replica, the agents it runs on
using Built = std::function<void(std::vector<PipelineHandles>, Hosts hosts)>;
void build_pipelines(coord_ptr self, const runtime::Plan& plan, const msg::named_tensors& params,
                     const msg::named_tensors& optimizer, Built done, std::function<void(const std::string&)> failed);
void install(coord_ptr self, std::vector<PipelineHandles> fresh, Hosts hosts, const runtime::Plan& plan);
// A live transition to `next` (a transaction: on failure training stays on the old plan);
// then `resume`.
void transition(coord_ptr self, runtime::Plan next, std::function<void()> resume, std::string cause = "freeze");
// Re-plans for `frozen` blocks and switches if that changes anything; then `resume`.
void freeze_to(coord_ptr self, int frozen, std::function<void()> resume);
bool joins_now(coord_ptr self);
// Sends each replica its shard of the global batch at state.step (of state.order); `done` gets
// the joined report, `failed` the reason once (also when aborted: a node left meanwhile).
void dispatch(coord_ptr self, bool train, double lr, int64_t batch, int micro_batches,
              std::function<void(msg::step_report&)> done, std::function<void(const std::string&)> failed);
void admit(coord_ptr self, std::function<void()> resume);

// --- coordinator_recovery.cpp ---
// A node's agent is gone: the job stops, or the next step boundary recovers.
void node_down(coord_ptr self, const caf::down_msg& d);
// A step failed with `why`: find out whether a node is gone; recover, or stop the job.
void step_failed(coord_ptr self, const std::string& why, Continue next);
// Live recovery from the nodes in state.lost (or from a checkpoint when no replica survived).
void recover(coord_ptr self, Continue next);
// The state is set up to continue from checkpoint `ck` (the clock, statistics, plan, the
// policy's state when `policy` is given); fills the weights and optimizer state to build from.
runtime::ResumePoint resume_from(coord_ptr self, const runtime::Checkpoint& ck, runtime::FreezePolicy* policy,
                                 msg::named_tensors& params, msg::named_tensors& optimizer);
// Whether a checkpoint is due at this boundary (takes a pending request into the state).
bool checkpoint_due(coord_ptr self);
// Writes a checkpoint of replica 0 at this boundary, then `then`. `decided`: this epoch's
// freeze decision is made. `states`: replica 0's, when already collected.
void checkpoint(coord_ptr self, bool decided, std::function<void()> then,
                std::shared_ptr<std::vector<msg::stage_state>> states = nullptr);
bool fault_due(coord_ptr self, bool nodes_only);
// Faults whose step has come go to their stage (or kill it); `nodes_only`: just node kills.
void apply_faults(coord_ptr self, bool nodes_only);

}  // namespace floe::actors::coord
