#pragma once
// Where the pipelines of a plan run when the devices belong to several nodes (processes or
// machines). By default a pipeline stays inside one node, as in the paper: its activations
// never cross a network; only the data-parallel gradient all-reduce spans nodes. With
// `pipeline.span_nodes` a pipeline may continue on the next node: the devices of all nodes
// form one sequence, and pipeline r takes devices rK..rK+K-1 of it.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace floe::runtime {

// How many pipelines of `stages` devices fit (none spans two nodes unless `span`).
int replicas_on_nodes(const std::vector<int>& node_devices, int stages, bool span = false);

// The node of every stage of each of `replicas` pipelines ([replica][stage]), filling the
// nodes in order. Throws std::invalid_argument when they do not fit.
std::vector<std::vector<int>> place_pipelines(const std::vector<int>& node_devices, int stages, int replicas,
                                              bool span = false);

// A run of consecutive stages of one replica's pipeline that one node hosts: all K of them,
// or the part of a pipeline that spans nodes.
struct PipelinePiece {
  int32_t replica = 0;
  int32_t first_stage = 0;
  int32_t stages = 0;
};

// The pieces each of `nodes` nodes hosts under a placement ([node], in replica order).
std::vector<std::vector<PipelinePiece>> pieces_per_node(const std::vector<std::vector<int>>& placement, std::size_t nodes);

// Whether any pipeline of a placement has stages on two nodes.
bool splits_pipelines(const std::vector<std::vector<int>>& placement);

// Whether stage k of the replicas is on more than one node for some k (its gradient group
// then spans nodes).
bool groups_span_nodes(const std::vector<std::vector<int>>& placement);

}  // namespace floe::runtime
