// docs/hooks.md, complete: two user hooks on a real (tiny) training job.
//  1. SlowStepLogger: a plain EventWriter that logs every step slower than twice the
//     running median, with the stage that was least idle (the likely culprit).
//  2. chaos_monkey: an actor of the user's own that watches the event stream and, when it
//     sees step 6, tells the coordinator to slow stage 1 by 50 ms per action for 4 steps.
// Built as build/examples/hooks; ctest runs it.
#include "actors/observer.hpp"
#include "launch/job.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

using namespace floe;

class SlowStepLogger : public runtime::EventWriter {
 public:
  void on(const runtime::Event& e) override {
    if (e.kind != runtime::EventKind::step) return;
    seconds_.push_back(e.duration_us / 1e6);
    auto sorted = seconds_;
    std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
    const double median = sorted[sorted.size() / 2];
    if (seconds_.size() > 3 && seconds_.back() > 2 * median) {
      const auto busiest = std::min_element(e.per_stage.begin(), e.per_stage.end()) - e.per_stage.begin();
      std::printf("slow step %lld: %.3f s (median %.3f s); least idle: stage %ld\n", (long long)e.step,
                  seconds_.back(), median, (long)busiest);
      ++slow_steps;
    }
  }
  void flush() override { std::printf("logger: %zu steps seen, %d slow\n", seconds_.size(), slow_steps); }
  int slow_steps = 0;

 private:
  std::vector<double> seconds_;
};

// A hook actor: any typed actor that handles event batches and flush can observe a job.
msg::observer_actor::behavior_type chaos_monkey(msg::observer_actor::pointer self, msg::coordinator_actor job) {
  return {
      [=](const msg::event_batch& batch) {  // const: observers share one message
        for (const auto& e : batch.events)
          if (e.kind == runtime::EventKind::step && e.step == 6)
            self->send(job, msg::inject_fault{runtime::parse_fault("slow replica=0 stage=1 seconds=0.05 count=4")});
      },
      [=](msg::flush_atom) { return true; },
  };
}

int main() {
  spdlog::set_level(spdlog::level::warn);
  auto cfg = runtime::load_job_config("", {"data.dataset=\"synthetic\"", "data.subset=1024", "data.test_subset=256",
                                           "model.depth=4", "model.dim=32", "model.heads=2", "model.patch=7",
                                           "batch_size=64", "epochs=1", "devices=2", "freeze.policy=\"none\""});
  actors::CoordinatorSpec spec;
  spec.config = cfg;
  const auto data = launch::load_job_data(cfg);
  spec.train = std::make_shared<const models::Dataset>(data.train);
  spec.test = std::make_shared<const models::Dataset>(data.test);

  auto logger = std::make_shared<SlowStepLogger>();
  launch::JobHooks hooks;
  hooks.observers.push_back([=](caf::actor_system& sys) { return actors::spawn_observer(sys, logger); });
  hooks.attach = [](caf::actor_system& sys, const msg::coordinator_actor& job) {
    auto monkey = sys.spawn(chaos_monkey, job);
    caf::anon_send(job, msg::subscribe{monkey});
  };
  const auto summary = launch::run_job(std::move(spec), hooks);
  std::printf("trained %lld steps, test accuracy %.1f%%\n", (long long)summary.steps,
              100 * summary.final_test_accuracy);
  return logger->slow_steps > 0 ? 0 : 1;  // the monkey's slowdown must have been seen
}
