#pragma once
// The node agent: one per process that computes. It owns the node's devices, its copy of the
// data and its AutoCache, and spawns the pipelines the coordinator places on it (replicas
// and their stages, each stage on its own device thread). Stages of different nodes meet
// in Gloo gradient groups; stages of one node without a remote peer meet in memory.
#include "actors/replica.hpp"
#include "messages/membership.hpp"
#include "runtime/comm/gloo_group.hpp"
#include "runtime/config/job_config.hpp"

#include <atomic>
#include <memory>

namespace floe::actors {

struct NodeSpec {
  runtime::JobConfig config;
  std::shared_ptr<const models::Dataset> train, test;
  int devices = 1;
  bool detached_stages = true;  // false: stages on the scheduler (deterministic tests)
  std::string host = "127.0.0.1";  // where the other nodes reach this one (gradient groups)
  runtime::StoreAddress store;     // the coordinator's rendezvous store (nodes of a cluster)
  // The process's tensor plane (a node process of a cluster): pipelines that span nodes move
  // their activations and gradients over it. None: inside CAF messages.
  std::shared_ptr<runtime::UcxTransport> transport;
  // Set when the coordinator says the job has finished well (msg::job_done_atom); read by the
  // node process (launch/cluster.cpp). None: nobody asks.
  std::shared_ptr<std::atomic<bool>> job_done;
};

// Creates the node's cache (if config.cache.enabled); throws floe::InputError for a bad
// cache configuration.
msg::node_actor spawn_node_agent(caf::actor_system& sys, NodeSpec spec);

}  // namespace floe::actors
