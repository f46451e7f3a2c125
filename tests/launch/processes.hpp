#pragma once
// Real processes for tests: a scratch folder, a free TCP port, and the floe binary driven by a
// bash script (so that tests can start, kill and wait for processes as a user would), or
// started in the background (Background) while the test waits for what they log
// (wait_for_log) and signals them.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>

extern char** environ;

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
// `env`, if given, are env(1)'s arguments before the binary ("-u NAME", "NAME=value").
inline Run run_floe(const std::string& args, const std::string& env = "") {
  Run r;
  const std::string cmd = (env.empty() ? "" : "env " + env + " ") + FLOE_BINARY + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Polls every 20 ms until `done()`; false if it still is not after `timeout`.
inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// Waits until `file` (a log that a process is writing) holds `text`, a plain substring: true
// once it does, false after `timeout`, and then the next assertion shows what the file held.
// A test REQUIREs it before it acts on what the text announces (kills a node once an epoch
// has begun, starts one once a recovery is done).
inline bool wait_for_log(const fs::path& file, const std::string& text,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  if (wait_until([&] { return slurp(file).find(text) != std::string::npos; }, timeout)) return true;
  UNSCOPED_INFO("waited " << timeout.count() / 1000.0 << " s for '" << text << "' in " << file.string()
                          << "; it holds:\n" << slurp(file));
  return false;
}

// One process started in the background by bash in `dir`, as sh() starts a script: with $F the
// floe binary and `env` exported, bash runs `exec <command>`, so that the process is the
// command itself (redirections included: "$F node ... > node.log 2>&1"), the one a script's
// `$!` would name. It gets a process group of its own, and SIGPIPE's default action.
// Whatever still runs 300 s after the start (sh()'s limit), or when the object goes (the test
// ended or failed a REQUIRE), is killed with its group: no test leaves processes behind.
class Background {
 public:
  Background(const fs::path& dir, const std::string& command, const std::map<std::string, std::string>& env = {})
      : deadline_(std::chrono::steady_clock::now() + std::chrono::seconds(300)) {
    std::ostringstream script;
    script << "set -u\ncd " << dir << "\nF=" << FLOE_BINARY << "\n";
    for (const auto& [name, value] : env) script << "export " << name << "='" << value << "'\n";
    script << "exec " << command << "\n";
    const std::string text = script.str();
    const char* argv[] = {"bash", "-c", text.c_str(), nullptr};
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);  // a group of its own, led by the process
    sigset_t defaults;  // SIGPIPE's default action, whatever this process does with it
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    const int err = posix_spawn(&pid_, "/bin/bash", nullptr, &attr, const_cast<char* const*>(argv), environ);
    posix_spawnattr_destroy(&attr);
    INFO(command);
    REQUIRE(err == 0);
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  ~Background() {
    if (running()) {
      ::kill(-pid_, SIGKILL);
      reap(true);
    }
  }

  pid_t pid() const { return pid_; }

  // Sends `sig` to the process (as `kill -SIG $!` does); nothing once it has been waited for.
  void kill(int sig) {
    if (running()) ::kill(pid_, sig);
  }

  // Waits for the process to end: its exit code, 128 + the signal that ended it (as bash's $?
  // gives), or -1 if it was still running at the deadline (it is then killed, with its group).
  int wait() {
    while (running()) {
      if (reap(false)) break;
      if (std::chrono::steady_clock::now() >= deadline_) {
        UNSCOPED_INFO("process " << pid_ << " still ran 300 s after its start: killed");
        ::kill(-pid_, SIGKILL);
        reap(true);
        code_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return code_;
  }

 private:
  bool running() const { return pid_ > 0 && !done_; }
  // Collects the process's status (blocking or not); true once it has ended.
  bool reap(bool block) {
    int status = 0;
    const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r == 0) return false;
    done_ = true;
    if (r < 0) code_ = -1;
    else code_ = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
    return true;
  }

  pid_t pid_ = -1;
  bool done_ = false;
  int code_ = -1;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace floe::test
