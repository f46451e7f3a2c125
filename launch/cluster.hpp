#pragma once
// One job over several processes or machines (docs/cluster.md): `floe coordinator` waits for
// its nodes, then trains on their devices; `floe node` joins a coordinator and hosts
// pipelines until the job ends. Control travels as CAF messages through the middleman (with
// heartbeats, so a hung peer is noticed), gradients through Gloo.
#include "actors/coordinator.hpp"
#include "models/dataset.hpp"
#include "runtime/config/job_config.hpp"
#include "runtime/observe/summary.hpp"

#include <caf/actor_system_config.hpp>

#include <string>

namespace floe::launch {

// TLS between the coordinator and its nodes (CAF's openssl module): this process's
// certificate and key, and the CA that signed every peer's. All three, or none.
struct TlsFiles {
  std::string certificate, key, ca;
  bool on() const { return !certificate.empty() || !key.empty() || !ca.empty(); }
};

struct ClusterOptions {
  std::string listen = "127.0.0.1:4500";  // HOST:PORT the coordinator accepts nodes on
  int nodes = 0;                          // nodes to wait for; 0 = SLURM_JOB_NUM_NODES
  std::string secret_file;                // else FLOE_SECRET
  double join_timeout = 600;              // seconds to wait for all nodes
  TlsFiles tls;
};

// Publishes the registrar, waits for the nodes, trains the job of `spec` on them (its nodes
// and device count are theirs). Throws floe::InputError for bad options and
// std::runtime_error when training fails or the nodes do not come.
runtime::TrainingSummary run_coordinator(actors::CoordinatorSpec spec, const ClusterOptions& options);

struct NodeOptions {
  std::string join;         // HOST:PORT of the coordinator; empty = MASTER_ADDR:MASTER_PORT
  std::string devices;      // cpu:N; empty = SLURM_CPUS_ON_NODE, else one per core
  std::string name;         // default: hostname-pid
  std::string secret_file;  // else FLOE_SECRET
  double connect_timeout = 60;  // seconds to keep trying to reach the coordinator
  TlsFiles tls;
};

// Joins, hosts pipelines until the job ends. Returns the process exit code: 0 when the job
// ended, 3 when the coordinator refused the node, 1 when the coordinator went away.
int run_node(const NodeOptions& options);

// "cpu:N" -> N. Throws floe::InputError naming --devices.
int parse_devices(const std::string& text);

// Middleman settings shared by coordinator and nodes: heartbeats so that a hung peer is
// noticed within about two seconds (field guide §3), and TLS when configured. Throws
// floe::InputError for an incomplete or unreadable set of TLS files.
void enable_network(caf::actor_system_config& cfg, const TlsFiles& tls);

}  // namespace floe::launch
