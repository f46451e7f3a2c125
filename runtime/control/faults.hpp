#pragma once
// Fault injection as data: what to break, where, and from which step. A fault script is a
// list of these, written as text (`floe train --fault "..."`, config `faults`) or built in
// C++ (tests, scenario scripts, user hooks). The coordinator applies each at its step.
#include <cstdint>
#include <string>

namespace floe::runtime {

enum class FaultKind : int8_t {
  delay,  // hold each matching message `seconds` before the stage sees it
  drop,   // discard matching messages (the step then misses its deadline)
  slow,   // the stage sleeps `seconds` before each forward and backward (a slow device)
  kill,   // the stage (or its whole replica, or a whole node) exits
};

struct Fault {
  FaultKind kind = FaultKind::delay;
  std::string message = "activation";  // delay, drop: activation | gradient
  int32_t replica = 0;
  int32_t stage = 0;          // kill: -1 kills the replica actor itself
  int32_t node = -1;          // kill: >= 0 kills this node's agent and all it hosts (virtual nodes)
  double seconds = 0;         // delay, slow
  int64_t at_step = 0;        // global training step from which it applies
  int64_t count = -1;         // delay, drop: messages; slow: steps; -1 until the stage is replaced
};

// "delay activation replica=0 stage=1 seconds=0.05 at=10 count=4", "slow stage=1 seconds=0.01",
// "kill replica=1 stage=-1 at=30", "kill node=1 at=30". Throws floe::InputError naming the text and what was expected.
Fault parse_fault(const std::string& text);
std::string describe(const Fault& f);

// The stage-side bookkeeping of one fault: whether it applies to this message and step.
// Counts down `count` (messages or steps) when it applies.
bool fault_applies(Fault& f, const std::string& message, int64_t step);

}  // namespace floe::runtime
