#pragma once
// Where the pipelines of a plan run when the devices belong to several nodes (processes or
// machines). By default a pipeline stays inside one node, as in the paper: its activations
// never cross a network; only the data-parallel gradient all-reduce spans nodes. With
// `pipeline.span_nodes` a pipeline may continue on the next node: the devices of all nodes
// form one sequence, and pipeline r takes devices rK..rK+K-1 of it.
#include <vector>

namespace floe::runtime {

// How many pipelines of `stages` devices fit (none spans two nodes unless `span`).
int replicas_on_nodes(const std::vector<int>& node_devices, int stages, bool span = false);

// The node of every stage of each of `replicas` pipelines ([replica][stage]), filling the
// nodes in order. Throws std::invalid_argument when they do not fit.
std::vector<std::vector<int>> place_pipelines(const std::vector<int>& node_devices, int stages, int replicas,
                                              bool span = false);

// Whether any pipeline of a placement has stages on two nodes.
bool splits_pipelines(const std::vector<std::vector<int>>& placement);

// Whether stage k of the replicas is on more than one node for some k (its gradient group
// then spans nodes).
bool groups_span_nodes(const std::vector<std::vector<int>>& placement);

}  // namespace floe::runtime
