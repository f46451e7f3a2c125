#include "actors/node_agent.hpp"

#include "models/errors.hpp"
#include "runtime/comm/gloo_group.hpp"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>

namespace floe::actors {
namespace {

// `sequences`: the data are token sequences (rows keep each sample's own length).
runtime::CacheLimits cache_limits(const runtime::JobConfig& job, bool sequences) {
  const auto& c = job.cache;
  runtime::CacheLimits l;
  l.sequences = sequences;
  l.memory_budget = runtime::parse_size(c.budget, runtime::host_memory_bytes());
  l.disk_budget = runtime::parse_size(c.disk_budget, 0);
  l.dir = c.dir;
  if (l.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    l.dir = std::string(tmp && *tmp ? tmp : "/var/tmp") + "/floe-cache";  // /tmp may be RAM (tmpfs)
  }
  if (!c.disk_budget.empty() && c.disk_budget.back() == '%') {  // a share of the folder's free space
    std::error_code ec;
    std::filesystem::create_directories(l.dir, ec);
    const auto space = std::filesystem::space(l.dir, ec);
    l.disk_budget = ec ? 0 : runtime::parse_size(c.disk_budget, static_cast<int64_t>(space.available));
  }
  spdlog::info("cache: memory budget {:.0f} MiB, disk budget {:.0f} MiB in {}", l.memory_budget / 1048576.0,
               l.disk_budget / 1048576.0, l.dir);
  return l;
}

struct NodeState {
  static inline const char* name = "floe.node_agent";
  NodeSpec spec;
  std::shared_ptr<runtime::ActivationCache> cache;
  std::shared_ptr<runtime::BufferPool> buffers;  // receive buffers of the tensor plane
  // Every pipeline spawned here, stopped with the agent (shared: the exit hook outlives the state).
  std::shared_ptr<std::vector<PipelineHandles>> hosted = std::make_shared<std::vector<PipelineHandles>>();
};

using node_ptr = msg::node_actor::stateful_pointer<NodeState>;

std::vector<PipelineHandles> spawn_requested(node_ptr self, const msg::pipelines_request& q) {
  auto& st = self->state;
  const auto& c = st.spec.config;
  const auto params = msg::to_map(q.parameters), optimizer = msg::to_map(q.optimizer);
  std::vector<models::UnitList> models;
  for (size_t i = 0; i < q.pieces.size(); ++i) models.push_back(models::build_model(c.model));
  int64_t units = q.frozen_units;
  for (int32_t n : q.units_per_stage) {
    if (n < 1) throw std::invalid_argument("a stage of " + std::to_string(n) + " units");
    units += n;
  }
  if (q.frozen_units < 0 || units != static_cast<int64_t>(models.front().size()))
    throw std::invalid_argument(std::to_string(q.frozen_units) + " frozen and " + std::to_string(units - q.frozen_units) +
                                " active units, but the model has " + std::to_string(models.front().size()) + " units");
  for (auto& m : models) models::load_parameters(m, params);
  PipelineLayout layout;
  layout.units_per_stage.assign(q.units_per_stage.begin(), q.units_per_stage.end());
  layout.replicas = q.replicas;
  layout.chunks = q.chunks;
  layout.micro_batches = q.micro_batches;
  layout.schedule = runtime::parse_schedule_kind(c.pipeline.schedule);
  layout.threads_per_device = c.threads_per_device;
  layout.detached = st.spec.detached_stages;
  layout.frozen_units = q.frozen_units;
  layout.cache = st.cache;
  layout.batches = runtime::batch_recipe(c);
  layout.events = q.events;
  layout.pieces = q.pieces;
  layout.transport = st.spec.transport;
  layout.buffers = st.buffers;
  if (q.across_nodes) {
    if (st.spec.store.port <= 0) throw std::invalid_argument("replicas span nodes, but this node has no rendezvous store");
    const auto store = st.spec.store;
    const auto prefix = "g" + std::to_string(q.generation) + "/s";
    const auto host = st.spec.host;
    const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(1000 * c.collective_timeout));
    layout.groups = [=](int stage, int replica) -> std::shared_ptr<runtime::GradientGroup> {
      return std::make_shared<runtime::GlooGroup>(store, prefix + std::to_string(stage), replica, q.replicas, host,
                                                  timeout);
    };
  }
  return spawn_pipelines(self->system(), layout, models, c.optimizer, st.spec.train, st.spec.test, optimizer);
}

msg::node_actor::behavior_type node_behavior(node_ptr self, NodeSpec spec,
                                             std::shared_ptr<runtime::ActivationCache> cache) {
  self->state.spec = std::move(spec);
  self->state.cache = std::move(cache);
  if (self->state.spec.transport) self->state.buffers = std::make_shared<runtime::BufferPool>();
  self->attach_functor([hosted = self->state.hosted] {
    shutdown(*hosted);
    hosted->clear();  // the handles would keep the stages' threads waiting to be destroyed
  });
  return {
      [=](msg::pipelines_request& q) -> caf::result<msg::pipelines_built> {
        const int k = static_cast<int>(q.units_per_stage.size());
        if (k < 1 || q.pieces.empty() || q.replicas < 1)
          return caf::make_error(caf::sec::invalid_argument, "pipelines_request: no stages or no replicas");
        for (const auto& p : q.pieces)
          if (p.replica < 0 || p.replica >= q.replicas || p.first_stage < 0 || p.stages < 1 ||
              p.first_stage + p.stages > k)
            return caf::make_error(caf::sec::invalid_argument,
                                   "pipelines_request: piece of replica " + std::to_string(p.replica) + ", stages " +
                                       std::to_string(p.first_stage) + "+" + std::to_string(p.stages) +
                                       " outside R=" + std::to_string(q.replicas) + ", K=" + std::to_string(k));
        if (q.parameters.names.size() != q.parameters.values.size() ||
            q.optimizer.names.size() != q.optimizer.values.size())
          return caf::make_error(caf::sec::invalid_argument, "pipelines_request: names and tensors differ in number");
        try {
          if (self->state.cache) self->state.cache->set_level(q.frozen_units);
          auto spawned = spawn_requested(self, q);
          msg::pipelines_built out;
          for (auto& p : spawned) {
            out.replicas.push_back(p.replica);
            out.stages.insert(out.stages.end(), p.stages.begin(), p.stages.end());
            self->state.hosted->push_back(std::move(p));
          }
          if (self->state.spec.transport) {
            const auto& a = self->state.spec.transport->address();
            out.tensor_address.assign(a.begin(), a.end());
          }
          return out;
        } catch (const std::exception& e) {
          return caf::make_error(caf::sec::runtime_error, std::string("spawning pipelines: ") + e.what());
        }
      },
      [=](msg::pipelines_join& j) -> caf::result<msg::pipelines_built> {
        const size_t n = j.replicas.size();
        if (n == 0 || j.stages.size() % n != 0 || j.addresses.size() != j.stages.size())
          return caf::make_error(caf::sec::invalid_argument, "pipelines_join: stages or addresses do not match the replicas");
        if (std::any_of(j.stages.begin(), j.stages.end(), [](const auto& s) { return !s; }))
          return caf::make_error(caf::sec::invalid_argument, "pipelines_join: a stage handle is invalid");
        const size_t k = j.stages.size() / n;
        const auto& st = self->state;
        const auto& c = st.spec.config;
        auto here = [&](const msg::stage_actor& s) {  // spawned by this agent (virtual nodes share a process)
          return std::any_of(st.hosted->begin(), st.hosted->end(), [&](const PipelineHandles& p) {
            return std::find(p.stages.begin(), p.stages.end(), s) != p.stages.end();
          });
        };
        msg::pipelines_built out;
        for (size_t i = 0; i < n; ++i) {
          const std::vector<msg::stage_actor> stages(j.stages.begin() + i * k, j.stages.begin() + (i + 1) * k);
          const auto* address = &j.addresses[i * k];
          for (size_t s = 0; s < k; ++s) {
            if (!here(stages[s])) continue;
            msg::stage_links links;
            if (s > 0) {
              links.prev = stages[s - 1];
              if (!here(stages[s - 1])) links.prev_address = address[s - 1];
            }
            if (s + 1 < k) {
              links.next = stages[s + 1];
              if (!here(stages[s + 1])) links.next_address = address[s + 1];
            }
            self->send(stages[s], std::move(links));
          }
          if (!here(stages[0])) continue;
          auto replica = spawn_replica(self->system(), {j.replicas[i], stages, st.spec.train, st.spec.test, j.micro_batches,
                                                        runtime::parse_schedule_kind(c.pipeline.schedule),
                                                        runtime::batch_recipe(c)});
          st.hosted->push_back({replica, {}});
          out.replicas.push_back(replica);
        }
        return out;
      },
      [=](msg::invalidate_atom) {
        if (self->state.cache) self->state.cache->invalidate();
      },
      [=](msg::cache_stats_atom) { return self->state.cache ? self->state.cache->stats() : runtime::CacheStats{}; },
      [=](msg::heartbeat_atom) { return true; },
      [=](msg::job_done_atom) {
        if (self->state.spec.job_done) self->state.spec.job_done->store(true);
        return true;
      },
  };
}

}  // namespace

msg::node_actor spawn_node_agent(caf::actor_system& sys, NodeSpec spec) {
  std::shared_ptr<runtime::ActivationCache> cache;
  if (spec.config.cache.enabled) {
    try {
      bool sequences = false;
      for (const auto& d : {spec.train, spec.test}) sequences = sequences || (d && d->sequences());
      cache = std::make_shared<runtime::ActivationCache>(cache_limits(spec.config, sequences));
    } catch (const std::invalid_argument& e) {
      throw InputError(std::string("config: cache.dir: ") + e.what());
    }
  }
  return sys.spawn(node_behavior, std::move(spec), std::move(cache));
}

}  // namespace floe::actors
