#pragma once
// AutoPipe + AutoDP as one pure function: given the model's units, the devices and how many
// blocks are frozen, decide the frozen prefix, the pipeline length K, the partition of the
// active units, the micro-batch count M and the replica count R. With v chunks per device
// (virtual stages) the active units are cut into K·v stages, balanced as K stages are; a
// pipeline of one device, or one with fewer active units than K·v, runs one chunk per device.
// Compression (spec §3.3) halves K while the halved plan's bottleneck stays within M_GPU(0).
// With planner.frozen_cost the frozen prefix counts λ = 1/6 of its parameters on stage 0 when
// the cuts are placed (unlike the original, which ignored it, spec §8 #4); because that load
// is on stage 0 for every K, the compression budget grows by the same λ·S_frozen, so the
// prefix shapes the partition but cannot by itself stop the pipeline from shrinking.
#include "runtime/plan/planner.hpp"
#include "runtime/plan/schedule.hpp"

#include <string>
#include <vector>

namespace floe::runtime {

struct PlanRequest {
  std::vector<int64_t> unit_params;  // every unit of the model, in order
  std::vector<int> unit_blocks;      // block index per unit: -1 embedding, L for the tail
  int devices = 1;
  std::vector<int> node_devices;     // devices per node; empty = one node. Pipelines stay in a node.
  int initial_stages = 1;            // K0: the pipeline length with nothing frozen
  int initial_replicas = 1;          // R0 (fewer when they no longer fit the devices: a lost node)
  int current_stages = 1;            // K now; compression only ever shortens the pipeline
  int frozen_blocks = 0;             // F
  int micro_batches = 1;             // M for K > 1 (K = 1 runs whole batches); 0: the paper's table
  bool elastic = true;               // false: K and R stay; only the frozen prefix moves
  bool data_parallel = true;         // elastic: freed devices get replicas (AutoDP); false: R stays R0
  int chunks = 1;                    // v: virtual stages per device (interleaved, ZB-V) while K > 1
  ChunkPlacement placement = ChunkPlacement::looped;  // of the chunks on the devices
  CompressionOptions compression{PartitionMode::optimal, false, true, 1, 6};
};

struct Plan {
  int frozen_blocks = 0;
  int frozen_units = 0;                // the prefix that runs without gradients on stage 0
  int stages = 1;                      // K
  int replicas = 1;                    // R
  int micro_batches = 1;               // M
  int chunks = 1;                      // v: stages per device; 1 when K = 1 or the active units are fewer than 2K
  std::vector<int> units_per_stage;    // active units per stage: K·v stages
  std::vector<int64_t> stage_costs;    // parameters per stage (frozen prefix excluded)
  int64_t frozen_params = 0;
  int64_t m_gpu0 = 0;                  // bottleneck of the K0 plan with nothing frozen

  bool same_layout(const Plan& o) const {
    return frozen_units == o.frozen_units && units_per_stage == o.units_per_stage && replicas == o.replicas &&
           micro_batches == o.micro_batches && chunks == o.chunks;
  }
};

// Units in the frozen prefix for F frozen blocks: the embedding and blocks 0..F-1.
int frozen_unit_count(const std::vector<int>& unit_blocks, int frozen_blocks);

// Throws std::invalid_argument when the request cannot be planned (no devices, K0 > units...).
Plan make_plan(const PlanRequest& request);

// Human-readable: one line per stage with its units and costs, then K, M, R and placement.
// `cost_unit`: what the costs count ("parameters", or "ns" with planner.costs = "measured").
std::string describe(const Plan& plan, const std::vector<std::string>& unit_names,
                     const std::string& cost_unit = "parameters");

}  // namespace floe::runtime
