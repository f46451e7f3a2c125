#include "actors/event_bus.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace floe::actors {
namespace {

struct BusState {
  static inline const char* name = "floe.event_bus";
  std::vector<msg::observer_actor> observers;
};

msg::event_bus_actor::behavior_type bus_behavior(msg::event_bus_actor::stateful_pointer<BusState> self) {
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& obs = self->state.observers;
    obs.erase(std::remove_if(obs.begin(), obs.end(), [&](const auto& o) { return o.address() == dm.source; }),
              obs.end());
  });
  return {
      [=](msg::event_batch& b) {
        for (auto& o : self->state.observers) self->send(o, b);
      },
      [=](msg::subscribe& s) {
        if (!s.observer) return;
        self->monitor(s.observer);  // a dead observer is dropped, not waited for
        self->state.observers.push_back(s.observer);
      },
      [=](msg::flush_atom) -> caf::typed_response_promise<bool> {
        auto promise = self->make_response_promise<bool>();
        auto& obs = self->state.observers;
        if (obs.empty()) {
          promise.deliver(true);
          return promise;
        }
        auto pending = std::make_shared<size_t>(obs.size());
        auto ok = std::make_shared<bool>(true);
        for (auto& o : obs)
          self->request(o, std::chrono::seconds(120), msg::flush_atom::value)
              .then(
                  [=](bool good) mutable {
                    *ok = *ok && good;
                    if (--*pending == 0) promise.deliver(*ok);
                  },
                  [=](caf::error& e) mutable {
                    spdlog::warn("an observer did not flush: {}", self->system().render(e));
                    *ok = false;
                    if (--*pending == 0) promise.deliver(*ok);
                  });
        return promise;
      },
  };
}

}  // namespace

msg::event_bus_actor spawn_event_bus(caf::actor_system& sys) {
  return sys.spawn(bus_behavior);
}

}  // namespace floe::actors
