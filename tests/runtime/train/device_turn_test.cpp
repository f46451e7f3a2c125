#include "runtime/train/device_turn.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

using namespace floe::runtime;

TEST_CASE("the chunks of a device take turns in the order of its program", "[schedule]") {
  DeviceTurn turn(2);
  const auto program = parse_program("0F0 2F0 0F1 2B0 0B0 0B1 0R 2R 0S 2S");
  turn.begin(7, program);
  CHECK(turn.mine(7, program[0]));
  CHECK_FALSE(turn.mine(7, program[1]));
  CHECK_FALSE(turn.mine(6, program[0]));  // another step's action
  turn.begin(7, program);                 // the second chunk joins: nothing restarts
  CHECK(turn.pass(7) == 2);
  CHECK(turn.mine(7, program[1]));
  CHECK(turn.pass(7) == 0);
  for (size_t i = 2; i + 1 < program.size(); ++i) CHECK(turn.pass(7) == program[i + 1].stage);
  CHECK(turn.pass(7) == -1);
  CHECK(turn.pass(7) == -1);
  // The next round of tasks (even for the same step again, as after a failed step) starts over.
  turn.begin(7, program);
  CHECK(turn.mine(7, program[0]));
}

TEST_CASE("two chunks on two threads run a device's program one action at a time, in order", "[schedule]") {
  const auto program = parse_program("0F0 2F0 0F1 2F1 2B0 0B0 2B1 0B1");
  DeviceTurn turn(2);
  std::vector<Action> ran;
  std::atomic<int> running{0}, overlaps{0};
  auto chunk = [&](int stage) {
    turn.begin(1, program);
    std::vector<Action> mine;
    for (const auto& a : program)
      if (a.stage == stage) mine.push_back(a);
    for (const auto& a : mine) {
      while (!turn.mine(1, a)) std::this_thread::yield();
      if (running++ > 0) ++overlaps;
      ran.push_back(a);
      --running;
      turn.pass(1);
    }
  };
  std::thread a(chunk, 0), b(chunk, 2);
  a.join();
  b.join();
  CHECK(overlaps == 0);
  CHECK(ran == program);
}
