#pragma once
// The coordinator: one per job. Places the model replicas and pipelines on the nodes'
// agents (one in its own process when it runs alone), owns the epoch and step clock, the
// learning-rate schedule and the data order, drives training and the per-epoch evaluation
// on the full test set, asks the freeze controller at every freeze interval, carries out
// live transitions to the new plan, and answers `start` with the run's summary.
#include "actors/replica.hpp"
#include "messages/control.hpp"
#include "messages/membership.hpp"
#include "models/unit.hpp"
#include "runtime/config/job_config.hpp"
#include "runtime/plan/elastic_plan.hpp"
#include "runtime/train/freeze_policy.hpp"

#include <functional>

namespace floe::actors {

// A node that joined the job: its agent and its devices.
struct NodeSlot {
  msg::node_actor agent;
  int devices = 1;
  std::string name;
};

struct CoordinatorSpec {
  runtime::JobConfig config;
  std::shared_ptr<const models::Dataset> train, test;
  // The nodes that host the pipelines (launch::run_job adds one in its own process when
  // there are none). The coordinator reads only the datasets' sizes.
  std::vector<NodeSlot> nodes;
  bool detached_stages = true;  // for the in-process node of launch::run_job
  // A user policy instead of the one `freeze.*` names (see docs/freeze.md).
  std::function<std::unique_ptr<runtime::FreezePolicy>()> freeze_policy;
  // Evaluate the initial weights on the test split once, on the planned pipelines, and stop
  // (floe eval): the summary holds one epoch record without training.
  bool evaluate_only = false;
  // config.init_weights, already read and matched (runtime::read_init_weights: floe train
  // and eval read them before the data, to fail fast); null: the coordinator reads them.
  std::shared_ptr<const models::WeightMatch> init_weights;
  // Evaluation: every evaluated sample's class probabilities [n, classes], batch by batch as
  // the steps complete (floe eval --predictions). Called on the coordinator's thread.
  std::function<void(const std::vector<int64_t>& uids, const torch::Tensor& probabilities)> predictions;
  // Compare all replicas' weights and optimizer state at every epoch end (tests, debugging).
  bool verify_replicas = false;
  // Called at each phase of a transition ("export", "spawn"); throwing aborts the transition
  // there, as a real failure would (fault injection in tests).
  std::function<void(const std::string& phase)> transition_fault;
};

msg::coordinator_actor spawn_coordinator(caf::actor_system& sys, CoordinatorSpec spec);

}  // namespace floe::actors
