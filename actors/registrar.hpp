#pragma once
// The registrar: what a coordinator process publishes for nodes to join. It admits a node
// only when the node proves that it knows the cluster secret (runtime/comm/secret.hpp), hands it
// the job, and tells `waiter` once the expected nodes are all ready. Nodes that join after
// those (a node that comes back, or a new one) go to the coordinator named by a local
// `late_nodes_to` once they are ready; it admits them at its next step boundary. A join with
// a wrong proof is refused and logged; training is not disturbed.
#include "messages/membership.hpp"

#include <string>
#include <vector>

namespace floe::actors {

struct RegistrarSpec {
  std::string secret;
  int expected_nodes = 1;
  std::vector<std::string> job;  // config overrides for the nodes (runtime::to_overrides)
  int store_port = 0;            // the rendezvous store on this host
  caf::actor waiter;             // gets a std::vector<msg::node_ready> when all are ready,
                                 // and each late node's msg::node_ready
};

msg::registrar_actor spawn_registrar(caf::actor_system& sys, RegistrarSpec spec);

}  // namespace floe::actors
