#pragma once
// OpenBLAS (Debian's, built with the kernels of every x86 core) picks its kernels by the CPU's
// name when it loads. A CPU it does not know, such as this project's VMs ("Intel(R) Xeon(R)
// Processor", with AVX-512), gets Prescott's SSE3 kernels and trains at half speed
// (docs/benchmarks.md, "Why this machine ran at half speed"). Only the environment can force
// another choice, and only before the library loads.
#include <string>

namespace floe::launch {

// When OpenBLAS chose Prescott on a CPU with AVX-512 (or AVX2 and FMA) and OPENBLAS_CORETYPE
// is unset, restarts this process (same pid, same arguments, from /proc/self/cmdline) with
// OPENBLAS_CORETYPE=SkylakeX (or Haswell) and FLOE_BLAS_FORCED naming it. Returns when there
// is nothing to do, or when the restart failed. A user who sets OPENBLAS_CORETYPE keeps it.
void use_fast_blas_kernels();

// After such a restart: the kernels it forced, once (FLOE_BLAS_FORCED is then cleared, so that
// the processes this one starts do not say it again); "" otherwise.
std::string take_forced_blas_kernels();

}  // namespace floe::launch
