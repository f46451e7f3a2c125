#pragma once
// The scenario harness: script an elastic run in a few lines (freezes at given steps,
// faults, any config key), run it in this process with a tiny model on synthetic data, and
// assert on the recorded event stream. For floe's tests and for users' own test suites
// (docs/hooks.md). Every actor's own events come in the same order on every run of the same
// script; devices run concurrently, so only their interleaving may differ.
#include "launch/job.hpp"
#include "runtime/observe/event_writer.hpp"

namespace floe::launch {

struct ScenarioResult {
  runtime::TrainingSummary summary;
  std::vector<runtime::Event> events;  // in the order the observers received them
  std::string error;                   // why the job stopped, when it did not complete

  std::vector<runtime::Event> of(runtime::EventKind kind) const;
};

class Scenario {
 public:
  // `devices` CPU devices (one thread each); a 4-block ViT on 1024 synthetic samples.
  explicit Scenario(int devices = 2);
  Scenario& set(const std::string& key_value);      // a config override, as `--set`
  Scenario& freeze_at(int64_t step, int frozen);     // a live freeze before global step `step`
  Scenario& fault(const std::string& spec);          // runtime/control/faults.hpp text form
  Scenario& nodes(std::vector<int> devices);         // virtual nodes with these devices (JobHooks)
  Scenario& join_at(int64_t step, int devices);      // a virtual node joins before global step `step`
  ScenarioResult run() const;

 private:
  std::vector<std::string> sets_, faults_;
  std::vector<msg::scripted_freeze> freezes_;
  std::vector<int> nodes_;
  std::vector<std::pair<int64_t, int>> joins_;
};

}  // namespace floe::launch
