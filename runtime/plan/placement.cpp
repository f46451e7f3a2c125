#include "runtime/plan/placement.hpp"

#include <numeric>
#include <stdexcept>
#include <string>

namespace floe::runtime {

int replicas_on_nodes(const std::vector<int>& node_devices, int stages, bool span) {
  if (stages < 1) throw std::invalid_argument("placement: a pipeline needs at least one stage");
  if (span) return std::accumulate(node_devices.begin(), node_devices.end(), 0) / stages;
  int r = 0;
  for (int d : node_devices) r += d / stages;
  return r;
}

std::vector<std::vector<int>> place_pipelines(const std::vector<int>& node_devices, int stages, int replicas,
                                              bool span) {
  if (replicas_on_nodes(node_devices, stages, span) < replicas) {
    std::string nodes;
    for (int d : node_devices) nodes += (nodes.empty() ? "" : ", ") + std::to_string(d);
    throw std::invalid_argument("placement: " + std::to_string(replicas) + " pipeline(s) of " + std::to_string(stages) +
                                " stage(s) do not fit on nodes with [" + nodes + "] devices" +
                                (span ? "" : " (a pipeline stays inside one node unless pipeline.span_nodes is set)"));
  }
  // Walk the nodes' devices in order; without `span`, a pipeline that would not end on the
  // node it starts on starts on the next node instead.
  std::vector<std::vector<int>> out;
  size_t node = 0;
  int used = 0;  // devices of `node` taken
  for (int r = 0; r < replicas; ++r) {
    while (!span && node_devices[node] - used < stages) ++node, used = 0;
    std::vector<int> where;
    for (int s = 0; s < stages; ++s) {
      while (used == node_devices[node]) ++node, used = 0;
      where.push_back(static_cast<int>(node));
      ++used;
    }
    out.push_back(std::move(where));
  }
  return out;
}

std::vector<std::vector<PipelinePiece>> pieces_per_node(const std::vector<std::vector<int>>& placement, std::size_t nodes) {
  std::vector<std::vector<PipelinePiece>> out(nodes);
  for (size_t r = 0; r < placement.size(); ++r)
    for (size_t s = 0; s < placement[r].size(); ++s) {
      auto& pieces = out.at(placement[r][s]);
      if (s > 0 && placement[r][s - 1] == placement[r][s])
        ++pieces.back().stages;
      else
        pieces.push_back({static_cast<int32_t>(r), static_cast<int32_t>(s), 1});
    }
  return out;
}

bool splits_pipelines(const std::vector<std::vector<int>>& placement) {
  for (const auto& p : placement)
    for (int n : p)
      if (n != p.front()) return true;
  return false;
}

bool groups_span_nodes(const std::vector<std::vector<int>>& placement) {
  for (const auto& p : placement)
    for (size_t s = 0; s < p.size(); ++s)
      if (p[s] != placement.front()[s]) return true;
  return false;
}

}  // namespace floe::runtime
