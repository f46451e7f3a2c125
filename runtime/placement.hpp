#pragma once
// Where the pipelines of a plan run when the devices belong to several nodes (processes or
// machines). A pipeline stays inside one node, as in the paper: its activations never cross
// a network; only the data-parallel gradient all-reduce spans nodes.
#include <vector>

namespace floe::runtime {

// How many pipelines of `stages` devices fit when none may span two nodes.
int replicas_on_nodes(const std::vector<int>& node_devices, int stages);

// The node of each of `replicas` pipelines, filling the nodes in order. Throws
// std::invalid_argument when they do not fit.
std::vector<int> place_pipelines(const std::vector<int>& node_devices, int stages, int replicas);

}  // namespace floe::runtime
