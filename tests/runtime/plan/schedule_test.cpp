#include "runtime/plan/schedule.hpp"

#include <catch2/catch.hpp>

using namespace floe::runtime;

TEST_CASE("GPipe programs in text form", "[schedule]") {
  auto s = gpipe_schedule(2, 3);
  REQUIRE(s.size() == 2);
  CHECK(to_string(s[0]) == "0F0 0F1 0F2 0B0 0B1 0B2 0R 0S");
  CHECK(to_string(s[1]) == "1F0 1F1 1F2 1B0 1B1 1B2 1R 1S");
}

TEST_CASE("1F1B programs warm up by distance to the last stage", "[schedule]") {
  auto s = one_f_one_b_schedule(3, 4);
  CHECK(to_string(s[0]) == "0F0 0F1 0F2 0B0 0F3 0B1 0B2 0B3 0R 0S");
  CHECK(to_string(s[1]) == "1F0 1F1 1B0 1F2 1B1 1F3 1B2 1B3 1R 1S");
  CHECK(to_string(s[2]) == "2F0 2B0 2F1 2B1 2F2 2B2 2F3 2B3 2R 2S");
}

TEST_CASE("every generated schedule runs to completion", "[schedule]") {
  for (int k = 1; k <= 8; ++k)
    for (int m = 1; m <= 12; ++m) {
      INFO("K=" << k << " M=" << m);
      CHECK(check_schedule(gpipe_schedule(k, m), m).empty());
      CHECK(check_schedule(one_f_one_b_schedule(k, m), m).empty());
      auto f = forward_only_schedule(k, m);
      CHECK(check_schedule(f, 0).empty());
    }
}

TEST_CASE("a schedule that waits on itself is reported as a deadlock", "[schedule]") {
  Schedule bad{parse_program("0F0 0B0 0R 0S"), parse_program("1B0 1F0 1R 1S")};
  CHECK(check_schedule(bad, 1) == "stage 0 blocked at 0B0");
}

TEST_CASE("program text round-trips and rejects malformed actions", "[schedule]") {
  const std::string text = "1F0 1F1 1B0 1B1 1R 1S";
  CHECK(to_string(parse_program(text)) == text);
  CHECK_THROWS_WITH(parse_program("1X0"), Catch::Contains("1X0"));
  CHECK_THROWS_AS(parse_program("1R3"), std::invalid_argument);
  CHECK_THROWS_AS(parse_program("F0"), std::invalid_argument);
  CHECK_THROWS_AS(parse_schedule_kind("zigzag"), std::runtime_error);
}
