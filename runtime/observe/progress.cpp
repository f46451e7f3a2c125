#include "runtime/observe/progress.hpp"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <string>
#include <unistd.h>

namespace floe::runtime {
namespace {

class ConsoleWriter : public EventWriter {
 public:
  ConsoleWriter(int64_t interval, bool terminal) : interval_(interval), terminal_(terminal) {}

  void on(const Event& e) override {
    if (e.kind == EventKind::job) {
      epochs_ = static_cast<int64_t>(value(e, "epochs"));
      steps_per_epoch_ = static_cast<int64_t>(value(e, "steps_per_epoch"));
    } else if (e.kind == EventKind::step && steps_per_epoch_ > 0) {
      step(e);
    } else if (e.kind == EventKind::eval) {
      clear();
    }
  }
  void flush() override { clear(); }

 private:
  static double value(const Event& e, const char* key) {
    const auto it = e.values.find(key);
    return it == e.values.end() ? 0.0 : it->second;
  }

  void step(const Event& e) {
    if (e.epoch != epoch_) {  // the first step of an epoch (or of a resumed one)
      epoch_ = e.epoch;
      start_us_ = e.start_us;
      samples_ = 0;
      targets_ = 0;
      loss_sum_ = 0;
      last_draw_us_ = 0;
    }
    const double n = value(e, "samples");
    samples_ += n;
    // The loss is per target: per sample, or per masked token (MLM).
    const double t = e.values.count("targets") ? value(e, "targets") : n;
    targets_ += t;
    loss_sum_ += value(e, "loss") * t;
    const int64_t done = e.step - e.epoch * steps_per_epoch_ + 1, total = steps_per_epoch_;
    const int64_t now_us = e.start_us + e.duration_us;
    const double elapsed = (now_us - start_us_) / 1e6;
    const double rate = elapsed > 0 ? samples_ / elapsed : 0;
    const double loss = targets_ > 0 ? loss_sum_ / targets_ : 0;
    const double eta = done > 0 ? elapsed * double(total - done) / double(done) : 0;
    const auto label = "epoch " + std::to_string(epoch_ + 1) + "/" + std::to_string(epochs_);
    if (terminal_) {
      if (done != total && now_us - last_draw_us_ < 200000) return;
      last_draw_us_ = now_us;
      const int width = 30;
      const int filled = total > 0 ? static_cast<int>(width * std::min(done, total) / total) : width;
      std::string bar(filled, '#');
      bar.resize(width, '.');
      std::printf("\r%s [%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %.0fs   ", label.c_str(), bar.c_str(),
                  static_cast<long long>(done), static_cast<long long>(total), loss, rate, eta);
      drawn_ = done < total;  // the last step's bar stays, and the coordinator's lines go below it
      if (!drawn_) std::printf("\n");
      std::fflush(stdout);
    } else if (done % interval_ == 0 || done == total) {
      spdlog::info("{} step {}/{}  loss {:.4f}  {:.0f} samples/s  ETA {:.0f}s", label, done, total, loss, rate, eta);
    }
  }

  void clear() {
    if (!drawn_) return;
    std::printf("\r%*s\r", 100, "");
    std::fflush(stdout);
    drawn_ = false;
  }

  int64_t interval_;
  bool terminal_;
  bool drawn_ = false;
  int64_t epochs_ = 0, steps_per_epoch_ = 0;
  int32_t epoch_ = -1;
  int64_t start_us_ = 0, last_draw_us_ = 0;
  double samples_ = 0, targets_ = 0, loss_sum_ = 0;
};

}  // namespace

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

std::unique_ptr<EventWriter> make_console_writer(int64_t interval, bool terminal) {
  return std::make_unique<ConsoleWriter>(interval, terminal);
}

}  // namespace floe::runtime
