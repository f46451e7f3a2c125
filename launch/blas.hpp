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
// OPENBLAS_CORETYPE=SkylakeX (or Haswell). The restarted process says so on stderr (stdout may
// be a plan or a table someone reads) and returns; so does a process with nothing to do, or
// whose restart failed. The processes it starts inherit the variable. A user who sets
// OPENBLAS_CORETYPE keeps it.
void use_fast_blas_kernels();

// The kernels OpenBLAS runs in this process ("" without OpenBLAS), and those a restart would
// choose instead ("" when OpenBLAS's choice stands).
std::string blas_kernels();
std::string better_blas_kernels();

}  // namespace floe::launch
