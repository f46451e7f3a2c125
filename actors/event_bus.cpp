#include "actors/event_bus.hpp"

#include "actors/fan_in.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace floe::actors {
namespace {

struct BusState {
  static inline const char* name = "floe.event_bus";
  std::vector<std::pair<msg::observer_actor, bool>> observers;  // and whether it wants the stages' spans
};

// A batch of stage spans only (every event from a stage): observers that asked for the
// coordinator's events alone (the console) skip it.
bool spans_only(const msg::event_batch& b) {
  return !b.events.empty() && std::all_of(b.events.begin(), b.events.end(), [](const auto& e) { return e.stage >= 0; });
}

msg::event_bus_actor::behavior_type bus_behavior(msg::event_bus_actor::stateful_pointer<BusState> self) {
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& obs = self->state.observers;
    obs.erase(std::remove_if(obs.begin(), obs.end(), [&](const auto& o) { return o.first.address() == dm.source; }),
              obs.end());
  });
  return {
      [=](msg::event_batch& b) {
        const bool spans = spans_only(b);
        // One message that every observer shares (they only read it): no copy per observer.
        const auto shared = caf::make_message(std::move(b));
        for (auto& [o, wants_spans] : self->state.observers)
          if (wants_spans || !spans)
            caf::actor_cast<caf::strong_actor_ptr>(o)->enqueue(nullptr, caf::make_message_id(), shared, self->context());
      },
      [=](msg::subscribe& s) {
        if (!s.observer) return;
        self->monitor(s.observer);  // a dead observer is dropped, not waited for
        self->state.observers.emplace_back(s.observer, s.spans);
      },
      [=](msg::flush_atom) -> caf::typed_response_promise<bool> {
        auto promise = self->make_response_promise<bool>();
        std::vector<msg::observer_actor> to;
        for (auto& [o, spans] : self->state.observers) to.push_back(o);
        auto ok = std::make_shared<bool>(true);
        fan_in<bool>(self, to, [](size_t) { return msg::flush_atom::value; },
                     {caf::duration{std::chrono::seconds(120)},
                      [=](size_t, bool& good) {
                        *ok = *ok && good;
                        return std::string();
                      },
                      [=]() mutable { promise.deliver(*ok); }, [=](const std::string&) mutable { promise.deliver(false); },
                      nullptr,
                      [=](size_t, const caf::error& e) -> std::optional<bool> {
                        spdlog::warn("an observer did not flush: {}", self->system().render(e));
                        return false;  // the others still finish writing
                      }});
        return promise;
      },
  };
}

}  // namespace

msg::event_bus_actor spawn_event_bus(caf::actor_system& sys) {
  return sys.spawn(bus_behavior);
}

}  // namespace floe::actors
