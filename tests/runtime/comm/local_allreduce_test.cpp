#include <torch/torch.h>

#include "runtime/comm/local_allreduce.hpp"

#include <catch2/catch.hpp>

#include <thread>

using floe::runtime::LocalAllReduce;

TEST_CASE("local all-reduce sums in rank order on every participant, round after round", "[allreduce]") {
  const int n = 3;
  LocalAllReduce group(n);
  std::vector<std::vector<torch::Tensor>> results(n);
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r)
    threads.emplace_back([&, r] {
      for (int round = 0; round < 20; ++round) {
        std::vector<torch::Tensor> ts{torch::full({2, 3}, float(r + 1 + round)), torch::full({4}, float(10 * r))};
        group.sum(r, ts);
        if (round == 19) results[r] = ts;
      }
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < n; ++r) {
    CHECK(torch::equal(results[r][0], torch::full({2, 3}, float(6 + 3 * 19))));
    CHECK(torch::equal(results[r][1], torch::full({4}, 30.f)));
  }
}

TEST_CASE("a missing participant makes the all-reduce fail instead of hanging", "[allreduce]") {
  LocalAllReduce group(2, std::chrono::milliseconds(50));
  std::vector<torch::Tensor> ts{torch::ones({3})};
  CHECK_THROWS_WITH(group.sum(0, ts), Catch::Contains("timed out"));
}
