#pragma once
// Per-step learning rate: linear warm-up, then cosine decay to min_lr over the whole run.
// One schedule for the whole job, never rebuilt per epoch (spec §8 bug 16).
#include <cstdint>
#include <vector>

namespace floe::runtime {

struct WarmupCosine {
  double base_lr = 1e-3;
  double min_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // step counts from 0; the first step already gets a non-zero rate.
  double at(int64_t step) const;
};

// freeze.anneal (docs/freeze.md → Annealing to the freeze): every block follows its own
// schedule, the job's warm-up and then a cosine that reaches min_lr at the step its freeze
// is due (`freeze_steps[b]`, from planned_freeze_steps), and stays there; so a block freezes
// where its weights have settled, not mid-stride (FreezeOut, Brock et al. 2017). A block whose
// freeze is not due before the job's end follows the job's schedule. `scaled` starts block b's
// cosine at base_lr · total_steps / freeze_steps[b] instead of base_lr, so that every block's
// rate integrates to about the same over its training (FreezeOut's "scaled" variant).
struct BlockAnneal {
  WarmupCosine job;
  std::vector<int64_t> freeze_steps;  // per block 0..L-1
  bool scaled = false;

  // Per block, the rate of training step `step`.
  std::vector<double> at(int64_t step) const;
};

}  // namespace floe::runtime
