#pragma once
// The observation protocol: actors -> event bus -> observers, and what a hook may send a
// running job (subscribe an observer, inject a fault, script a freeze).
#include "messages/exact.hpp"
#include "runtime/observe/events.hpp"
#include "runtime/control/faults.hpp"

#include <caf/all.hpp>

namespace floe::runtime {
// An int8 on the wire for an enum whose values run 0..last; anything else is refused on load.
template <class Enum>
auto checked_enum(int8_t& raw, Enum& field, Enum last, const char* what) {
  raw = static_cast<int8_t>(field);
  return caf::meta::load_callback([&raw, &field, last, what]() -> caf::error {
    if (raw < 0 || raw > static_cast<int8_t>(last))
      return caf::make_error(caf::sec::invalid_argument, std::string(what) + ": unknown kind");
    field = static_cast<Enum>(raw);
    return caf::none;
  });
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Event& x) {
  int8_t kind = 0;
  auto load = checked_enum(kind, x.kind, EventKind::fault, "event");
  return f(caf::meta::type_name("event"), kind, x.start_us, x.duration_us, x.epoch, x.step, x.replica, x.stage,
           x.device, x.micro_batch, x.detail, msg::exact(x.values), msg::exact(x.per_stage), load);
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Fault& x) {
  int8_t kind = 0;
  auto load = checked_enum(kind, x.kind, FaultKind::kill, "fault");
  return f(caf::meta::type_name("fault"), kind, x.message, x.replica, x.stage, x.node, msg::exact(x.seconds),
           x.at_step, x.count, load);
}
}  // namespace floe::runtime

namespace floe::msg {

using flush_atom = caf::atom_constant<caf::atom("flush")>;

// Events travel in batches: a stage sends one per step, not one per micro-batch.
struct event_batch {
  std::vector<runtime::Event> events;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch& x) {
  return f(caf::meta::type_name("event_batch"), x.events);
}

// An observer: receives every event batch; `flush` is answered once everything received so
// far is written (the job sends it before it answers with the summary).
using observer_actor = caf::typed_actor<caf::reacts_to<event_batch>, caf::replies_to<flush_atom>::with<bool>>;

// A hook -> the coordinator: attach an observer to the job's event stream. Before `start`,
// stages record micro-batch spans for it; attached later it sees the coordinator's events
// and the stages' from the next transition on.
struct subscribe {
  observer_actor observer;
  bool spans = true;  // also the stages' per-micro-batch spans (false: the coordinator's events)
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, subscribe& x) {
  return f(caf::meta::type_name("subscribe"), x.observer, x.spans);
}

// The job's event bus: every actor of the job sends it its events; it fans them out to the
// subscribed observers, and answers `flush` when all of them have.
using event_bus_actor = observer_actor::extend<caf::reacts_to<subscribe>>;

// A hook -> the coordinator: apply this fault at its step (now, if that step has passed).
struct inject_fault {
  runtime::Fault fault;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inject_fault& x) {
  return f(caf::meta::type_name("inject_fault"), x.fault);
}

// A hook -> the coordinator: freeze the bottom `frozen` blocks at the step boundary before
// global step `at_step` (a live transition mid-epoch), whatever the freeze policy says.
struct scripted_freeze {
  int64_t at_step = 0;
  int32_t frozen = 0;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, scripted_freeze& x) {
  return f(caf::meta::type_name("scripted_freeze"), x.at_step, x.frozen);
}

}  // namespace floe::msg
