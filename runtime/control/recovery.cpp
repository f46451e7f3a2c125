#include "runtime/control/recovery.hpp"

#include <algorithm>
#include <set>

namespace floe::runtime {

RecoveryPlan plan_recovery(const std::vector<std::vector<int>>& hosts, const std::vector<int>& lost) {
  RecoveryPlan p;
  for (size_t r = 0; r < hosts.size(); ++r)
    if (std::none_of(hosts[r].begin(), hosts[r].end(),
                     [&](int n) { return std::find(lost.begin(), lost.end(), n) != lost.end(); }))
      p.survivors.push_back(static_cast<int>(r));
  if (!p.survivors.empty()) p.source = p.survivors.front();
  return p;
}

InFlightDecision step_in_flight(const std::vector<int64_t>& optimizer_steps, int64_t global_step) {
  std::set<int64_t> steps;
  for (int64_t s : optimizer_steps)
    if (s >= 0) steps.insert(s);
  if (steps.empty()) return {InFlight::redo, ""};  // nothing to train anywhere: nothing applied
  if (steps.size() > 1)
    return {InFlight::checkpoint, "the surviving replica's stages are at different steps (" +
                                      std::to_string(*steps.begin()) + ".." + std::to_string(*steps.rbegin()) + ")"};
  const int64_t s = *steps.begin();
  if (s == global_step) return {InFlight::redo, ""};
  if (s == global_step + 1) return {InFlight::applied, ""};
  return {InFlight::inconsistent, "the surviving replica is at optimizer step " + std::to_string(s) + ", the job at " +
                                      std::to_string(global_step)};
}

}  // namespace floe::runtime
