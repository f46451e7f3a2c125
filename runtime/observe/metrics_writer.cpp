// The metrics observer: JSONL, written as the run goes (tail -f, pandas.read_json(lines=True)).
#include "models/errors.hpp"
#include "runtime/observe/event_writer.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unistd.h>

namespace floe::runtime {
namespace {

class MetricsWriter : public EventWriter {
 public:
  explicit MetricsWriter(const std::string& path) : path_(path), file_(std::fopen(path.c_str(), "w")) {
    if (!file_) throw InputError("metrics file " + path + ": cannot write (" + std::strerror(errno) + ")");
  }
  ~MetricsWriter() override {
    if (file_) std::fclose(file_);
  }
  void on(const Event& e) override {
    if (origin_ < 0 || e.kind == EventKind::job) origin_ = e.start_us;
    switch (e.kind) {
      case EventKind::job:
      case EventKind::step:
      case EventKind::eval:
      case EventKind::epoch:
      case EventKind::freeze:
      case EventKind::transition:
      case EventKind::cache:
      case EventKind::fault:
      case EventKind::checkpoint: break;
      default: return;  // per micro-batch spans belong in the trace
    }
    const auto line = to_json_line(e, origin_) + "\n";
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size())
      throw InputError("metrics file " + path_ + ": write failed (" + std::strerror(errno) + ")");
  }
  void flush() override {
    if (std::fflush(file_) != 0 || ::fsync(fileno(file_)) != 0)
      throw InputError("metrics file " + path_ + ": flush failed (" + std::strerror(errno) + ")");
  }

 private:
  std::string path_;
  std::FILE* file_;
  int64_t origin_ = -1;
};

}  // namespace

std::unique_ptr<EventWriter> make_metrics_writer(const std::string& path) {
  return std::make_unique<MetricsWriter>(path);
}

}  // namespace floe::runtime
