#pragma once
// `floe simulate`: a job run on a cost model instead of devices. floe's own planner
// (make_plan), freeze policy, schedule generators and AutoDP rule decide exactly as in a real
// run; each step is the timed execution of the stages' programs (runtime/plan/schedule.hpp)
// with the cost model's action times, transfers and the all-reduce; AutoCache is modelled per
// node by the share of samples it holds at each level. What it cannot know (accuracies,
// gradient norms) it does not invent: accuracies stay 0 and policies that read gradient
// norms are refused.
#include "runtime/config/job_config.hpp"
#include "runtime/observe/summary.hpp"
#include "runtime/plan/elastic_plan.hpp"
#include "runtime/plan/schedule.hpp"
#include "runtime/sim/cost_model.hpp"

#include <map>
#include <string>
#include <vector>

namespace floe::runtime {

// One training step of one replica on `plan` (every replica runs the same programs).
struct StepInput {
  int64_t replica_batch = 0;       // samples of one replica's step
  double frozen_per_sample = 0;    // seconds of the frozen prefix per sample on stage 0 (cache included)
  ScheduleKind schedule = ScheduleKind::gpipe;
  bool train = true;               // false: forward only (evaluation), no R or S
  bool replicas_span_nodes = false;  // the all-reduce crosses nodes
  bool pipeline_spans_nodes = false;  // stage-to-stage transfers cross nodes
  Taper taper = Taper::off;        // pipeline.taper
};
struct StepEstimate {
  double seconds = 0;  // makespan + the hardware's step overhead
  ScheduleKind schedule = ScheduleKind::gpipe;  // as resolved ("auto" chosen)
  Timeline timeline;
};
// The micro-batches a replica cuts `replica_batch` samples into on `plan`: its M, but no
// empty ones (the replica's min(M, samples)).
int micro_batch_count(const Plan& plan, int64_t replica_batch);

// Throws std::invalid_argument when the plan does not match the cost model's units.
StepEstimate estimate_step(const Plan& plan, const CostModel& costs, const StepInput& in);

// The seconds a transition from `from` to `to` costs: the parameters and AdamW moments of
// every active unit whose device changes cross the node's link, plus one control round.
// `across_nodes`: the new replicas are on other nodes (the link between nodes). Weights and
// moments move as fp32.
double transition_seconds(const Plan& from, const Plan& to, const CostModel& costs, bool across_nodes = false);

// AutoCache on one split, per node: the share of the split's samples a node holds at each
// level, moved by what each stretch of training does to it (runtime/state/activation_cache.hpp:
// hits at the asked level, rows at lower levels advanced through the newly frozen units,
// the rest computed and admitted while the budget lasts; a level whose read is not cheaper
// than its prefix is bypassed).
class CacheModel {
 public:
  // capacity: the share of the split's samples a node's budget holds; nodes: the nodes over
  // which the samples of a step are spread (a sample lands on a node at random each epoch).
  CacheModel(bool enabled, double capacity, int nodes);
  struct Use {
    double per_sample = 0;  // seconds of the frozen prefix per sample
    double hits = 0, advanced = 0, computed = 0;  // shares of the samples processed
    bool bypassed = false;
  };
  // A stretch of training at `level` frozen units covering `share` of the split's samples.
  // prefix[i]: seconds per sample of frozen units [0, i) (prefix[0] = 0); read: seconds per
  // sample to copy a row out of the cache. Without `advance` (evaluation) rows at other
  // levels are dropped, not advanced, as the real cache drops them.
  Use use(int level, double share, const std::vector<double>& prefix, double read, bool advance = true);
  double held(int level) const;  // share of the samples a node holds at `level`
  void spread(int nodes);        // the plan now spreads a step's samples over this many nodes
  void set_capacity(double capacity);
  double total() const;          // share of the samples a node holds, all levels

 private:
  bool enabled_;
  double capacity_;
  int nodes_;
  std::map<int, double> held_;
  std::map<int, bool> bypass_;
};

struct SimulationOptions {
  std::vector<int> node_devices;  // devices per node; empty: cfg.devices on one node
  int64_t train_samples = 0, eval_samples = 0;  // per epoch; 0: the cost model's
  int trace_steps = 1;  // steps per epoch whose actions go to the trace
  // The original PipeTransformer's semantics: batch_size is per pipeline, so every replica
  // AutoDP adds makes the global batch larger and the epoch's steps fewer (floe keeps the
  // global batch and splits it over the replicas).
  bool batch_per_replica = false;
};

struct Simulation {
  TrainingSummary summary;             // the schema of a real run's summary; accuracies 0
  std::vector<std::string> schedules;  // per epoch, the schedule its last plan ran
  std::vector<double> step_seconds;    // per epoch, its last plan's training step
  std::vector<double> epoch_starts;    // per epoch, simulated seconds since the job began
  double planner_seconds = 0;          // planning and choosing schedules, over the run
  double seconds = 0;                  // the whole simulation
  // Per epoch, the timed actions of its first steps (trace_steps) on each replica's stages.
  struct TraceStep {
    int epoch = 0;
    int64_t step = 0;
    double start = 0;  // simulated seconds since the job began
    int replicas = 1;
    Timeline timeline;
  };
  std::vector<TraceStep> trace;
};

// Throws floe::InputError when the job cannot be simulated (a policy that needs gradient
// norms or evaluation losses, a cost model for another model, no sample counts).
Simulation simulate_job(const JobConfig& cfg, const CostModel& costs, const SimulationOptions& options = {});

}  // namespace floe::runtime
