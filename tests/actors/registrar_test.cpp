// The registrar admits nodes into a job: names stay unique.
#include "actors/registrar.hpp"
#include "messages/registry.hpp"
#include "runtime/comm/secret.hpp"

#include <catch2/catch.hpp>

#include <thread>

using namespace floe;

TEST_CASE("two nodes joining under one name are told apart", "[registrar]") {
  msg::system_config cfg;
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  auto registrar = actors::spawn_registrar(sys, {"s3cret", 2, {}, 0, caf::actor_cast<caf::actor>(self)});
  // Stand in for the nodes' agents: the registrar only watches them and hands them on.
  auto spawn_agent = [&] { return sys.spawn([] { return caf::behavior{[](int) {}}; }); };
  std::vector<caf::actor> agents;
  auto fail = [&](caf::error& e) { FAIL(sys.render(e)); };
  // A node joins as "host" (challenge, proof, welcome) and is ready with `agent`; its index.
  auto join_as_host = [&](const caf::actor& agent) {
    std::string nonce;
    self->request(registrar, caf::infinite, msg::challenge_atom::value).receive([&](std::string& n) { nonce = n; }, fail);
    msg::join_welcome welcome;
    self->request(registrar, caf::infinite,
                  msg::join_request{"host", 1, nonce, runtime::join_proof("s3cret", nonce, "host", 1)})
        .receive([&](msg::join_welcome& w) { welcome = w; }, fail);
    self->send(registrar, msg::node_ready{welcome.node, caf::actor_cast<msg::node_actor>(agent), "", 0, 0});
    return welcome.node;
  };
  for (int i = 0; i < 2; ++i) {
    agents.push_back(spawn_agent());
    CHECK(join_as_host(agents.back()) == i);
  }
  bool came = false;
  self->receive(
      [&](std::vector<msg::node_ready>& all) {
        came = true;
        REQUIRE(all.size() == 2);
        CHECK(all[0].name == "host");
        CHECK(all[1].name == "host#1");
      },
      caf::after(std::chrono::seconds(30)) >> [] {});
  CHECK(came);
  // Once the first "host" is gone, a node coming back under that name keeps it.
  caf::anon_send_exit(agents[0], caf::exit_reason::user_shutdown);
  std::string name;
  for (int tries = 0; tries < 100 && name != "host"; ++tries) {
    auto again = spawn_agent();
    join_as_host(again);
    self->receive([&](msg::node_ready& r) { name = r.name; }, caf::after(std::chrono::seconds(30)) >> [] {});
    caf::anon_send_exit(again, caf::exit_reason::user_shutdown);
    if (name != "host") std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the down message is on its way
  }
  CHECK(name == "host");
  caf::anon_send_exit(agents[1], caf::exit_reason::user_shutdown);
  caf::anon_send_exit(registrar, caf::exit_reason::user_shutdown);
}
