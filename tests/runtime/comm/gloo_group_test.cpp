// Gradient groups across processes use c10d's Gloo; here three ranks in one process meet
// through a real TCP rendezvous store and real Gloo connections over loopback.
#include <torch/torch.h>

#include "runtime/comm/gloo_group.hpp"
#include "runtime/comm/local_allreduce.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <thread>

using namespace floe::runtime;

TEST_CASE("a Gloo group sums every rank's tensors, bit-identically on all ranks", "[gloo]") {
  StoreServer store("127.0.0.1", 0);
  REQUIRE(store.port() > 0);
  const int n = 3;
  std::vector<std::vector<torch::Tensor>> grads(n);
  for (int r = 0; r < n; ++r) grads[r] = {torch::full({2, 3}, double(r + 1)), torch::arange(5, torch::kFloat) * r};
  std::vector<std::string> errors(n);
  std::vector<std::thread> ranks;
  for (int r = 0; r < n; ++r)
    ranks.emplace_back([&, r] {
      try {
        GlooGroup g({"127.0.0.1", store.port()}, "g1/s0", r, n, "127.0.0.1", std::chrono::seconds(30));
        g.sum(r, grads[r]);
        g.sum(r, grads[r]);  // a second round on the same connections
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
  for (int r = 0; r < n; ++r) {
    INFO(errors[r]);
    REQUIRE(errors[r].empty());
    CHECK(torch::equal(grads[r][0], torch::full({2, 3}, 18.0)));        // (1+2+3), then times 3
    CHECK(torch::equal(grads[r][1], torch::arange(5, torch::kFloat) * 9));  // (0+1+2), then times 3
  }
}

TEST_CASE("a Gloo group names the store and the rank when it cannot connect", "[gloo]") {
  GlooGroup g({"127.0.0.1", 1}, "g1/s0", 0, 2, "127.0.0.1", std::chrono::milliseconds(300));
  std::vector<torch::Tensor> t{torch::ones({2})};
  try {
    g.sum(0, t);
    FAIL("expected an error");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), Catch::Contains("127.0.0.1:1") && Catch::Contains("rank 0 of 2"));
  }
}

TEST_CASE("a Gloo group sums in rank order: bit-identical to the in-memory group", "[gloo]") {
  // Float addition is not associative: a ring all-reduce would differ in the last bits, and
  // AdamW would carry that difference into the weights of a multi-process run.
  StoreServer store("127.0.0.1", 0);
  const int n = 4;
  torch::manual_seed(3);
  std::vector<std::vector<torch::Tensor>> gloo(n), local(n);
  for (int r = 0; r < n; ++r) {
    gloo[r] = {torch::randn({37}) * std::pow(10.0, r), torch::randn({5, 3}) * 1e-7};
    for (auto& t : gloo[r]) local[r].push_back(t.clone());
  }
  LocalAllReduce reference(n);
  std::vector<std::thread> ranks;
  for (int r = 0; r < n; ++r)
    ranks.emplace_back([&, r] {
      GlooGroup g({"127.0.0.1", store.port()}, "exact", r, n, "127.0.0.1", std::chrono::seconds(30));
      g.sum(r, gloo[r]);
      reference.sum(r, local[r]);
    });
  for (auto& t : ranks) t.join();
  for (int r = 0; r < n; ++r)
    for (size_t i = 0; i < gloo[r].size(); ++i) CHECK(torch::equal(gloo[r][i], local[r][i]));
}

TEST_CASE("a Gloo group makes a write to a dead peer fail rather than end the process: SIGPIPE ignored, a handler kept",
          "[gloo]") {
  // Gloo's writev(2) has no MSG_NOSIGNAL (runtime/comm/gloo_group.cpp). A test binary killed by
  // SIGPIPE when a scenario killed a virtual node is how this was found.
  const auto connect_pair = [] {
    StoreServer store("127.0.0.1", 0);
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r)
      ranks.emplace_back([&, r] {
        std::vector<torch::Tensor> t{torch::ones({2})};
        GlooGroup g({"127.0.0.1", store.port()}, "pipe", r, 2, "127.0.0.1", std::chrono::seconds(30));
        g.sum(r, t);
      });
    for (auto& t : ranks) t.join();
  };
  const auto handler = [] {
    struct sigaction now {};
    REQUIRE(sigaction(SIGPIPE, nullptr, &now) == 0);
    return now.sa_handler;
  };
  std::signal(SIGPIPE, SIG_DFL);
  connect_pair();
  CHECK(handler() == SIG_IGN);

  std::signal(SIGPIPE, [](int) {});
  const auto own = handler();
  connect_pair();
  CHECK(handler() == own);  // the program's own handler stays
  std::signal(SIGPIPE, SIG_IGN);
}
