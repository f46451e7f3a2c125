// Unexpected and malformed messages from another process: the registrar and a node agent
// answer each with an error and live on. Two actor systems in this process talk over
// loopback through CAF's middleman, so every message is serialised as between machines.
#include <torch/torch.h>

#include "actors/node_agent.hpp"
#include "actors/registrar.hpp"
#include "launch/cluster.hpp"
#include "launch/job.hpp"
#include "messages/registry.hpp"
#include "models/vit.hpp"

#include <catch2/catch.hpp>

#include <caf/io/all.hpp>

using namespace floe;

namespace {

// The error a request to `dest` ends with ("" when it was answered).
template <class Reply, class Dest, class Msg>
std::string error_of(caf::scoped_actor& self, const Dest& dest, Msg m) {
  std::string out = "(no answer)";
  self->request(dest, std::chrono::seconds(20), std::move(m))
      .receive([&](Reply&) { out.clear(); }, [&](caf::error& e) { out = self->system().render(e); });
  return out;
}

}  // namespace

TEST_CASE("unexpected and malformed remote messages are answered with an error, and the receiver lives on",
          "[cluster][messages]") {
  msg::system_config here_cfg{2}, there_cfg{2};
  launch::enable_network(here_cfg, {});
  launch::enable_network(there_cfg, {});
  caf::actor_system here{here_cfg}, there{there_cfg};

  // This side: a registrar and a node agent, published as a coordinator and a node publish them.
  caf::scoped_actor waiter{here};
  auto registrar = actors::spawn_registrar(here, {"secret", 1, {}, 0, caf::actor_cast<caf::actor>(waiter)});
  actors::NodeSpec node;
  node.config = runtime::load_job_config("", {"data.dataset=\"synthetic\"", "model.depth=2", "model.dim=16",
                                              "model.heads=2", "model.patch=7", "cache.enabled=false", "devices=1",
                                              "pipeline.length=1"});
  const auto data = launch::load_job_data(node.config);
  node.train = std::make_shared<const models::Dataset>(data.train);
  node.test = std::make_shared<const models::Dataset>(data.test);
  auto agent = actors::spawn_node_agent(here, node);
  const auto registrar_port = here.middleman().publish(registrar, 0, "127.0.0.1", true);
  const auto agent_port = here.middleman().publish(agent, 0, "127.0.0.1", true);
  REQUIRE(registrar_port);
  REQUIRE(agent_port);

  // The other side: a peer that sends what it should not.
  auto r = there.middleman().remote_actor<msg::registrar_actor>("127.0.0.1", *registrar_port);
  auto n = there.middleman().remote_actor<msg::node_actor>("127.0.0.1", *agent_port);
  REQUIRE(r);
  REQUIRE(n);
  caf::scoped_actor peer{there};
  const auto untyped_r = caf::actor_cast<caf::actor>(*r), untyped_n = caf::actor_cast<caf::actor>(*n);

  CHECK_THAT(error_of<std::string>(peer, untyped_r, std::string("hello")), Catch::Contains("unexpected_message"));
  CHECK_THAT(error_of<msg::join_welcome>(peer, *r, msg::join_request{"x", 1, "forged nonce", "forged proof"}),
             Catch::Contains("unknown or already used challenge"));
  peer->send(*r, msg::late_nodes_to{caf::actor_cast<caf::actor>(peer.ptr())});  // local only: not sendable

  CHECK_THAT(error_of<std::string>(peer, untyped_n, 42), Catch::Contains("unexpected_message"));
  const auto model = models::build_model(node.config.model);
  msg::pipelines_request q;
  q.units_per_stage = {static_cast<int32_t>(model.size())};
  q.replicas = 1;
  q.pieces = {{3, 0, 1}};
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, q), Catch::Contains("outside R=1, K=1"));
  q.pieces = {{0, 0, 2}};
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, q), Catch::Contains("outside R=1, K=1"));
  q.pieces = {{0, 0, 1}};
  q.units_per_stage = {};
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, q), Catch::Contains("no stages"));
  q.units_per_stage = {1000};  // more units than the model has
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, q), Catch::Contains("units"));
  q.units_per_stage = {2, -1, static_cast<int32_t>(model.size()) - 1};  // a negative stage
  q.pieces = {{0, 0, 3}};
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, q), Catch::Contains("units"));
  q.pieces = {{0, 0, 1}};
  q.units_per_stage = {static_cast<int32_t>(model.size())};
  q.parameters.names = models::parameter_names_of(model, 0, model.size());
  for (size_t i = 0; i < q.parameters.names.size(); ++i) q.parameters.values.push_back({torch::zeros({3, 3})});
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, q), Catch::Contains("spawning pipelines"));  // wrong shapes
  q.parameters.values.pop_back();
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, q), Catch::Contains("differ in number"));

  msg::pipelines_join j;  // stages that do not match the replicas
  j.replicas = {0, 1};
  j.stages.resize(3);
  j.addresses.resize(3);
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, j), Catch::Contains("do not match"));
  j.replicas = {0};  // ... and invalid stage handles
  CHECK_THAT(error_of<msg::pipelines_built>(peer, *n, j), Catch::Contains("invalid"));

  // Both still answer what they should.
  CHECK(error_of<std::string>(peer, *r, msg::challenge_atom::value).empty());
  CHECK(error_of<runtime::CacheStats>(peer, *n, msg::cache_stats_atom::value).empty());
  anon_send_exit(registrar, caf::exit_reason::user_shutdown);
  anon_send_exit(agent, caf::exit_reason::user_shutdown);
}
