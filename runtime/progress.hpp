#pragma once
// Console progress within an epoch: a redrawn bar on a terminal, a line every `interval`
// steps otherwise (logs, CI).
#include <chrono>
#include <cstdint>
#include <string>

namespace floe::runtime {

class ProgressPrinter {
 public:
  ProgressPrinter(int64_t interval, bool terminal);
  static bool stdout_is_terminal();

  void begin(const std::string& label, int64_t total_steps);
  void update(int64_t steps_done, int64_t samples_done, double mean_loss);
  void end();  // clears the bar on a terminal

 private:
  int64_t interval_;
  bool terminal_;
  std::string label_;
  int64_t total_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace floe::runtime
