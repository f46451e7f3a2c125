#include "messages/training.hpp"

#include <catch2/catch.hpp>

using namespace floe;

TEST_CASE("step reports add up in one place: counts, busy time per stage, predictions", "[messages]") {
  msg::step_report a, b, sum;
  a.seconds = 1.5;
  a.loss_sum = 2.0;
  a.correct = 3;
  a.samples = 4;
  a.targets = 4;
  a.stage_busy_seconds = {1.0, 0.5};
  a.blocks = {0, 1};
  a.block_values = {0.25, 0.5};
  a.uids = {0, 1};
  a.probabilities = {{torch::zeros({2, 2})}};
  b.seconds = 0.5;
  b.loss_sum = 1.0;
  b.correct = 1;
  b.samples = 4;
  b.targets = 6;
  b.stage_busy_seconds = {0.25, 0.25, 0.125};  // a longer pipeline (the K of another plan)
  b.blocks = {0, 1};
  b.block_values = {9.0, 9.0};  // all-reduced norms are the same on every replica: the first stays
  b.uids = {2};
  msg::add_to(sum, a);
  msg::add_to(sum, b);
  CHECK(sum.seconds == 2.0);
  CHECK(sum.loss_sum == 3.0);
  CHECK(sum.correct == 4);
  CHECK(sum.samples == 8);
  CHECK(sum.targets == 10);
  CHECK(sum.stage_busy_seconds == std::vector<double>{1.25, 0.75, 0.125});
  CHECK(sum.block_values == std::vector<double>{0.25, 0.5});
  CHECK(sum.uids == std::vector<int64_t>{0, 1, 2});
  CHECK(sum.probabilities.size() == 1);
}

TEST_CASE("a replica's state is its stages' states side by side, with each stage's optimizer steps", "[messages]") {
  msg::stage_state s0{{{"embed.w"}, {{torch::ones({1})}}}, {{"embed.w#step"}, {{torch::ones({1})}}}, {7}};
  msg::stage_state s1{{{"head.w", "head.b"}, {{torch::ones({2})}, {torch::ones({2})}}}, {}, {-1}};
  msg::stage_state replica;
  msg::add_to(replica, s0);
  msg::add_to(replica, s1);
  CHECK(replica.parameters.names == std::vector<std::string>{"embed.w", "head.w", "head.b"});
  CHECK(replica.parameters.values.size() == 3);
  CHECK(replica.optimizer.names == std::vector<std::string>{"embed.w#step"});
  CHECK(replica.optimizer_steps == std::vector<int64_t>{7, -1});
}
