#pragma once
// Per-step learning rate: linear warm-up, then cosine decay to min_lr over the whole run.
// One schedule for the whole job, never rebuilt per epoch (spec §8 bug 16).
#include <cstdint>

namespace floe::runtime {

struct WarmupCosine {
  double base_lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // step counts from 0; the first step already gets a non-zero rate.
  double at(int64_t step) const;
};

}  // namespace floe::runtime
