#pragma once
// The console observer's writer: progress within an epoch from the coordinator's step events,
// a redrawn bar on a terminal, a line every `interval` steps otherwise (logs, CI). It needs no
// stage spans (subscribe it with spans = false).
#include "runtime/observe/event_writer.hpp"

#include <cstdint>
#include <memory>

namespace floe::runtime {

bool stdout_is_terminal();

std::unique_ptr<EventWriter> make_console_writer(int64_t interval, bool terminal);

}  // namespace floe::runtime
