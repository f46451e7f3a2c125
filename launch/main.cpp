// floe: the command line. `floe train` runs a job in this process.
#include "launch/cli.hpp"

int main(int argc, char** argv) { return floe::launch::main(argc, argv); }
