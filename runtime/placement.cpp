#include "runtime/placement.hpp"

#include <stdexcept>
#include <string>

namespace floe::runtime {

int replicas_on_nodes(const std::vector<int>& node_devices, int stages) {
  if (stages < 1) throw std::invalid_argument("placement: a pipeline needs at least one stage");
  int r = 0;
  for (int d : node_devices) r += d / stages;
  return r;
}

std::vector<int> place_pipelines(const std::vector<int>& node_devices, int stages, int replicas) {
  std::vector<int> out;
  for (size_t n = 0; n < node_devices.size() && static_cast<int>(out.size()) < replicas; ++n)
    for (int k = 0; k < node_devices[n] / stages && static_cast<int>(out.size()) < replicas; ++k)
      out.push_back(static_cast<int>(n));
  if (static_cast<int>(out.size()) < replicas) {
    std::string nodes;
    for (int d : node_devices) nodes += (nodes.empty() ? "" : ", ") + std::to_string(d);
    throw std::invalid_argument("placement: " + std::to_string(replicas) + " pipeline(s) of " + std::to_string(stages) +
                                " stage(s) do not fit on nodes with [" + nodes +
                                "] devices (a pipeline stays inside one node)");
  }
  return out;
}

}  // namespace floe::runtime
