#pragma once
// Files written whole: the one way floe writes what it keeps (summaries, checkpoints, weights,
// vocabularies, reports), so that a crash never leaves half a file behind.
#include <string>

namespace floe {

// Writes atomically: a temporary file beside `path`, fsync, then rename. Throws
// floe::InputError naming the path when it cannot be written.
void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace floe
