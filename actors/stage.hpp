#pragma once
// The stage actor: owns a contiguous range of units on one device and runs, per step, the
// program the replica hands it (runtime/plan/schedule.hpp), one action at a time as its inputs
// arrive from its neighbours. With virtual stages a device holds several such stages (its
// chunks), which take turns in the order of the device's program (runtime/train/device_turn).
#include "messages/training.hpp"
#include "runtime/train/stage_compute.hpp"
#include "runtime/comm/ucx_transport.hpp"
#include "runtime/train/device_turn.hpp"

namespace floe::actors {

struct StageSpec {
  int index = 0;    // position in the pipeline (a virtual stage, with several chunks per device)
  int count = 1;    // stages in the pipeline
  int replica = 0;  // rank in the data-parallel group of this position
  models::UnitList frozen;  // the frozen prefix (first stage only): no gradients, eval mode
  models::UnitList units;
  runtime::OptimizerConfig optimizer;
  runtime::NamedTensors optimizer_state;  // AdamW state to continue from (after a transition)
  std::shared_ptr<runtime::GradientGroup> reduce_group;
  int threads = 1;  // intra-op threads of the device
  std::shared_ptr<runtime::ActivationCache> cache;  // the node's AutoCache (first stage), or none
  int device = 0;                  // where it computes (trace tracks)
  // Virtual stages: the turn this stage shares with the other chunks of its device; none
  // when the device runs one stage.
  std::shared_ptr<runtime::DeviceTurn> turn;
  msg::observer_actor events;      // the job's event bus when observed; invalid: record nothing
  // The process's tensor plane: tensors to and from a neighbour in another process whose
  // stage_links name its UCX address move over UCX; without it, inside the messages.
  std::shared_ptr<runtime::UcxTransport> transport;
  std::shared_ptr<runtime::BufferPool> buffers;
};

// A CPU device is a detached actor thread; `detached = false` runs the stage on the
// scheduler instead (deterministic tests with CAF's test coordinator).
msg::stage_actor spawn_stage(caf::actor_system& sys, StageSpec spec, bool detached = true);

}  // namespace floe::actors
