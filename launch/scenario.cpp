#include "launch/scenario.hpp"

#include "actors/observer.hpp"

namespace floe::launch {

std::vector<runtime::Event> ScenarioResult::of(runtime::EventKind kind) const {
  std::vector<runtime::Event> out;
  for (const auto& e : events)
    if (e.kind == kind) out.push_back(e);
  return out;
}

Scenario::Scenario(int devices)
    : sets_{"data.dataset=\"synthetic\"", "data.subset=1024", "data.test_subset=256", "model.depth=4",
            "model.dim=32",           "model.heads=2",    "model.patch=7",         "batch_size=64",
            "epochs=2",               "freeze.policy=\"none\"", "log_interval=1000000",
            "devices=" + std::to_string(devices), "pipeline.length=" + std::to_string(std::min(devices, 2))} {}

Scenario& Scenario::set(const std::string& key_value) {
  sets_.push_back(key_value);
  return *this;
}

Scenario& Scenario::freeze_at(int64_t step, int frozen) {
  freezes_.push_back({step, frozen});
  return *this;
}

Scenario& Scenario::fault(const std::string& spec) {
  runtime::parse_fault(spec);  // a bad script fails here, naming the text
  faults_.push_back(spec);
  return *this;
}

Scenario& Scenario::nodes(std::vector<int> devices) {
  nodes_ = std::move(devices);
  return *this;
}

Scenario& Scenario::join_at(int64_t step, int devices) {
  joins_.push_back({step, devices});
  return *this;
}

ScenarioResult Scenario::run() const {
  actors::CoordinatorSpec spec;
  spec.config = runtime::load_job_config("", sets_);
  spec.config.faults.insert(spec.config.faults.end(), faults_.begin(), faults_.end());
  const auto data = load_job_data(spec.config);
  spec.train = std::make_shared<const models::Dataset>(data.train);
  spec.test = std::make_shared<const models::Dataset>(data.test);
  auto recorder = std::make_shared<runtime::EventRecorder>();
  JobHooks hooks;
  hooks.virtual_nodes = nodes_;
  hooks.late_nodes = joins_;
  hooks.observers.push_back([=](caf::actor_system& sys) { return actors::spawn_observer(sys, recorder); });
  const auto freezes = freezes_;
  hooks.attach = [=](caf::actor_system& sys, const msg::coordinator_actor& coordinator) {
    for (const auto& f : freezes) caf::anon_send(coordinator, f);
  };
  ScenarioResult out;
  try {
    out.summary = run_job(std::move(spec), hooks);
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  out.events = recorder->events();  // the observer has flushed and stopped: no more writes
  return out;
}

}  // namespace floe::launch
