#include "runtime/observe/summary.hpp"

#include "models/errors.hpp"
#include "runtime/config/json_integer.hpp"

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
                           {"chunks", e.chunks},
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
  if (!j.is_object()) throw std::invalid_argument("a summary is a JSON object");
  TrainingSummary s;
  s.final_test_accuracy = j.value("final_test_accuracy", 0.0);
  s.final_test_loss = j.value("final_test_loss", 0.0);
  s.total_seconds = j.value("total_seconds", 0.0);
  s.setup_seconds = j.value("setup_seconds", 0.0);
  if (j.contains("steps")) s.steps = json_integer<int64_t>(j["steps"], "steps");
  for (const auto& e : j.value("epochs", nlohmann::json::array())) {
    EpochRecord r;
    r.epoch = json_integer<int>(e.at("epoch"), "epoch");
    e.at("train_loss").get_to(r.train_loss);
    e.at("train_accuracy").get_to(r.train_accuracy);
    e.at("test_loss").get_to(r.test_loss);
    e.at("test_accuracy").get_to(r.test_accuracy);
    e.at("seconds").get_to(r.seconds);
    e.at("train_seconds").get_to(r.train_seconds);
    e.at("samples_per_second").get_to(r.samples_per_second);
    r.pipeline_length = json_integer<int>(e.at("pipeline_length"), "pipeline_length");
    r.chunks = e.contains("chunks") ? json_integer<int>(e.at("chunks"), "chunks") : 1;
    r.replicas = json_integer<int>(e.at("replicas"), "replicas");
    r.micro_batches = json_integer<int>(e.at("micro_batches"), "micro_batches");
    r.frozen_layers = json_integer<int>(e.at("frozen_layers"), "frozen_layers");
    e.at("stage_busy_fraction").get_to(r.stage_busy_fraction);
    e.at("stage_bubble_fraction").get_to(r.stage_bubble_fraction);
    r.samples = json_integer<int64_t>(e.at("samples"), "samples");
    if (e.contains("replicas_identical")) r.replicas_identical = e["replicas_identical"].get<bool>() ? 1 : 0;
    if (e.contains("cache")) {
      const auto& c = e["cache"];
      r.cached = true;
      r.cache.hits = json_integer<int64_t>(c.at("hits"), "hits");
      r.cache.misses = json_integer<int64_t>(c.at("misses"), "misses");
      r.cache.advanced = json_integer<int64_t>(c.at("advanced"), "advanced");
      r.cache.rejected = json_integer<int64_t>(c.at("rejected"), "rejected");
      r.cache.evicted = json_integer<int64_t>(c.at("evicted"), "evicted");
      r.cache.entries = json_integer<int64_t>(c.at("entries"), "entries");
      r.cache.memory_bytes = json_integer<int64_t>(c.at("memory_bytes"), "memory_bytes");
      r.cache.disk_bytes = json_integer<int64_t>(c.at("disk_bytes"), "disk_bytes");
      r.cache.peak_memory_bytes = json_integer<int64_t>(c.at("peak_memory_bytes"), "peak_memory_bytes");
      c.at("advance_seconds").get_to(r.cache.advance_seconds);
      c.at("compute_seconds").get_to(r.cache.compute_seconds);
      c.at("read_seconds").get_to(r.cache.read_seconds);
      r.cache.bypassed_levels = json_integers<int32_t>(c.at("bypassed_levels"), "bypassed_levels");
    }
    s.epochs.push_back(r);
  }
  auto layout = [](const nlohmann::json& l) {
    return Layout{json_integer<int>(l.at("K"), "K"), json_integer<int>(l.at("M"), "M"), json_integer<int>(l.at("R"), "R")};
  };
  for (const auto& t : j.value("transitions", nlohmann::json::array())) {
    TransitionRecord r;
    r.epoch = json_integer<int>(t.at("epoch"), "epoch");
    r.step = json_integer<int64_t>(t.at("step"), "step");
    r.from = layout(t.at("from"));
    r.to = layout(t.at("to"));
    r.frozen_layers = json_integer<int>(t.at("frozen_layers"), "frozen_layers");
    t.at("seconds").get_to(r.seconds);
    t.at("ok").get_to(r.ok);
    r.error = t.value("error", "");
    r.cause = t.value("cause", "freeze");
    s.transitions.push_back(r);
  }
  if (j.contains("config")) j["config"].get_to(s.config);
  return s;
}


}  // namespace floe::runtime
