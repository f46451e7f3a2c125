#include "runtime/summary.hpp"

#include "runtime/errors.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace floe::runtime {

CacheStats cache_sum(const std::vector<CacheStats>& nodes) {
  CacheStats t;
  for (const auto& n : nodes) {
    t.hits += n.hits;
    t.misses += n.misses;
    t.advanced += n.advanced;
    t.rejected += n.rejected;
    t.evicted += n.evicted;
    t.entries += n.entries;
    t.memory_bytes += n.memory_bytes;
    t.disk_bytes += n.disk_bytes;
    t.peak_memory_bytes += n.peak_memory_bytes;
    t.advance_seconds += n.advance_seconds;
    t.compute_seconds += n.compute_seconds;
    t.read_seconds += n.read_seconds;
    for (auto l : n.bypassed_levels)
      if (std::find(t.bypassed_levels.begin(), t.bypassed_levels.end(), l) == t.bypassed_levels.end())
        t.bypassed_levels.push_back(l);
  }
  return t;
}

CacheStats cache_delta(const CacheStats& now, const CacheStats& before) {
  CacheStats d = now;
  d.hits -= before.hits;
  d.misses -= before.misses;
  d.advanced -= before.advanced;
  d.rejected -= before.rejected;
  d.evicted -= before.evicted;
  d.advance_seconds -= before.advance_seconds;
  d.compute_seconds -= before.compute_seconds;
  d.read_seconds -= before.read_seconds;
  return d;
}

std::string to_json(const TrainingSummary& s, int indent) {
  nlohmann::json j;
  j["final_test_accuracy"] = s.final_test_accuracy;
  j["final_test_loss"] = s.final_test_loss;
  j["total_seconds"] = s.total_seconds;
  j["setup_seconds"] = s.setup_seconds;
  j["steps"] = s.steps;
  j["epochs"] = nlohmann::json::array();
  for (const auto& e : s.epochs) {
    j["epochs"].push_back({{"epoch", e.epoch},
                           {"train_loss", e.train_loss},
                           {"train_accuracy", e.train_accuracy},
                           {"test_loss", e.test_loss},
                           {"test_accuracy", e.test_accuracy},
                           {"seconds", e.seconds},
                           {"train_seconds", e.train_seconds},
                           {"samples_per_second", e.samples_per_second},
                           {"pipeline_length", e.pipeline_length},
                           {"replicas", e.replicas},
                           {"micro_batches", e.micro_batches},
                           {"frozen_layers", e.frozen_layers},
                           {"stage_busy_fraction", e.stage_busy_fraction},
                           {"stage_bubble_fraction", e.stage_bubble_fraction},
                           {"samples", e.samples}});
    if (e.replicas_identical >= 0) j["epochs"].back()["replicas_identical"] = e.replicas_identical == 1;
    if (e.cached) {
      const auto& c = e.cache;
      j["epochs"].back()["cache"] = {{"hits", c.hits},
                                     {"misses", c.misses},
                                     {"advanced", c.advanced},
                                     {"rejected", c.rejected},
                                     {"evicted", c.evicted},
                                     {"entries", c.entries},
                                     {"memory_bytes", c.memory_bytes},
                                     {"disk_bytes", c.disk_bytes},
                                     {"peak_memory_bytes", c.peak_memory_bytes},
                                     {"advance_seconds", c.advance_seconds},
                                     {"compute_seconds", c.compute_seconds},
                                     {"read_seconds", c.read_seconds},
                                     {"bypassed_levels", c.bypassed_levels}};
    }
  }
  auto layout = [](const Layout& l) {
    return nlohmann::json{{"K", l.pipeline_length}, {"M", l.micro_batches}, {"R", l.replicas}};
  };
  j["transitions"] = nlohmann::json::array();
  for (const auto& t : s.transitions) {
    nlohmann::json tj{{"epoch", t.epoch},     {"step", t.step},       {"from", layout(t.from)},
                      {"to", layout(t.to)},   {"frozen_layers", t.frozen_layers}, {"seconds", t.seconds},
                      {"ok", t.ok}};
    if (!t.ok) tj["error"] = t.error;
    j["transitions"].push_back(tj);
  }
  j["config"] = s.config;
  return j.dump(indent);
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  auto fail = [&](const std::string& what) {
    const std::string reason = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw InputError("cannot write " + path + ": " + what + ": " + reason);
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("open");
  size_t done = 0;
  while (done < contents.size()) {
    const ssize_t w = ::write(fd, contents.data() + done, contents.size() - done);
    if (w < 0) {
      ::close(fd);
      fail("write");
    }
    done += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("fsync");
  }
  ::close(fd);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename");
}

}  // namespace floe::runtime
