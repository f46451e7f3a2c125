#include "actors/coordinator.hpp"

#include "actors/event_bus.hpp"
#include "actors/freeze_controller.hpp"
#include "actors/node_agent.hpp"
#include "runtime/checkpoint.hpp"
#include "runtime/errors.hpp"
#include "runtime/hf_checkpoint.hpp"
#include "runtime/lr_schedule.hpp"
#include "runtime/microbatch_profile.hpp"
#include "runtime/placement.hpp"
#include "runtime/sampler.hpp"
#include "runtime/state_dict.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <optional>
#include <set>

namespace floe::actors {
namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

// What one epoch (or its evaluation) added up to.
struct Totals {
  double loss_sum = 0;
  int64_t correct = 0, samples = 0, targets = 0;
  std::vector<double> busy;  // per pipeline position, summed over replicas
  double makespan = 0;       // the replicas' step times, summed

  void add(const msg::step_report& r) {
    makespan += r.seconds;
    loss_sum += r.loss_sum;
    correct += r.correct;
    samples += r.samples;
    targets += r.targets;
    if (busy.size() < r.stage_busy_seconds.size()) busy.resize(r.stage_busy_seconds.size(), 0.0);
    for (size_t i = 0; i < r.stage_busy_seconds.size(); ++i) busy[i] += r.stage_busy_seconds[i];
  }
  double mean_loss() const { return targets ? loss_sum / targets : 0; }
  double accuracy() const { return targets ? double(correct) / targets : 0; }
};

struct CoordinatorState {
  static inline const char* name = "floe.coordinator";
  CoordinatorSpec spec;
  models::UnitList model;  // unit names, blocks and sizes for planning (replica 0's at start)
  runtime::Plan plan;
  std::vector<PipelineHandles> pipelines;
  std::vector<std::vector<caf::actor_addr>> hosts;  // per replica: the agents of the nodes it runs on
  msg::freeze_controller_actor freezer;
  bool grad_norms = false;  // the freeze policy reads per-block gradient norms
  std::vector<NodeSlot> nodes;  // where the pipelines run (each has its AutoCache)
  int64_t generation = 0;       // pipeline sets built so far (names their gradient groups)
  bool concluding = false;      // the result is on its way: later failures change nothing
  std::set<caf::actor_addr> lost;  // agents of nodes gone, not yet recovered from
  std::vector<msg::node_ready> joining;  // nodes ready to join the job at a step boundary
  // Ends what is in flight towards the nodes (a step, a build, a state collection) when a node
  // leaves: its answers would never come. Set while something is in flight.
  std::function<void(const std::string&)> abort_pending;
  runtime::CacheStats cache_before;  // at the start of the epoch
  runtime::WarmupCosine lr;
  std::vector<int64_t> order;  // this epoch's sample order
  std::vector<int64_t> lengths;  // tokens per training text (data.length_buckets), computed once
  int epoch = 0;
  int64_t step = 0;  // within the epoch (training) or evaluation batch
  int64_t steps_in_epoch = 0;
  int64_t global_step = 0;
  int64_t eval_start_us = 0, epoch_start_us = 0;
  Totals train, eval;
  std::vector<double> block_grad_sq;  // per block, over the current freeze interval
  std::vector<double> policy_state;   // the freeze policy's, after its last decision
  int frozen_target = 0;  // the last freeze decided (a transition to it may have failed)
  int64_t last_checkpoint_step = -1;  // global step of the last checkpoint written or resumed from
  bool checkpoint_requested = false;  // by a checkpoint_atom
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

int replicas(coord_ptr self) { return static_cast<int>(self->state.pipelines.size()); }

runtime::Layout layout_of(const runtime::Plan& p) { return {p.stages, p.micro_batches, p.replicas}; }

void emit(coord_ptr self, runtime::Event e) {
  if (self->state.observed) self->send(self->state.bus, msg::event_batch{{std::move(e)}});
}

runtime::Event event(coord_ptr self, runtime::EventKind kind, int64_t start_us) {
  runtime::Event e;
  e.kind = kind;
  e.start_us = start_us;
  e.duration_us = runtime::now_us() - start_us;
  e.epoch = self->state.epoch;
  e.step = self->state.global_step;
  return e;
}

// Ends the job: the observers write everything out first, then the caller hears the result.
// The node agents stop when the coordinator does (see start).
template <class Result>
void conclude(coord_ptr self, Result result) {
  if (self->state.concluding) return;
  self->state.concluding = true;
  shutdown(self->state.pipelines);
  auto deliver = [=]() mutable {
    anon_send_exit(self->state.freezer, caf::exit_reason::user_shutdown);
    self->state.promise.deliver(std::move(result));
    anon_send_exit(self->state.bus, caf::exit_reason::user_shutdown);
    self->quit();
  };
  if (!self->state.observed) return deliver();
  self->request(self->state.bus, std::chrono::seconds(180), msg::flush_atom::value)
      .then([=](bool) mutable { deliver(); }, [=](caf::error&) mutable { deliver(); });
}

void fail(coord_ptr self, caf::error err) {
  if (self->state.concluding) return;
  spdlog::error("training stopped: {}", self->system().render(err));
  auto e = event(self, runtime::EventKind::fault, runtime::now_us());
  e.detail = "training stopped: " + self->system().render(err);
  emit(self, std::move(e));
  conclude(self, std::move(err));
}

// Sends each replica its shard of one global batch; calls `done` with the joined report.
// When a replica fails, `failed` gets the reason instead, once; so it does when the step is
// aborted through state.abort_pending (a node left while it was in flight).
template <class Done, class Failed>
void dispatch(coord_ptr self, bool train, double lr, const std::vector<int64_t>& order, int64_t step,
              int64_t batch, int micro_batches, Done done, Failed failed_with) {
  const int r = replicas(self);
  auto joined = std::make_shared<msg::step_report>();
  auto pending = std::make_shared<int>(r);
  auto failed = std::make_shared<bool>(false);
  const int64_t global = std::min<int64_t>(batch, static_cast<int64_t>(order.size()) - step * batch);
  const double limit = self->state.spec.config.step_timeout;
  const caf::duration timeout = limit > 0 ? caf::duration{std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::duration<double>(limit))}
                                          : caf::infinite;
  // Training steps are named by the global step, so that events and faults count across epochs.
  const int64_t id = train ? self->state.global_step : step;
  const std::string what_step = std::string(train ? "training" : "evaluation") + " step " + std::to_string(id);
  self->state.abort_pending = [=](const std::string& why) {
    if (*failed) return;
    *failed = true;
    failed_with(what_step + ": " + why);
  };
  for (int i = 0; i < r; ++i) {
    msg::replica_step rs{id, train, lr, runtime::shard_of_step(order, step, batch, i, r), global,
                         train && self->state.grad_norms, self->state.epoch, micro_batches};
    self->request(self->state.pipelines[i].replica, timeout, std::move(rs))
        .then(
            [=](msg::step_report& rep) {
              if (*failed) return;
              joined->seconds += rep.seconds;
              joined->loss_sum += rep.loss_sum;
              joined->correct += rep.correct;
              joined->samples += rep.samples;
              joined->targets += rep.targets;
              if (joined->stage_busy_seconds.size() < rep.stage_busy_seconds.size())
                joined->stage_busy_seconds.resize(rep.stage_busy_seconds.size(), 0.0);
              for (size_t s = 0; s < rep.stage_busy_seconds.size(); ++s)
                joined->stage_busy_seconds[s] += rep.stage_busy_seconds[s];
              if (i == 0) {  // gradients are all-reduced: every replica sees the same norms
                joined->blocks = rep.blocks;
                joined->block_grad_sq = rep.block_grad_sq;
              }
              if (--*pending == 0) {
                self->state.abort_pending = nullptr;
                done(*joined);
              }
            },
            [=](caf::error& e) {
              if (*failed) return;
              *failed = true;
              const std::string what = e == caf::sec::request_timeout
                                           ? "did not answer within step_timeout = " + std::to_string(limit) +
                                                 " s (a stage is hung or a message was lost)"
                                       : e == caf::sec::request_receiver_down
                                           ? "is gone, or one of its stages is (request_receiver_down)"
                                           : self->system().render(e);
              self->state.abort_pending = nullptr;
              failed_with(what_step + ": replica " + std::to_string(i) + " " + what);
            });
  }
}

// Collects every stage's exported state of the given replicas, merged per replica.
template <class Done, class Failed>
void collect_states(coord_ptr self, std::vector<int> which, Done done, Failed failed) {
  auto merged = std::make_shared<std::vector<msg::stage_state>>(which.size());
  auto pending = std::make_shared<size_t>(0);
  auto gave_up = std::make_shared<bool>(false);
  for (int r : which) *pending += self->state.pipelines[r].stages.size();
  self->state.abort_pending = [=](const std::string& why) {
    if (*gave_up) return;
    *gave_up = true;
    failed(why);
  };
  for (size_t i = 0; i < which.size(); ++i)
    for (auto& stage : self->state.pipelines[which[i]].stages)
      self->request(stage, std::chrono::seconds(60), msg::export_atom::value)
          .then(
              [=](msg::stage_state& s) {
                if (*gave_up) return;
                auto& m = (*merged)[i];
                for (auto* part : {&s.parameters, &s.optimizer}) {
                  auto& dst = part == &s.parameters ? m.parameters : m.optimizer;
                  dst.names.insert(dst.names.end(), part->names.begin(), part->names.end());
                  dst.values.insert(dst.values.end(), part->values.begin(), part->values.end());
                }
                if (--*pending == 0) {
                  self->state.abort_pending = nullptr;
                  done(*merged);
                }
              },
              [=](caf::error& e) {
                if (*gave_up) return;
                *gave_up = true;
                self->state.abort_pending = nullptr;
                failed(self->system().render(e));
              });
}

// The names of the nodes in state.lost, "a, b".
std::string lost_names(coord_ptr self) {
  auto& st = self->state;
  std::string names;
  for (const auto& n : st.nodes)
    if (st.lost.count(n.agent.address())) names += (names.empty() ? "" : ", ") + n.name;
  return names;
}

bool identical(const msg::stage_state& a, const msg::stage_state& b) {
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

std::vector<int> node_devices(coord_ptr self) {
  std::vector<int> out;
  for (const auto& n : self->state.nodes) out.push_back(n.devices);
  return out;
}

// What the micro-batch profile keys `plan`'s M by: the model, the samples per replica and K.
runtime::ProfileKey profile_key(coord_ptr self, const runtime::Plan& plan) {
  const auto& c = self->state.spec.config;
  const auto& m = c.model;
  return {fmt::format("{}; {} thread(s) per device", models::describe(m), c.threads_per_device),
          (c.batch_size + plan.replicas - 1) / plan.replicas, plan.stages};
}

// The plan for `frozen` blocks on the nodes' devices, as they are now: after a node is lost
// (or on resume elsewhere), a pipeline longer than the largest node is shortened to fit it
// (unless pipelines may span nodes).
// With the micro-batch profiler on, M is the profiled one where this K has been profiled.
runtime::Plan plan_for(coord_ptr self, int frozen, int current_stages) {
  auto q = plan_request(self->state.spec.config, self->state.model, frozen, current_stages);
  const auto devices = node_devices(self);
  q.devices = std::accumulate(devices.begin(), devices.end(), 0);
  if (self->state.spec.config.pipeline.span_nodes) {  // one sequence of devices
    q.current_stages = std::min(current_stages, q.devices);
  } else {
    q.node_devices = devices;
    q.current_stages = std::min(current_stages, *std::max_element(devices.begin(), devices.end()));
  }
  auto plan = runtime::make_plan(q);
  if (const auto& profile = self->state.profile; profile && plan.stages > 1)
    plan.micro_batches = profile->lookup(profile_key(self, plan)).value_or(plan.micro_batches);
  return plan;
}

// A profiled training step took `seconds`; the sweep's end sets M and keeps it in the profile.
void profiled(coord_ptr self, double seconds) {
  auto& st = self->state;
  if (!st.sweep) return;
  st.sweep->record(seconds);
  if (!st.sweep->done()) return;
  const auto key = profile_key(self, st.plan);
  st.plan.micro_batches = st.sweep->best();
  std::string tried;
  for (const auto& [m, s] : st.sweep->results()) tried += fmt::format("{}M={} {:.3f}s", tried.empty() ? "" : ", ", m, s);
  spdlog::info("micro-batch profile, K={} with {} samples per replica: M={} (fastest step: {})", key.stages, key.batch,
               st.plan.micro_batches, tried);
  if (const auto why = st.profile->store(key, *st.sweep); !why.empty())
    spdlog::warn("the micro-batch profile is kept for this run only: {}", why);
  st.sweep.reset();
}

// Per replica, the agents of the nodes its stages run on.
using Hosts = std::vector<std::vector<caf::actor_addr>>;
using Built = std::function<void(std::vector<PipelineHandles>, Hosts hosts)>;

// The second round of build_pipelines for the pipelines that span nodes: every node that
// hosts a piece of one links its stages and spawns the replicas whose first stage it has.
void join_pieces(coord_ptr self, const runtime::Plan& plan, const std::vector<std::vector<int>>& where,
                 std::shared_ptr<std::vector<PipelineHandles>> built, std::vector<std::string> addresses,
                 std::function<void()> done, std::function<void(const std::string&)> give_up) {
  auto& st = self->state;
  msg::pipelines_join j;
  j.micro_batches = plan.micro_batches;
  std::set<int> nodes;
  for (int r = 0; r < plan.replicas; ++r) {
    if (!runtime::splits_pipelines({where[r]})) continue;
    j.replicas.push_back(r);
    for (int s = 0; s < plan.stages; ++s) {
      j.stages.push_back((*built)[r].stages[s]);
      j.addresses.push_back(addresses[where[r][s]]);
      nodes.insert(where[r][s]);
    }
  }
  auto pending = std::make_shared<size_t>(nodes.size());
  for (int n : nodes) {
    const auto name = st.nodes[n].name;
    std::vector<int32_t> firsts;  // the replicas whose first stage is on node n, in request order
    for (int r : j.replicas)
      if (where[r][0] == n) firsts.push_back(r);
    self->request(st.nodes[n].agent, std::chrono::minutes(1), j)
        .then(
            [=](msg::pipelines_built& b) {
              if (b.replicas.size() != firsts.size()) {
                for (auto& r : b.replicas)
                  if (r) anon_send_exit(r, caf::exit_reason::user_shutdown);
                return give_up("node " + name + ": joined " + std::to_string(b.replicas.size()) +
                               " pipelines that span nodes, expected " + std::to_string(firsts.size()));
              }
              for (size_t i = 0; i < firsts.size(); ++i) (*built)[firsts[i]].replica = b.replicas[i];
              if (--*pending == 0) done();
            },
            [=](caf::error& e) { give_up("node " + name + ": " + self->system().render(e)); });
  }
}

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
  const auto per_node = runtime::pieces_per_node(where, st.nodes.size());
  auto built = std::make_shared<std::vector<PipelineHandles>>(plan.replicas);
  for (auto& p : *built) p.stages.resize(plan.stages);
  auto addresses = std::make_shared<std::vector<std::string>>(st.nodes.size());
  auto pending = std::make_shared<size_t>(0);
  auto gave_up = std::make_shared<bool>(false);
  ++st.generation;
  auto give_up = [=](const std::string& why) {
    if (*gave_up) return;
    *gave_up = true;
    self->state.abort_pending = nullptr;
    shutdown(*built);
    failed(why);
  };
  st.abort_pending = give_up;
  auto finish = [=] {
    self->state.abort_pending = nullptr;
    done(std::move(*built), hosts);
  };
  for (size_t n = 0; n < st.nodes.size(); ++n) {
    if (per_node[n].empty()) continue;
    msg::pipelines_request q;
    q.pieces = per_node[n];
    q.generation = st.generation;
    q.units_per_stage.assign(plan.units_per_stage.begin(), plan.units_per_stage.end());
    q.frozen_units = plan.frozen_units;
    q.micro_batches = plan.micro_batches;
    q.replicas = plan.replicas;
    q.parameters = params;
    q.optimizer = optimizer;
    if (st.spans) q.events = st.bus;
    q.across_nodes = runtime::groups_span_nodes(where);
    ++*pending;
    const auto name = st.nodes[n].name;
    self->request(st.nodes[n].agent, std::chrono::minutes(5), q)
        .then(
            [=, pieces = q.pieces](msg::pipelines_built& b) {
              std::vector<PipelineHandles> got;  // what came, to stop if anything is wrong
              for (auto& r : b.replicas) got.push_back({r, {}});
              if (got.empty()) got.emplace_back();
              got.front().stages = b.stages;
              if (*gave_up) return shutdown(got);
              size_t stages = 0;
              for (const auto& p : pieces) stages += p.stages;
              if (b.replicas.size() != pieces.size() || b.stages.size() != stages) {
                shutdown(got);
                return give_up("node " + name + ": answered with " + std::to_string(b.replicas.size()) + " pieces and " +
                               std::to_string(b.stages.size()) + " stages, expected " + std::to_string(pieces.size()) +
                               " and " + std::to_string(stages));
              }
              size_t next = 0;
              for (size_t i = 0; i < pieces.size(); ++i) {
                auto& p = (*built)[pieces[i].replica];
                if (b.replicas[i]) p.replica = b.replicas[i];
                for (int s = pieces[i].first_stage; s < pieces[i].first_stage + pieces[i].stages; ++s)
                  p.stages[s] = b.stages[next++];
              }
              (*addresses)[n] = std::move(b.tensor_address);
              if (--*pending > 0) return;
              if (!runtime::splits_pipelines(where)) return finish();
              join_pieces(self, plan, where, built, *addresses, finish, give_up);
            },
            [=](caf::error& e) { give_up("node " + name + ": " + self->system().render(e)); });
  }
}

void begin_epoch(coord_ptr self);

// Switches training to freshly built pipelines; the old ones stop.
void install(coord_ptr self, std::vector<PipelineHandles> fresh, Hosts hosts,
             const runtime::Plan& plan) {
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
void transition(coord_ptr self, runtime::Plan next, std::function<void()> resume, std::string cause = "freeze") {
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

// Re-plans for `frozen` blocks and switches if that changes anything; then `resume`.
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

void apply_faults(coord_ptr self, bool nodes_only = false);

// At a freeze decision point: ask the controller, re-plan, and switch if the plan changed.
void next_epoch(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  if (!st.faults.empty()) apply_faults(self, true);  // node kills due strike during the freeze's transition
  if (st.epoch % c.freeze.interval != 0 || st.plan.frozen_blocks >= c.model.depth) return begin_epoch(self);
  msg::freeze_query q{st.epoch, st.global_step, st.plan.frozen_blocks, static_cast<int32_t>(c.model.depth), {}};
  for (double sq : st.block_grad_sq) q.grad_norms.push_back(std::sqrt(sq));
  std::fill(st.block_grad_sq.begin(), st.block_grad_sq.end(), 0.0);
  self->request(st.freezer, std::chrono::seconds(60), q)
      .then(
          [=](msg::freeze_decision& d) {
            self->state.policy_state = d.policy_state;
            freeze_to(self, d.frozen, [=] { begin_epoch(self); });
          },
          [=](caf::error& e) { fail(self, e); });
}

int64_t eval_batch(const runtime::JobConfig& c) { return std::max<int64_t>(c.batch_size, 500); }

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
  j.micro_batches = st.plan.micro_batches;
  j.replicas = st.plan.replicas;
  j.node_devices = node_devices(self);
  j.block_grad_sq = st.block_grad_sq;
  j.policy_state = st.policy_state;
  if (decided) {
    j.loss_sum = st.train.loss_sum;
    j.correct = st.train.correct;
    j.samples = st.train.samples;
    j.targets = st.train.targets;
    j.busy = st.train.busy;
    j.makespan = st.train.makespan;
    j.epoch_seconds = since(st.epoch_start);
  }
  j.summary_json = runtime::to_json(st.summary, -1);
  return j;
}

// Writes a checkpoint of replica 0 (all replicas hold the same state) at this step boundary,
// then `then`. Training waits meanwhile; a checkpoint that cannot be written is logged and
// training goes on. `states`, when given, are replica 0's already collected.
void checkpoint(coord_ptr self, bool decided, std::function<void()> then,
                std::shared_ptr<std::vector<msg::stage_state>> states = nullptr) {
  auto& st = self->state;
  st.last_checkpoint_step = st.global_step;
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

bool checkpoint_due(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config.checkpoint;
  const bool asked = runtime::take_checkpoint_request() || std::exchange(st.checkpoint_requested, false);
  if (c.dir.empty()) {
    if (asked) spdlog::warn("checkpoint asked for, but checkpoint.dir is not set: none written");
    return false;
  }
  if (st.global_step == st.last_checkpoint_step) return false;
  return asked || (c.interval > 0 && st.global_step > 0 && st.global_step % c.interval == 0);
}

void finish(coord_ptr self) {
  auto& st = self->state;
  st.summary.total_seconds = since(st.job_start);
  st.summary.steps = st.global_step;
  if (!st.summary.epochs.empty()) {
    st.summary.final_test_accuracy = st.summary.epochs.back().test_accuracy;
    st.summary.final_test_loss = st.summary.epochs.back().test_loss;
  }
  const auto path = st.spec.config.save_weights;
  const bool final_checkpoint = !st.spec.config.checkpoint.dir.empty();
  if (path.empty() && !final_checkpoint) return conclude(self, st.summary);
  collect_states(
      self, {0},
      [=](std::vector<msg::stage_state>& states) {
        if (!path.empty()) {
          try {
            runtime::save_weights(path, msg::to_map(states[0].parameters), st.spec.config);
          } catch (const std::exception& e) {
            return fail(self, caf::make_error(caf::sec::runtime_error, std::string("save_weights: ") + e.what()));
          }
          spdlog::info("weights written to {}", path);
        }
        auto done = [=] { conclude(self, self->state.summary); };
        if (!final_checkpoint) return done();
        checkpoint(self, false, done, std::make_shared<std::vector<msg::stage_state>>(states));
      },
      [=](const std::string& why) { fail(self, caf::make_error(caf::sec::runtime_error, "final weights: " + why)); });
}

void end_epoch(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  runtime::EpochRecord rec;
  rec.epoch = st.epoch;
  rec.train_loss = st.train.mean_loss();
  rec.train_accuracy = st.train.accuracy();
  rec.test_loss = st.eval.mean_loss();
  rec.test_accuracy = st.eval.accuracy();
  rec.seconds = since(st.epoch_start);
  rec.train_seconds = st.train_seconds;
  rec.samples = st.train.samples;
  rec.samples_per_second = st.train_seconds > 0 ? st.train.samples / st.train_seconds : 0;
  rec.pipeline_length = st.plan.stages;
  rec.replicas = replicas(self);
  rec.micro_batches = st.plan.micro_batches;
  rec.frozen_layers = st.plan.frozen_blocks;
  for (double b : st.train.busy) rec.stage_busy_fraction.push_back(b / (replicas(self) * std::max(1e-9, st.train_seconds)));
  rec.stage_bubble_fraction = runtime::bubble_fractions(st.train.busy, st.train.makespan);
  spdlog::info("epoch {}/{}  train loss {:.4f}  train acc {:.2f}%  test loss {:.4f}  test acc {:.2f}%  {:.0f} samples/s  "
               "{:.1f}s  K={} M={} R={} frozen={}",
               rec.epoch + 1, c.epochs, rec.train_loss, 100 * rec.train_accuracy, rec.test_loss, 100 * rec.test_accuracy,
               rec.samples_per_second, rec.seconds, rec.pipeline_length, rec.micro_batches, rec.replicas,
               rec.frozen_layers);
  auto advance = [=](runtime::EpochRecord r) {
    auto& s = self->state;
    auto e = event(self, runtime::EventKind::epoch, s.epoch_start_us);
    e.values = {{"train_loss", r.train_loss},   {"train_accuracy", r.train_accuracy},
                {"test_loss", r.test_loss},     {"test_accuracy", r.test_accuracy},
                {"samples", r.samples},         {"samples_per_second", r.samples_per_second},
                {"train_seconds", r.train_seconds}, {"K", r.pipeline_length},
                {"M", r.micro_batches},         {"R", r.replicas},
                {"frozen", r.frozen_layers}};
    e.per_stage = r.stage_bubble_fraction;
    emit(self, std::move(e));
    if (r.cached) {
      auto c = event(self, runtime::EventKind::cache, runtime::now_us());
      c.values = {{"hits", r.cache.hits}, {"misses", r.cache.misses}, {"advanced", r.cache.advanced},
                  {"rejected", r.cache.rejected}, {"evicted", r.cache.evicted},
                  {"memory_bytes", r.cache.memory_bytes}, {"disk_bytes", r.cache.disk_bytes},
                  {"advance_seconds", r.cache.advance_seconds}};
      emit(self, std::move(c));
    }
    s.summary.epochs.push_back(r);
    if (s.spec.evaluate_only) return finish(self);
    if (++s.epoch < s.spec.config.epochs)
      next_epoch(self);
    else
      finish(self);
  };
  auto verify = [=](runtime::EpochRecord rec) {
    auto& s = self->state;
    if (!s.spec.verify_replicas) return advance(rec);
    std::vector<int> all(replicas(self));
    std::iota(all.begin(), all.end(), 0);
    collect_states(
        self, all,
        [=](std::vector<msg::stage_state>& states) {
          auto r = rec;
          r.replicas_identical = 1;
          for (size_t i = 1; i < states.size(); ++i)
            if (!identical(states[0], states[i])) r.replicas_identical = 0;
          advance(r);
        },
        [=](const std::string& why) { fail(self, caf::make_error(caf::sec::runtime_error, why)); });
  };
  if (!c.cache.enabled) return verify(rec);
  auto answers = std::make_shared<std::vector<runtime::CacheStats>>();
  for (const auto& node : st.nodes)
    self->request(node.agent, std::chrono::seconds(60), msg::cache_stats_atom::value)
        .then(
            [=](runtime::CacheStats& one) {
              answers->push_back(one);
              if (answers->size() < self->state.nodes.size()) return;
              const auto now = runtime::cache_sum(*answers);
              auto r = rec;
              r.cached = true;
              r.cache = runtime::cache_delta(now, self->state.cache_before);
              self->state.cache_before = now;
              if (r.cache.hits + r.cache.misses + r.cache.advanced > 0)
                spdlog::info("cache: {} hits, {} advanced, {} computed, {} not admitted; {:.0f} MiB in memory, "
                             "{:.0f} MiB on disk",
                             r.cache.hits, r.cache.advanced, r.cache.misses, r.cache.rejected,
                             r.cache.memory_bytes / 1048576.0, r.cache.disk_bytes / 1048576.0);
              verify(r);
            },
            [=](caf::error& e) { fail(self, e); });
}

std::function<void()> resume_from(coord_ptr self, const runtime::Checkpoint& ck, runtime::FreezePolicy* policy,
                                  msg::named_tensors& params, msg::named_tensors& optimizer);

// Recovery when no replica survived: back to the newest valid checkpoint, re-planned over the
// nodes left. The steps since that checkpoint are trained again.
void recover_from_checkpoint(coord_ptr self, const std::string& names, int64_t start_us) {
  auto& st = self->state;
  const auto start = clock_type::now();
  const auto dir = st.spec.config.checkpoint.dir;
  auto give_up = [=](const std::string& why) {
    fail(self, caf::make_error(caf::sec::runtime_error, "node " + names + " left the job with every replica, and " + why));
  };
  if (dir.empty()) return give_up("there is no checkpoint.dir to recover from");
  runtime::TransitionRecord rec;
  rec.from = layout_of(st.plan);
  const int64_t lost_at = st.global_step;
  const auto history = st.summary.transitions;
  const auto resumed = std::make_pair(st.summary.resumed_from, st.summary.resumed_at_step);
  msg::named_tensors params, optimizer;
  std::function<void()> go;
  try {
    std::vector<std::string> skipped;
    const auto ck = runtime::read_latest_checkpoint(dir, &skipped);
    for (const auto& why : skipped) spdlog::warn("skipping a damaged checkpoint: {}", why);
    go = resume_from(self, ck, nullptr, params, optimizer);
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
        go();
      },
      [=](const std::string& why) {
        if (!self->state.lost.empty()) return recover_from_checkpoint(self, names, start_us);
        give_up("rebuilding from the checkpoint failed: " + why);
      });
}

// The AdamW step counts in a replica's exported optimizer state ("<name>#step"): one value
// when its stages are at the same step boundary.
std::set<int64_t> optimizer_steps(const msg::named_tensors& optimizer) {
  std::set<int64_t> out;
  for (size_t i = 0; i < optimizer.names.size(); ++i) {
    const auto& n = optimizer.names[i];
    if (n.size() > 5 && n.compare(n.size() - 5, 5, "#step") == 0)
      out.insert(static_cast<int64_t>(optimizer.values[i].t.item<double>()));
  }
  return out;
}

// Live recovery from lost nodes (state.lost): re-plans over the nodes left and rebuilds the
// pipelines from a surviving replica's weights and optimizer state, in memory. The step in
// flight is redone, unless the survivors had already applied it; then `retry`.
void recover(coord_ptr self, std::function<void()> retry) {
  auto& st = self->state;
  if (st.concluding) return;
  const auto start = clock_type::now();
  const int64_t start_us = runtime::now_us();
  const auto names = lost_names(self);
  std::vector<NodeSlot> alive;
  for (const auto& n : st.nodes)
    if (!st.lost.count(n.agent.address())) alive.push_back(n);
  const auto lost = std::move(st.lost);
  st.lost.clear();
  if (names.empty()) return retry();  // only nodes recovered from before
  st.nodes = alive;
  std::vector<int> survivors;
  for (int r = 0; r < replicas(self); ++r)
    if (std::none_of(st.hosts[r].begin(), st.hosts[r].end(), [&](const auto& a) { return lost.count(a) > 0; }))
      survivors.push_back(r);
  auto fault = event(self, runtime::EventKind::fault, start_us);
  fault.detail = "lost node " + names;
  emit(self, std::move(fault));
  if (survivors.empty()) {
    spdlog::warn("node {} left the job with every replica: recovering from the newest checkpoint", names);
    return recover_from_checkpoint(self, names, start_us);
  }
  spdlog::warn("recovering from the loss of node {} at step {}: {} of {} replicas survive, re-planning over {} node(s)",
               names, st.global_step, survivors.size(), replicas(self), alive.size());
  runtime::TransitionRecord rec;
  rec.epoch = st.epoch;
  rec.from = layout_of(st.plan);
  // A freeze whose transition the loss interrupted is carried out now, with the recovery.
  const int frozen = std::max(st.plan.frozen_blocks, st.frozen_target);
  rec.frozen_layers = frozen;
  rec.cause = "recovery: node " + names + " lost";
  const auto next = plan_for(self, frozen, st.plan.stages);
  rec.to = layout_of(next);
  auto give_up = [=](const std::string& why) {
    fail(self, caf::make_error(caf::sec::runtime_error, "recovering from the loss of node " + names + ": " + why));
  };
  collect_states(
      self, {survivors[0]},
      [=](std::vector<msg::stage_state>& states) {
        auto& s = self->state;
        const auto steps = optimizer_steps(states[0].optimizer);
        if (steps.size() > 1) {  // some stages applied the step in flight, others not: no consistent state
          spdlog::warn("the surviving replica's stages are at different steps ({}..{}): recovering from the newest "
                       "checkpoint instead", *steps.begin(), *steps.rbegin());
          return recover_from_checkpoint(self, names, start_us);
        }
        const bool applied = !steps.empty() && *steps.begin() == s.global_step + 1;
        if (!steps.empty() && !applied && *steps.begin() != s.global_step)
          return give_up("the surviving replica is at optimizer step " + std::to_string(*steps.begin()) +
                         ", the job at " + std::to_string(s.global_step));
        if (applied) {  // the survivors finished the step in flight: it counts, without its statistics
          ++s.step;
          ++s.global_step;
        }
        build_pipelines(
            self, next, states[0].parameters, states[0].optimizer,
            [=](std::vector<PipelineHandles> fresh, Hosts hosts) {
              auto& s = self->state;
              install(self, std::move(fresh), std::move(hosts), next);
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
              retry();
            },
            [=](const std::string& why) {
              if (!self->state.lost.empty()) return recover(self, retry);  // another node went meanwhile
              give_up(why);
            });
      },
      [=](const std::string& why) { give_up("the surviving replica's state: " + why); });
}

// A step failed. With several nodes, the nodes are asked whether they are still there (a lost
// one does not answer within the 2 s heartbeat timeout); if one is gone, recover and `retry`
// (with `recover` off, the job stops naming it), else the job stops with `why`.
void step_failed(coord_ptr self, const std::string& why, std::function<void()> retry) {
  auto& st = self->state;
  if (st.nodes.size() < 2) return fail(self, caf::make_error(caf::sec::runtime_error, why));
  auto pending = std::make_shared<size_t>(st.nodes.size() - st.lost.size());
  if (*pending == 0) return recover(self, retry);
  auto settled = std::make_shared<bool>(false);
  auto decide = [=] {
    if (std::exchange(*settled, true)) return;
    self->state.abort_pending = nullptr;
    auto& s = self->state;
    if (s.lost.empty()) return fail(self, caf::make_error(caf::sec::runtime_error, why));
    if (!s.spec.config.recover)
      return fail(self, caf::make_error(caf::sec::runtime_error, "node " + lost_names(self) + " left the job; " + why));
    spdlog::warn("{}", why);
    recover(self, retry);
  };
  // A node's down message, arriving while the others are asked, settles it at once.
  st.abort_pending = [=](const std::string&) { decide(); };
  auto answered = [=] {
    if (--*pending == 0) decide();
  };
  for (const auto& n : st.nodes)
    if (!st.lost.count(n.agent.address()))
      self->request(n.agent, std::chrono::seconds(3), msg::cache_stats_atom::value)
        .then([=](runtime::CacheStats&) { answered(); },
              [=, agent = n.agent.address()](caf::error&) {
                if (*settled) return;  // decided already (a late timeout must not mark a node twice)
                self->state.lost.insert(agent);
                answered();
              });
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
      next.replicas == st.plan.replicas) {
    spdlog::info("node {} joined the job ({} node(s), {} devices); the plan stays K={} R={} until the next re-plan",
                 names, st.nodes.size(), total, st.plan.stages, st.plan.replicas);
    return resume();
  }
  spdlog::info("node {} joined the job ({} node(s), {} devices): re-planning", names, st.nodes.size(), total);
  transition(self, next, std::move(resume), "join: node " + names);
}

void eval_step(coord_ptr self) {
  auto& st = self->state;
  if (!st.lost.empty()) return recover(self, [=] { eval_step(self); });
  const auto& test = *st.spec.test;
  const int64_t batch = eval_batch(st.spec.config);
  if (st.step * batch >= test.size()) {
    auto e = event(self, runtime::EventKind::eval, st.eval_start_us);
    e.values = {{"test_loss", st.eval.mean_loss()}, {"test_accuracy", st.eval.accuracy()},
                {"samples", static_cast<double>(st.eval.samples)}};
    emit(self, std::move(e));
    return end_epoch(self);
  }
  dispatch(
      self, false, 0.0, st.order, st.step, batch, st.plan.micro_batches,
      [=](const msg::step_report& rep) {
        auto& s = self->state;
        s.eval.add(rep);
        ++s.step;
        eval_step(self);
      },
      [=](const std::string& why) { step_failed(self, why, [=] { eval_step(self); }); });
}

void begin_eval(coord_ptr self) {
  auto& st = self->state;
  st.train_seconds = since(st.epoch_start);
  st.order.resize(static_cast<size_t>(st.spec.test->size()));
  std::iota(st.order.begin(), st.order.end(), 0);
  st.step = 0;
  st.eval = {};
  st.eval_start_us = runtime::now_us();
  eval_step(self);
}

// Faults whose step has come go to their stage (or kill it); the rest wait.
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

void train_step(coord_ptr self) {
  auto& st = self->state;
  if (!st.lost.empty()) return recover(self, [=] { train_step(self); });
  if (joins_now(self)) return admit(self, [=] { train_step(self); });
  if (st.step >= st.steps_in_epoch) return begin_eval(self);
  if (checkpoint_due(self)) return checkpoint(self, true, [=] { train_step(self); });
  if (!st.faults.empty()) apply_faults(self, true);
  // A scripted freeze due now: a live transition mid-epoch; the sampler reshards the rest.
  for (auto it = st.freezes.begin(); it != st.freezes.end(); ++it)
    if (it->at_step <= st.global_step) {
      const int frozen = it->frozen;
      st.freezes.erase(it);
      return freeze_to(self, frozen, [=] { train_step(self); });
    }
  if (!st.faults.empty()) apply_faults(self);
  const auto& c = st.spec.config;
  const int64_t start_us = runtime::now_us();
  const double lr = st.lr.at(st.global_step);
  const int micro_batches = st.sweep ? st.sweep->next() : st.plan.micro_batches;  // the sweep's candidate
  dispatch(self, true, lr, st.order, st.step, c.batch_size, micro_batches, [=](const msg::step_report& rep) {
    auto& s = self->state;
    profiled(self, (runtime::now_us() - start_us) / 1e6);
    if (s.observed) {
      auto e = event(self, runtime::EventKind::step, start_us);
      e.values = {{"loss", rep.targets ? rep.loss_sum / rep.targets : 0.0},
                  {"samples", static_cast<double>(rep.samples)},
                  {"targets", static_cast<double>(rep.targets)},
                  {"correct", static_cast<double>(rep.correct)},
                  {"lr", lr},
                  {"makespan", rep.seconds / std::max(1, replicas(self))}};
      e.per_stage = runtime::bubble_fractions(rep.stage_busy_seconds, rep.seconds);
      emit(self, std::move(e));
    }
    s.train.add(rep);
    for (size_t i = 0; i < rep.blocks.size(); ++i)
      if (rep.blocks[i] >= 0 && rep.blocks[i] < static_cast<int>(s.block_grad_sq.size()))
        s.block_grad_sq[rep.blocks[i]] += rep.block_grad_sq[i];
    ++s.step;
    ++s.global_step;
    train_step(self);
  }, [=](const std::string& why) { step_failed(self, why, [=] { train_step(self); }); });
}

// Trains the epoch from st.step on (0, or where a checkpoint left it).
void run_epoch(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  st.order = runtime::epoch_permutation(st.spec.train->size(), c.seed, st.epoch);
  if (c.data.length_buckets > 0 && st.spec.train->sequences()) {
    if (st.lengths.empty()) st.lengths = st.spec.train->lengths();
    st.order = runtime::length_bucketed(st.order, st.lengths, c.batch_size, c.data.length_buckets, c.seed, st.epoch);
  }
  train_step(self);
}

void begin_epoch(coord_ptr self) {
  auto& st = self->state;
  st.epoch_start = clock_type::now();
  st.epoch_start_us = runtime::now_us();
  st.step = 0;
  st.train = {};
  run_epoch(self);
}

// `weights` (a state dict read from `what`) as the model's parameters, in the model's order.
// Throws InputError naming the first missing, misshapen or unknown tensor.
msg::named_tensors model_weights(const models::UnitList& model, const std::map<std::string, torch::Tensor>& weights,
                                 const std::string& what, const std::vector<std::string>& skip = {}) {
  auto m = models::match_weights(model, weights, what, skip);
  if (!m.kept.empty()) spdlog::info("{}: kept the model's own {}", what, fmt::join(m.kept, ", "));
  if (!m.ignored.empty()) spdlog::info("{}: ignored {}", what, fmt::join(m.ignored, ", "));
  msg::named_tensors out{std::move(m.names), {}};
  for (auto& t : m.values) out.values.push_back({std::move(t)});
  return out;
}

// Sets the coordinator up to continue from checkpoint `ck`: the clock, the statistics, the
// summary so far, the freeze policy's state (`policy`, at the start), and the plan (the same
// one on the same devices, else re-planned). Fills the weights and optimizer state to build
// from; returns how training goes on once built.
std::function<void()> resume_from(coord_ptr self, const runtime::Checkpoint& ck, runtime::FreezePolicy* policy,
                                  msg::named_tensors& params, msg::named_tensors& optimizer) {
  auto& s = self->state;
  const auto& c = s.spec.config;
  const auto& j = ck.job;
  runtime::check_resumable(ck, c);
  if (j.frozen_blocks > c.model.depth || static_cast<int64_t>(j.block_grad_sq.size()) != c.model.depth)
    throw InputError("checkpoint " + ck.path + ": job.json does not fit a model of depth " + std::to_string(c.model.depth));
  params = model_weights(s.model, ck.parameters, "checkpoint " + ck.path + "/parameters.pt");
  optimizer = msg::from_map(ck.optimizer);
  s.epoch = j.epoch;
  s.step = j.step;
  s.global_step = j.global_step;
  s.last_checkpoint_step = j.global_step;
  s.block_grad_sq = j.block_grad_sq;
  s.policy_state = j.policy_state;
  s.frozen_target = j.frozen_blocks;
  if (policy) policy->restore(j.policy_state);  // (in a recovery the controller keeps its own)
  const auto before = runtime::summary_from_json(j.summary_json);
  s.summary.epochs = before.epochs;
  s.summary.transitions = before.transitions;
  s.summary.resumed_from = ck.path;
  s.summary.resumed_at_step = j.global_step;
  s.plan = plan_for(self, j.frozen_blocks, static_cast<int>(j.units_per_stage.size()));
  if (node_devices(self) == j.node_devices) {
    s.plan.units_per_stage = j.units_per_stage;
    s.plan.stages = static_cast<int>(j.units_per_stage.size());
    s.plan.micro_batches = j.micro_batches;
    s.plan.replicas = j.replicas;
  } else {
    spdlog::info("resuming on other devices than the checkpoint's: re-planned from K={} R={} to K={} R={}",
                 j.units_per_stage.size(), j.replicas, s.plan.stages, s.plan.replicas);
  }
  spdlog::info("resuming from {}: epoch {}, step {} of it (global step {}), {} blocks frozen", ck.path, j.epoch + 1,
               j.step, j.global_step, j.frozen_blocks);
  if (!j.decided)
    return [=] { self->state.epoch < c.epochs ? next_epoch(self) : finish(self); };
  return [=, seconds = j.epoch_seconds] {
    auto& st = self->state;
    st.train.loss_sum = j.loss_sum;
    st.train.correct = j.correct;
    st.train.samples = j.samples;
    st.train.targets = j.targets;
    st.train.busy = j.busy;
    st.train.makespan = j.makespan;
    st.epoch_start = clock_type::now() - std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
    st.epoch_start_us = runtime::now_us() - static_cast<int64_t>(seconds * 1e6);
    run_epoch(self);
  };
}

msg::coordinator_actor::behavior_type coordinator_behavior(coord_ptr self, CoordinatorSpec spec) {
  auto& st = self->state;
  st.spec = std::move(spec);
  st.bus = spawn_event_bus(self->system());
  self->link_to(st.bus);
  for (const auto& text : st.spec.config.faults) st.faults.push_back(runtime::parse_fault(text));
  return {
      [=](msg::subscribe& s) {
        self->state.observed = true;
        self->state.spans = self->state.spans || s.spans;
        self->send(self->state.bus, std::move(s));
      },
      [=](msg::inject_fault& f) {
        self->state.faults.push_back(f.fault);  // applied at the next step boundary at or after its step
      },
      [=](msg::scripted_freeze& f) { self->state.freezes.push_back(f); },
      [=](msg::checkpoint_atom) { self->state.checkpoint_requested = true; },
      [=](msg::node_ready& r) {
        auto& s = self->state;
        if (!self->current_sender() || self->current_sender()->node() != self->node() || !r.agent ||
            r.devices < 1) {
          spdlog::warn("ignored a node_ready message: not from this process, or without an agent or devices");
          return;
        }
        if (s.concluding) {
          spdlog::warn("node {} came as the job ends: it is stopped", r.name);
          return anon_send_exit(r.agent, caf::exit_reason::user_shutdown);
        }
        self->monitor(r.agent);
        self->attach_functor([agent = r.agent] { anon_send_exit(agent, caf::exit_reason::user_shutdown); });
        spdlog::info("node {} is ready with {} device(s): it joins at the next training step{}", r.name, r.devices,
                     r.at_step > 0 ? " from step " + std::to_string(r.at_step) : "");
        s.joining.push_back(r);
      },
      [=](msg::start_atom) -> caf::typed_response_promise<runtime::TrainingSummary> {
        auto& s = self->state;
        const auto& c = s.spec.config;
        s.promise = self->make_response_promise<runtime::TrainingSummary>();
        s.job_start = clock_type::now();
        torch::manual_seed(c.seed);
        s.model = models::build_model(c.model);
        s.nodes = s.spec.nodes;
        // A node that goes away ends the job (recovery is issue 7's), and every node agent
        // stops with the coordinator, however it ends.
        for (const auto& n : s.nodes) {
          self->monitor(n.agent);
          self->attach_functor([agent = n.agent] { anon_send_exit(agent, caf::exit_reason::user_shutdown); });
        }
        self->set_down_handler([=](caf::down_msg& d) {
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
            if (!st.spec.config.recover || st.nodes.size() < 2)
              return fail(self, caf::make_error(caf::sec::runtime_error, what));
            spdlog::warn("{}", what);
            st.lost.insert(n.agent.address());
            // A step in flight ends now (its replicas there will never answer); otherwise the
            // next step boundary recovers.
            if (auto abort = std::exchange(st.abort_pending, nullptr)) abort(what);
            return;
          }
        });
        if (s.nodes.empty()) {
          s.promise.deliver(caf::make_error(caf::sec::invalid_argument, "coordinator: no nodes to train on"));
          return s.promise;
        }
        try {
          if (c.pipeline.micro_batches == 0) s.profile.emplace(runtime::expand_home(c.pipeline.profile));
        } catch (const std::exception& e) {
          fail(self, caf::make_error(caf::sec::invalid_argument, e.what()));
          return s.promise;
        }
        s.plan = plan_for(self, 0, c.pipeline.length);
        if (!c.pipeline.partition.empty()) s.plan.units_per_stage = c.pipeline.partition;
        if (c.pipeline.micro_batches > 0) s.plan.micro_batches = c.pipeline.micro_batches;
        msg::named_tensors initial{models::parameter_names_of(s.model, 0, s.model.size()), {}}, optimizer;
        for (const auto& p : models::parameters_of(s.model, 0, s.model.size())) initial.values.push_back({p.detach()});
        auto policy = s.spec.freeze_policy ? s.spec.freeze_policy() : make_configured_policy(c);
        s.grad_norms = policy->uses_gradient_norms();
        s.block_grad_sq.assign(static_cast<size_t>(c.model.depth), 0.0);
        s.steps_in_epoch = runtime::steps_per_epoch(s.spec.train->size(), c.batch_size);
        s.lr = {c.optimizer.lr, c.optimizer.min_lr, c.optimizer.warmup, s.steps_in_epoch * c.epochs};
        std::function<void()> go = [=] { begin_epoch(self); };
        if (s.spec.evaluate_only)
          go = [=] {
            self->state.epoch_start = clock_type::now();
            self->state.epoch_start_us = runtime::now_us();
            begin_eval(self);
          };
        try {
          if (!c.init_weights.empty()) {
            std::vector<std::string> notes;
            const auto weights = runtime::load_weights(c.init_weights, c.model, &notes);
            for (const auto& n : notes) spdlog::info("init_weights {}: {}", c.init_weights, n);
            initial = model_weights(s.model, weights, "init_weights " + c.init_weights, c.init_skip);
          }
          if (!c.checkpoint.resume.empty()) {
            std::vector<std::string> skipped;
            const auto ck = runtime::read_latest_checkpoint(c.checkpoint.resume, &skipped);
            for (const auto& why : skipped) spdlog::warn("not resuming from a damaged checkpoint: {}", why);
            go = resume_from(self, ck, policy.get(), initial, optimizer);
          }
        } catch (const std::exception& e) {
          fail(self, caf::make_error(caf::sec::invalid_argument, e.what()));
          return s.promise;
        }
        s.freezer = spawn_freeze_controller(self->system(), std::move(policy));
        s.summary.config = runtime::to_flat_map(c);
        s.summary.setup_seconds = since(s.job_start);
        std::string parts;
        for (int u : s.plan.units_per_stage) parts += (parts.empty() ? "" : ",") + std::to_string(u);
        const auto describe = fmt::format(
            "{} train / {} test samples, {} units, K={} [{}] M={} R={} on {} devices, {} steps/epoch, freeze policy "
            "{}{}",
            s.spec.train->size(), s.spec.test->size(), s.model.size(), s.plan.stages, parts, s.plan.micro_batches,
            s.plan.replicas, c.devices, s.steps_in_epoch, c.freeze.policy, c.elastic ? ", elastic" : "");
        spdlog::info("job: {}", describe);
        runtime::Event job;
        job.kind = runtime::EventKind::job;
        job.start_us = runtime::now_us() - static_cast<int64_t>(s.summary.setup_seconds * 1e6);
        job.detail = describe;
        job.values = {{"devices", c.devices}, {"epochs", c.epochs}, {"steps_per_epoch", s.steps_in_epoch},
                      {"depth", static_cast<double>(c.model.depth)}};
        emit(self, std::move(job));
        build_pipelines(
            self, s.plan, initial, optimizer,
            [=](std::vector<PipelineHandles> built, Hosts hosts) {
              install(self, std::move(built), std::move(hosts), self->state.plan);
              go();
            },
            [=](const std::string& why) {
              fail(self, caf::make_error(caf::sec::runtime_error, "placing the first pipelines: " + why));
            });
        return s.promise;
      },
  };
}

}  // namespace

runtime::PlanRequest plan_request(const runtime::JobConfig& c, const models::UnitList& units, int frozen_blocks,
                                  int current_stages) {
  runtime::PlanRequest q;
  q.unit_params = models::planner_costs(units);
  for (const auto& u : units) q.unit_blocks.push_back(u.block);
  q.devices = c.devices;
  q.initial_stages = c.pipeline.length;
  q.initial_replicas = c.replicas;
  q.current_stages = current_stages;
  q.frozen_blocks = frozen_blocks;
  q.micro_batches = c.pipeline.micro_batches;
  q.elastic = c.elastic;
  q.data_parallel = c.autodp;
  q.compression.mode = c.planner.mode == "paper" ? runtime::PartitionMode::paper : runtime::PartitionMode::optimal;
  q.compression.strict_less = c.planner.strict;
  q.compression.apply_frozen_cost = c.planner.frozen_cost;
  return q;
}

msg::coordinator_actor spawn_coordinator(caf::actor_system& sys, CoordinatorSpec spec) {
  return sys.spawn(coordinator_behavior, std::move(spec));
}

}  // namespace floe::actors
