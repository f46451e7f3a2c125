#pragma once
// Virtual stages: the chunks of one device take turns. Each chunk is a stage of its own (its
// actor, its program); the device's program for the step says in what order their actions
// run. A chunk runs its next action only when that is the device's next action, so the device
// computes one action at a time, in its program's order, whatever thread each chunk runs on.
// Thread-safe: the chunks of a device share one DeviceTurn.
#include "runtime/plan/schedule.hpp"

#include <cstdint>
#include <mutex>

namespace floe::runtime {

class DeviceTurn {
 public:
  explicit DeviceTurn(int chunks) : chunks_(chunks), joined_(chunks) {}

  // A chunk starts its task of `step` with the device's program. The first of the device's
  // chunks to start a round of tasks starts the program over; the others join it.
  void begin(int64_t step, const StageProgram& program);
  // Whether action `a` of `step` is the device's next action.
  bool mine(int64_t step, const Action& a) const;
  // The device's next action ran: the turn passes on. Returns the stage whose action is next
  // (-1 when the program is done).
  int pass(int64_t step);

 private:
  mutable std::mutex mu_;
  const int chunks_;
  int joined_;  // chunks that began the current round
  int64_t step_ = -1;
  StageProgram program_;
  size_t pc_ = 0;
};

}  // namespace floe::runtime
