#include "launch/cluster.hpp"

#include "actors/node_agent.hpp"
#include "actors/registrar.hpp"
#include "actors/threads.hpp"
#include "launch/job.hpp"
#include "messages/registry.hpp"
#include "models/errors.hpp"
#include "runtime/comm/gloo_group.hpp"
#include "runtime/comm/net.hpp"
#include "runtime/comm/secret.hpp"
#include "runtime/comm/ucx_transport.hpp"

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>

namespace floe::launch {
namespace {

using seconds = std::chrono::duration<double>;

caf::duration as_duration(double s) {
  return caf::duration{std::chrono::duration_cast<std::chrono::milliseconds>(seconds(s))};
}

std::string default_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

}  // namespace

void enable_network(caf::actor_system_config& cfg, const TlsFiles& tls) {
  cfg.load<caf::io::middleman>();
  if (tls.on()) {
    for (auto [flag, path] : {std::pair{"--tls-cert", &tls.certificate}, std::pair{"--tls-key", &tls.key},
                              std::pair{"--tls-ca", &tls.ca}}) {
      if (path->empty()) throw InputError(std::string(flag) + " is missing: TLS needs --tls-cert, --tls-key and --tls-ca");
      if (!std::ifstream(*path)) throw InputError(std::string(flag) + " " + *path + ": cannot read the file");
    }
    cfg.openssl_certificate = tls.certificate;
    cfg.openssl_key = tls.key;
    cfg.openssl_cafile = tls.ca;
    cfg.load<caf::openssl::manager>();
  }
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(250)});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(2)});
}

int parse_devices(const std::string& text) {
  const std::string expected = "expected cpu:N with N in 1..4096, e.g. cpu:2";
  if (text.rfind("cpu:", 0) != 0) throw InputError("--devices \"" + text + "\": " + expected);
  const auto digits = text.substr(4);
  if (digits.empty() || digits.size() > 4 || digits.find_first_not_of("0123456789") != std::string::npos)
    throw InputError("--devices \"" + text + "\": " + expected);
  const int n = std::stoi(digits);
  if (n < 1 || n > 4096) throw InputError("--devices \"" + text + "\": " + expected);
  return n;
}

runtime::TrainingSummary run_coordinator(actors::CoordinatorSpec spec, const ClusterOptions& o) {
  const auto secret = runtime::read_secret(o.secret_file);
  const auto listen = runtime::parse_host_port(o.listen, "--listen", true);
  int nodes = o.nodes;
  if (nodes == 0 && env("SLURM_JOB_NUM_NODES")) nodes = std::atoi(env("SLURM_JOB_NUM_NODES"));
  if (nodes < 1)
    throw InputError("--nodes " + std::to_string(nodes) + ": expected the number of nodes to wait for (>= 1; or set "
                     "FLOE_NODES)");
  msg::system_config sys_cfg{2};
  actors::share_cores_with_compute(sys_cfg);
  enable_network(sys_cfg, o.tls);
  caf::actor_system sys{sys_cfg};
  std::unique_ptr<runtime::StoreServer> store;
  try {
    store = std::make_unique<runtime::StoreServer>(listen.host, 0);
  } catch (const std::exception& e) {
    throw InputError(std::string("--listen ") + o.listen + ": " + e.what());
  }
  caf::scoped_actor self{sys};
  auto registrar = actors::spawn_registrar(
      sys, {secret, nodes, runtime::to_overrides(spec.config), store->port(), caf::actor_cast<caf::actor>(self)});
  const auto at = static_cast<uint16_t>(listen.port);
  auto port = o.tls.on() ? caf::openssl::publish(registrar, at, listen.host.c_str(), true)
                         : sys.middleman().publish(registrar, at, listen.host.c_str(), true);
  if (!port) {
    anon_send_exit(registrar, caf::exit_reason::user_shutdown);
    throw InputError("--listen " + o.listen + ": cannot listen (" + sys.render(port.error()) + ")");
  }
  spdlog::info("coordinator: listening on {}:{}{}, waiting for {} node(s) (rendezvous store on port {})", listen.host,
               *port, o.tls.on() ? " (TLS)" : "", nodes, store->port());
  std::vector<msg::node_ready> ready;
  bool came = false;
  self->receive([&](std::vector<msg::node_ready>& r) { ready = std::move(r), came = true; },
                caf::after(as_duration(o.join_timeout)) >> [] {});
  if (!came) {
    anon_send_exit(registrar, caf::exit_reason::user_shutdown);
    throw std::runtime_error("coordinator: not all " + std::to_string(nodes) + " node(s) joined within " +
                             std::to_string(static_cast<int>(o.join_timeout)) + " s");
  }
  spec.config.devices = 0;
  for (const auto& n : ready) {
    spec.nodes.push_back({n.agent, n.devices, n.name});
    spec.config.devices += n.devices;
    self->monitor(n.agent);
  }
  std::string failure;
  runtime::TrainingSummary summary;
  JobHooks hooks;  // nodes that join later go to the coordinator, which admits them
  hooks.attach = [&](caf::actor_system&, const msg::coordinator_actor& c) {
    self->send(registrar, msg::late_nodes_to{caf::actor_cast<caf::actor>(c)});
  };
  try {
    summary = run_job(sys, std::move(spec), hooks);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  // The coordinator told every agent to stop; wait until they have, so the nodes hear it
  // before this process closes its connections.
  // (The registrar told this actor of the nodes that joined later, too.)
  size_t hosted = ready.size(), down = 0;
  bool waiting = true;
  while (waiting && down < hosted)
    self->receive([&](caf::down_msg&) { ++down; },
                  [&](msg::node_ready& late) {
                    self->monitor(late.agent);
                    ++hosted;
                  },
                  caf::after(std::chrono::seconds(10)) >> [&] { waiting = false; });
  anon_send_exit(registrar, caf::exit_reason::user_shutdown);
  if (!failure.empty()) throw std::runtime_error(failure);
  return summary;
}

int run_node(const NodeOptions& o) {
  const auto secret = runtime::read_secret(o.secret_file);
  auto join = o.join;
  if (join.empty() && env("MASTER_ADDR") && env("MASTER_PORT"))
    join = std::string(env("MASTER_ADDR")) + ":" + env("MASTER_PORT");
  if (join.empty())
    throw InputError("no coordinator to join: pass --join HOST:PORT, or set FLOE_COORDINATOR (or MASTER_ADDR and MASTER_PORT)");
  const auto where = runtime::parse_host_port(join, "--join");
  auto device_text = o.devices;
  if (device_text.empty())
    device_text = "cpu:" + (env("SLURM_CPUS_ON_NODE") ? std::string(env("SLURM_CPUS_ON_NODE"))
                                                      : std::to_string(std::max(1u, std::thread::hardware_concurrency())));
  const int devices = parse_devices(device_text);
  const auto name = o.name.empty() ? default_name() : o.name;
  msg::system_config sys_cfg{2};
  actors::share_cores_with_compute(sys_cfg);
  enable_network(sys_cfg, o.tls);
  auto system = std::make_unique<caf::actor_system>(sys_cfg);
  std::shared_ptr<runtime::UcxTransport> transport;  // outlives the actor system, which its stages use
  auto serve = [&](caf::actor_system& sys) -> int {
    // The coordinator may start later than its nodes: keep trying for a while.
    const auto deadline = std::chrono::steady_clock::now() + seconds(o.connect_timeout);
    caf::expected<msg::registrar_actor> registrar = caf::sec::cannot_connect_to_node;
    for (;;) {
      const auto port = static_cast<uint16_t>(where.port);
      registrar = o.tls.on() ? caf::openssl::remote_actor<msg::registrar_actor>(sys, where.host, port)
                             : sys.middleman().remote_actor<msg::registrar_actor>(where.host, port);
      if (registrar || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    if (!registrar) {
      spdlog::error("node {}: no coordinator at {} within {:.0f} s ({})", name, join, o.connect_timeout,
                    sys.render(registrar.error()));
      return 1;
    }
    caf::scoped_actor self{sys};
    std::string refused;
    msg::join_welcome welcome;
    self->request(*registrar, std::chrono::seconds(30), msg::challenge_atom::value)
        .receive(
            [&](std::string& nonce) {
              msg::join_request j{name, devices, nonce, runtime::join_proof(secret, nonce, name, devices)};
              self->request(*registrar, std::chrono::seconds(30), j)
                  .receive([&](msg::join_welcome& w) { welcome = std::move(w); },
                           [&](caf::error& e) { refused = sys.render(e); });
            },
            [&](caf::error& e) { refused = sys.render(e); });
    if (!refused.empty()) {
      spdlog::error("node {}: the coordinator at {} refused the node: {}", name, join, refused);
      return 3;
    }
    const auto cfg = runtime::load_job_config("", welcome.config);
    actors::keep_thread_serial();  // the main thread loads data, then waits
    spdlog::info("node {}: admitted as node {}; loading {} data", name, welcome.node, cfg.data.dataset);
    const auto data = load_job_data(cfg);
    if (cfg.pipeline.tensor_plane == "ucx") {
      try {
        // Peer error mode: a peer that dies fails the operations tied to it. In the default
        // mode UCX may use cross-memory attach between processes of one host, and a peer killed
        // mid-transfer then aborts this process (found by tests/launch/cluster_test.cpp).
        transport = std::make_shared<runtime::UcxTransport>(
            runtime::UcxTransport::Options{runtime::UcxTransport::ErrorMode::peer});
      } catch (const std::exception& e) {
        spdlog::warn("node {}: no UCX tensor plane ({}); tensors between nodes travel in CAF messages", name, e.what());
      }
    }
    actors::NodeSpec spec;
    spec.config = cfg;
    spec.transport = transport;
    auto job_done = std::make_shared<std::atomic<bool>>(false);
    spec.job_done = job_done;
    spec.train = std::make_shared<const models::Dataset>(data.train);
    spec.test = std::make_shared<const models::Dataset>(data.test);
    spec.devices = devices;
    spec.host = runtime::local_address_towards(where.host, where.port);
    spec.store = {where.host, welcome.store_port};
    auto agent = actors::spawn_node_agent(sys, std::move(spec));
    self->monitor(agent);
    self->monitor(*registrar);
    self->send(*registrar, msg::node_ready{welcome.node, agent, name, devices});
    spdlog::info("node {}: ready with {} device(s); hosting pipelines until the job ends", name, devices);
    int code = 0;
    self->receive([&](caf::down_msg& d) {
      if (d.source == agent.address()) {
        code = d.reason == caf::exit_reason::user_shutdown ? 0 : 1;
        if (code == 0)
          spdlog::info("node {}: the job ended", name);
        else
          spdlog::error("node {}: the node agent stopped: {}", name, sys.render(d.reason));
      } else if (d.reason == caf::exit_reason::user_shutdown) {
        // The coordinator closes its registrar last, once the job is over: the agent's own
        // stop may still be on its way.
        spdlog::info("node {}: the job ended (the coordinator closed it)", name);
        anon_send_exit(agent, caf::exit_reason::user_shutdown);
      } else if (job_done->load()) {
        // The coordinator said the job had finished well; its process is closing.
        spdlog::info("node {}: the job ended (the link to the coordinator closed after it)", name);
        anon_send_exit(agent, caf::exit_reason::user_shutdown);
      } else {
        spdlog::error("node {}: lost the coordinator at {} ({}); stopping", name, join, sys.render(d.reason));
        anon_send_exit(agent, caf::exit_reason::kill);
        code = 1;
      }
    });
    return code;
  };
  const int code = serve(*system);
  // CAF tears the system down only once every actor thread has ended; a device thread that
  // lingers must not keep a node whose job is over alive.
  std::atomic<bool> closed{false};
  std::thread guard([&] {
    for (int i = 0; i < 100 && !closed; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (closed) return;
    spdlog::warn("node {}: actor threads did not stop within 10 s; exiting anyway", name);
    spdlog::shutdown();
    std::_Exit(code);
  });
  system.reset();
  closed = true;
  guard.join();
  return code;
}

}  // namespace floe::launch
