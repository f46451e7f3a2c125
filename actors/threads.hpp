#pragma once
// The threads of a floe process and the cores they share (docs/architecture.md → Devices).
//
// Intra-op threads: OpenMP's thread count is a setting of each calling thread, and a thread
// that never sets it gets one per core. A device (a stage) sets its own; every other thread of
// floe computes with one. An OpenMP team started on any other thread keeps its worker for the
// whole run, and once a process holds more OpenMP threads than cores, libgomp stops spinning
// for all of them: a device's worker then sleeps after every parallel region and the kernel
// wakes it for the next one. That made two intra-op threads slower than one (docs/benchmarks.md).
#include <caf/actor_system_config.hpp>

namespace floe::actors {

// The actor system leaves the cores to the devices' compute:
// - its scheduler threads wait on a condition variable when idle (CAF's "sharing" policy). CAF's
//   default, work stealing, polls every 50 µs after each message: each poll takes a core from a
//   compute thread for a moment, and the rest of that thread's OpenMP team (or the next stage
//   of its pipeline) waits for it. On 2 cores: +10-25 % samples/s (docs/benchmarks.md);
// - every thread it starts (scheduler, detached actors, network) computes with one intra-op thread.
void share_cores_with_compute(caf::actor_system_config& cfg);

// The calling thread computes with `threads` intra-op threads (cheap when unchanged).
void use_intra_op_threads(int threads);

// The calling thread (the process's main thread: it loads data and coordinates) computes with one.
void keep_thread_serial();

}  // namespace floe::actors
