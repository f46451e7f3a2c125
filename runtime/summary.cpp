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
                      {"ok", t.ok},           {"cause", t.cause}};
    if (!t.ok) tj["error"] = t.error;
    j["transitions"].push_back(tj);
  }
  j["config"] = s.config;
  if (!s.resumed_from.empty()) {
    j["resumed_from"] = s.resumed_from;
    j["resumed_at_step"] = s.resumed_at_step;
  }
  j["checkpoints"] = s.checkpoints;
  j["checkpoint_seconds"] = s.checkpoint_seconds;
  return j.dump(indent);
}

TrainingSummary summary_from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  TrainingSummary s;
  s.final_test_accuracy = j.value("final_test_accuracy", 0.0);
  s.final_test_loss = j.value("final_test_loss", 0.0);
  s.total_seconds = j.value("total_seconds", 0.0);
  s.setup_seconds = j.value("setup_seconds", 0.0);
  s.steps = j.value("steps", int64_t{0});
  for (const auto& e : j.value("epochs", nlohmann::json::array())) {
    EpochRecord r;
    e.at("epoch").get_to(r.epoch);
    e.at("train_loss").get_to(r.train_loss);
    e.at("train_accuracy").get_to(r.train_accuracy);
    e.at("test_loss").get_to(r.test_loss);
    e.at("test_accuracy").get_to(r.test_accuracy);
    e.at("seconds").get_to(r.seconds);
    e.at("train_seconds").get_to(r.train_seconds);
    e.at("samples_per_second").get_to(r.samples_per_second);
    e.at("pipeline_length").get_to(r.pipeline_length);
    e.at("replicas").get_to(r.replicas);
    e.at("micro_batches").get_to(r.micro_batches);
    e.at("frozen_layers").get_to(r.frozen_layers);
    e.at("stage_busy_fraction").get_to(r.stage_busy_fraction);
    e.at("stage_bubble_fraction").get_to(r.stage_bubble_fraction);
    e.at("samples").get_to(r.samples);
    if (e.contains("replicas_identical")) r.replicas_identical = e["replicas_identical"].get<bool>() ? 1 : 0;
    if (e.contains("cache")) {
      const auto& c = e["cache"];
      r.cached = true;
      c.at("hits").get_to(r.cache.hits);
      c.at("misses").get_to(r.cache.misses);
      c.at("advanced").get_to(r.cache.advanced);
      c.at("rejected").get_to(r.cache.rejected);
      c.at("evicted").get_to(r.cache.evicted);
      c.at("entries").get_to(r.cache.entries);
      c.at("memory_bytes").get_to(r.cache.memory_bytes);
      c.at("disk_bytes").get_to(r.cache.disk_bytes);
      c.at("peak_memory_bytes").get_to(r.cache.peak_memory_bytes);
      c.at("advance_seconds").get_to(r.cache.advance_seconds);
      c.at("compute_seconds").get_to(r.cache.compute_seconds);
      c.at("read_seconds").get_to(r.cache.read_seconds);
      c.at("bypassed_levels").get_to(r.cache.bypassed_levels);
    }
    s.epochs.push_back(r);
  }
  auto layout = [](const nlohmann::json& l) { return Layout{l.at("K"), l.at("M"), l.at("R")}; };
  for (const auto& t : j.value("transitions", nlohmann::json::array())) {
    TransitionRecord r;
    t.at("epoch").get_to(r.epoch);
    t.at("step").get_to(r.step);
    r.from = layout(t.at("from"));
    r.to = layout(t.at("to"));
    t.at("frozen_layers").get_to(r.frozen_layers);
    t.at("seconds").get_to(r.seconds);
    t.at("ok").get_to(r.ok);
    r.error = t.value("error", "");
    r.cause = t.value("cause", "freeze");
    s.transitions.push_back(r);
  }
  if (j.contains("config")) j["config"].get_to(s.config);
  return s;
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
