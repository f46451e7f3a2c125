// Defines CAF's test engine once for the whole test binary (its DSL runs under Catch2).
#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>
