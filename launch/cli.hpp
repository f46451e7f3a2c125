#pragma once
namespace floe::launch {
// Parses the command line and runs the chosen command; returns the process exit code
// (0 success, 2 bad input, 1 failure while running).
int main(int argc, char** argv);
}  // namespace floe::launch
