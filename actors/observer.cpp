#include "actors/observer.hpp"

#include <spdlog/spdlog.h>

namespace floe::actors {
namespace {

struct ObserverState {
  static inline const char* name = "floe.observer";
  std::shared_ptr<runtime::EventWriter> writer;
  bool broken = false;  // a writer that failed once is not fed again
};

msg::observer_actor::behavior_type observer_behavior(msg::observer_actor::stateful_pointer<ObserverState> self,
                                                     std::shared_ptr<runtime::EventWriter> writer) {
  self->state.writer = std::move(writer);
  return {
      [=](const msg::event_batch& b) {  // const: the bus shares one message among the observers
        auto& st = self->state;
        if (st.broken) return;
        try {
          for (const auto& e : b.events) st.writer->on(e);
        } catch (const std::exception& e) {
          spdlog::error("observer: {}", e.what());
          st.broken = true;
        }
      },
      [=](msg::flush_atom) {
        auto& st = self->state;
        if (st.broken) return false;
        try {
          st.writer->flush();
          return true;
        } catch (const std::exception& e) {
          spdlog::error("observer: {}", e.what());
          st.broken = true;
          return false;
        }
      },
  };
}

}  // namespace

msg::observer_actor spawn_observer(caf::actor_system& sys, std::shared_ptr<runtime::EventWriter> writer) {
  return sys.spawn<caf::detached>(observer_behavior, std::move(writer));
}

}  // namespace floe::actors
