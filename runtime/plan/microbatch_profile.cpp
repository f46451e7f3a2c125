#include "runtime/plan/microbatch_profile.hpp"

#include "models/files.hpp"
#include "models/errors.hpp"
#include "runtime/config/json_integer.hpp"
#include "runtime/plan/planner.hpp"
#include "runtime/observe/summary.hpp"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace floe::runtime {

MicroBatchSweep::MicroBatchSweep(int stages, int64_t batch, int steps_each) : steps_each_(steps_each) {
  if (stages < 1 || batch < 1 || steps_each < 1)
    throw std::invalid_argument("micro-batch sweep: needs stages, batch and steps per candidate of at least 1");
  for (int m : micro_batch_table_paper(stages))
    if (m <= batch) candidates_.push_back(m);
  if (candidates_.empty()) candidates_.push_back(static_cast<int>(batch));  // fewer samples than stages
}

int MicroBatchSweep::next() const {
  if (done()) throw std::logic_error("micro-batch sweep: next() after the sweep is done");
  return candidates_[next_];
}

void MicroBatchSweep::record(double seconds) {
  if (done()) throw std::logic_error("micro-batch sweep: record() after the sweep is done");
  if (taken_ == 0)
    fastest_.emplace_back(candidates_[next_], seconds);
  else
    fastest_.back().second = std::min(fastest_.back().second, seconds);
  if (++taken_ == steps_each_) {
    taken_ = 0;
    ++next_;
  }
}

int MicroBatchSweep::best() const {
  if (!done()) throw std::logic_error("micro-batch sweep: best() before the sweep is done");
  auto best = fastest_.front();
  for (const auto& r : fastest_)
    if (r.second < best.second) best = r;
  return best.first;
}

bool ProfileKey::operator<(const ProfileKey& o) const {
  return std::tie(model, batch, stages) < std::tie(o.model, o.batch, o.stages);
}

MicroBatchProfile::MicroBatchProfile(std::string path) : path_(std::move(path)) {
  if (path_.empty() || !std::filesystem::exists(path_)) return;
  std::ifstream in(path_);
  std::stringstream text;
  text << in.rdbuf();
  try {
    const auto j = nlohmann::json::parse(text.str());
    if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("entries") || !j["entries"].is_array())
      throw std::invalid_argument("expected {\"version\": 1, \"entries\": [...]}");
    for (const auto& e : j["entries"]) {
      if (!e.is_object() || !e.contains("model") || !e["model"].is_string() || !e.contains("seconds") ||
          !e["seconds"].is_object())
        throw std::invalid_argument("an entry needs model (text), batch, stages, micro_batches and seconds");
      ProfileKey key{e["model"].get<std::string>(), json_integer<int64_t>(e.at("batch"), "batch"),
                     json_integer<int>(e.at("stages"), "stages")};
      Entry entry;
      entry.micro_batches = json_integer<int>(e.at("micro_batches"), "micro_batches");
      if (key.batch < 1 || key.stages < 1 || entry.micro_batches < 1)
        throw std::invalid_argument("batch, stages and micro_batches must be at least 1");
      for (const auto& [m, s] : e["seconds"].items()) {
        if (!s.is_number() || !std::isfinite(s.get<double>()) || s.get<double>() < 0)
          throw std::invalid_argument("seconds must be numbers of at least 0");
        const int micro_batches = std::stoi(m);
        if (micro_batches < 1) throw std::invalid_argument("seconds are keyed by micro-batch counts of at least 1");
        entry.seconds.emplace_back(micro_batches, s.get<double>());
      }
      entries_[key] = entry;
    }
  } catch (const std::exception& e) {
    throw InputError("micro-batch profile " + path_ + ": " + e.what() +
                     " (a file floe wrote: delete it to profile again, or set pipeline.profile)");
  }
}

std::optional<int> MicroBatchProfile::lookup(const ProfileKey& key) const {
  const auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.micro_batches;
}

std::string MicroBatchProfile::store(const ProfileKey& key, const MicroBatchSweep& sweep) {
  entries_[key] = {sweep.best(), sweep.results()};
  if (path_.empty()) return "";
  nlohmann::json j{{"version", 1}, {"entries", nlohmann::json::array()}};
  for (const auto& [k, e] : entries_) {
    nlohmann::json seconds = nlohmann::json::object();
    for (const auto& [m, s] : e.seconds) seconds[std::to_string(m)] = s;
    j["entries"].push_back({{"model", k.model}, {"batch", k.batch}, {"stages", k.stages},
                            {"micro_batches", e.micro_batches}, {"seconds", seconds}});
  }
  try {
    const auto dir = std::filesystem::path(path_).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    write_file_atomic(path_, j.dump(2) + "\n");
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string expand_home(const std::string& path) {
  if (path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  return (home && *home ? std::string(home) : std::string(".")) + path.substr(1);
}

}  // namespace floe::runtime
