#pragma once
// The micro-batch profiler (spec §3.5): the first time a pipeline of K > 1 stages trains, its
// steps try M = K, 2K, ..., 6K in turn on real training steps (no sample is wasted: a
// different M changes only how a step is cut, not what it computes), and the fastest M is kept
// in a profile file keyed by the model, the per-replica batch and K, so that later runs and
// later transitions to the same K skip the sweep. `pipeline.micro_batches = 0` turns it on;
// until a sweep has finished, the paper's table (default_micro_batches) is the fallback.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace floe::runtime {

// One sweep over the candidates M = m·K (m = 1..6, at most the per-replica batch), each for
// `steps_each` consecutive steps. A candidate's time is its fastest step, so the first step
// after a transition (allocations, cold caches) does not count against it.
class MicroBatchSweep {
 public:
  // Throws std::invalid_argument for stages < 1, batch < 1 or steps_each < 1.
  MicroBatchSweep(int stages, int64_t batch, int steps_each = 2);
  bool done() const { return next_ >= candidates_.size(); }
  // M for the next step; requires !done().
  int next() const;
  // Records the step just run with next(): its seconds. Throws std::logic_error when done().
  void record(double seconds);
  // The fastest candidate (ties: the smaller M); requires done().
  int best() const;
  // (M, fastest step seconds) per candidate tried so far.
  const std::vector<std::pair<int, double>>& results() const { return fastest_; }

 private:
  std::vector<int> candidates_;
  std::vector<std::pair<int, double>> fastest_;
  size_t next_ = 0;
  int taken_ = 0;  // steps recorded for candidates_[next_]
  int steps_each_;
};

// What a profile entry is keyed by.
struct ProfileKey {
  std::string model;  // a description of the model and the device threads
  int64_t batch = 0;  // samples per replica and step
  int stages = 0;     // K
  bool operator<(const ProfileKey& o) const;
};

// The profile file: a JSON object {"version": 1, "entries": [{"model", "batch", "stages",
// "micro_batches", "seconds": {"M": s, ...}}, ...]}. An empty path keeps it in memory only.
class MicroBatchProfile {
 public:
  // Reads `path` when it exists. Throws floe::InputError naming the file and what was expected
  // when it is not such a profile.
  explicit MicroBatchProfile(std::string path);
  std::optional<int> lookup(const ProfileKey& key) const;
  // Remembers the sweep's result and rewrites the file (atomically). Returns "" or, when the
  // file cannot be written, why (the result is still kept for this run).
  std::string store(const ProfileKey& key, const MicroBatchSweep& sweep);
  const std::string& path() const { return path_; }

 private:
  struct Entry {
    int micro_batches = 0;
    std::vector<std::pair<int, double>> seconds;
  };
  std::string path_;
  std::map<ProfileKey, Entry> entries_;
};

// `pipeline.profile` with a leading "~/" resolved against $HOME ("" stays "").
std::string expand_home(const std::string& path);

}  // namespace floe::runtime
