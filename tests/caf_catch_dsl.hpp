#pragma once
// CAF 0.17's test DSL under Catch2: re-point its assertion macros before including dsl.hpp.
// Include torch (glog's CHECK) before this header.
#include <catch2/catch.hpp>
#include <caf/test/unit_test.hpp>
#undef CAF_CHECK
#undef CAF_CHECK_EQUAL
#undef CAF_REQUIRE
#undef CAF_REQUIRE_EQUAL
#undef CAF_FAIL
#undef CAF_MESSAGE
#define CAF_CHECK(...) CHECK(__VA_ARGS__)
#define CAF_CHECK_EQUAL(x, y)                                                 \
  do {                                                                        \
    const auto& a_ = (x);                                                     \
    const auto& b_ = (y);                                                     \
    INFO(caf::deep_to_string(a_) << " == " << caf::deep_to_string(b_));       \
    CHECK(a_ == b_);                                                          \
  } while (false)
#define CAF_REQUIRE(...) REQUIRE(__VA_ARGS__)
#define CAF_REQUIRE_EQUAL(x, y) REQUIRE((x) == (y))
#define CAF_FAIL(msg) FAIL(msg)
#define CAF_MESSAGE(msg) \
  do {                   \
  } while (false)
#include <caf/test/dsl.hpp>
