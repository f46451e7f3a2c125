// The coordinator's behaviour and its step/epoch loop. One decision per training step
// boundary (runtime/control/step_boundary.hpp) hands the work to the phase files, which come
// back through the continuations the loop gives them (actors/coordinator_state.hpp).
#include "actors/coordinator_state.hpp"

#include "actors/event_bus.hpp"
#include "actors/fan_in.hpp"
#include "actors/freeze_controller.hpp"
#include "models/errors.hpp"
#include "runtime/control/step_boundary.hpp"
#include "runtime/sim/profile.hpp"
#include "runtime/state/hf_checkpoint.hpp"
#include "runtime/state/init_weights.hpp"
#include "runtime/train/configured_policy.hpp"
#include "runtime/train/sampler.hpp"

#include <spdlog/spdlog.h>

#include <numeric>

namespace floe::actors {
namespace coord {
namespace {

void train_step(coord_ptr self);
void begin_eval(coord_ptr self);
void eval_step(coord_ptr self);
void begin_epoch(coord_ptr self);
void run_epoch(coord_ptr self);
void next_epoch(coord_ptr self);
void decide_freeze(coord_ptr self, int timestep, std::function<void()> resume);
void finish(coord_ptr self);
void continue_at(coord_ptr self, const runtime::ResumePoint& at);

// The continuations a phase gets: back to `retry`, or to a checkpoint's point.
Continue again(coord_ptr self, std::function<void()> retry) {
  return {std::move(retry), [=](const runtime::ResumePoint& at) { continue_at(self, at); }};
}

// The facts of this training step boundary, for runtime::next_at_boundary.
runtime::BoundaryFacts boundary_facts(coord_ptr self) {
  auto& st = self->state;
  runtime::BoundaryFacts f;
  f.nodes_lost = !st.lost.empty();
  f.node_joins = joins_now(self);
  f.epoch_trained = st.step >= st.steps_in_epoch;
  // (a checkpoint request waits, latched, while the earlier actions run)
  f.checkpoint_due = !f.nodes_lost && !f.node_joins && !f.epoch_trained && checkpoint_due(self);
  f.node_kill_due = fault_due(self, true);
  f.freeze_due = std::any_of(st.freezes.begin(), st.freezes.end(),
                             [&](const msg::scripted_freeze& s) { return s.at_step <= st.global_step; });
  const auto& c = st.spec.config;
  f.decision_due = runtime::freeze_decision_due({c.freeze.interval_steps, st.global_step, st.last_decision_step,
                                                 st.plan.frozen_blocks, static_cast<int>(c.model.depth)});
  f.fault_due = fault_due(self, false);
  return f;
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

void train_step(coord_ptr self) {
  auto& st = self->state;
  auto retry = [=] { train_step(self); };
  for (bool boundary = true; boundary;) switch (runtime::next_at_boundary(boundary_facts(self))) {
      case runtime::BoundaryAction::recover: return recover(self, again(self, retry));
      case runtime::BoundaryAction::admit: return admit(self, retry);
      case runtime::BoundaryAction::evaluate: return begin_eval(self);
      case runtime::BoundaryAction::checkpoint: return checkpoint(self, true, retry);
      case runtime::BoundaryAction::kill_nodes: apply_faults(self, true); break;
      case runtime::BoundaryAction::freeze: {  // a live transition mid-epoch; the sampler reshards the rest
        auto it = std::find_if(st.freezes.begin(), st.freezes.end(),
                               [&](const msg::scripted_freeze& s) { return s.at_step <= st.global_step; });
        const int frozen = it->frozen;
        st.freezes.erase(it);
        return freeze_to(self, frozen, retry);
      }
      case runtime::BoundaryAction::decide_freeze:  // every freeze.interval_steps steps: mid-epoch
        st.last_decision_step = st.global_step;
        return decide_freeze(self, static_cast<int>(st.global_step / st.spec.config.freeze.interval_steps), retry);
      case runtime::BoundaryAction::inject_faults: apply_faults(self, false); break;
      case runtime::BoundaryAction::train: boundary = false; break;
    }
  const auto& c = st.spec.config;
  const int64_t start_us = runtime::now_us();
  const double lr = st.lr.at(st.global_step);
  const int micro_batches = st.sweep ? st.sweep->next() : st.plan.micro_batches;  // the sweep's candidate
  dispatch(
      self, true, lr, c.batch_size, micro_batches,
      [=](msg::step_report& rep) {
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
        if (s.signal == runtime::BlockSignal::gradient_norm) s.grad_window.add_step(rep.blocks, rep.block_values);
        if (s.signal == runtime::BlockSignal::plasticity) s.plasticity.add(rep.blocks, rep.block_values);
        rep.blocks.clear();  // (the epoch's totals keep no per-block values)
        rep.block_values.clear();
        msg::add_to(s.train.sum, rep);
        ++s.step;
        ++s.global_step;
        train_step(self);
      },
      [=](const std::string& why) { step_failed(self, why, again(self, [=] { train_step(self); })); });
}

void end_epoch(coord_ptr self);

void eval_step(coord_ptr self) {
  auto& st = self->state;
  if (!st.lost.empty()) return recover(self, again(self, [=] { eval_step(self); }));
  const int64_t batch = std::max<int64_t>(st.spec.config.batch_size, 500);
  if (st.step * batch >= st.spec.test->size()) {
    auto e = event(self, runtime::EventKind::eval, st.eval_start_us);
    e.values = {{"test_loss", st.eval.mean_loss()}, {"test_accuracy", st.eval.accuracy()},
                {"samples", static_cast<double>(st.eval.sum.samples)}};
    emit(self, std::move(e));
    return end_epoch(self);
  }
  dispatch(
      self, false, 0.0, batch, st.plan.micro_batches,
      [=](msg::step_report& rep) {
        auto& s = self->state;
        if (s.spec.predictions && !rep.uids.empty()) {
          std::vector<torch::Tensor> parts;
          for (const auto& p : rep.probabilities) parts.push_back(p.t);
          s.spec.predictions(rep.uids, torch::cat(parts));
        }
        rep.uids.clear();
        rep.probabilities.clear();
        msg::add_to(s.eval.sum, rep);
        ++s.step;
        eval_step(self);
      },
      [=](const std::string& why) { step_failed(self, why, again(self, [=] { eval_step(self); })); });
}

// The epoch's record, once the cache statistics and (verify_replicas) the replicas'
// comparison are in; then the next epoch or the end.
void record_epoch(coord_ptr self, runtime::EpochRecord r) {
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
}

void verify_and_record(coord_ptr self, runtime::EpochRecord rec) {
  if (!self->state.spec.verify_replicas) return record_epoch(self, rec);
  std::vector<int> all(replicas(self));
  std::iota(all.begin(), all.end(), 0);
  collect_states(
      self, all,
      [=](std::vector<msg::stage_state>& states) {
        auto r = rec;
        r.replicas_identical = 1;
        for (size_t i = 1; i < states.size(); ++i)
          if (!same_state(states[0], states[i])) r.replicas_identical = 0;
        record_epoch(self, r);
      },
      [=](const std::string& why) { fail(self, why); });
}

void end_epoch(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  const auto& train = st.train.sum;
  runtime::EpochRecord rec;
  rec.epoch = st.epoch;
  rec.train_loss = st.train.mean_loss();
  rec.train_accuracy = st.train.accuracy();
  rec.test_loss = st.eval.mean_loss();
  rec.test_accuracy = st.eval.accuracy();
  rec.seconds = since(st.epoch_start);
  rec.train_seconds = st.train_seconds;
  rec.samples = train.samples;
  rec.samples_per_second = st.train_seconds > 0 ? train.samples / st.train_seconds : 0;
  rec.pipeline_length = st.plan.stages;
  rec.chunks = st.plan.chunks;
  rec.replicas = replicas(self);
  rec.micro_batches = st.plan.micro_batches;
  rec.frozen_layers = st.plan.frozen_blocks;
  for (double b : train.stage_busy_seconds)
    rec.stage_busy_fraction.push_back(b / (replicas(self) * std::max(1e-9, st.train_seconds)));
  rec.stage_bubble_fraction = runtime::bubble_fractions(train.stage_busy_seconds, train.seconds);
  spdlog::info("epoch {}/{}  train loss {:.4f}  train acc {:.2f}%  test loss {:.4f}  test acc {:.2f}%  {:.0f} samples/s  "
               "{:.1f}s  K={}{} M={} R={} frozen={}",
               rec.epoch + 1, c.epochs, rec.train_loss, 100 * rec.train_accuracy, rec.test_loss, 100 * rec.test_accuracy,
               rec.samples_per_second, rec.seconds, rec.pipeline_length,
               rec.chunks > 1 ? " v=" + std::to_string(rec.chunks) : std::string(), rec.micro_batches, rec.replicas,
               rec.frozen_layers);
  if (!c.cache.enabled) return verify_and_record(self, rec);
  std::vector<msg::node_actor> agents;
  for (const auto& node : st.nodes) agents.push_back(node.agent);
  auto answers = std::make_shared<std::vector<runtime::CacheStats>>(agents.size());
  fan_in<runtime::CacheStats>(
      self, agents, [](size_t) { return msg::cache_stats_atom::value; },
      {caf::duration{std::chrono::seconds(60)},
       [=](size_t i, runtime::CacheStats& one) {
         (*answers)[i] = one;
         return std::string();
       },
       [=] {
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
         verify_and_record(self, r);
       },
       [=](const std::string& why) { fail(self, why); }});
}

// A freeze decision: the controller gets the interval's gradient norms and answers with the
// frozen count; a change re-plans and switches live; then `resume`.
void decide_freeze(coord_ptr self, int timestep, std::function<void()> resume) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  msg::freeze_query q{st.epoch, st.global_step, st.plan.frozen_blocks, static_cast<int32_t>(c.model.depth), {}, {}, timestep};
  q.grad_norms = st.grad_window.take();
  q.plasticity = st.plasticity.take();
  if (!q.plasticity.empty()) {
    std::string values;
    for (double p : q.plasticity) values += p < 0 ? " -" : fmt::format(" {:.3g}", p);
    spdlog::info("freeze: plasticity per block since the last decision:{}", values);
  }
  if (!st.summary.epochs.empty()) q.val_loss = st.summary.epochs.back().test_loss;
  q.evaluations = static_cast<int32_t>(st.summary.epochs.size());
  self->request(st.freezer, std::chrono::seconds(60), q)
      .then(
          [=](msg::freeze_decision& d) {
            self->state.policy_state = d.policy_state;
            freeze_to(self, d.frozen, resume);
          },
          [=](caf::error& e) { fail(self, e); });
}

// Between epochs: the epoch's freeze decision (unless decisions are counted in steps), then
// the epoch.
void next_epoch(coord_ptr self) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  if (fault_due(self, true)) apply_faults(self, true);  // node kills due strike during the freeze's transition
  if (c.freeze.interval_steps > 0 || st.epoch % c.freeze.interval != 0 || st.plan.frozen_blocks >= c.model.depth)
    return begin_epoch(self);
  decide_freeze(self, st.epoch, [=] { begin_epoch(self); });
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
            runtime::save_weights(path, msg::to_map(states[0].parameters), self->state.spec.config);
          } catch (const std::exception& e) {
            return fail(self, std::string("save_weights: ") + e.what());
          }
          spdlog::info("weights written to {}", path);
        }
        auto done = [=] { conclude(self, self->state.summary); };
        if (!final_checkpoint) return done();
        checkpoint(self, false, done, std::make_shared<std::vector<msg::stage_state>>(states));
      },
      [=](const std::string& why) { fail(self, "final weights: " + why); });
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

// Training goes on where a checkpoint left it (resume_from set the state up).
void continue_at(coord_ptr self, const runtime::ResumePoint& at) {
  auto& st = self->state;
  switch (at.kind) {
    case runtime::ResumeKind::next_epoch: return next_epoch(self);
    case runtime::ResumeKind::finish: return finish(self);
    case runtime::ResumeKind::mid_epoch: {
      const auto elapsed = std::chrono::duration<double>(at.epoch_seconds);
      st.epoch_start = clock_type::now() - std::chrono::duration_cast<clock_type::duration>(elapsed);
      st.epoch_start_us = runtime::now_us() - static_cast<int64_t>(at.epoch_seconds * 1e6);
      return run_epoch(self);
    }
  }
}

// The job's start: the model, the first plan, the initial weights (or a checkpoint to resume
// from), the freeze controller; then the first pipelines, and training (or evaluation).
void start(coord_ptr self) {
  auto& s = self->state;
  const auto& c = s.spec.config;
  s.job_start = clock_type::now();
  torch::manual_seed(c.seed);
  s.model = models::build_model(c.model);
  s.nodes = s.spec.nodes;
  // Every node agent stops with the coordinator, however it ends.
  for (const auto& n : s.nodes) {
    self->monitor(n.agent);
    self->attach_functor([agent = n.agent] { anon_send_exit(agent, caf::exit_reason::user_shutdown); });
  }
  self->set_down_handler([=](caf::down_msg& d) { node_down(self, d); });
  if (s.nodes.empty()) {
    s.promise.deliver(caf::make_error(caf::sec::invalid_argument, "coordinator: no nodes to train on"));
    return;
  }
  try {
    // In one process K and an explicit R must fit the devices key; on nodes, R is a cap that
    // the nodes' devices may not reach yet (nodes that join later add replicas up to it).
    if (s.nodes.size() == 1 && s.nodes[0].name == "local") runtime::check_devices(c, c.devices, "key devices");
    if (c.pipeline.micro_batches == 0) s.profile.emplace(runtime::expand_home(c.pipeline.profile));
    if (const auto costs = runtime::apply_planner_costs(c, {*s.spec.train, *s.spec.test}, s.model); !costs.empty()) {
      std::string list;
      for (size_t i = 0; i < costs.size(); ++i)
        list += (i ? ", " : "") + s.model[i].name + " " + fmt::format("{:.3f}", costs[i] * 1e-6);
      spdlog::info("planner costs measured (ms forward and backward, {} samples): {}", runtime::planner_micro_batch(c),
                   list);
    }
  } catch (const std::exception& e) {
    return fail(self, caf::make_error(caf::sec::invalid_argument, e.what()));
  }
  s.plan = plan_for(self, 0, c.pipeline.length);
  if (const int idle = c.devices - s.plan.stages * s.plan.replicas; idle > 0)
    spdlog::warn("{} of the {} devices idle: K={} x R={}{}", idle, c.devices, s.plan.stages, s.plan.replicas,
                 c.replicas > 0 ? " (replicas is set; \"auto\" fills the devices)" : "");
  if (c.replicas > s.plan.replicas)
    spdlog::warn("replicas = {}, but the devices of the {} node(s) hold {} pipeline(s) of K={}: starting with R={}; "
                 "nodes that join add replicas up to {}",
                 c.replicas, s.nodes.size(), s.plan.replicas, s.plan.stages, s.plan.replicas, c.replicas);
  if (!c.pipeline.partition.empty()) s.plan.units_per_stage = c.pipeline.partition;
  if (c.pipeline.micro_batches > 0) s.plan.micro_batches = c.pipeline.micro_batches;
  msg::named_tensors initial{models::parameter_names_of(s.model, 0, s.model.size()), {}}, optimizer;
  for (const auto& p : models::parameters_of(s.model, 0, s.model.size())) initial.values.push_back({p.detach()});
  std::unique_ptr<runtime::FreezePolicy> policy;
  s.grad_window = runtime::GradientWindow(static_cast<int>(c.model.depth), c.freeze.window_steps);
  s.plasticity = runtime::PlasticityWindow(static_cast<int>(c.model.depth));
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
    policy = s.spec.freeze_policy ? s.spec.freeze_policy() : runtime::configured_freeze_policy(c);
    if (c.freeze.anneal != "off") {
      if (s.spec.freeze_policy)
        throw InputError("config: freeze.anneal plans from freeze.policy, but this job decides with its own policy (" +
                         policy->name() + ")");
      s.anneal = {s.lr, runtime::planned_freeze_steps(c, s.steps_in_epoch), c.freeze.anneal == "scaled"};
      std::string steps;
      for (auto at : s.anneal.freeze_steps) steps += (steps.empty() ? "" : ", ") + std::to_string(at);
      spdlog::info("freeze.anneal = \"{}\": the blocks' rates reach optimizer.min_lr at steps [{}] (of {})",
                   c.freeze.anneal, steps, s.lr.total_steps);
    }
    if (s.spec.init_weights)
      initial = named(*s.spec.init_weights);
    else if (!c.init_weights.empty())
      initial = named(runtime::read_init_weights(c));
    if (!c.checkpoint.resume.empty()) {
      std::vector<std::string> skipped;
      const auto ck = runtime::read_latest_checkpoint(c.checkpoint.resume, &skipped);
      for (const auto& why : skipped) spdlog::warn("not resuming from a damaged checkpoint: {}", why);
      const auto at = resume_from(self, ck, policy.get(), initial, optimizer);
      go = [=] { continue_at(self, at); };
    }
  } catch (const std::exception& e) {
    return fail(self, caf::make_error(caf::sec::invalid_argument, e.what()));
  }
  s.signal = policy->signal();
  s.freezer = spawn_freeze_controller(self->system(), std::move(policy));
  s.summary.config = runtime::to_flat_map(c);
  s.summary.setup_seconds = since(s.job_start);
  std::string parts;
  for (int u : s.plan.units_per_stage) parts += (parts.empty() ? "" : ",") + std::to_string(u);
  // The schedule as the replicas resolve it, and whether they taper its micro-batches.
  const auto kind = runtime::parse_schedule_kind(c.pipeline.schedule);
  const int m = std::max(1, s.plan.micro_batches);
  const bool tapered = runtime::tapers(runtime::parse_taper(c.pipeline.taper), kind, s.plan.stages, m, s.plan.chunks);
  const auto describe = fmt::format(
      "{} train / {} test samples, {} units, K={}{} [{}] M={} R={} on {} devices, schedule {}{}, {} steps/epoch, "
      "freeze policy {}{}",
      s.spec.train->size(), s.spec.test->size(), s.model.size(), s.plan.stages,
      s.plan.chunks > 1 ? " x " + std::to_string(s.plan.chunks) + " chunks" : std::string(), parts, s.plan.micro_batches,
      s.plan.replicas, c.devices,
      runtime::to_string(runtime::resolve_schedule(kind, s.plan.stages, m, s.plan.chunks)),
      tapered ? " (tapered micro-batches)" : "", s.steps_in_epoch, c.freeze.policy, c.elastic ? ", elastic" : "");
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
      [=](const std::string& why) { fail(self, "placing the first pipelines: " + why); });
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
        self->state.promise = self->make_response_promise<runtime::TrainingSummary>();
        start(self);
        return self->state.promise;
      },
  };
}

}  // namespace
}  // namespace coord

msg::coordinator_actor spawn_coordinator(caf::actor_system& sys, CoordinatorSpec spec) {
  return sys.spawn(coord::coordinator_behavior, std::move(spec));
}

}  // namespace floe::actors
