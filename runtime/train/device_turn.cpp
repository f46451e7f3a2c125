#include "runtime/train/device_turn.hpp"

namespace floe::runtime {

void DeviceTurn::begin(int64_t step, const StageProgram& program) {
  std::lock_guard<std::mutex> lock(mu_);
  if (joined_ >= chunks_ || step != step_) {
    step_ = step;
    program_ = program;
    pc_ = 0;
    joined_ = 0;
  }
  ++joined_;
}

bool DeviceTurn::mine(int64_t step, const Action& a) const {
  std::lock_guard<std::mutex> lock(mu_);
  return step == step_ && pc_ < program_.size() && program_[pc_] == a;
}

int DeviceTurn::pass(int64_t step) {
  std::lock_guard<std::mutex> lock(mu_);
  if (step != step_ || pc_ >= program_.size()) return -1;
  ++pc_;
  return pc_ < program_.size() ? program_[pc_].stage : -1;
}

}  // namespace floe::runtime
