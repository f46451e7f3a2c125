#include "runtime/sim/simulator.hpp"

#include "models/errors.hpp"
#include "models/shapes.hpp"
#include "runtime/control/step_boundary.hpp"
#include "runtime/observe/events.hpp"
#include "runtime/plan/plan_request.hpp"
#include "runtime/state/activation_cache.hpp"
#include "runtime/train/configured_policy.hpp"
#include "runtime/train/sampler.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace floe::runtime {
namespace {

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The stage of each active unit (index into the model's units), -1 for frozen ones.
std::vector<int> stage_of_units(const Plan& p, size_t units) {
  std::vector<int> out(units, -1);
  size_t u = static_cast<size_t>(p.frozen_units);
  for (size_t s = 0; s < p.units_per_stage.size(); ++s)
    for (int i = 0; i < p.units_per_stage[s] && u < units; ++i) out[u++] = static_cast<int>(s);
  return out;
}

}  // namespace

int micro_batch_count(const Plan& plan, int64_t replica_batch) {
  return static_cast<int>(std::clamp<int64_t>(plan.micro_batches, 1, std::max<int64_t>(1, replica_batch)));
}

StepEstimate estimate_step(const Plan& plan, const CostModel& costs, const StepInput& in) {
  const int devices = plan.stages, k = plan.stages * plan.chunks;  // k stages: v chunks on each device
  const size_t n = costs.units.size();
  const size_t placed = static_cast<size_t>(plan.frozen_units) +
                        std::accumulate(plan.units_per_stage.begin(), plan.units_per_stage.end(), size_t{0});
  if (placed != n || static_cast<int>(plan.units_per_stage.size()) != k)
    throw std::invalid_argument("estimate_step: the plan places " + std::to_string(placed) + " units, the cost model has " +
                                std::to_string(n));
  const auto& hw = costs.hardware;
  const int m = micro_batch_count(plan, in.replica_batch);
  const double micro = static_cast<double>(in.replica_batch) / m;
  StepEstimate est;
  est.schedule = resolve_schedule(in.schedule, devices, m, plan.chunks);
  const auto placement = placement_of(est.schedule, plan.chunks);
  const auto programs = in.train ? make_schedule(est.schedule, devices, m, plan.chunks)
                                 : forward_only_schedule(devices, m, plan.chunks, placement);
  // A transfer between two chunks of one device costs nothing.
  auto apart = [&](int a, int b) {
    return device_of_stage(placement, devices, a) != device_of_stage(placement, devices, b);
  };
  const double link_bw = in.pipeline_spans_nodes ? hw.inter_bandwidth : hw.intra_bandwidth;
  const double link_lat = in.pipeline_spans_nodes ? hw.inter_latency : hw.intra_latency;
  const double dp_bw = in.replicas_span_nodes ? hw.inter_bandwidth : hw.intra_bandwidth;
  const double dp_lat = in.replicas_span_nodes ? hw.inter_latency : hw.intra_latency;
  std::vector<StageTiming> timing(k);
  size_t u = static_cast<size_t>(plan.frozen_units);
  for (int s = 0; s < k; ++s) {
    auto& t = timing[s];
    // The input gradient sent back is the size of what this stage received.
    if (s > 0 && apart(s - 1, s)) t.to_previous = transfer_seconds(costs.units[u - 1].output_bytes * micro, link_bw, link_lat);
    t.costs = {0, 0, 0, 0};
    int64_t params = 0;
    double step = 0, out_bytes = 0;
    for (int i = 0; i < plan.units_per_stage[s]; ++i, ++u) {
      const auto& c = costs.units[u];
      const auto times = c.at(micro);
      t.costs.forward += in.train ? times.forward : times.frozen;
      t.costs.backward += times.backward;
      t.costs.input += times.input;
      t.costs.weight += times.weight;
      params += c.params;
      step += c.step_seconds;
      out_bytes = c.output_bytes;
    }
    if (s == 0) t.costs.forward += in.frozen_per_sample * micro;
    t.costs.forward += hw.action_overhead;
    t.costs.backward += hw.action_overhead;
    t.costs.input += hw.action_overhead;
    t.costs.weight += hw.action_overhead;
    if (s + 1 < k && apart(s, s + 1)) t.to_next = transfer_seconds(out_bytes * micro, link_bw, link_lat);
    if (in.train) {
      t.reduce = ring_allreduce_seconds(static_cast<double>(params) * hw.bytes_per_value, plan.replicas, dp_bw, dp_lat);
      t.step = step;
    }
  }
  const bool tapered = in.train && tapers(in.taper, est.schedule, devices, m, plan.chunks);
  est.timeline = timed_execution(programs, in.train ? m : 0, timing, micro_batch_weights(m, tapered ? devices : 1));
  est.seconds = est.timeline.makespan + hw.step_overhead;
  return est;
}

double transition_seconds(const Plan& from, const Plan& to, const CostModel& costs, bool across_nodes) {
  const auto a = stage_of_units(from, costs.units.size()), b = stage_of_units(to, costs.units.size());
  double bytes = 0, active = 0;
  for (size_t u = 0; u < costs.units.size(); ++u) {
    const double state = 3.0 * static_cast<double>(costs.units[u].params) * 4;  // weights, exp_avg, exp_avg_sq
    if (b[u] >= 0) active += state;
    if (b[u] >= 0 && a[u] != b[u]) bytes += state;
  }
  // New replicas receive a whole pipeline's state each, from different sources at once.
  if (to.replicas > from.replicas) bytes += active;
  const auto& hw = costs.hardware;
  const double bw = across_nodes ? hw.inter_bandwidth : hw.intra_bandwidth;
  const double lat = across_nodes ? hw.inter_latency : hw.intra_latency;
  return bytes / bw + 2 * lat + hw.step_overhead;
}

CacheModel::CacheModel(bool enabled, double capacity, int nodes)
    : enabled_(enabled), capacity_(std::clamp(capacity, 0.0, 1.0)), nodes_(std::max(1, nodes)) {}

void CacheModel::spread(int nodes) {
  nodes = std::max(1, nodes);
  // A node that joins holds nothing: a sample lands on a node that has it less often.
  if (nodes > nodes_)
    for (auto& [l, h] : held_) h *= static_cast<double>(nodes_) / nodes;
  nodes_ = nodes;
}

void CacheModel::set_capacity(double capacity) { capacity_ = std::clamp(capacity, 0.0, 1.0); }

double CacheModel::total() const {
  double t = 0;
  for (const auto& [l, h] : held_) t += h;
  return t;
}

double CacheModel::held(int level) const {
  auto it = held_.find(level);
  return it == held_.end() ? 0 : it->second;
}

CacheModel::Use CacheModel::use(int level, double share, const std::vector<double>& prefix, double read, bool advance) {
  Use u;
  if (level <= 0 || level >= static_cast<int>(prefix.size())) {
    if (level > 0) throw std::invalid_argument("CacheModel::use: level beyond the prefix costs");
    return u;  // nothing frozen: no prefix
  }
  const double full = prefix[level];
  u.computed = 1;
  u.per_sample = full;
  if (!enabled_) return u;
  auto verdict = bypass_.find(level);
  if (verdict == bypass_.end()) verdict = bypass_.emplace(level, !(read < full)).first;  // the probe
  if (verdict->second) {
    u.bypassed = true;
    return u;
  }
  if (!advance)
    for (auto& [l, h] : held_)
      if (l != level) h = 0;
  u.hits = held(level);
  double advancing = 0;
  for (const auto& [l, h] : held_)
    if (l < level && h > 0) {
      u.advanced += h;
      advancing += h * (read + full - prefix[l]);
    }
  u.computed = std::max(0.0, 1 - u.hits - u.advanced);
  u.per_sample = u.hits * read + advancing + u.computed * (full + read);  // a computed row is also stored
  // What this stretch leaves behind on a node, which processes share / nodes of the samples.
  const double q = share / nodes_;
  double moved = 0;
  for (auto& [l, h] : held_)
    if (l < level) {
      moved += q * h;
      h -= q * h;
    }
  held_[level] += moved;
  // No room: superseded levels go first, as the real cache evicts them to admit a row.
  if (q * u.computed > capacity_ - total())
    for (auto& [l, h] : held_)
      if (l < level) h = 0;
  held_[level] += std::min(q * u.computed, std::max(0.0, capacity_ - total()));
  return u;
}

Simulation simulate_job(const JobConfig& cfg, const CostModel& costs, const SimulationOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const auto shapes = models::unit_shapes(cfg.model);
  if (shapes.size() != costs.units.size())
    throw InputError("cost model (" + costs.source + "): " + std::to_string(costs.units.size()) +
                     " units, but the job's model (" + models::describe(cfg.model) + ") has " +
                     std::to_string(shapes.size()));
  for (size_t i = 0; i < shapes.size(); ++i)
    if (shapes[i].name != costs.units[i].name || shapes[i].params != costs.units[i].params)
      throw InputError("cost model (" + costs.source + "): unit " + std::to_string(i) + " is " + costs.units[i].name +
                       " with " + std::to_string(costs.units[i].params) + " parameters; the job's model has " +
                       shapes[i].name + " with " + std::to_string(shapes[i].params));
  if (cfg.freeze.guard)
    throw InputError("freeze.guard decides from evaluation losses, which a simulation does not have: simulate the "
                     "policy without it (--set freeze.guard=false)");
  auto policy = configured_freeze_policy(cfg);
  if (policy->signal() != BlockSignal::none)
    throw InputError("freeze.policy = \"" + cfg.freeze.policy +
                     "\" decides from what training measures (gradient norms, plasticity), which a simulation does "
                     "not have: simulate it with "
                     "freeze.policy = \"schedule\" or \"manual\" (freeze.script)");
  const int64_t train = options.train_samples > 0 ? options.train_samples : costs.train_samples;
  const int64_t eval = options.eval_samples > 0 ? options.eval_samples : costs.eval_samples;
  if (train <= 0)
    throw InputError("simulate: the number of training samples is unknown: the cost model has none; give --samples");
  const int depth = static_cast<int>(cfg.model.depth);
  const auto& hw = costs.hardware;

  std::vector<int64_t> unit_costs;
  std::vector<int> blocks;
  for (const auto& u : costs.units) {
    unit_costs.push_back(u.planner_cost);
    blocks.push_back(u.block);
  }
  if (cfg.planner.costs == "measured")
    unit_costs = measured_planner_costs(costs, static_cast<double>(planner_micro_batch(cfg)));
  const auto& nodes = options.node_devices;
  const int node_count = nodes.empty() ? 1 : static_cast<int>(nodes.size());
  const auto kind = parse_schedule_kind(cfg.pipeline.schedule);

  Simulation sim;
  auto plan_for = [&](int frozen, int current) {
    const auto t = std::chrono::steady_clock::now();
    auto p = make_plan(plan_request(cfg, unit_costs, blocks, frozen, current, nodes));
    sim.planner_seconds += since(t);
    return p;
  };
  Plan plan = plan_for(0, cfg.pipeline.length);
  // As the coordinator starts: an explicit partition and M apply to the first plan.
  if (!cfg.pipeline.partition.empty()) plan.units_per_stage = cfg.pipeline.partition;
  if (cfg.pipeline.micro_batches > 0) plan.micro_batches = cfg.pipeline.micro_batches;

  // AutoCache: the budget per node over the rows of the split.
  const double host = hw.host_memory > 0 ? hw.host_memory : static_cast<double>(host_memory_bytes());
  double budget = 0;
  try {
    budget = static_cast<double>(parse_size(cfg.cache.budget, static_cast<int64_t>(host)) +
                                 parse_size(cfg.cache.disk_budget, static_cast<int64_t>(host)));
  } catch (const std::invalid_argument& e) {
    throw InputError(std::string("config: cache.budget: ") + e.what());
  }
  // One budget for both splits, over rows of a block's output: training takes it first,
  // evaluation what is left.
  double row = 0;
  for (const auto& u : costs.units) row = std::max(row, u.block >= 0 && u.block < depth ? u.output_bytes : 0.0);
  auto capacity = [&](int64_t samples) {
    return row > 0 && samples > 0 ? budget / (row * static_cast<double>(samples)) : 1.0;
  };
  auto nodes_used = [&](const Plan& p) { return std::min(node_count, p.replicas); };
  CacheModel train_cache(cfg.cache.enabled, capacity(train), nodes_used(plan));
  CacheModel eval_cache(cfg.cache.enabled, capacity(eval), nodes_used(plan));
  const int64_t eval_batch = std::max<int64_t>(cfg.batch_size, 500);  // the coordinator's evaluation steps

  // The frozen prefix's seconds per sample, cumulative over its units, at micro-batch `micro`.
  auto prefix_costs = [&](double micro) {
    std::vector<double> p{0};
    for (const auto& u : costs.units) p.push_back(p.back() + u.at(micro).frozen / micro);
    return p;
  };
  auto read_per_sample = [&](int level) {
    return level > 0 ? costs.units[level - 1].output_bytes / hw.cache_bandwidth : 0.0;
  };
  // A replica's samples in a step: its share of the batch (or the batch, per replica), never
  // more than its share of the split.
  auto step_input = [&](const Plan& p, int64_t batch, bool training, int64_t split) {
    StepInput in;
    const int r = std::max(1, p.replicas);
    in.replica_batch = std::min(options.batch_per_replica ? batch : ceil_div(batch, r), ceil_div(split, r));
    in.schedule = kind;
    in.train = training;
    in.replicas_span_nodes = node_count > 1 && p.replicas > 1;
    in.pipeline_spans_nodes = cfg.pipeline.span_nodes && node_count > 1;
    in.taper = parse_taper(cfg.pipeline.taper);
    return in;
  };

  double clock = 0;
  int64_t global_step = 0, last_decision_step = -1;
  auto decide = [&](int epoch, int timestep) {
    FreezeObservation obs;
    obs.epoch = epoch;
    obs.step = global_step;
    obs.frozen = plan.frozen_blocks;
    obs.layers = depth;
    obs.timestep = timestep;
    obs.evaluations = static_cast<int>(sim.summary.epochs.size());
    last_decision_step = global_step;
    const int f = policy->decide(obs);
    if (f == plan.frozen_blocks) return;
    const auto next = plan_for(f, plan.stages);
    TransitionRecord tr;
    tr.epoch = epoch;
    tr.step = global_step;
    tr.from = {plan.stages, plan.micro_batches, plan.replicas};
    tr.to = {next.stages, next.micro_batches, next.replicas};
    tr.frozen_layers = f;
    tr.seconds = transition_seconds(plan, next, costs, node_count > 1 && next.replicas > 1);
    clock += tr.seconds;
    sim.summary.transitions.push_back(tr);
    plan = next;
  };

  // Samples per step: the global batch, or with batch_per_replica one batch per replica of
  // the epoch's first plan.
  auto step_samples = [&] { return cfg.batch_size * (options.batch_per_replica ? plan.replicas : 1); };
  for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
    // As the coordinator: a decision before every epoch but the first (next_epoch).
    if (epoch > 0 && cfg.freeze.interval_steps <= 0 && epoch % cfg.freeze.interval == 0 && plan.frozen_blocks < depth)
      decide(epoch, epoch);
    const int64_t steps = steps_per_epoch(train, step_samples());
    const double epoch_start = clock;
    sim.epoch_starts.push_back(clock);
    EpochRecord rec;
    rec.epoch = epoch;
    rec.cached = cfg.cache.enabled;
    std::vector<double> busy;
    double makespans = 0;
    double last_step = 0;
    ScheduleKind last_kind = kind;
    for (int64_t s = 0; s < steps;) {
      if (freeze_decision_due({cfg.freeze.interval_steps, global_step, last_decision_step, plan.frozen_blocks, depth}))
        decide(epoch, static_cast<int>(global_step / cfg.freeze.interval_steps));
      // The steps until the next decision (or the epoch's end) run on this plan.
      int64_t run = steps - s;
      if (cfg.freeze.interval_steps > 0 && plan.frozen_blocks < depth)
        run = std::min(run, cfg.freeze.interval_steps - global_step % cfg.freeze.interval_steps);
      train_cache.spread(nodes_used(plan));
      eval_cache.spread(nodes_used(plan));
      auto in = step_input(plan, cfg.batch_size, true, train);
      const double micro = static_cast<double>(in.replica_batch) / micro_batch_count(plan, in.replica_batch);
      const auto use = train_cache.use(plan.frozen_units, static_cast<double>(run) / static_cast<double>(steps),
                                       prefix_costs(micro), read_per_sample(plan.frozen_units));
      in.frozen_per_sample = use.per_sample;
      const auto est = estimate_step(plan, costs, in);
      const double stretch = est.seconds * static_cast<double>(run);
      const double share = static_cast<double>(run) / static_cast<double>(steps) * static_cast<double>(train);
      rec.cache.hits += std::llround(use.hits * share);
      rec.cache.advanced += std::llround(use.advanced * share);
      rec.cache.misses += plan.frozen_units > 0 && !use.bypassed ? std::llround(use.computed * share) : 0;
      if (use.bypassed) rec.cache.bypassed_levels.push_back(plan.frozen_units);
      for (int t = 0; t < options.trace_steps && t < run; ++t)
        sim.trace.push_back({epoch, global_step + t, clock + t * est.seconds, plan.replicas, est.timeline});
      clock += stretch;
      if (busy.size() < est.timeline.busy.size()) busy.resize(est.timeline.busy.size(), 0);
      for (size_t i = 0; i < est.timeline.busy.size(); ++i) busy[i] += est.timeline.busy[i] * static_cast<double>(run);
      makespans += est.timeline.makespan * static_cast<double>(run);
      last_step = est.seconds;
      last_kind = est.schedule;
      s += run;
      global_step += run;
    }
    rec.train_seconds = clock - epoch_start;
    if (eval > 0) {
      if (row > 0) eval_cache.set_capacity((budget - train_cache.total() * static_cast<double>(train) * row) /
                                           (row * static_cast<double>(eval)));
      auto in = step_input(plan, eval_batch, false, eval);
      const double micro = static_cast<double>(in.replica_batch) / micro_batch_count(plan, in.replica_batch);
      in.frozen_per_sample =
          eval_cache.use(plan.frozen_units, 1.0, prefix_costs(micro), read_per_sample(plan.frozen_units), false).per_sample;
      const int64_t per_step = eval_batch * (options.batch_per_replica ? plan.replicas : 1);
      clock += estimate_step(plan, costs, in).seconds * static_cast<double>(steps_per_epoch(eval, per_step));
    }
    rec.seconds = clock - epoch_start;
    rec.samples = train;
    rec.samples_per_second = rec.train_seconds > 0 ? static_cast<double>(train) / rec.train_seconds : 0;
    rec.pipeline_length = plan.stages;
    rec.replicas = plan.replicas;
    rec.micro_batches = plan.micro_batches;
    rec.frozen_layers = plan.frozen_blocks;
    for (double b : busy) rec.stage_busy_fraction.push_back(makespans > 0 ? b / makespans : 0);
    rec.stage_bubble_fraction = bubble_fractions(busy, makespans);
    sim.summary.epochs.push_back(rec);
    sim.schedules.push_back(plan.stages > 1 ? to_string(last_kind) : "one stage");
    sim.step_seconds.push_back(last_step);
  }
  sim.summary.total_seconds = clock;
  sim.summary.steps = global_step;
  sim.summary.config = to_flat_map(cfg);
  sim.seconds = since(start);
  return sim;
}

}  // namespace floe::runtime
