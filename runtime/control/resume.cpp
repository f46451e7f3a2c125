#include "runtime/control/resume.hpp"

namespace floe::runtime {

ResumePoint resume_point(const JobState& job, int epochs) {
  if (job.decided) return {ResumeKind::mid_epoch, job.epoch, job.step, job.epoch_seconds};
  if (job.epoch < epochs) return {ResumeKind::next_epoch, job.epoch, 0};
  return {ResumeKind::finish, job.epoch, 0};
}

}  // namespace floe::runtime
