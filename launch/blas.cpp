#include "launch/blas.hpp"

#include <dlfcn.h>
#include <strings.h>
#include <unistd.h>

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

void use_fast_blas_kernels() {
  if (std::getenv("OPENBLAS_CORETYPE")) return;
  using corename_fn = char* (*)();
  const auto corename = reinterpret_cast<corename_fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (!corename) return;  // another BLAS
  const char* core = corename();
  const char* kernels = best_kernels();
  if (!core || strcasecmp(core, "Prescott") != 0 || !kernels) return;
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
  setenv("OPENBLAS_CORETYPE", kernels, 1);
  setenv("FLOE_BLAS_FORCED", kernels, 1);
  execv("/proc/self/exe", argv.data());
  unsetenv("OPENBLAS_CORETYPE");  // the restart failed: go on with what the library chose
  unsetenv("FLOE_BLAS_FORCED");
}

std::string take_forced_blas_kernels() {
  const char* forced = std::getenv("FLOE_BLAS_FORCED");
  if (!forced) return "";
  const std::string out = forced;
  unsetenv("FLOE_BLAS_FORCED");
  return out;
}

}  // namespace floe::launch
