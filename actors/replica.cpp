#include "actors/replica.hpp"

#include "runtime/comm/local_allreduce.hpp"
#include "runtime/train/sampler.hpp"

#include <map>

namespace floe::actors {
namespace {

struct ReplicaState {
  static inline const char* name = "floe.replica";
  ReplicaSpec spec;
  std::map<std::pair<int8_t, int>, bool> tapers;  // runtime::tapers per (replica_step.taper, M): the same every step
};

// Collects the stages' reports of one step.
struct StepJoin {
  caf::typed_response_promise<msg::step_report> promise;
  msg::step_report report;
  size_t pending = 0;
  bool failed = false;
  std::chrono::steady_clock::time_point start;
};

msg::replica_actor::behavior_type replica_behavior(msg::replica_actor::stateful_pointer<ReplicaState> self,
                                                   ReplicaSpec spec) {
  self->state.spec = std::move(spec);
  return {
      [=](msg::replica_step& rs) -> caf::typed_response_promise<msg::step_report> {
        const auto& sp = self->state.spec;
        const int k = static_cast<int>(sp.stages.size());  // stages; k / chunks devices
        const int devices = k / sp.chunks;
        const auto placement = runtime::placement_of(sp.schedule, sp.chunks);
        auto join = std::make_shared<StepJoin>();
        join->start = std::chrono::steady_clock::now();
        join->promise = self->make_response_promise<msg::step_report>();
        join->report.step = rs.step;
        join->report.stage_busy_seconds.assign(devices, 0.0);
        const int64_t n = static_cast<int64_t>(rs.uids.size());
        if (n == 0) {
          join->promise.deliver(join->report);
          return join->promise;
        }
        const auto batch = runtime::make_batch(rs.train ? *sp.train : *sp.test, rs.uids, rs.train, rs.epoch, sp.batches);
        const auto uids = torch::tensor(rs.uids, torch::kInt64);
        const int m = static_cast<int>(std::min<int64_t>(rs.micro_batches > 0 ? rs.micro_batches : sp.micro_batches, n));
        if (rs.taper < 0 || rs.taper > static_cast<int8_t>(runtime::Taper::automatic)) {
          join->promise.deliver(caf::make_error(caf::sec::invalid_argument,
                                                "replica_step.taper = " + std::to_string(rs.taper) +
                                                    ", expected 0 (off), 1 (on) or 2 (auto)"));
          return join->promise;
        }
        auto known = self->state.tapers.find({rs.taper, m});
        if (known == self->state.tapers.end())
          known = self->state.tapers
                      .emplace(std::make_pair(rs.taper, m),
                               runtime::tapers(static_cast<runtime::Taper>(rs.taper), sp.schedule, devices, m, sp.chunks))
                      .first;
        const bool tapered = rs.train && known->second;
        const auto sizes = runtime::micro_batch_sizes(n, m, tapered ? devices : 1);
        const auto xs = batch.x.split_with_sizes(sizes), ys = batch.y.split_with_sizes(sizes);
        const auto ids = uids.split_with_sizes(sizes);
        const auto schedule = rs.train ? runtime::make_schedule(sp.schedule, devices, m, sp.chunks)
                                       : runtime::forward_only_schedule(devices, m, sp.chunks, placement);
        join->pending = k;
        // floe eval --predictions: the samples the last stage's probabilities belong to.
        auto shard = rs.predictions ? std::make_shared<const std::vector<int64_t>>(rs.uids) : nullptr;
        for (int s = 0; s < k; ++s) {
          msg::stage_task task;
          task.step = rs.step;
          task.train = rs.train;
          task.lr = rs.lr;
          task.block_lr = rs.block_lr;
          task.loss_scale = 1.0 / double(rs.global_samples > 0 ? rs.global_samples : n);
          const auto& device_program = schedule[runtime::device_of_stage(placement, devices, s)];
          task.program = runtime::actions_of_stage(device_program, s);
          if (sp.chunks > 1) task.device_program = device_program;
          task.signal = rs.signal;
          task.epoch = rs.epoch;
          task.predictions = rs.predictions && s == k - 1;
          if (s == 0) {
            for (auto& x : xs) task.inputs.push_back({x});
            for (auto& u : ids) task.uids.push_back({u});
          }
          if (s == k - 1)
            for (auto& y : ys) task.targets.push_back({y});
          self->request(sp.stages[s], caf::infinite, std::move(task))
              .then(
                  [=](msg::stage_report& r) {
                    if (join->failed) return;
                    join->report.stage_busy_seconds[runtime::device_of_stage(placement, devices, r.stage)] +=
                        r.busy_seconds;
                    auto& rep = join->report;
                    rep.blocks.insert(rep.blocks.end(), r.blocks.begin(), r.blocks.end());
                    rep.block_values.insert(rep.block_values.end(), r.block_values.begin(), r.block_values.end());
                    if (r.stage == k - 1) {
                      join->report.loss_sum = r.loss_sum;
                      join->report.correct = r.correct;
                      join->report.samples = r.samples;
                      join->report.targets = r.targets;
                      join->report.probabilities = std::move(r.probabilities);
                      if (shard) join->report.uids = *shard;
                    }
                    if (--join->pending == 0) {
                      join->report.seconds =
                          std::chrono::duration<double>(std::chrono::steady_clock::now() - join->start).count();
                      join->promise.deliver(join->report);
                    }
                  },
                  [=](caf::error& e) {
                    if (join->failed) return;
                    join->failed = true;
                    join->promise.deliver(std::move(e));
                  });
        }
        return join->promise;
      },
  };
}

}  // namespace

msg::replica_actor spawn_replica(caf::actor_system& sys, ReplicaSpec spec) {
  return sys.spawn(replica_behavior, std::move(spec));
}

std::vector<PipelineHandles> spawn_pipelines(caf::actor_system& sys, const PipelineLayout& layout,
                                             const std::vector<models::UnitList>& models,
                                             const runtime::OptimizerConfig& optimizer,
                                             std::shared_ptr<const models::Dataset> train,
                                             std::shared_ptr<const models::Dataset> test,
                                             const runtime::NamedTensors& optimizer_state) {
  const int k = static_cast<int>(layout.units_per_stage.size());  // stages
  const int v = layout.chunks, devices = k / std::max(1, v);
  if (v < 1 || k % v != 0)
    throw std::invalid_argument("spawn_pipelines: " + std::to_string(k) + " stages do not make " + std::to_string(v) +
                                " chunks per device");
  const auto placement = runtime::placement_of(layout.schedule, v);
  auto pieces = layout.pieces;
  if (pieces.empty())
    for (int r = 0; r < layout.replicas; ++r) pieces.push_back({r, 0, k});
  if (v > 1)
    for (const auto& p : pieces)
      if (p.first_stage != 0 || p.stages != k)
        throw std::invalid_argument("spawn_pipelines: with chunks per device, a piece is a whole pipeline");
  auto groups = layout.groups;
  if (!groups) {
    std::vector<int> here(k, 0);  // replicas of each stage spawned here
    for (const auto& p : pieces)
      for (int s = p.first_stage; s < p.first_stage + p.stages; ++s) ++here[s];
    for (int n : here)
      if (n != 0 && n != layout.replicas)
        throw std::invalid_argument("spawn_pipelines: in-memory gradient groups need all replicas of a stage in one process");
    std::vector<std::shared_ptr<runtime::GradientGroup>> local;
    for (int s = 0; s < k; ++s) local.push_back(std::make_shared<runtime::LocalAllReduce>(layout.replicas));
    groups = [local](int stage, int) { return local[stage]; };
  }
  std::vector<PipelineHandles> out;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto piece = pieces[i];
    const int r = piece.replica;
    PipelineHandles p;
    // Virtual stages: the chunks of each device share its turn.
    std::vector<std::shared_ptr<runtime::DeviceTurn>> turns(devices);
    if (v > 1)
      for (auto& t : turns) t = std::make_shared<runtime::DeviceTurn>(v);
    const size_t frozen = static_cast<size_t>(layout.frozen_units);
    size_t begin = frozen;
    for (int s = 0; s < piece.first_stage; ++s) begin += layout.units_per_stage[s];
    for (int s = piece.first_stage; s < piece.first_stage + piece.stages; ++s) {
      StageSpec spec;
      spec.index = s;
      spec.count = k;
      spec.replica = r;
      const size_t end = begin + layout.units_per_stage[s];
      if (s == 0) spec.frozen.assign(models[i].begin(), models[i].begin() + frozen);
      spec.units.assign(models[i].begin() + begin, models[i].begin() + end);
      spec.optimizer_state = optimizer_state;
      begin = end;
      spec.optimizer = optimizer;
      spec.reduce_group = groups(s, r);
      spec.threads = layout.threads_per_device;
      if (s == 0) spec.cache = layout.cache;
      // The planner's placement: replica r's pipeline on devices rK..rK+K-1.
      const int device = runtime::device_of_stage(placement, devices, s);
      spec.device = r * devices + device;
      spec.turn = turns[device];
      spec.events = layout.events;
      spec.transport = layout.transport;
      spec.buffers = layout.buffers;
      p.stages.push_back(spawn_stage(sys, std::move(spec), layout.detached));
    }
    for (size_t s = 0; s < p.stages.size(); ++s) {
      msg::stage_links links;
      if (s > 0) links.prev = p.stages[s - 1];
      if (s + 1 < p.stages.size()) links.next = p.stages[s + 1];
      if (v > 1)
        for (int o : runtime::stages_on_device(placement, devices, v, runtime::device_of_stage(placement, devices, int(s)))) {
          links.chunks.push_back(p.stages[o]);
          links.chunk_stages.push_back(o);
        }
      caf::anon_send(p.stages[s], links);
    }
    if (piece.stages == k)
      p.replica = spawn_replica(sys, {r, p.stages, train, test, layout.micro_batches, layout.schedule, layout.batches, v});
    out.push_back(std::move(p));
  }
  return out;
}

void shutdown(const std::vector<PipelineHandles>& pipelines) {
  for (const auto& p : pipelines) {
    if (p.replica) caf::anon_send_exit(p.replica, caf::exit_reason::user_shutdown);
    for (const auto& s : p.stages) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  }
}

}  // namespace floe::actors
