#include "runtime/state/checkpoint.hpp"

#include "models/files.hpp"
#include "models/errors.hpp"
#include "runtime/config/json_integer.hpp"
#include "runtime/comm/secret.hpp"
#include "runtime/state/state_dict.hpp"
#include "runtime/observe/summary.hpp"

#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace floe::runtime {
namespace {

namespace fs = std::filesystem;
constexpr int64_t chunk_bytes = 1 << 20;
constexpr const char* files[] = {"parameters.pt", "optimizer.pt", "job.json", "config.toml"};

// SHA-256 of each `chunk` bytes of `bytes` (the last chunk may be shorter).
std::vector<std::string> chunk_digests(const std::string& bytes, size_t chunk = chunk_bytes) {
  std::vector<std::string> out;
  for (size_t at = 0; at < bytes.size(); at += chunk)
    out.push_back(sha256_hex(bytes.data() + at, std::min(chunk, bytes.size() - at)));
  return out;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw InputError("checkpoint file " + p.string() + ": missing or unreadable");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void fsync_path(const fs::path& p, const std::string& what) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    if (fd >= 0) ::close(fd);
    throw InputError("checkpoint " + p.string() + ": cannot fsync the " + what);
  }
  ::close(fd);
}

nlohmann::json to_json(const JobState& s) {
  return {{"epoch", s.epoch},
          {"step", s.step},
          {"global_step", s.global_step},
          {"decided", s.decided},
          {"frozen_blocks", s.frozen_blocks},
          {"units_per_stage", s.units_per_stage},
          {"chunks", s.chunks},
          {"micro_batches", s.micro_batches},
          {"replicas", s.replicas},
          {"node_devices", s.node_devices},
          {"block_grad_sq", s.block_grad_sq},
          {"policy_state", s.policy_state},
          {"loss_sum", s.loss_sum},
          {"correct", s.correct},
          {"samples", s.samples},
          {"targets", s.targets},
          {"busy", s.busy},
          {"makespan", s.makespan},
          {"epoch_seconds", s.epoch_seconds},
          {"summary", nlohmann::json::parse(s.summary_json.empty() ? "{}" : s.summary_json)}};
}

JobState job_state_from(const nlohmann::json& j) {
  JobState s;
  s.epoch = json_integer<int>(j.at("epoch"), "epoch");
  s.step = json_integer<int64_t>(j.at("step"), "step");
  s.global_step = json_integer<int64_t>(j.at("global_step"), "global_step");
  j.at("decided").get_to(s.decided);
  s.frozen_blocks = json_integer<int>(j.at("frozen_blocks"), "frozen_blocks");
  s.units_per_stage = json_integers<int>(j.at("units_per_stage"), "units_per_stage");
  s.chunks = j.contains("chunks") ? json_integer<int>(j.at("chunks"), "chunks") : 1;  // (before virtual stages: 1)
  s.micro_batches = json_integer<int>(j.at("micro_batches"), "micro_batches");
  s.replicas = json_integer<int>(j.at("replicas"), "replicas");
  s.node_devices = json_integers<int>(j.at("node_devices"), "node_devices");
  j.at("block_grad_sq").get_to(s.block_grad_sq);
  j.at("policy_state").get_to(s.policy_state);
  j.at("loss_sum").get_to(s.loss_sum);
  s.correct = json_integer<int64_t>(j.at("correct"), "correct");
  s.samples = json_integer<int64_t>(j.at("samples"), "samples");
  s.targets = j.contains("targets") ? json_integer<int64_t>(j.at("targets"), "targets") : s.samples;
  j.at("busy").get_to(s.busy);
  j.at("makespan").get_to(s.makespan);
  j.at("epoch_seconds").get_to(s.epoch_seconds);
  s.summary_json = j.at("summary").dump();
  if (s.epoch < 0 || s.step < 0 || s.global_step < s.step || s.frozen_blocks < 0 || s.micro_batches < 1 ||
      s.replicas < 1 || s.units_per_stage.empty() || s.chunks < 1 || s.units_per_stage.size() % s.chunks != 0)
    throw std::invalid_argument(
        "inconsistent values (negative epoch or step, no stages, M or R below 1, stages not a multiple of chunks)");
  try {
    summary_from_json(s.summary_json);  // a resume reads it: refuse it here, where damage is skipped
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string("summary: ") + e.what());
  }
  return s;
}

// The step-* folders of `dir`, newest first.
std::vector<std::pair<int64_t, fs::path>> checkpoints_in(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("step-", 0) != 0 || name.size() <= 5) continue;
    if (!std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    out.emplace_back(std::stoll(name.substr(5)), entry.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

}  // namespace

namespace {
std::atomic<bool> requested{false};
}

void request_checkpoint() noexcept { requested.store(true); }
bool take_checkpoint_request() noexcept { return requested.exchange(false); }

std::string checkpoint_name(int64_t global_step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%09lld", static_cast<long long>(global_step));
  return buf;
}

std::string write_checkpoint(const std::string& dir, const Checkpoint& c, int keep) {
  const fs::path root(dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) throw InputError("checkpoint.dir " + dir + ": cannot create the folder (" + ec.message() + ")");
  const auto name = checkpoint_name(c.job.global_step);
  const fs::path tmp = root / ("." + name + ".tmp-" + std::to_string(::getpid()));
  const fs::path final_path = root / name;
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) throw InputError("checkpoint.dir " + dir + ": cannot create " + tmp.string() + " (" + ec.message() + ")");
  std::string config;
  for (const auto& line : c.config) config += line + "\n";
  const std::string contents[] = {pickle_state_dict(c.parameters), pickle_state_dict(c.optimizer), to_json(c.job).dump(1), config};
  nlohmann::json manifest{{"format", 1}, {"chunk_bytes", chunk_bytes}, {"files", nlohmann::json::array()}};
  for (size_t i = 0; i < std::size(files); ++i) {
    write_file_atomic((tmp / files[i]).string(), contents[i]);
    manifest["files"].push_back({{"name", files[i]}, {"bytes", contents[i].size()}, {"sha256", chunk_digests(contents[i])}});
  }
  write_file_atomic((tmp / "MANIFEST").string(), manifest.dump(1) + "\n");
  fsync_path(tmp, "folder");
  if (fs::exists(final_path)) {  // the same step again (a resumed run passing it): replace it
    const fs::path old = root / ("." + name + ".old-" + std::to_string(::getpid()));
    fs::rename(final_path, old, ec);
    if (!ec) fs::remove_all(old, ec);
  }
  fs::rename(tmp, final_path, ec);
  if (ec) throw InputError("checkpoint.dir " + dir + ": cannot rename " + tmp.string() + " (" + ec.message() + ")");
  fsync_path(root, "folder");
  auto all = checkpoints_in(root);
  for (size_t i = static_cast<size_t>(std::max(keep, 1)); i < all.size(); ++i) fs::remove_all(all[i].second, ec);
  return final_path.string();
}

Manifest parse_manifest(const std::string& text, const std::string& what) {
  Manifest m;
  try {
    const auto j = nlohmann::json::parse(text);
    if (json_integer<int>(j.at("format"), "format") != 1) throw std::invalid_argument("format is not 1");
    m.chunk_bytes = j.contains("chunk_bytes") ? json_integer<int64_t>(j.at("chunk_bytes"), "chunk_bytes") : chunk_bytes;
    const auto& list = j.at("files");
    if (!list.is_array()) throw std::invalid_argument("files: expected a list");
    for (const auto& f : list) {
      const auto name = f.at("name").get<std::string>();
      ManifestFile file{json_integer<int64_t>(f.at("bytes"), name + " bytes"),
                        f.at("sha256").get<std::vector<std::string>>()};
      if (file.bytes < 0) throw std::invalid_argument(name + " bytes: negative");
      m.files.emplace(name, std::move(file));
    }
  } catch (const std::exception& e) {
    throw InputError(what + ": not a floe manifest (" + e.what() + ")");
  }
  if (m.chunk_bytes < 1) throw InputError(what + ": chunk_bytes must be at least 1");
  for (const char* name : files) {
    const auto it = m.files.find(name);
    if (it == m.files.end()) throw InputError(what + ": lists no " + name);
    const auto& f = it->second;
    const auto chunks = static_cast<size_t>(f.bytes / m.chunk_bytes + (f.bytes % m.chunk_bytes != 0));
    if (f.sha256.size() != chunks)
      throw InputError(what + ": " + name + " has " + std::to_string(f.sha256.size()) + " chunk checksums for " +
                       std::to_string(f.bytes) + " bytes, expected " + std::to_string(chunks));
  }
  return m;
}

JobState job_state_from_json(const std::string& text, const std::string& what) {
  try {
    return job_state_from(nlohmann::json::parse(text));
  } catch (const std::exception& e) {
    throw InputError(what + ": " + e.what());
  }
}

Checkpoint read_checkpoint(const std::string& folder) {
  const fs::path root(folder);
  const auto manifest_path = root / "MANIFEST";
  if (!fs::exists(manifest_path))
    throw InputError("checkpoint " + folder + ": no MANIFEST (not a checkpoint, or its write did not finish)");
  const auto manifest = parse_manifest(read_all(manifest_path), "checkpoint file " + manifest_path.string());
  const auto chunk = static_cast<size_t>(manifest.chunk_bytes);
  std::map<std::string, std::string> contents;
  for (const char* name : files) {
    const auto p = root / name;
    const auto& listed = manifest.files.at(name);
    auto bytes = read_all(p);
    if (static_cast<int64_t>(bytes.size()) != listed.bytes)
      throw InputError("checkpoint file " + p.string() + ": " + std::to_string(bytes.size()) +
                       " bytes, the manifest says " + std::to_string(listed.bytes) +
                       (static_cast<int64_t>(bytes.size()) < listed.bytes ? " (truncated)" : ""));
    const auto actual = chunk_digests(bytes, chunk);
    for (size_t i = 0; i < actual.size(); ++i)
      if (actual[i] != listed.sha256[i]) {
        const size_t at = i * chunk, end = std::min(bytes.size(), at + chunk);
        throw InputError("checkpoint file " + p.string() + ": corrupt: bytes " + std::to_string(at) + ".." +
                         std::to_string(end) + " differ from the manifest's checksum");
      }
    contents[name] = std::move(bytes);
  }
  Checkpoint c;
  c.path = folder;
  c.parameters = unpickle_state_dict(contents["parameters.pt"], "checkpoint file " + (root / "parameters.pt").string());
  c.optimizer = unpickle_state_dict(contents["optimizer.pt"], "checkpoint file " + (root / "optimizer.pt").string());
  c.job = job_state_from_json(contents["job.json"], "checkpoint file " + (root / "job.json").string());
  std::string line;
  for (char ch : contents["config.toml"]) {
    if (ch != '\n') {
      line += ch;
    } else if (!line.empty()) {
      c.config.push_back(line);
      line.clear();
    }
  }
  return c;
}

void check_resumable(const Checkpoint& c, const JobConfig& now_config) {
  const auto was = to_flat_map(load_job_config("", c.config));
  const auto now = to_flat_map(now_config);
  for (const auto& [key, value] : was) {
    const bool fixed = key.rfind("model.", 0) == 0 || key == "batch_size" || key == "seed" || key == "data.dataset" ||
                       key == "data.subset" || key == "data.offset" || key == "data.classes" || key == "data.augment";
    if (fixed && now.count(key) && now.at(key) != value)
      throw InputError("checkpoint " + c.path + ": " + key + " = " + value + " there but " + now.at(key) +
                       " now; a resumed job keeps its model, data and batch (drop the override or start afresh)");
  }
}

Checkpoint read_latest_checkpoint(const std::string& path, std::vector<std::string>* skipped) {
  if (fs::exists(fs::path(path) / "MANIFEST")) return read_checkpoint(path);
  if (!fs::is_directory(path)) throw InputError("--resume " + path + ": no such folder");
  const auto all = checkpoints_in(path);
  std::string reasons;
  for (const auto& [step, folder] : all) {
    try {
      return read_checkpoint(folder.string());
    } catch (const InputError& e) {
      if (skipped) skipped->push_back(e.what());
      reasons += std::string("\n  ") + e.what();
    }
  }
  throw InputError("--resume " + path + ": no checkpoint to resume from" +
                   (all.empty() ? std::string(" (no step-* folders)") : ", every one is damaged:" + reasons));
}

}  // namespace floe::runtime
