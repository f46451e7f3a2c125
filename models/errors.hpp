#pragma once
// Bad input from a user (config, CLI flag, data or checkpoint file, remote message): the
// message names the input and what was expected. The CLI prints it and exits non-zero.
#include <cstdio>
#include <stdexcept>
#include <string>

namespace floe {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Runs a tool's body and turns what escapes it into the exit codes of every floe tool:
// 2 for bad input, 1 for a failure while running; the message goes to stderr.
template <class Body>
int exit_code_of(Body&& body) {
  try {
    return body();
  } catch (const InputError& e) {
    std::fprintf(stderr, "floe: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "floe: error: %s\n", e.what());
    return 1;
  }
}

}  // namespace floe
