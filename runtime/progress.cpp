#include "runtime/progress.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <unistd.h>

namespace floe::runtime {

ProgressPrinter::ProgressPrinter(int64_t interval, bool terminal) : interval_(interval), terminal_(terminal) {}

bool ProgressPrinter::stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

void ProgressPrinter::begin(const std::string& label, int64_t total_steps) {
  label_ = label;
  total_ = total_steps;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

void ProgressPrinter::update(int64_t done, int64_t samples, double loss) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? samples / elapsed : 0;
  const double eta = done > 0 ? elapsed * double(total_ - done) / double(done) : 0;
  if (terminal_) {
    if (done != total_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    const int width = 30;
    const int filled = total_ > 0 ? int(width * done / total_) : width;
    std::string bar(filled, '#');
    bar.resize(width, '.');
    std::printf("\r%s [%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %.0fs   ", label_.c_str(), bar.c_str(),
                (long long)done, (long long)total_, loss, rate, eta);
    std::fflush(stdout);
  } else if (done % interval_ == 0 || done == total_) {
    spdlog::info("{} step {}/{}  loss {:.4f}  {:.0f} samples/s  ETA {:.0f}s", label_, done, total_, loss, rate, eta);
  }
}

void ProgressPrinter::end() {
  if (terminal_) {
    std::printf("\r%*s\r", 100, "");
    std::fflush(stdout);
  }
}

}  // namespace floe::runtime
