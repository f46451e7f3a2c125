#pragma once
// A test that cannot run on this machine (it needs root for network namespaces, Chromium, a
// data package) is reported as *skipped*, never as passed with no assertion. Catch2 v2 has no
// SKIP, so: such a test carries a [needs-...] tag, and the tests section of CMakeLists.txt
// registers the tests with such tags apart, with SKIP_RETURN_CODE 77 and FLOE_TEST_SKIP_CODE=77
// in their environment (docs/testing.md). FLOE_SKIP(why) then prints why and ends the process
// with that code, which ctest reports as "Skipped". Where that variable is not set (floe_tests
// run by hand, many tests in one process) it WARNs "SKIPPED: why" and returns from the test,
// so that the tests after it still run.
//
// Use it only for what the machine lacks, checked before anything is tested:
//   if (!fs::exists("/usr/bin/chromium")) FLOE_SKIP("/usr/bin/chromium is not installed");
// Where the prerequisite is there, the test runs and asserts as any other.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace floe::test {

inline void skip_test(const std::string& why) {
  if (const char* code = std::getenv("FLOE_TEST_SKIP_CODE")) {
    std::cout << "SKIPPED: " << why << std::endl;
    std::cerr.flush();
    std::fflush(nullptr);
    std::_Exit(std::atoi(code));  // no static destructors: the test's actor systems may still run
  }
  WARN("SKIPPED: " << why);
}

}  // namespace floe::test

// Skips the current test (see above); `why` names what is missing and how to get it.
#define FLOE_SKIP(why)               \
  do {                               \
    ::floe::test::skip_test(why);    \
    return;                          \
  } while (0)
