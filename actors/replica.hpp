#pragma once
// The replica actor: one pipeline. It owns its stages' handles and the datasets it reads
// its shards from; per step it splits its shard into micro-batches, hands every stage its
// program, and reports when all stages are done. Tensors flow between the stages directly.
#include "actors/stage.hpp"
#include "messages/membership.hpp"
#include "models/dataset.hpp"
#include "runtime/train/batch.hpp"

namespace floe::actors {

struct ReplicaSpec {
  int index = 0;
  std::vector<msg::stage_actor> stages;  // K·v: with v chunks per device, its virtual stages
  std::shared_ptr<const models::Dataset> train, test;
  int micro_batches = 1;
  runtime::ScheduleKind schedule = runtime::ScheduleKind::gpipe;
  runtime::BatchRecipe batches;  // how a step's samples become its inputs and targets
  int chunks = 1;                // v: stages per device (runtime::chunks_for)
};

msg::replica_actor spawn_replica(caf::actor_system& sys, ReplicaSpec spec);

// A replica with the stages it owns (a piece: some of them, and maybe no replica).
struct PipelineHandles {
  msg::replica_actor replica;
  std::vector<msg::stage_actor> stages;
};

struct PipelineLayout {
  // K·v entries (v = `chunks` per device, placed as runtime::placement_of the schedule says):
  // the active units after the frozen prefix.
  std::vector<int> units_per_stage;
  int chunks = 1;
  int replicas = 1;
  int micro_batches = 1;
  runtime::ScheduleKind schedule = runtime::ScheduleKind::gpipe;
  int threads_per_device = 1;
  bool detached = true;  // false: on the scheduler (deterministic tests)
  int frozen_units = 0;  // prefix run without gradients on each pipeline's first stage
  std::shared_ptr<runtime::ActivationCache> cache;  // the node's AutoCache for the frozen prefix, or none
  runtime::BatchRecipe batches;
  msg::observer_actor events;  // where stages send their spans; invalid: not observed
  std::vector<runtime::PipelinePiece> pieces;  // what to spawn here; empty = all R whole pipelines
  // The gradient group of (stage, replica); unset = one in-memory group per stage, shared by
  // the replicas spawned here (which must then be all of them).
  std::function<std::shared_ptr<runtime::GradientGroup>(int stage, int replica)> groups;
  // The process's tensor plane, for stages linked to stages of other processes; none: such
  // tensors travel inside CAF messages.
  std::shared_ptr<runtime::UcxTransport> transport;
  std::shared_ptr<runtime::BufferPool> buffers;
};

// Spawns the pieces `layout.pieces` (default: all R pipelines, whole; with chunks > 1 a piece
// must be a whole pipeline, in stages) and links each piece's
// stages; a whole pipeline also gets its replica (a piece's `replica` stays invalid: the
// coordinator joins the pieces of a pipeline that spans nodes, see msg::pipelines_join).
// `models` holds one unit list per piece, with equal weights; stage k of every replica joins
// one gradient all-reduce group. Every stage continues AdamW from `optimizer_state` for the
// parameters it finds there.
std::vector<PipelineHandles> spawn_pipelines(caf::actor_system& sys, const PipelineLayout& layout,
                                             const std::vector<models::UnitList>& models,
                                             const runtime::OptimizerConfig& optimizer,
                                             std::shared_ptr<const models::Dataset> train,
                                             std::shared_ptr<const models::Dataset> test,
                                             const runtime::NamedTensors& optimizer_state = {});

// Sends every actor of the pipelines an exit message.
void shutdown(const std::vector<PipelineHandles>& pipelines);

}  // namespace floe::actors
