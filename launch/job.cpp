#include "launch/job.hpp"

#include "actors/coordinator.hpp"
#include "actors/node_agent.hpp"
#include "actors/observer.hpp"
#include "actors/threads.hpp"
#include "models/text_dataset.hpp"
#include "messages/registry.hpp"
#include "runtime/comm/gloo_group.hpp"
#include "runtime/state/hf_checkpoint.hpp"
#include "runtime/state/init_weights.hpp"
#include "runtime/observe/progress.hpp"

namespace floe::launch {

models::TrainTest load_job_data(const runtime::JobConfig& cfg) {
  const auto& data = cfg.data;
  const auto root = runtime::data_root(data);
  models::TrainTest tt = data.dataset == "synthetic" ? models::make_synthetic(6000, 1000, 10, cfg.seed, cfg.model.channels, cfg.model.image_size)
                         : data.dataset == "sst2"
                             ? models::load_sst2_dataset(root, runtime::vocab_path(cfg), cfg.model.vocab_size,
                                                         cfg.model.max_len, data.eval_split.empty() ? "dev" : data.eval_split,
                                                         cfg.model.task == "mlm")
                             : models::load_fashion_mnist(root);
  tt.train = tt.train.only_classes(data.classes).skip(data.offset).head(data.subset);
  tt.test = tt.test.only_classes(data.classes).head(data.test_subset);
  return tt;
}

std::shared_ptr<const models::WeightMatch> read_init_weights(const runtime::JobConfig& cfg) {
  if (cfg.init_weights.empty()) return nullptr;
  return std::make_shared<const models::WeightMatch>(runtime::read_init_weights(cfg));
}

actors::CoordinatorSpec job_spec(const runtime::JobConfig& cfg, const models::TrainTest& data,
                                 std::shared_ptr<const models::WeightMatch> init) {
  actors::CoordinatorSpec spec;
  spec.config = cfg;
  spec.train = std::make_shared<const models::Dataset>(data.train);
  spec.test = std::make_shared<const models::Dataset>(data.test);
  spec.init_weights = std::move(init);
  return spec;
}

runtime::TrainingSummary run_job(const runtime::JobConfig& cfg, const models::TrainTest& data) {
  return run_job(job_spec(cfg, data));
}

runtime::TrainingSummary run_job(actors::CoordinatorSpec spec, const JobHooks& hooks) {
  msg::system_config sys_cfg{hooks.scheduler_threads};
  actors::share_cores_with_compute(sys_cfg);
  caf::actor_system sys{sys_cfg};
  return run_job(sys, std::move(spec), hooks);
}

runtime::TrainingSummary run_job(caf::actor_system& sys, actors::CoordinatorSpec spec, const JobHooks& hooks) {
  // Built-in observers first: a bad output path stops the job before any training.
  std::vector<msg::observer_actor> observers;
  const auto& o = spec.config.observe;
  if (!o.metrics.empty()) observers.push_back(actors::spawn_observer(sys, runtime::make_metrics_writer(o.metrics)));
  if (!o.trace.empty()) observers.push_back(actors::spawn_observer(sys, runtime::make_trace_writer(o.trace)));
  if (!o.report.empty())
    observers.push_back(actors::spawn_observer(sys, runtime::make_report_writer(o.report, "floe training report")));
  for (const auto& make : hooks.observers) observers.push_back(make(sys));
  // The console: progress from the coordinator's step events alone (no stage spans).
  const auto console = actors::spawn_observer(
      sys, runtime::make_console_writer(spec.config.log_interval, runtime::stdout_is_terminal()));
  std::unique_ptr<runtime::StoreServer> store;  // for the gradient groups of virtual nodes
  std::vector<msg::node_ready> late;
  if (spec.nodes.empty()) {  // the whole job in this process: one node with all the devices, or virtual ones
    auto devices = hooks.virtual_nodes;
    if (devices.empty()) devices.push_back(spec.config.devices);
    const size_t first = devices.size();
    for (const auto& [step, n] : hooks.late_nodes) devices.push_back(n);
    if (devices.size() > 1) store = std::make_unique<runtime::StoreServer>("127.0.0.1", 0);
    spec.config.devices = 0;
    for (size_t i = 0; i < devices.size(); ++i) {
      actors::NodeSpec node;
      node.config = spec.config;
      node.train = spec.train;
      node.test = spec.test;
      node.devices = devices[i];
      node.detached_stages = spec.detached_stages;
      if (store) node.store = {"127.0.0.1", store->port()};
      const auto name = devices.size() > 1 ? "virtual" + std::to_string(i) : std::string("local");
      auto agent = actors::spawn_node_agent(sys, std::move(node));
      if (i >= first) {
        late.push_back({static_cast<int32_t>(i), agent, name, devices[i], hooks.late_nodes[i - first].first});
        continue;
      }
      spec.nodes.push_back({agent, devices[i], name});
      spec.config.devices += devices[i];
    }
  }
  auto coordinator = actors::spawn_coordinator(sys, std::move(spec));
  caf::scoped_actor self{sys};
  for (auto& r : late) self->send(coordinator, std::move(r));
  self->send(coordinator, msg::subscribe{console, false});
  for (auto& obs : observers) self->send(coordinator, msg::subscribe{obs});
  if (hooks.attach) hooks.attach(sys, coordinator);
  runtime::TrainingSummary out;
  std::string failure;
  self->request(coordinator, caf::infinite, msg::start_atom::value)
      .receive([&](runtime::TrainingSummary& s) { out = std::move(s); },
               [&](caf::error& e) { failure = sys.render(e); });
  anon_send_exit(console, caf::exit_reason::user_shutdown);
  for (auto& obs : observers) anon_send_exit(obs, caf::exit_reason::user_shutdown);
  if (!failure.empty()) throw std::runtime_error("training failed: " + failure);
  return out;
}

}  // namespace floe::launch
