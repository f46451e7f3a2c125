#include "actors/stage.hpp"

#include "actors/threads.hpp"
#include "runtime/train/freeze_policy.hpp"

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
  std::map<int, msg::stage_peer> chunks;  // virtual stages: the device's chunks by stage
  int prev_ep = -1, next_ep = -1;  // UCX endpoints to the neighbours in other processes
  // The step in progress.
  std::optional<msg::stage_task> task;
  caf::typed_response_promise<msg::stage_report> promise;
  size_t pc = 0;
  std::vector<char> early;  // the W's after pc run early, filling a wait (runtime::early_weight_gradient)
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

// An injected slowdown (runtime/control/faults.hpp): the device takes this much longer per action.
void slow_down(const StageState& st) {
  if (st.slow_seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(st.slow_seconds));
}

// The UCX tag of a tensor to stage `to` of this replica: unique among the tensors in flight
// towards one process (one step of a pipeline runs at a time; the top bit keeps it nonzero).
uint64_t tensor_tag(bool gradient, int replica, int to, int micro_batch, int64_t step) {
  return (uint64_t(1) << 63) | (uint64_t(gradient) << 62) | (uint64_t(replica & 0x3fff) << 48) |
         (uint64_t(to & 0xfff) << 36) | (uint64_t(micro_batch & 0xfff) << 24) | (uint64_t(step) & 0xffffff);
}

// Sends a tensor to a neighbour: inside the message, or over UCX (endpoint `ep` >= 0) with
// the message carrying the ticket.
template <class Msg>
void pass_on(stage_ptr self, const msg::stage_peer& to, int ep, Msg m, torch::Tensor t, int to_stage) {
  auto& st = self->state;
  if (ep < 0) {
    m.value = {std::move(t)};
    return self->send(to, std::move(m));
  }
  t = t.contiguous();
  const bool gradient = std::is_same<Msg, msg::gradient>::value;
  m.ticket = {tensor_tag(gradient, st.spec.replica, to_stage, m.micro_batch, m.step), int8_t(t.scalar_type()),
              t.sizes().vec()};
  st.spec.transport->send(ep, m.ticket.tag, std::move(t), [](const std::string& error) {
    if (!error.empty()) spdlog::warn("tensor plane: {}", error);
  });
  self->send(to, std::move(m));
}

// A ticket came: receives its tensor over UCX into a pooled buffer, then the message comes
// back to this stage with the tensor in it (or a transfer_failed).
template <class Msg>
void fetch(stage_ptr self, Msg m, int from_ep) {
  auto& st = self->state;
  auto failed = [&](const std::string& why) { self->send(self, msg::transfer_failed{m.step, why}); };
  if (!st.spec.transport) return failed("a tensor ticket came, but this process has no tensor plane");
  torch::Tensor into;
  try {
    into = st.spec.buffers->acquire(c10::ScalarType(m.ticket.dtype), m.ticket.shape);
  } catch (const std::exception& e) {
    return failed(std::string("no buffer for a received tensor: ") + e.what());
  }
  const auto tag = m.ticket.tag;
  m.ticket = {};
  // A weak handle: a receive that never completes (its sender died) must not keep the stage.
  st.spec.transport->recv(
      tag, into,
      [to = caf::actor_cast<caf::actor_addr>(self), m, into](const std::string& error) mutable {
        auto stage = caf::actor_cast<msg::stage_actor>(to);
        if (!stage) return;
        if (!error.empty()) return caf::anon_send(stage, msg::transfer_failed{m.step, error});
        m.value = {into};
        caf::anon_send(stage, std::move(m));
      },
      from_ep);
}

// Counts action `a`, begun at `start`, as busy time and, when observed, as a span.
void record(StageState& st, const runtime::Action& a, clock_type::time_point start) {
  using runtime::ActionKind;
  st.busy += std::chrono::duration<double>(clock_type::now() - start).count();
  if (!st.spec.events) return;
  // I and W are backward spans named by their detail.
  const bool per_mb = a.micro_batch >= 0;
  auto e = span_event(st,
                      a.kind == ActionKind::forward  ? runtime::EventKind::forward
                      : per_mb                       ? runtime::EventKind::backward
                      : a.kind == ActionKind::reduce ? runtime::EventKind::reduce
                                                     : runtime::EventKind::optimizer,
                      a.micro_batch, to_us(start));
  if (a.kind == ActionKind::input_backward || a.kind == ActionKind::weight_backward)
    e.detail = std::string(1, static_cast<char>(a.kind));
  st.events.push_back(std::move(e));
}

// The next action waits for a neighbour: a device that runs only this stage computes a weight
// gradient meanwhile, when one is due (runtime::early_weight_gradient: the step stays the
// program's, bit for bit), then looks again through the mailbox, so that an input that came
// in the meantime goes first. Returns false (the program has not finished).
bool fill_wait(stage_ptr self) {
  auto& st = self->state;
  if (st.spec.turn) return false;
  const int j = runtime::early_weight_gradient(st.task->program, st.pc, st.early);
  if (j < 0) return false;
  const auto& w = st.task->program[j];
  const auto start = clock_type::now();
  st.compute->backward_weight(w.micro_batch);
  record(st, w, start);
  st.early[j] = 1;
  self->send(self, msg::turn_atom::value);
  return false;
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
    if (st.early[st.pc]) {
      ++st.pc;
      continue;
    }
    const auto& a = task.program[st.pc];
    if (st.spec.turn && !st.spec.turn->mine(task.step, a)) return false;  // another chunk's turn
    const auto start = clock_type::now();
    if (a.kind == ActionKind::forward) {
      auto in = c.first() ? std::optional<torch::Tensor>(task.inputs.at(a.micro_batch).t)
                          : take(st.activations, task.step, a.micro_batch);
      if (!in) return fill_wait(self);
      slow_down(st);
      const auto uids = c.first() && a.micro_batch < static_cast<int>(task.uids.size())
                            ? task.uids[a.micro_batch].t
                            : torch::Tensor();
      if (c.last()) {
        c.forward_loss(a.micro_batch, *in, task.targets.at(a.micro_batch).t, task.loss_scale, st.stats, uids);
      } else {
        auto out = c.forward(a.micro_batch, *in, uids);
        pass_on(self, st.links.next, st.next_ep,
                msg::activation{task.step, a.micro_batch, {}, observed ? runtime::now_us() : 0, {}}, out,
                st.spec.index + 1);
      }
    } else if (a.kind == ActionKind::backward || a.kind == ActionKind::input_backward) {
      torch::Tensor grad;
      if (!c.last()) {
        auto g = take(st.gradients, task.step, a.micro_batch);
        if (!g) return fill_wait(self);
        grad = *g;
      }
      slow_down(st);
      auto gin = a.kind == ActionKind::backward ? c.backward(a.micro_batch, grad)
                                                : c.backward_input(a.micro_batch, grad);
      if (!c.first())
        pass_on(self, st.links.prev, st.prev_ep,
                msg::gradient{task.step, a.micro_batch, {}, observed ? runtime::now_us() : 0, {}}, gin,
                st.spec.index - 1);
    } else if (a.kind == ActionKind::weight_backward) {
      c.backward_weight(a.micro_batch);
    } else if (a.kind == ActionKind::reduce) {
      c.reduce();
    } else {
      c.step(task.lr, task.block_lr);
    }
    record(st, a, start);
    ++st.pc;
    if (st.spec.turn) {
      const int next = st.spec.turn->pass(task.step);
      if (next >= 0 && next != st.spec.index) {
        auto it = st.chunks.find(next);
        if (it == st.chunks.end())
          throw std::runtime_error("the device's next action is on stage " + std::to_string(next) +
                                   ", which this stage has no link to");
        self->send(it->second, msg::turn_atom::value);
      }
    }
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
                          st.stats.targets, st.busy, {}, {}, {}};
    for (auto& [mb, p] : st.stats.probabilities) rep.probabilities.push_back({p});
    const auto signal = static_cast<runtime::BlockSignal>(st.task->train ? st.task->signal : 0);
    if (signal != runtime::BlockSignal::none)
      for (const auto& [block, value] : signal == runtime::BlockSignal::gradient_norm
                                            ? st.compute->block_gradient_norms_sq()
                                            : st.compute->block_plasticity()) {
        rep.blocks.push_back(block);
        rep.block_values.push_back(value);
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
    if (!st.spec.turn) e.values["from_device"] = st.spec.device + from;  // (with chunks: not the next device)
    e.values["bytes"] = static_cast<double>(m.value.t.numel() * m.value.t.element_size());
    st.events.push_back(std::move(e));
  }
  return false;
}

msg::stage_actor::behavior_type stage_behavior(stage_ptr self, StageSpec spec) {
  use_intra_op_threads(spec.threads);
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
        if (task.signal < 0 || task.signal > static_cast<int8_t>(runtime::BlockSignal::plasticity)) {
          s.promise.deliver(caf::make_error(caf::sec::invalid_argument,
                                            "stage_task.signal = " + std::to_string(task.signal) +
                                                ", expected 0 (none), 1 (gradient norms) or 2 (plasticity)"));
          return s.promise;
        }
        if (s.spec.turn && task.device_program.empty()) {
          s.promise.deliver(caf::make_error(caf::sec::invalid_argument,
                                            "stage_task.device_program is empty, but stage " +
                                                std::to_string(s.spec.index) + " shares its device"));
          return s.promise;
        }
        use_intra_op_threads(s.spec.threads);  // a stage that is not detached runs on any scheduler thread
        if (s.spec.events) s.task_start_us = runtime::now_us();
        s.slow_seconds = 0;
        for (auto& f : s.faults)
          if (f.kind == runtime::FaultKind::slow && task.train && runtime::fault_applies(f, "step", task.step))
            s.slow_seconds = f.seconds;
        s.pc = 0;
        s.early.assign(task.program.size(), 0);
        s.stats = {};
        s.stats.keep_probabilities = task.predictions && !task.train;
        s.busy = 0;
        s.compute->begin_step(task.train, runtime::splits_backward(task.program),
                              task.signal == static_cast<int8_t>(runtime::BlockSignal::plasticity));
        if (s.spec.turn) s.spec.turn->begin(task.step, task.device_program);
        s.task = std::move(task);
        advance(self);
        return s.promise;
      },
      [=](msg::turn_atom) { advance(self); },
      [=](msg::activation& a) {
        if (a.ticket.tag) return fetch(self, std::move(a), self->state.prev_ep);
        if (held_back(self, a, "activation")) return;
        self->state.activations[{a.step, a.micro_batch}] = a.value.t;
        advance(self);
      },
      [=](msg::gradient& g) {
        if (g.ticket.tag) return fetch(self, std::move(g), self->state.next_ep);
        if (held_back(self, g, "gradient")) return;
        self->state.gradients[{g.step, g.micro_batch}] = g.value.t;
        advance(self);
      },
      [=](runtime::Fault& f) {
        spdlog::warn("stage {} of replica {}: fault injected: {}", self->state.spec.index, self->state.spec.replica,
                     runtime::describe(f));
        self->state.faults.push_back(f);
      },
      [=](msg::stage_links& l) {
        auto& s = self->state;
        s.links = l;
        s.chunks.clear();
        for (size_t i = 0; i < l.chunks.size() && i < l.chunk_stages.size(); ++i) s.chunks[l.chunk_stages[i]] = l.chunks[i];
        s.prev_ep = s.next_ep = -1;
        if (!s.spec.transport) return;
        try {
          // Only a neighbour in another process is reached over UCX.
          if (!l.prev_address.empty() && l.prev && l.prev.node() != self->node())
            s.prev_ep = s.spec.transport->endpoint({l.prev_address.begin(), l.prev_address.end()});
          if (!l.next_address.empty() && l.next && l.next.node() != self->node())
            s.next_ep = s.spec.transport->endpoint({l.next_address.begin(), l.next_address.end()});
          if (s.prev_ep >= 0 || s.next_ep >= 0)
            spdlog::info("stage {} of replica {}: tensors to and from stage {} on another node go over UCX",
                         s.spec.index, s.spec.replica, s.prev_ep >= 0 ? s.spec.index - 1 : s.spec.index + 1);
        } catch (const std::exception& e) {
          spdlog::warn("stage {} of replica {}: no UCX endpoint to a neighbour ({}); its tensors travel in messages",
                       s.spec.index, s.spec.replica, e.what());
        }
      },
      [=](msg::transfer_failed& f) {
        auto& s = self->state;
        // (Only this stage sends it: the type is not registered for the network.)
        spdlog::error("stage {} of replica {}: step {}: {}", s.spec.index, s.spec.replica, f.step, f.error);
        if (!s.task || s.task->step != f.step) return;
        s.promise.deliver(caf::make_error(caf::sec::runtime_error,
                                          "stage " + std::to_string(s.spec.index) + ": receiving a tensor: " + f.error));
        s.task.reset();
      },
      [=](msg::params_atom) {
        auto& c = *self->state.compute;
        msg::named_tensors out{c.parameter_names(), {}};
        for (auto& p : c.parameters()) out.values.push_back({p.detach().clone()});
        return out;
      },
      [=](msg::export_atom) {
        auto& c = *self->state.compute;
        return msg::stage_state{msg::from_map(c.export_parameters()), msg::from_map(c.export_optimizer_state()),
                                {c.optimizer_step()}};
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
