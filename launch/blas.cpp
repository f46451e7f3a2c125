#include "launch/blas.hpp"

#include <dlfcn.h>
#include <strings.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <vector>

namespace floe::launch {
namespace {

// The best OpenBLAS kernels this CPU runs, or nullptr.
const char* best_kernels() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

}  // namespace

std::string blas_kernels() {
  using corename_fn = char* (*)();
  const auto corename = reinterpret_cast<corename_fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  const char* core = corename ? corename() : nullptr;  // (none: another BLAS)
  return core ? core : "";
}

std::string better_blas_kernels() {
  const char* best = best_kernels();
  return best && strcasecmp(blas_kernels().c_str(), "Prescott") == 0 ? best : "";
}

void use_fast_blas_kernels() {
  if (const char* kernels = std::getenv("FLOE_BLAS_FORCED")) {  // the restarted process
    std::fprintf(stderr,
                 "floe: OpenBLAS took this CPU for a Prescott (SSE3 kernels, half speed): restarted with "
                 "OPENBLAS_CORETYPE=%s (set OPENBLAS_CORETYPE to choose yourself)\n",
                 kernels);
    unsetenv("FLOE_BLAS_FORCED");  // (the processes it starts did not restart)
    return;
  }
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  const auto kernels = better_blas_kernels();
  if (kernels.empty()) return;
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t at = 0; at < all.size();) {
    const size_t end = all.find('\0', at);
    args.push_back(all.substr(at, end == std::string::npos ? std::string::npos : end - at));
    at = end == std::string::npos ? all.size() : end + 1;
  }
  if (args.empty()) return;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  setenv("OPENBLAS_CORETYPE", kernels.c_str(), 1);
  setenv("FLOE_BLAS_FORCED", kernels.c_str(), 1);
  execv("/proc/self/exe", argv.data());
  unsetenv("OPENBLAS_CORETYPE");  // the restart failed: go on with what the library chose
  unsetenv("FLOE_BLAS_FORCED");
}

}  // namespace floe::launch
