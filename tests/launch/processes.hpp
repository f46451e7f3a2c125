#pragma once
// Real processes for tests: a scratch folder, a free TCP port, and the floe binary driven by a
// bash script (so that tests can start, kill and wait for processes as a user would).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace floe::test {

namespace fs = std::filesystem;

inline fs::path scratch(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("floe-test-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

inline int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Runs a bash script in `dir` with $F set to the floe binary; the exit code.
inline int sh(const fs::path& dir, const std::string& script) {
  std::ofstream(dir / "run.sh") << "set -u\ncd " << dir << "\nF=" << FLOE_BINARY << "\n" << script << "\n";
  const int status = std::system(("timeout 300 bash " + (dir / "run.sh").string()).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The floe binary run with `args` as a user runs it: its exit code and what it printed
// (stdout and stderr together).
struct Run {
  int code = -1;
  std::string output;
};
inline Run run_floe(const std::string& args) {
  Run r;
  const std::string cmd = std::string(FLOE_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace floe::test
