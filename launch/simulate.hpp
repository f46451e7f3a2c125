#pragma once
// `floe profile` and `floe simulate` (docs/simulator.md): the cost model of a job measured
// here, and a job run over a cost model by floe's own planner, policies and schedules.
#include <CLI/CLI.hpp>

#include <functional>

namespace floe::launch {

// Adds both commands to `app`; the function returned runs the one the command line chose and
// returns its exit code, or returns -1 when neither was chosen.
std::function<int()> add_simulator_commands(CLI::App& app);

}  // namespace floe::launch
