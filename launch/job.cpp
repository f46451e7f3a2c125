#include "launch/job.hpp"

#include "actors/coordinator.hpp"
#include "messages/registry.hpp"

namespace floe::launch {

models::TrainTest load_job_data(const runtime::DataConfig& data, uint64_t seed) {
  models::TrainTest tt = data.dataset == "synthetic" ? models::make_synthetic(6000, 1000, 10, seed)
                                                     : models::load_fashion_mnist(data.root);
  tt.train = tt.train.head(data.subset);
  tt.test = tt.test.head(data.test_subset);
  return tt;
}

runtime::TrainingSummary run_job(const runtime::JobConfig& cfg, const models::TrainTest& data) {
  actors::CoordinatorSpec spec;
  spec.config = cfg;
  spec.train = std::make_shared<const models::Dataset>(data.train);
  spec.test = std::make_shared<const models::Dataset>(data.test);
  return run_job(std::move(spec));
}

runtime::TrainingSummary run_job(actors::CoordinatorSpec spec) {
  msg::system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto coordinator = actors::spawn_coordinator(sys, std::move(spec));
  caf::scoped_actor self{sys};
  runtime::TrainingSummary out;
  std::string failure;
  self->request(coordinator, caf::infinite, msg::start_atom::value)
      .receive([&](runtime::TrainingSummary& s) { out = std::move(s); },
               [&](caf::error& e) { failure = sys.render(e); });
  if (!failure.empty()) throw std::runtime_error("training failed: " + failure);
  return out;
}

}  // namespace floe::launch
