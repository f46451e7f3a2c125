// Defines CAF's test engine once for the whole test binary (its DSL runs under Catch2).
#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>

#include "launch/blas.hpp"

// Before Catch's main: the tests run on the BLAS kernels that the floe processes they start
// run on (launch/blas.hpp), so that weights compared bit for bit between them can be equal.
static const bool blas_kernels_chosen = (floe::launch::use_fast_blas_kernels(), true);
