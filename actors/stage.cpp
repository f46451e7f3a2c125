#include "actors/stage.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <optional>

namespace floe::actors {
namespace {

using clock_type = std::chrono::steady_clock;

struct StageState {
  static inline const char* name = "floe.stage";
  std::unique_ptr<runtime::StageCompute> compute;
  StageSpec spec;
  msg::stage_links links;
  // The step in progress.
  std::optional<msg::stage_task> task;
  caf::typed_response_promise<msg::stage_report> promise;
  size_t pc = 0;
  runtime::LossStats stats;
  double busy = 0;
  // Inputs that arrived, keyed by (step, micro-batch); they may come before the task.
  std::map<std::pair<int64_t, int>, torch::Tensor> activations, gradients;
};

using stage_ptr = msg::stage_actor::stateful_pointer<StageState>;

std::optional<torch::Tensor> take(std::map<std::pair<int64_t, int>, torch::Tensor>& m, int64_t step, int mb) {
  auto it = m.find({step, mb});
  if (it == m.end()) return std::nullopt;
  auto t = it->second;
  m.erase(it);
  return t;
}

// Runs the next actions of the program whose inputs are here; returns true when the
// program has finished.
bool run_ready(stage_ptr self) {
  auto& st = self->state;
  auto& task = *st.task;
  auto& c = *st.compute;
  using runtime::ActionKind;
  while (st.pc < task.program.size()) {
    const auto& a = task.program[st.pc];
    const auto start = clock_type::now();
    if (a.kind == ActionKind::forward) {
      auto in = c.first() ? std::optional<torch::Tensor>(task.inputs.at(a.micro_batch).t)
                          : take(st.activations, task.step, a.micro_batch);
      if (!in) return false;
      const auto uids = c.first() && a.micro_batch < static_cast<int>(task.uids.size())
                            ? task.uids[a.micro_batch].t
                            : torch::Tensor();
      if (c.last()) {
        c.forward_loss(a.micro_batch, *in, task.targets.at(a.micro_batch).t, task.loss_scale, st.stats, uids);
      } else {
        auto out = c.forward(a.micro_batch, *in, uids);
        self->send(st.links.next, msg::activation{task.step, a.micro_batch, {out}});
      }
    } else if (a.kind == ActionKind::backward) {
      torch::Tensor grad;
      if (!c.last()) {
        auto g = take(st.gradients, task.step, a.micro_batch);
        if (!g) return false;
        grad = *g;
      }
      auto gin = c.backward(a.micro_batch, grad);
      if (!c.first()) self->send(st.links.prev, msg::gradient{task.step, a.micro_batch, {gin}});
    } else if (a.kind == ActionKind::reduce) {
      c.reduce();
    } else {
      c.step(task.lr);
    }
    st.busy += std::chrono::duration<double>(clock_type::now() - start).count();
    ++st.pc;
  }
  return true;
}

// Advances the current program; reports and clears it when done or when it failed.
void advance(stage_ptr self) {
  auto& st = self->state;
  if (!st.task) return;
  try {
    if (!run_ready(self)) return;
    msg::stage_report rep{st.task->step, st.spec.index, st.stats.loss_sum, st.stats.correct, st.stats.samples,
                          st.busy, {}, {}};
    if (st.task->train && st.task->grad_norms)
      for (const auto& [block, sq] : st.compute->block_gradient_norms_sq()) {
        rep.blocks.push_back(block);
        rep.block_grad_sq.push_back(sq);
      }
    st.promise.deliver(std::move(rep));
  } catch (const std::exception& e) {
    // Never die silently on a c10::Error: the replica learns why the step failed.
    spdlog::error("stage {} of replica {}: step {} failed: {}", st.spec.index, st.spec.replica, st.task->step,
                  e.what());
    st.promise.deliver(caf::make_error(caf::sec::runtime_error,
                                       "stage " + std::to_string(st.spec.index) + ": " + e.what()));
  }
  st.task.reset();
}

msg::stage_actor::behavior_type stage_behavior(stage_ptr self, StageSpec spec) {
  at::set_num_threads(spec.threads);
  auto& st = self->state;
  const bool first = spec.index == 0, last = spec.index == spec.count - 1;
  st.compute = std::make_unique<runtime::StageCompute>(spec.frozen, spec.units, first, last, spec.optimizer,
                                                       spec.reduce_group, spec.replica, spec.optimizer_state,
                                                       spec.cache);
  spec.optimizer_state.clear();
  st.spec = std::move(spec);
  return {
      [=](msg::stage_task& task) -> caf::typed_response_promise<msg::stage_report> {
        auto& s = self->state;
        s.promise = self->make_response_promise<msg::stage_report>();
        if (s.task) {
          s.promise.deliver(caf::make_error(caf::sec::runtime_error, "stage busy with step " + std::to_string(s.task->step)));
          return s.promise;
        }
        at::set_num_threads(s.spec.threads);  // per device thread (OpenMP settings are per thread)
        s.pc = 0;
        s.stats = {};
        s.busy = 0;
        s.compute->begin_step(task.train);
        s.task = std::move(task);
        advance(self);
        return s.promise;
      },
      [=](msg::activation& a) {
        self->state.activations[{a.step, a.micro_batch}] = a.value.t;
        advance(self);
      },
      [=](msg::gradient& g) {
        self->state.gradients[{g.step, g.micro_batch}] = g.value.t;
        advance(self);
      },
      [=](msg::stage_links& l) { self->state.links = l; },
      [=](msg::params_atom) {
        auto& c = *self->state.compute;
        msg::named_tensors out{c.parameter_names(), {}};
        for (auto& p : c.parameters()) out.values.push_back({p.detach().clone()});
        return out;
      },
      [=](msg::export_atom) {
        auto& c = *self->state.compute;
        msg::stage_state out;
        for (auto& [name, t] : c.export_parameters()) {
          out.parameters.names.push_back(name);
          out.parameters.values.push_back({t});
        }
        for (auto& [name, t] : c.export_optimizer_state()) {
          out.optimizer.names.push_back(name);
          out.optimizer.values.push_back({t});
        }
        return out;
      },
      [=](msg::grads_atom) {
        auto& c = *self->state.compute;
        msg::named_tensors out{c.parameter_names(), {}};
        for (auto& g : c.gradients()) out.values.push_back({g.detach().clone()});
        return out;
      },
  };
}

}  // namespace

msg::stage_actor spawn_stage(caf::actor_system& sys, StageSpec spec, bool detached) {
  if (detached) return sys.spawn<caf::detached>(stage_behavior, std::move(spec));
  return sys.spawn(stage_behavior, std::move(spec));
}

}  // namespace floe::actors
