#pragma once
// The membership protocol: a node process joins a coordinator (a challenge-response over
// the cluster secret), and the coordinator asks node agents to host pipelines.
#include "messages/cache.hpp"
#include "messages/training.hpp"
#include "runtime/plan/placement.hpp"

#include <caf/all.hpp>

#include <string>
#include <vector>

namespace floe::runtime {
// A piece of a pipeline (runtime/plan/placement.hpp) travels in pipelines_request.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PipelinePiece& x) {
  return f(caf::meta::type_name("pipeline_piece"), x.replica, x.first_stage, x.stages);
}
}  // namespace floe::runtime

namespace floe::msg {

// Coordinator -> node agent: host these pieces of the plan's pipelines on the node's
// devices, every one starting from `parameters` and `optimizer`; the node's cache moves to
// the plan's frozen boundary first. Stage k of all R replicas forms one gradient group: in
// memory when all R are on this node, else a Gloo group that meets in the coordinator's
// rendezvous store under a key prefix of `generation` (a fresh group per transition).
struct pipelines_request {
  int64_t generation = 0;
  std::vector<int32_t> units_per_stage;  // K·v stages
  int32_t frozen_units = 0;
  int32_t micro_batches = 1;
  int32_t replicas = 1;               // R over the whole job
  int32_t chunks = 1;                 // v: stages per device (virtual stages: whole pipelines only)
  std::vector<runtime::PipelinePiece> pieces;  // those this node hosts, in stages
  named_tensors parameters;           // every parameter of the model, by qualified name
  named_tensors optimizer;            // AdamW state to continue from ("<name>#exp_avg", ...)
  observer_actor events;              // the job's event bus when observed
  bool across_nodes = false;          // some gradient group spans several nodes
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pipelines_request& x) {
  return f(caf::meta::type_name("pipelines_request"), x.generation, x.units_per_stage, x.frozen_units,
           x.micro_batches, x.replicas, x.chunks, x.pieces, x.parameters, x.optimizer, x.events, x.across_nodes);
}

// The spawned actors: per piece, its replica (invalid unless the piece is a whole pipeline)
// and its stages, piece-major; and the node's UCX worker address (empty: no tensor plane).
struct pipelines_built {
  std::vector<replica_actor> replicas;
  std::vector<stage_actor> stages;
  std::string tensor_address;  // bytes
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pipelines_built& x) {
  return f(caf::meta::type_name("pipelines_built"), x.replicas, x.stages, x.tensor_address);
}

// Coordinator -> node agents, once every piece exists: the pipelines that span nodes, each
// as its K stages (replica-major) with the UCX address of the node of every stage. An agent
// links its own stages to their neighbours and spawns the replica of each pipeline whose
// first stage it hosts; it answers with those replicas (`pipelines_built::replicas`, in
// request order).
struct pipelines_join {
  std::vector<int32_t> replicas;
  int32_t micro_batches = 1;
  std::vector<stage_actor> stages;
  std::vector<std::string> addresses;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, pipelines_join& x) {
  return f(caf::meta::type_name("pipelines_join"), x.replicas, x.micro_batches, x.stages, x.addresses);
}

// Coordinator -> node agent after a failed step: are you there? (A lost node does not answer.)
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;

// Coordinator -> every node agent once training has finished well, before anything stops: a
// node process that then loses its link to the coordinator (as the processes close) knows the
// job ended and exits with 0.
using job_done_atom = caf::atom_constant<caf::atom("jobdone")>;

// A node agent: hosts pipelines and the node's AutoCache (the cache protocol).
using node_actor = cache_actor::extend<caf::replies_to<pipelines_request>::with<pipelines_built>,
                                       caf::replies_to<pipelines_join>::with<pipelines_built>,
                                       caf::replies_to<heartbeat_atom>::with<bool>,
                                       caf::replies_to<job_done_atom>::with<bool>>;

using challenge_atom = caf::atom_constant<caf::atom("challenge")>;

// Node -> coordinator, after asking for a challenge: who it is and the proof that it knows
// the cluster secret, HMAC-SHA256(secret, nonce | name | devices) in hex.
struct join_request {
  std::string name;
  int32_t devices = 0;
  std::string nonce;
  std::string proof;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, join_request& x) {
  return f(caf::meta::type_name("join_request"), x.name, x.devices, x.nonce, x.proof);
}

// Coordinator -> an admitted node: its index, the job (config overrides that rebuild the
// coordinator's config exactly; the node loads its data from them) and the port of the
// rendezvous store on the coordinator's host.
struct join_welcome {
  int32_t node = 0;
  std::vector<std::string> config;
  int32_t store_port = 0;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, join_welcome& x) {
  return f(caf::meta::type_name("join_welcome"), x.node, x.config, x.store_port);
}

// Node -> coordinator once its data is loaded: its agent. (The registrar fills in the name
// and devices it admitted.) A node ready after the job started joins it at the next step
// boundary, or at global training step `at_step` if that is later (scenario scripts).
struct node_ready {
  int32_t node = 0;
  node_actor agent;
  std::string name;
  int32_t devices = 0;
  int64_t at_step = 0;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_ready& x) {
  return f(caf::meta::type_name("node_ready"), x.node, x.agent, x.name, x.devices, x.at_step);
}

// Coordinator process -> its own registrar, never across processes (the type is not
// registered for the network, and the registrar ignores it from another node): nodes that
// become ready once the job runs go to `coordinator`, which admits them at its next step
// boundary.
struct late_nodes_to {
  caf::actor coordinator;
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, late_nodes_to& x) {
  return f(caf::meta::type_name("late_nodes_to"), x.coordinator);
}

// The actor a coordinator process publishes for nodes to join.
using registrar_actor = caf::typed_actor<caf::replies_to<challenge_atom>::with<std::string>,
                                         caf::replies_to<join_request>::with<join_welcome>,
                                         caf::reacts_to<node_ready>, caf::reacts_to<late_nodes_to>>;

}  // namespace floe::msg
