// The coordinator's failures and state: a failed step, the recovery from lost nodes (live
// from a surviving replica, or from the newest checkpoint), checkpoints and resuming from one,
// and the injected faults of a scenario.
#include "actors/coordinator_state.hpp"
#include "actors/fan_in.hpp"
#include "models/errors.hpp"
#include "runtime/control/recovery.hpp"
#include "runtime/control/step_boundary.hpp"
#include "runtime/state/init_weights.hpp"

#include <spdlog/spdlog.h>

#include <map>

namespace floe::actors::coord {

// A node that goes away: the job stops, or (recover = true, several nodes) the next step
// boundary recovers; a step in flight ends now (its replicas there will never answer).
void node_down(coord_ptr self, const caf::down_msg& d) {
  auto& st = self->state;
  for (auto it = st.joining.begin(); it != st.joining.end(); ++it)
    if (d.source == it->agent.address()) {
      spdlog::warn("node {} left before it joined the job ({})", it->name, self->system().render(d.reason));
      st.joining.erase(it);
      return;
    }
  for (const auto& n : st.nodes) {
    if (d.source != n.agent.address()) continue;
    const auto what = "node " + n.name + " left the job (" + self->system().render(d.reason) + ")";
    if (!st.spec.config.recover || st.nodes.size() < 2) return fail(self, what);
    spdlog::warn("{}", what);
    st.lost.insert(n.agent.address());
    if (auto abort = std::exchange(st.abort_pending, nullptr)) abort(what);
    return;
  }
}

void step_failed(coord_ptr self, const std::string& why, Continue next) {
  auto& st = self->state;
  if (st.nodes.size() < 2) return fail(self, why);
  std::vector<msg::node_actor> asked;  // the nodes not known lost: are they still there?
  for (const auto& n : st.nodes)
    if (!st.lost.count(n.agent.address())) asked.push_back(n.agent);
  auto decide = [=](const std::string&) {
    auto& s = self->state;
    s.abort_pending = nullptr;
    if (s.lost.empty()) return fail(self, why);
    if (!s.spec.config.recover) return fail(self, "node " + lost_names(self) + " left the job; " + why);
    spdlog::warn("{}", why);
    recover(self, next);
  };
  // A lost node does not answer the heartbeat within 3 s; its down message, arriving while
  // the others are asked, settles it at once (abort_pending).
  st.abort_pending = fan_in<bool>(self, asked, [](size_t) { return msg::heartbeat_atom::value; },
                                  {caf::duration{std::chrono::seconds(3)}, nullptr, [=] { decide(""); }, decide, nullptr,
                                   [=](size_t i, const caf::error&) -> std::optional<bool> {
                                     self->state.lost.insert(asked[i].address());
                                     return false;
                                   }});
}

namespace {

// Recovery when no replica survived: back to the newest valid checkpoint, re-planned over the
// nodes left. The steps since that checkpoint are trained again.
void recover_from_checkpoint(coord_ptr self, const std::string& names, int64_t start_us, Continue next) {
  auto& st = self->state;
  const auto start = clock_type::now();
  const auto dir = st.spec.config.checkpoint.dir;
  auto give_up = [=](const std::string& why) {
    fail(self, "node " + names + " left the job with every replica, and " + why);
  };
  if (dir.empty()) return give_up("there is no checkpoint.dir to recover from");
  runtime::TransitionRecord rec;
  rec.from = layout_of(st.plan);
  const int64_t lost_at = st.global_step;
  const auto history = st.summary.transitions;
  const auto resumed = std::make_pair(st.summary.resumed_from, st.summary.resumed_at_step);
  msg::named_tensors params, optimizer;
  runtime::ResumePoint at;
  try {
    std::vector<std::string> skipped;
    const auto ck = runtime::read_latest_checkpoint(dir, &skipped);
    for (const auto& why : skipped) spdlog::warn("skipping a damaged checkpoint: {}", why);
    at = resume_from(self, ck, nullptr, params, optimizer);
  } catch (const std::exception& e) {
    return give_up(std::string("no checkpoint to recover from: ") + e.what());
  }
  st.summary.transitions = history;
  std::tie(st.summary.resumed_from, st.summary.resumed_at_step) = resumed;
  rec.epoch = st.epoch;
  rec.step = st.global_step;
  rec.frozen_layers = st.plan.frozen_blocks;
  rec.to = layout_of(st.plan);
  rec.cause = "recovery: node " + names + " lost; from the checkpoint of step " + std::to_string(st.global_step);
  build_pipelines(
      self, st.plan, params, optimizer,
      [=, plan = st.plan](std::vector<PipelineHandles> fresh, Hosts hosts) {
        auto& s = self->state;
        install(self, std::move(fresh), std::move(hosts), plan);
        auto r = rec;
        r.seconds = since(start);
        s.summary.transitions.push_back(r);
        spdlog::warn("recovered from the checkpoint of step {} in {:.3f}s: K {}->{}, R {}->{}; steps {}..{} are trained "
                     "again", r.step, r.seconds, r.from.pipeline_length, r.to.pipeline_length, r.from.replicas,
                     r.to.replicas, r.step, lost_at);
        auto e = event(self, runtime::EventKind::transition, start_us);
        e.detail = "recovery";
        e.values = {{"from_R", r.from.replicas}, {"to_R", r.to.replicas}, {"redone", double(lost_at - r.step + 1)}};
        emit(self, std::move(e));
        next.restart(at);
      },
      [=](const std::string& why) {
        if (!self->state.lost.empty()) return recover_from_checkpoint(self, names, start_us, next);
        give_up("rebuilding from the checkpoint failed: " + why);
      });
}

}  // namespace

// Live recovery from lost nodes (state.lost): re-plans over the nodes left and rebuilds the
// pipelines from a surviving replica's weights and optimizer state, in memory. The step in
// flight is redone, unless the survivors had already applied it (runtime/control/recovery.hpp).
void recover(coord_ptr self, Continue next) {
  auto& st = self->state;
  if (st.concluding) return;
  const auto start = clock_type::now();
  const int64_t start_us = runtime::now_us();
  const auto names = lost_names(self);
  std::vector<NodeSlot> alive;
  std::vector<int> lost_nodes;
  std::map<caf::actor_addr, int> node_index;
  for (size_t n = 0; n < st.nodes.size(); ++n) {
    node_index[st.nodes[n].agent.address()] = static_cast<int>(n);
    if (st.lost.count(st.nodes[n].agent.address()))
      lost_nodes.push_back(static_cast<int>(n));
    else
      alive.push_back(st.nodes[n]);
  }
  st.lost.clear();
  if (names.empty()) return next.retry();  // only nodes recovered from before
  std::vector<std::vector<int>> hosts;
  for (const auto& agents : st.hosts) {
    hosts.emplace_back();
    for (const auto& a : agents) hosts.back().push_back(node_index.count(a) ? node_index[a] : -1);
  }
  const auto decision = runtime::plan_recovery(hosts, lost_nodes);
  st.nodes = alive;
  auto fault = event(self, runtime::EventKind::fault, start_us);
  fault.detail = "lost node " + names;
  emit(self, std::move(fault));
  if (decision.source < 0) {
    spdlog::warn("node {} left the job with every replica: recovering from the newest checkpoint", names);
    return recover_from_checkpoint(self, names, start_us, next);
  }
  spdlog::warn("recovering from the loss of node {} at step {}: {} of {} replicas survive, re-planning over {} node(s)",
               names, st.global_step, decision.survivors.size(), replicas(self), alive.size());
  runtime::TransitionRecord rec;
  rec.epoch = st.epoch;
  rec.from = layout_of(st.plan);
  // A freeze whose transition the loss interrupted is carried out now, with the recovery.
  const int frozen = std::max(st.plan.frozen_blocks, st.frozen_target);
  rec.frozen_layers = frozen;
  rec.cause = "recovery: node " + names + " lost";
  const auto plan = plan_for(self, frozen, st.plan.stages);
  rec.to = layout_of(plan);
  auto give_up = [=](const std::string& why) { fail(self, "recovering from the loss of node " + names + ": " + why); };
  collect_states(
      self, {decision.source},
      [=](std::vector<msg::stage_state>& states) {
        auto& s = self->state;
        const auto in_flight = runtime::step_in_flight(states[0].optimizer_steps, s.global_step);
        if (in_flight.what == runtime::InFlight::checkpoint) {
          spdlog::warn("{}: recovering from the newest checkpoint instead", in_flight.why);
          return recover_from_checkpoint(self, names, start_us, next);
        }
        if (in_flight.what == runtime::InFlight::inconsistent) return give_up(in_flight.why);
        const bool applied = in_flight.what == runtime::InFlight::applied;
        if (applied) {  // the survivors finished the step in flight: it counts, without its statistics
          ++s.step;
          ++s.global_step;
        }
        build_pipelines(
            self, plan, states[0].parameters, states[0].optimizer,
            [=](std::vector<PipelineHandles> fresh, Hosts hosts) {
              auto& s = self->state;
              install(self, std::move(fresh), std::move(hosts), plan);
              auto r = rec;
              r.step = s.global_step;
              r.seconds = since(start);
              s.summary.transitions.push_back(r);
              spdlog::warn("recovered in {:.3f}s: K {}->{}, R {}->{}; going on from step {}{}", r.seconds,
                           r.from.pipeline_length, r.to.pipeline_length, r.from.replicas, r.to.replicas, r.step,
                           applied ? " (the survivors had completed the step in flight)" : "");
              auto e = event(self, runtime::EventKind::transition, start_us);
              e.detail = "recovery";
              e.values = {{"from_R", r.from.replicas}, {"to_R", r.to.replicas}, {"from_K", r.from.pipeline_length},
                          {"to_K", r.to.pipeline_length}, {"redone", applied ? 0.0 : 1.0}};
              emit(self, std::move(e));
              next.retry();
            },
            [=](const std::string& why) {
              if (!self->state.lost.empty()) return recover(self, next);  // another node went meanwhile
              give_up(why);
            });
      },
      [=](const std::string& why) { give_up("the surviving replica's state: " + why); });
}

runtime::ResumePoint resume_from(coord_ptr self, const runtime::Checkpoint& ck, runtime::FreezePolicy* policy,
                                 msg::named_tensors& params, msg::named_tensors& optimizer) {
  auto& s = self->state;
  const auto& c = s.spec.config;
  const auto& j = ck.job;
  runtime::check_resumable(ck, c);
  if (j.frozen_blocks > c.model.depth || static_cast<int64_t>(j.block_grad_sq.size()) != c.model.depth)
    throw InputError("checkpoint " + ck.path + ": job.json does not fit a model of depth " + std::to_string(c.model.depth));
  params = named(runtime::model_weights(s.model, ck.parameters, "checkpoint " + ck.path + "/parameters.pt"));
  optimizer = msg::from_map(ck.optimizer);
  s.epoch = j.epoch;
  s.step = j.step;
  s.global_step = j.global_step;
  s.last_checkpoint_step = j.global_step;
  s.grad_window.restore(j.block_grad_sq);
  s.policy_state = j.policy_state;
  s.frozen_target = j.frozen_blocks;
  if (policy) policy->restore(j.policy_state);  // (in a recovery the controller keeps its own)
  const auto before = runtime::summary_from_json(j.summary_json);
  s.summary.epochs = before.epochs;
  s.summary.transitions = before.transitions;
  s.summary.resumed_from = ck.path;
  s.summary.resumed_at_step = j.global_step;
  const int k = static_cast<int>(j.units_per_stage.size()) / j.chunks;
  s.plan = plan_for(self, j.frozen_blocks, k);
  if (node_devices(self) == j.node_devices && s.plan.chunks == j.chunks) {
    s.plan.units_per_stage = j.units_per_stage;
    s.plan.stages = k;
    s.plan.micro_batches = j.micro_batches;
    s.plan.replicas = j.replicas;
  } else {
    spdlog::info("resuming on other devices (or chunks per device) than the checkpoint's: re-planned from K={} R={} to K={} R={}",
                 k, j.replicas, s.plan.stages, s.plan.replicas);
  }
  spdlog::info("resuming from {}: epoch {}, step {} of it (global step {}), {} blocks frozen", ck.path, j.epoch + 1,
               j.step, j.global_step, j.frozen_blocks);
  const auto at = runtime::resume_point(j, c.epochs);
  if (at.kind == runtime::ResumeKind::mid_epoch) {  // the epoch so far, so that its record comes out whole
    auto& sum = s.train.sum;
    sum = {};
    sum.loss_sum = j.loss_sum;
    sum.correct = j.correct;
    sum.samples = j.samples;
    sum.targets = j.targets;
    sum.stage_busy_seconds = j.busy;
    sum.seconds = j.makespan;
  }
  return at;
}

namespace {

// Where the job stands, for a checkpoint. `decided`: this epoch's freeze decision is made
// (false only at the job's end, before the next epoch's decision).
runtime::JobState job_state(coord_ptr self, bool decided) {
  auto& st = self->state;
  runtime::JobState j;
  j.epoch = st.epoch;
  j.step = decided ? st.step : 0;  // (at the end st.step counts evaluation batches)
  j.global_step = st.global_step;
  j.decided = decided;
  j.frozen_blocks = st.plan.frozen_blocks;
  j.units_per_stage = st.plan.units_per_stage;
  j.chunks = st.plan.chunks;
  j.micro_batches = st.plan.micro_batches;
  j.replicas = st.plan.replicas;
  j.node_devices = node_devices(self);
  j.block_grad_sq = st.grad_window.sums();
  j.policy_state = st.policy_state;
  if (decided) {
    const auto& sum = st.train.sum;
    j.loss_sum = sum.loss_sum;
    j.correct = sum.correct;
    j.samples = sum.samples;
    j.targets = sum.targets;
    j.busy = sum.stage_busy_seconds;
    j.makespan = sum.seconds;
    j.epoch_seconds = since(st.epoch_start);
  }
  j.summary_json = runtime::to_json(st.summary, -1);
  return j;
}

}  // namespace

bool checkpoint_due(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config.checkpoint;
  st.checkpoint_requested = runtime::take_checkpoint_request() || st.checkpoint_requested;
  runtime::CheckpointFacts f{!c.dir.empty(), st.checkpoint_requested, c.interval, st.global_step,
                             st.last_checkpoint_step};
  const bool due = runtime::checkpoint_due(f);
  if (st.checkpoint_requested && !due) {  // a request no checkpoint will answer is dropped
    if (c.dir.empty()) spdlog::warn("checkpoint asked for, but checkpoint.dir is not set: none written");
    st.checkpoint_requested = false;  // (or one was written at this very step)
  }
  return due;
}

// Writes a checkpoint of replica 0 (all replicas hold the same state) at this step boundary,
// then `then`. Training waits meanwhile; a checkpoint that cannot be written is logged and
// training goes on.
void checkpoint(coord_ptr self, bool decided, std::function<void()> then,
                std::shared_ptr<std::vector<msg::stage_state>> states) {
  auto& st = self->state;
  st.last_checkpoint_step = st.global_step;
  st.checkpoint_requested = false;
  const auto start = clock_type::now();
  const int64_t start_us = runtime::now_us();
  auto write = [=, job = job_state(self, decided)](std::vector<msg::stage_state>& got) {
    auto& s = self->state;
    runtime::Checkpoint ck;
    ck.job = job;
    ck.parameters = msg::to_map(got[0].parameters);
    ck.optimizer = msg::to_map(got[0].optimizer);
    auto cfg = s.spec.config;
    cfg.checkpoint.resume.clear();
    ck.config = runtime::to_overrides(cfg);
    try {
      const auto path = runtime::write_checkpoint(cfg.checkpoint.dir, ck, cfg.checkpoint.keep);
      const double seconds = since(start);
      ++s.summary.checkpoints;
      s.summary.checkpoint_seconds += seconds;
      spdlog::info("checkpoint {} written in {:.3f}s", path, seconds);
      auto e = event(self, runtime::EventKind::checkpoint, start_us);
      e.detail = path;
      emit(self, std::move(e));
    } catch (const std::exception& e) {
      spdlog::error("checkpoint at step {} not written: {}", job.global_step, e.what());
    }
    then();
  };
  if (states) return write(*states);
  collect_states(self, {0}, write, [=](const std::string& why) {
    spdlog::error("checkpoint at step {} not written: {}", self->state.global_step, why);
    then();
  });
}

bool fault_due(coord_ptr self, bool nodes_only) {
  auto& st = self->state;
  return std::any_of(st.faults.begin(), st.faults.end(), [&](const runtime::Fault& f) {
    return f.at_step <= st.global_step && (!nodes_only || f.node >= 0);
  });
}

// `nodes_only`: just the node kills (they fire before a freeze of the same step, scripted or
// at an epoch's end, so that they strike during its transition).
void apply_faults(coord_ptr self, bool nodes_only) {
  auto& st = self->state;
  auto due = std::stable_partition(st.faults.begin(), st.faults.end(), [&](const runtime::Fault& f) {
    return f.at_step > st.global_step || (nodes_only && f.node < 0);
  });
  for (auto it = due; it != st.faults.end(); ++it) {
    auto f = *it;
    auto e = event(self, runtime::EventKind::fault, runtime::now_us());
    e.replica = f.replica;
    e.stage = f.stage;
    e.detail = runtime::describe(f);
    if (f.kind == runtime::FaultKind::kill && f.node >= 0) {
      if (f.node < static_cast<int>(st.nodes.size())) {
        spdlog::warn("fault injected: {} ({})", e.detail, st.nodes[f.node].name);
        anon_send_exit(st.nodes[f.node].agent, caf::exit_reason::kill);
      } else {
        spdlog::warn("fault {} not applied: the job has {} node(s)", e.detail, st.nodes.size());
        e.detail += " (not applied: no such node)";
      }
    } else if (f.replica >= replicas(self) || f.stage >= static_cast<int>(st.pipelines[f.replica].stages.size())) {
      spdlog::warn("fault {} not applied: the plan has R={} K={}", e.detail, replicas(self), st.plan.stages);
      e.detail += " (not applied: no such stage)";
    } else if (f.kind == runtime::FaultKind::kill) {
      spdlog::warn("fault injected: {}", e.detail);
      if (f.stage < 0)
        anon_send_exit(st.pipelines[f.replica].replica, caf::exit_reason::kill);
      else
        anon_send_exit(st.pipelines[f.replica].stages[f.stage], caf::exit_reason::kill);
    } else {
      f.at_step = 0;  // due now
      self->send(st.pipelines[f.replica].stages[f.stage], f);
    }
    emit(self, std::move(e));
  }
  st.faults.erase(due, st.faults.end());
}

}  // namespace floe::actors::coord
