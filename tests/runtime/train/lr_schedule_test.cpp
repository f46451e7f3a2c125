#include "runtime/train/lr_schedule.hpp"

#include <catch2/catch.hpp>

using floe::runtime::WarmupCosine;

TEST_CASE("warm-up rises linearly, cosine decays to min_lr", "[lr]") {
  WarmupCosine s{1.0, 0.1, 4, 104};
  CHECK(s.at(0) == Approx(0.25));
  CHECK(s.at(3) == Approx(1.0));
  CHECK(s.at(4) == Approx(1.0));
  CHECK(s.at(54) == Approx(0.55));
  CHECK(s.at(104) == Approx(0.1));
  CHECK(s.at(500) == Approx(0.1));
  for (int64_t t = 5; t < 104; ++t) REQUIRE(s.at(t) <= s.at(t - 1));
}
