#include "actors/stage.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <thread>

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
  // Observation: spans of the step in progress, sent to the bus with the report.
  std::vector<runtime::Event> events;
  int64_t task_start_us = 0;
  // Injected faults, the messages held back by a delay, and this step's slowdown.
  std::vector<runtime::Fault> faults;
  std::set<std::tuple<char, int64_t, int>> released;
  double slow_seconds = 0;
};

using stage_ptr = msg::stage_actor::stateful_pointer<StageState>;

std::optional<torch::Tensor> take(std::map<std::pair<int64_t, int>, torch::Tensor>& m, int64_t step, int mb) {
  auto it = m.find({step, mb});
  if (it == m.end()) return std::nullopt;
  auto t = it->second;
  m.erase(it);
  return t;
}

// An event of this stage about `step` (and micro-batch `mb`), starting at `start_us`.
runtime::Event stage_event(const StageState& st, runtime::EventKind kind, int64_t step, int mb, int64_t start_us) {
  runtime::Event e;
  e.kind = kind;
  e.start_us = start_us;
  e.step = step;
  e.micro_batch = mb;
  e.replica = st.spec.replica;
  e.stage = st.spec.index;
  e.device = st.spec.device;
  return e;
}

// A span of the step in progress, from `start_us` to now.
runtime::Event span_event(const StageState& st, runtime::EventKind kind, int mb, int64_t start_us) {
  auto e = stage_event(st, kind, st.task->step, mb, start_us);
  e.duration_us = runtime::now_us() - start_us;
  e.epoch = st.task->epoch;
  if (!st.task->train) e.detail = "eval";
  return e;
}

int64_t to_us(clock_type::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// An injected slowdown (runtime/faults.hpp): the device takes this much longer per action.
void slow_down(const StageState& st) {
  if (st.slow_seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(st.slow_seconds));
}

// Runs the next actions of the program whose inputs are here; returns true when the
// program has finished.
bool run_ready(stage_ptr self) {
  auto& st = self->state;
  auto& task = *st.task;
  auto& c = *st.compute;
  using runtime::ActionKind;
  const bool observed = static_cast<bool>(st.spec.events);
  while (st.pc < task.program.size()) {
    const auto& a = task.program[st.pc];
    const auto start = clock_type::now();
    if (a.kind == ActionKind::forward) {
      auto in = c.first() ? std::optional<torch::Tensor>(task.inputs.at(a.micro_batch).t)
                          : take(st.activations, task.step, a.micro_batch);
      if (!in) return false;
      slow_down(st);
      const auto uids = c.first() && a.micro_batch < static_cast<int>(task.uids.size())
                            ? task.uids[a.micro_batch].t
                            : torch::Tensor();
      if (c.last()) {
        c.forward_loss(a.micro_batch, *in, task.targets.at(a.micro_batch).t, task.loss_scale, st.stats, uids);
      } else {
        auto out = c.forward(a.micro_batch, *in, uids);
        self->send(st.links.next, msg::activation{task.step, a.micro_batch, {out}, observed ? runtime::now_us() : 0});
      }
    } else if (a.kind == ActionKind::backward) {
      torch::Tensor grad;
      if (!c.last()) {
        auto g = take(st.gradients, task.step, a.micro_batch);
        if (!g) return false;
        grad = *g;
      }
      slow_down(st);
      auto gin = c.backward(a.micro_batch, grad);
      if (!c.first())
        self->send(st.links.prev, msg::gradient{task.step, a.micro_batch, {gin}, observed ? runtime::now_us() : 0});
    } else if (a.kind == ActionKind::reduce) {
      c.reduce();
    } else {
      c.step(task.lr);
    }
    st.busy += std::chrono::duration<double>(clock_type::now() - start).count();
    if (observed) {
      const bool per_mb = a.kind == ActionKind::forward || a.kind == ActionKind::backward;
      st.events.push_back(span_event(st,
                                     a.kind == ActionKind::forward    ? runtime::EventKind::forward
                                     : a.kind == ActionKind::backward ? runtime::EventKind::backward
                                     : a.kind == ActionKind::reduce   ? runtime::EventKind::reduce
                                                                      : runtime::EventKind::optimizer,
                                     per_mb ? a.micro_batch : -1, to_us(start)));
    }
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
    if (st.spec.events) {
      auto e = span_event(st, runtime::EventKind::stage_step, -1, st.task_start_us);
      e.values["busy"] = st.busy;
      st.events.push_back(std::move(e));
      self->send(st.spec.events, msg::event_batch{std::move(st.events)});
      st.events.clear();
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

// On arrival of a tensor from a neighbour: records the transfer, and applies an injected
// delay (the message comes back later, once) or drop. True when the message is held back.
template <class Msg>
bool held_back(stage_ptr self, Msg& m, const char* what) {
  auto& st = self->state;
  const auto key = std::make_tuple(what[0], m.step, static_cast<int>(m.micro_batch));
  if (st.released.erase(key) == 0) {
    for (auto& f : st.faults) {
      if (!runtime::fault_applies(f, what, m.step)) continue;
      if (st.spec.events) {
        auto e = stage_event(st, runtime::EventKind::fault, m.step, m.micro_batch, runtime::now_us());
        e.detail = runtime::describe(f);
        self->send(st.spec.events, msg::event_batch{{std::move(e)}});
      }
      if (f.kind == runtime::FaultKind::drop) return true;
      st.released.insert(key);
      self->delayed_send(self, std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::duration<double>(f.seconds)),
                         std::move(m));
      return true;
    }
  }
  if (st.spec.events && m.sent_us > 0) {
    auto e = stage_event(st, runtime::EventKind::transfer, m.step, m.micro_batch, m.sent_us);
    e.duration_us = runtime::now_us() - m.sent_us;
    e.detail = what;
    const int from = what[0] == 'a' ? -1 : 1;  // activations come from below, gradients from above
    e.values["from_stage"] = st.spec.index + from;
    e.values["from_device"] = st.spec.device + from;
    e.values["bytes"] = static_cast<double>(m.value.t.numel() * m.value.t.element_size());
    st.events.push_back(std::move(e));
  }
  return false;
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
        if (s.spec.events) s.task_start_us = runtime::now_us();
        s.slow_seconds = 0;
        for (auto& f : s.faults)
          if (f.kind == runtime::FaultKind::slow && task.train && runtime::fault_applies(f, "step", task.step))
            s.slow_seconds = f.seconds;
        s.pc = 0;
        s.stats = {};
        s.busy = 0;
        s.compute->begin_step(task.train);
        s.task = std::move(task);
        advance(self);
        return s.promise;
      },
      [=](msg::activation& a) {
        if (held_back(self, a, "activation")) return;
        self->state.activations[{a.step, a.micro_batch}] = a.value.t;
        advance(self);
      },
      [=](msg::gradient& g) {
        if (held_back(self, g, "gradient")) return;
        self->state.gradients[{g.step, g.micro_batch}] = g.value.t;
        advance(self);
      },
      [=](runtime::Fault& f) {
        spdlog::warn("stage {} of replica {}: fault injected: {}", self->state.spec.index, self->state.spec.replica,
                     runtime::describe(f));
        self->state.faults.push_back(f);
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
        return msg::stage_state{msg::from_map(c.export_parameters()), msg::from_map(c.export_optimizer_state())};
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
