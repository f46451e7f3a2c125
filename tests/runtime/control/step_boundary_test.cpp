#include "runtime/control/step_boundary.hpp"

#include <catch2/catch.hpp>

#include <vector>

using namespace floe::runtime;
using A = BoundaryAction;

namespace {

// Facts written as the letters of the actions whose condition holds:
// L lost, J joins, E epoch trained, C checkpoint due, N node kill due, F freeze due,
// D freeze decision due (freeze.interval_steps), X fault due.
BoundaryFacts facts(const std::string& held) {
  BoundaryFacts f;
  for (char c : held) switch (c) {
      case 'L': f.nodes_lost = true; break;
      case 'J': f.node_joins = true; break;
      case 'E': f.epoch_trained = true; break;
      case 'C': f.checkpoint_due = true; break;
      case 'N': f.node_kill_due = true; break;
      case 'F': f.freeze_due = true; break;
      case 'D': f.decision_due = true; break;
      case 'X': f.fault_due = true; break;
      default: FAIL("unknown fact " << c);
    }
  return f;
}

// What an action's own work takes off the facts (the coordinator's side of the contract).
std::string after(const std::string& held, A a) {
  const char gone = a == A::recover ? 'L' : a == A::admit ? 'J' : a == A::checkpoint ? 'C' : a == A::kill_nodes ? 'N'
                    : a == A::freeze ? 'F' : a == A::decide_freeze ? 'D' : a == A::inject_faults ? 'X' : '?';
  std::string out;
  for (char c : held)
    if (c != gone) out += c;
  return out;
}

// The actions one boundary takes until it trains or leaves the epoch, asking again after each.
std::vector<A> walk(std::string held) {
  std::vector<A> out;
  for (int guard = 0; guard < 16; ++guard) {
    const A a = next_at_boundary(facts(held));
    out.push_back(a);
    if (a == A::train || a == A::evaluate) return out;
    held = after(held, a);
  }
  FAIL("the boundary never trains");
  return out;
}

}  // namespace

TEST_CASE("step boundary: each fact alone, and the order when several hold", "[control]") {
  struct Row {
    std::string held;
    A action;
  };
  const std::vector<Row> table{
      {"", A::train},           {"L", A::recover},        {"J", A::admit},          {"E", A::evaluate},
      {"C", A::checkpoint},     {"N", A::kill_nodes},     {"F", A::freeze},         {"X", A::inject_faults},
      {"D", A::decide_freeze},  {"LJECNFDX", A::recover}, {"JECNFDX", A::admit},    {"ECNFDX", A::evaluate},
      {"CNFDX", A::checkpoint}, {"NFDX", A::kill_nodes},  {"FDX", A::freeze},       {"DX", A::decide_freeze},
      {"LE", A::recover},       {"JF", A::admit},         {"CF", A::checkpoint},    {"NX", A::kill_nodes},
      {"CD", A::checkpoint},    {"ND", A::kill_nodes},
  };
  for (const auto& row : table) {
    INFO("facts \"" << row.held << "\"");
    CHECK(to_string(next_at_boundary(facts(row.held))) == to_string(row.action));
  }
}

TEST_CASE("step boundary: the walks of the cluster scenarios", "[control]") {
  // A node joins at the step a scripted freeze is due: the join's re-plan first, then the
  // freeze's transition on the grown set of nodes, then the step.
  CHECK(walk("JF") == std::vector<A>{A::admit, A::freeze, A::train});
  // A node kill due at a freeze's step strikes first, so that it lands during the transition;
  // the recovery happens at the next boundary, when the loss is known.
  CHECK(walk("NF") == std::vector<A>{A::kill_nodes, A::freeze, A::train});
  CHECK(walk("LNF") == std::vector<A>{A::recover, A::kill_nodes, A::freeze, A::train});
  // A checkpoint is written before injected faults strike, and the faults before the step.
  CHECK(walk("CX") == std::vector<A>{A::checkpoint, A::inject_faults, A::train});
  // At the epoch's end nothing else happens at this boundary: evaluation comes first.
  CHECK(walk("ECFX") == std::vector<A>{A::evaluate});
  // A lost node is recovered from before a join is admitted and before evaluation.
  CHECK(walk("LJE") == std::vector<A>{A::recover, A::admit, A::evaluate});
  // Decisions every N steps: a checkpoint due at the same step keeps the state before the
  // decision (a resume decides again), a scripted freeze goes first, then the policy's.
  CHECK(walk("CFD") == std::vector<A>{A::checkpoint, A::freeze, A::decide_freeze, A::train});
  CHECK(walk("NDX") == std::vector<A>{A::kill_nodes, A::decide_freeze, A::inject_faults, A::train});
}

TEST_CASE("freeze decision due: every N steps of the job, once per step, while blocks are left", "[control]") {
  struct Row {
    int64_t interval, step, last;
    int frozen, layers;
    bool due;
  };
  const std::vector<Row> table{
      {0, 16, -1, 0, 4, false},   // decisions at epoch ends (interval_steps = 0)
      {8, 0, -1, 0, 4, false},    // never at the job's first step
      {8, 8, -1, 0, 4, true},     // the first interval
      {8, 12, 8, 1, 4, false},    // between intervals
      {8, 16, 8, 1, 4, true},     // the next one (here also the next epoch's first step)
      {8, 16, 16, 2, 4, false},   // decided at this step already: the transition came back to it
      {8, 24, 16, 4, 4, false},   // every block frozen: nothing left to decide
  };
  for (const auto& r : table) {
    INFO("interval " << r.interval << " step " << r.step << " last " << r.last << " frozen " << r.frozen);
    CHECK(freeze_decision_due({r.interval, r.step, r.last, r.frozen, r.layers}) == r.due);
  }
}

TEST_CASE("checkpoint due: interval, request, once per step, only with a folder", "[control]") {
  struct Row {
    bool dir, asked;
    int64_t interval, step, last;
    bool due;
  };
  const std::vector<Row> table{
      {true, false, 10, 20, -1, true},    // the interval
      {true, false, 10, 21, 20, false},   // between intervals
      {true, false, 10, 0, -1, false},    // never at step 0
      {true, false, 0, 20, -1, false},    // interval 0: off
      {true, true, 0, 7, -1, true},       // asked (SIGUSR1, checkpoint_atom)
      {true, true, 10, 20, 20, false},    // already written at this step (resumed from it, or the interval's)
      {false, true, 10, 20, -1, false},   // no checkpoint.dir: never
  };
  for (const auto& r : table) {
    INFO("dir " << r.dir << " asked " << r.asked << " interval " << r.interval << " step " << r.step << " last "
                << r.last);
    CHECK(checkpoint_due({r.dir, r.asked, r.interval, r.step, r.last}) == r.due);
  }
}
