#include "runtime/train/lr_schedule.hpp"

#include <algorithm>
#include <cmath>

namespace floe::runtime {

double WarmupCosine::at(int64_t step) const {
  if (step < warmup_steps) return base_lr * double(step + 1) / double(warmup_steps);
  const int64_t decay = std::max<int64_t>(1, total_steps - warmup_steps);
  const double t = std::clamp(double(step - warmup_steps) / double(decay), 0.0, 1.0);
  return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * t));
}

std::vector<double> BlockAnneal::at(int64_t step) const {
  std::vector<double> out;
  out.reserve(freeze_steps.size());
  for (const int64_t end : freeze_steps) {
    if (end >= job.total_steps) {
      out.push_back(job.at(step));
      continue;
    }
    WarmupCosine own = job;
    own.total_steps = std::max<int64_t>(end, job.warmup_steps + 1);
    if (scaled) own.base_lr = job.base_lr * double(job.total_steps) / double(own.total_steps);
    out.push_back(own.at(step));
  }
  return out;
}

}  // namespace floe::runtime
