// Defines CAF's test engine once for the whole test binary (its DSL runs under Catch2).
#define CAF_TEST_NO_MAIN
#include <caf/test/unit_test_impl.hpp>

#include "launch/blas.hpp"

#include <cstdlib>

// Before Catch's main: the floe processes the tests start run on this process's BLAS kernels
// (they would restart themselves on better ones otherwise, launch/blas.hpp), so that weights
// compared bit for bit between them can be equal. This process does not restart: it would
// cost every test a second start of LibTorch, more than the kernels gain on tiny models.
static const bool blas_kernels_pinned = [] {
  const auto kernels = floe::launch::blas_kernels();
  if (!kernels.empty()) setenv("OPENBLAS_CORETYPE", kernels.c_str(), 0);
  return true;
}();
