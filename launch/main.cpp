// floe: the command line. `floe train` runs a job in this process.
#include "launch/blas.hpp"
#include "launch/cli.hpp"

int main(int argc, char** argv) {
  floe::launch::use_fast_blas_kernels();  // (may restart the process, before anything runs)
  return floe::launch::main(argc, argv);
}
