// The coordinator's pipelines: building them on the nodes (in pieces when they span nodes),
// collecting their state, installing them, and the live transitions between plans that
// freezes and node joins cause.
#include "actors/coordinator_state.hpp"
#include "actors/fan_in.hpp"
#include "runtime/plan/placement.hpp"
#include "runtime/train/sampler.hpp"

#include <spdlog/spdlog.h>

#include <numeric>

namespace floe::actors::coord {

void collect_states(coord_ptr self, std::vector<int> which, std::function<void(std::vector<msg::stage_state>&)> done,
                    std::function<void(const std::string&)> failed) {
  std::vector<msg::stage_actor> stages;
  std::vector<size_t> replica_of;  // per request, its index in `which`
  for (size_t i = 0; i < which.size(); ++i)
    for (const auto& stage : self->state.pipelines[which[i]].stages) {
      stages.push_back(stage);
      replica_of.push_back(i);
    }
  auto got = std::make_shared<std::vector<msg::stage_state>>(stages.size());
  self->state.abort_pending = fan_in<msg::stage_state>(
      self, stages, [](size_t) { return msg::export_atom::value; },
      {caf::duration{std::chrono::seconds(60)},
       [=](size_t i, msg::stage_state& s) {
         (*got)[i] = std::move(s);
         return std::string();
       },
       [=] {
         self->state.abort_pending = nullptr;
         std::vector<msg::stage_state> merged(which.size());
         for (size_t i = 0; i < got->size(); ++i) msg::add_to(merged[replica_of[i]], (*got)[i]);
         done(merged);
       },
       [=](const std::string& why) {
         self->state.abort_pending = nullptr;
         failed(why);
       }});
}

bool same_state(const msg::stage_state& a, const msg::stage_state& b) {
  for (auto [x, y] : {std::pair{&a.parameters, &b.parameters}, std::pair{&a.optimizer, &b.optimizer}}) {
    auto mx = msg::to_map(*x), my = msg::to_map(*y);
    if (mx.size() != my.size()) return false;
    for (auto& [name, t] : mx) {
      auto it = my.find(name);
      if (it == my.end() || !torch::equal(t, it->second)) return false;
    }
  }
  return true;
}

namespace {

// What the stages measure per block in training step `id` (global): the policy's signal;
// plasticity only every freeze.plasticity_steps steps.
int8_t step_signal(const CoordinatorState& st, int64_t id) {
  if (st.signal == runtime::BlockSignal::plasticity && (id + 1) % st.spec.config.freeze.plasticity_steps != 0) return 0;
  return static_cast<int8_t>(st.signal);
}

// A node's answer to a pipelines_request or pipelines_join, to stop if nobody takes it.
std::vector<PipelineHandles> handles_of(const msg::pipelines_built& b) {
  std::vector<PipelineHandles> got;
  for (const auto& r : b.replicas) got.push_back({r, {}});
  if (got.empty()) got.emplace_back();
  got.front().stages = b.stages;
  return got;
}

// The second round of build_pipelines for the pipelines that span nodes: every node that
// hosts a piece of one links its stages and spawns the replicas whose first stage it has.
void join_pieces(coord_ptr self, const runtime::Plan& plan, const std::vector<std::vector<int>>& where,
                 std::shared_ptr<std::vector<PipelineHandles>> built, std::vector<std::string> addresses,
                 std::function<void()> done, std::function<void(const std::string&)> give_up) {
  auto& st = self->state;
  msg::pipelines_join j;
  j.micro_batches = plan.micro_batches;
  std::set<int> hosting;
  for (int r = 0; r < plan.replicas; ++r) {
    if (!runtime::splits_pipelines({where[r]})) continue;
    j.replicas.push_back(r);
    for (int s = 0; s < plan.stages; ++s) {
      j.stages.push_back((*built)[r].stages[s]);
      j.addresses.push_back(addresses[where[r][s]]);
      hosting.insert(where[r][s]);
    }
  }
  const std::vector<int> nodes(hosting.begin(), hosting.end());
  std::vector<msg::node_actor> agents;
  for (int n : nodes) agents.push_back(st.nodes[n].agent);
  auto name = [=](size_t i) { return self->state.nodes[nodes[i]].name; };
  st.abort_pending = fan_in<msg::pipelines_built>(
      self, agents, [&](size_t) { return j; },
      {caf::duration{std::chrono::minutes(1)},
       [=](size_t i, msg::pipelines_built& b) {
         std::vector<int32_t> firsts;  // the replicas whose first stage is on this node, in request order
         for (int r : j.replicas)
           if (where[r][0] == nodes[i]) firsts.push_back(r);
         if (b.replicas.size() != firsts.size()) {
           shutdown(handles_of(b));
           return "node " + name(i) + ": joined " + std::to_string(b.replicas.size()) +
                  " pipelines that span nodes, expected " + std::to_string(firsts.size());
         }
         for (size_t k = 0; k < firsts.size(); ++k) (*built)[firsts[k]].replica = b.replicas[k];
         return std::string();
       },
       done, give_up, [=](size_t i, const caf::error& e) { return "node " + name(i) + ": " + self->system().render(e); },
       nullptr, [](msg::pipelines_built& b) { shutdown(handles_of(b)); }});
}

}  // namespace

// Places the pipelines of `plan` on the nodes, every replica starting from `params` and
// `optimizer`. `done` gets them in replica order, with the agents each one runs on; on a
// failure, whatever was spawned is stopped and `failed` gets the reason. A pipeline that
// spans nodes (pipeline.span_nodes) is built in pieces, one per node, which a second round
// (msg::pipelines_join) links across the nodes, spawning its replica where its first stage is.
void build_pipelines(coord_ptr self, const runtime::Plan& plan, const msg::named_tensors& params,
                     const msg::named_tensors& optimizer, Built done, std::function<void(const std::string&)> failed) {
  auto& st = self->state;
  // A node known lost would never answer (its process may be gone): recover first.
  if (!st.lost.empty()) return failed("node " + lost_names(self) + " left the job");
  std::vector<std::vector<int>> where;
  try {
    where = runtime::place_pipelines(node_devices(self), plan.stages, plan.replicas, st.spec.config.pipeline.span_nodes);
  } catch (const std::invalid_argument& e) {
    return failed(e.what());
  }
  Hosts hosts;
  for (const auto& nodes : where) {
    std::vector<caf::actor_addr> h;
    for (int n : nodes) h.push_back(st.nodes[n].agent.address());
    hosts.push_back(std::move(h));
  }
  auto per_node = runtime::pieces_per_node(where, st.nodes.size());
  // With v chunks per device a pipeline stays in one node (job_config refuses span_nodes):
  // its piece, counted in devices, holds K·v stages.
  for (auto& pieces : per_node)
    for (auto& p : pieces) p.first_stage *= plan.chunks, p.stages *= plan.chunks;
  auto built = std::make_shared<std::vector<PipelineHandles>>(plan.replicas);
  for (auto& p : *built) p.stages.resize(plan.stages * plan.chunks);
  auto addresses = std::make_shared<std::vector<std::string>>(st.nodes.size());
  ++st.generation;
  auto give_up = [=](const std::string& why) {
    self->state.abort_pending = nullptr;
    shutdown(*built);
    failed(why);
  };
  auto finish = [=] {
    self->state.abort_pending = nullptr;
    done(std::move(*built), hosts);
  };
  std::vector<int> nodes;  // those that host a piece
  std::vector<msg::node_actor> agents;
  for (size_t n = 0; n < st.nodes.size(); ++n)
    if (!per_node[n].empty()) {
      nodes.push_back(static_cast<int>(n));
      agents.push_back(st.nodes[n].agent);
    }
  auto request = [&](size_t i) {
    msg::pipelines_request q;
    q.pieces = per_node[nodes[i]];
    q.generation = st.generation;
    q.units_per_stage.assign(plan.units_per_stage.begin(), plan.units_per_stage.end());
    q.frozen_units = plan.frozen_units;
    q.micro_batches = plan.micro_batches;
    q.replicas = plan.replicas;
    q.chunks = plan.chunks;
    q.parameters = params;
    q.optimizer = optimizer;
    if (st.spans) q.events = st.bus;
    q.across_nodes = runtime::groups_span_nodes(where);
    return q;
  };
  auto name = [=](size_t i) { return self->state.nodes[nodes[i]].name; };
  st.abort_pending = fan_in<msg::pipelines_built>(
      self, agents, request,
      {caf::duration{std::chrono::minutes(5)},
       [=](size_t i, msg::pipelines_built& b) {
         const auto& pieces = per_node[nodes[i]];
         size_t stages = 0;
         for (const auto& p : pieces) stages += p.stages;
         if (b.replicas.size() != pieces.size() || b.stages.size() != stages) {
           shutdown(handles_of(b));
           return "node " + name(i) + ": answered with " + std::to_string(b.replicas.size()) + " pieces and " +
                  std::to_string(b.stages.size()) + " stages, expected " + std::to_string(pieces.size()) + " and " +
                  std::to_string(stages);
         }
         size_t next = 0;
         for (size_t k = 0; k < pieces.size(); ++k) {
           auto& p = (*built)[pieces[k].replica];
           if (b.replicas[k]) p.replica = b.replicas[k];
           for (int s = pieces[k].first_stage; s < pieces[k].first_stage + pieces[k].stages; ++s)
             p.stages[s] = b.stages[next++];
         }
         (*addresses)[nodes[i]] = std::move(b.tensor_address);
         return std::string();
       },
       [=, plan = plan] {
         if (!runtime::splits_pipelines(where)) return finish();
         join_pieces(self, plan, where, built, *addresses, finish, give_up);
       },
       give_up, [=](size_t i, const caf::error& e) { return "node " + name(i) + ": " + self->system().render(e); },
       nullptr, [](msg::pipelines_built& b) { shutdown(handles_of(b)); }});
}

// Switches training to freshly built pipelines; the old ones stop.
void install(coord_ptr self, std::vector<PipelineHandles> fresh, Hosts hosts, const runtime::Plan& plan) {
  auto& s = self->state;
  shutdown(s.pipelines);
  s.pipelines = std::move(fresh);
  s.hosts = std::move(hosts);
  s.plan = plan;
  // A sweep in progress was for the old pipelines; a K not profiled yet starts one.
  s.sweep.reset();
  if (s.profile && plan.stages > 1)
    if (const auto key = profile_key(self, plan); !s.profile->lookup(key)) s.sweep.emplace(plan.stages, key.batch);
}

// A transition is a transaction: the old pipelines keep running until the new ones exist;
// any failure before the switch leaves training on the old plan, with the reason recorded.
// `resume` continues training afterwards (the next epoch, or the rest of this one).
void transition(coord_ptr self, runtime::Plan next, std::function<void()> resume, std::string cause) {
  auto& st = self->state;
  const auto start = clock_type::now();
  const int64_t start_us = runtime::now_us();
  runtime::TransitionRecord rec;
  rec.epoch = st.epoch;
  rec.step = st.global_step;
  rec.from = layout_of(st.plan);
  rec.to = layout_of(next);
  rec.frozen_layers = next.frozen_blocks;
  rec.cause = std::move(cause);
  // One event per phase, and one for the whole (detail "") when it ends either way.
  auto phase = [=](const std::string& name, int64_t since_us) {
    auto e = event(self, runtime::EventKind::transition, since_us);
    e.detail = name;
    emit(self, std::move(e));
  };
  auto whole = [=](const runtime::TransitionRecord& r) {
    auto e = event(self, runtime::EventKind::transition, start_us);
    e.values = {{"frozen", r.frozen_layers}, {"from_K", r.from.pipeline_length}, {"to_K", r.to.pipeline_length},
                {"from_M", r.from.micro_batches}, {"to_M", r.to.micro_batches}, {"from_R", r.from.replicas},
                {"to_R", r.to.replicas}, {"ok", r.ok ? 1.0 : 0.0}};
    if (!r.ok) e.values["failed"] = 1;
    emit(self, std::move(e));
  };
  auto abort = [=](const std::string& why) {
    auto& s = self->state;
    auto r = rec;
    r.ok = false;
    r.error = why;
    r.seconds = since(start);
    s.summary.transitions.push_back(r);
    whole(r);
    spdlog::warn("transition to K={} M={} R={} failed, continuing on K={} M={} R={}: {}", r.to.pipeline_length,
                 r.to.micro_batches, r.to.replicas, r.from.pipeline_length, r.from.micro_batches, r.from.replicas, why);
    resume();
  };
  if (!st.lost.empty()) return abort("node " + lost_names(self) + " left the job");  // the next step recovers
  try {
    if (st.spec.transition_fault) st.spec.transition_fault("export");
  } catch (const std::exception& e) {
    return abort(std::string("export: ") + e.what());
  }
  collect_states(
      self, {0},
      [=](std::vector<msg::stage_state>& states) {
        auto& s = self->state;
        phase("export", start_us);
        const int64_t spawn_us = runtime::now_us();
        try {
          if (s.spec.transition_fault) s.spec.transition_fault("spawn");
        } catch (const std::exception& e) {
          return abort(std::string("spawn: ") + e.what());
        }
        build_pipelines(
            self, next, states[0].parameters, states[0].optimizer,
            [=](std::vector<PipelineHandles> fresh, Hosts hosts) {
              auto& s = self->state;
              install(self, std::move(fresh), std::move(hosts), next);
              phase("spawn", spawn_us);
              auto r = rec;
              r.seconds = since(start);
              s.summary.transitions.push_back(r);
              spdlog::info("transition ({}): F={} blocks frozen; K {}->{}, M {}->{}, R {}->{} in {:.3f}s", r.cause,
                           r.frozen_layers, r.from.pipeline_length, r.to.pipeline_length, r.from.micro_batches,
                           r.to.micro_batches, r.from.replicas, r.to.replicas, r.seconds);
              whole(r);
              resume();
            },
            [=](const std::string& why) { abort("spawn: " + why); });
      },
      [=](const std::string& why) { abort("export: " + why); });
}

void freeze_to(coord_ptr self, int frozen, std::function<void()> resume) {
  auto& s = self->state;
  frozen = std::clamp(frozen, s.plan.frozen_blocks, static_cast<int>(s.spec.config.model.depth));  // never unfreezes
  if (frozen == s.plan.frozen_blocks) return resume();
  s.frozen_target = frozen;
  auto e = event(self, runtime::EventKind::freeze, runtime::now_us());
  e.values = {{"frozen", frozen}, {"was", s.plan.frozen_blocks}};
  emit(self, std::move(e));
  transition(self, plan_for(self, frozen, s.plan.stages), std::move(resume));
}

// True when a node waits to join at this step.
bool joins_now(coord_ptr self) {
  auto& st = self->state;
  return std::any_of(st.joining.begin(), st.joining.end(), [&](auto& r) { return r.at_step <= st.global_step; });
}

// The nodes due to join do: re-planned over all nodes, which moves replicas onto them (a
// transition whose cause names them); then `resume`.
void admit(coord_ptr self, std::function<void()> resume) {
  auto& st = self->state;
  std::string names;
  auto due = std::stable_partition(st.joining.begin(), st.joining.end(),
                                   [&](auto& r) { return r.at_step > st.global_step; });
  for (auto it = due; it != st.joining.end(); ++it) {
    names += (names.empty() ? "" : ", ") + it->name;
    st.nodes.push_back({it->agent, it->devices, it->name});
  }
  st.joining.erase(due, st.joining.end());
  auto e = event(self, runtime::EventKind::fault, runtime::now_us());
  e.detail = "node " + names + " joined";
  emit(self, std::move(e));
  // From K0, as the job's plan on these nodes would be: a pipeline that a lost node shortened
  // grows back when a node large enough comes.
  const auto next = plan_for(self, std::max(st.plan.frozen_blocks, st.frozen_target), st.spec.config.pipeline.length);
  const auto devices = node_devices(self);
  const int total = std::accumulate(devices.begin(), devices.end(), 0);
  if (next.units_per_stage == st.plan.units_per_stage && next.micro_batches == st.plan.micro_batches &&
      next.replicas == st.plan.replicas && next.chunks == st.plan.chunks) {
    spdlog::info("node {} joined the job ({} node(s), {} devices); the plan stays K={} R={} until the next re-plan",
                 names, st.nodes.size(), total, st.plan.stages, st.plan.replicas);
    return resume();
  }
  spdlog::info("node {} joined the job ({} node(s), {} devices): re-planning", names, st.nodes.size(), total);
  transition(self, next, std::move(resume), "join: node " + names);
}

// Sends each replica its shard of one global batch; calls `done` with the joined report.
// When a replica fails, `failed` gets the reason instead, once; so it does when the step is
// aborted through state.abort_pending (a node left while it was in flight).
void dispatch(coord_ptr self, bool train, double lr, int64_t batch, int micro_batches,
              std::function<void(msg::step_report&)> done, std::function<void(const std::string&)> failed) {
  auto& st = self->state;
  const int r = replicas(self);
  const int64_t global = std::min<int64_t>(batch, static_cast<int64_t>(st.order.size()) - st.step * batch);
  const double limit = st.spec.config.step_timeout;
  const caf::duration timeout = limit > 0 ? caf::duration{std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::duration<double>(limit))}
                                          : caf::infinite;
  // Training steps are named by the global step, so that events and faults count across epochs.
  const int64_t id = train ? st.global_step : st.step;
  const std::string what_step = std::string(train ? "training" : "evaluation") + " step " + std::to_string(id);
  std::vector<msg::replica_actor> to;
  for (const auto& p : st.pipelines) to.push_back(p.replica);
  auto reports = std::make_shared<std::vector<msg::step_report>>(r);
  const auto block_lr = train ? st.anneal.at(id) : std::vector<double>{};
  st.abort_pending = fan_in<msg::step_report>(
      self, to,
      [&](size_t i) {
        return msg::replica_step{id, train, lr, runtime::shard_of_step(st.order, st.step, batch, static_cast<int>(i), r),
                                 global, train ? step_signal(st, id) : int8_t{0}, st.epoch, micro_batches,
                                 !train && static_cast<bool>(st.spec.predictions),
                                 static_cast<int8_t>(runtime::parse_taper(st.spec.config.pipeline.taper)), block_lr};
      },
      {timeout,
       [=](size_t i, msg::step_report& rep) {
         (*reports)[i] = std::move(rep);
         return std::string();
       },
       [=] {
         self->state.abort_pending = nullptr;
         msg::step_report joined;
         for (const auto& rep : *reports) msg::add_to(joined, rep);
         done(joined);
       },
       [=](const std::string& why) {
         self->state.abort_pending = nullptr;
         failed(what_step + ": " + why);
       },
       [=](size_t i, const caf::error& e) {
         const std::string what = e == caf::sec::request_timeout
                                      ? "did not answer within step_timeout = " + std::to_string(limit) +
                                            " s (a stage is hung or a message was lost)"
                                  : e == caf::sec::request_receiver_down
                                      ? "is gone, or one of its stages is (request_receiver_down)"
                                      : self->system().render(e);
         return "replica " + std::to_string(i) + " " + what;
       }});
}

}  // namespace floe::actors::coord
