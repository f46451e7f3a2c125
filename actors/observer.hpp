#pragma once
// The observer actor: a shell around a runtime::EventWriter, on its own thread so that file
// writing never stalls a device. Built-in observers (metrics, trace, report) and users'
// writers all run in it.
#include "messages/events.hpp"
#include "runtime/observe/event_writer.hpp"

namespace floe::actors {

msg::observer_actor spawn_observer(caf::actor_system& sys, std::shared_ptr<runtime::EventWriter> writer);

}  // namespace floe::actors
