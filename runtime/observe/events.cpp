#include "runtime/observe/events.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

namespace floe::runtime {

const char* kind_name(EventKind k) {
  switch (k) {
    case EventKind::job: return "job";
    case EventKind::step: return "step";
    case EventKind::eval: return "eval";
    case EventKind::forward: return "forward";
    case EventKind::backward: return "backward";
    case EventKind::reduce: return "reduce";
    case EventKind::optimizer: return "optimizer";
    case EventKind::transfer: return "transfer";
    case EventKind::stage_step: return "stage_step";
    case EventKind::epoch: return "epoch";
    case EventKind::freeze: return "freeze";
    case EventKind::transition: return "transition";
    case EventKind::cache: return "cache";
    case EventKind::fault: return "fault";
    case EventKind::checkpoint: return "checkpoint";
  }
  return "unknown";
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string to_json_line(const Event& e, int64_t origin_us) {
  nlohmann::ordered_json j;
  j["kind"] = kind_name(e.kind);
  j["t"] = (e.start_us - origin_us) / 1e6;
  if (e.duration_us) j["seconds"] = e.duration_us / 1e6;
  if (e.epoch >= 0) j["epoch"] = e.epoch;
  if (e.step >= 0) j["step"] = e.step;
  if (e.replica >= 0) j["replica"] = e.replica;
  if (e.stage >= 0) j["stage"] = e.stage;
  if (e.device >= 0) j["device"] = e.device;
  if (e.micro_batch >= 0) j["micro_batch"] = e.micro_batch;
  if (!e.detail.empty()) j["detail"] = e.detail;
  for (const auto& [k, v] : e.values) j[k] = v;
  if (!e.per_stage.empty()) j["bubble"] = e.per_stage;
  return j.dump();
}

std::vector<double> bubble_fractions(const std::vector<double>& busy, double makespan) {
  std::vector<double> out;
  for (double b : busy) out.push_back(makespan > 0 ? std::clamp(1.0 - b / makespan, 0.0, 1.0) : 0.0);
  return out;
}

}  // namespace floe::runtime
