#pragma once
// The event bus: one per job. Actors send it their event batches; it forwards each to every
// subscribed observer, and on `flush` asks all of them to flush and answers when they have.
// With no subscriber a batch is dropped on arrival.
#include "messages/events.hpp"

namespace floe::actors {

msg::event_bus_actor spawn_event_bus(caf::actor_system& sys);

}  // namespace floe::actors
