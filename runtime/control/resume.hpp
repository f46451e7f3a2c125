#pragma once
// Where training continues from a checkpoint's job state (runtime/state/checkpoint.hpp):
//
//   mid_epoch   the checkpoint was taken at a step boundary of an epoch whose freeze decision
//               was made (`decided`): that epoch goes on at `step`, its statistics so far
//               restored, on the checkpoint's plan;
//   next_epoch  it was taken when an epoch had ended, before the next one's freeze decision
//               (the job's final checkpoint): the decision is made, then that epoch begins;
//   finish      that point is the end of the configured epochs: only the final work is left
//               (weights, the final checkpoint, the summary).
#include "runtime/state/checkpoint.hpp"

namespace floe::runtime {

enum class ResumeKind { mid_epoch, next_epoch, finish };

struct ResumePoint {
  ResumeKind kind = ResumeKind::next_epoch;
  int epoch = 0;
  int64_t step = 0;           // mid_epoch: training steps of the epoch already done
  double epoch_seconds = 0;   // mid_epoch: how long the epoch had run
};

ResumePoint resume_point(const JobState& job, int epochs);

}  // namespace floe::runtime
