#pragma once
// Bad input from a user (config, CLI flag, data or checkpoint file, remote message): the
// message names the input and what was expected. The CLI prints it and exits non-zero.
#include <stdexcept>
#include <string>

namespace floe {

struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace floe
