#include "actors/registrar.hpp"

#include "runtime/comm/secret.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>

namespace floe::actors {
namespace {

struct RegistrarState {
  static inline const char* name = "floe.registrar";
  RegistrarSpec spec;
  std::deque<std::string> nonces;          // issued and not yet used (each answers one join)
  std::vector<msg::join_request> admitted;  // by node index
  std::vector<msg::node_ready> ready;       // of the first expected_nodes, until all are
  std::vector<msg::node_ready> late;        // ready after those, waiting for a coordinator
  caf::actor coordinator;                   // where late nodes go, once the job runs
  std::set<std::string> taken;              // names of the nodes admitted and not gone
  std::map<caf::actor_addr, std::string> agent_names;
};

using registrar_ptr = msg::registrar_actor::stateful_pointer<RegistrarState>;

caf::error refuse(registrar_ptr self, const msg::join_request& j, const std::string& why) {
  const auto from = self->current_sender() ? to_string(self->current_sender()->node()) : std::string("?");
  spdlog::warn("refused node '{}' (from {}): {}", j.name, from, why);
  return caf::make_error(caf::sec::invalid_argument, "join refused: " + why);
}

msg::registrar_actor::behavior_type registrar_behavior(registrar_ptr self, RegistrarSpec spec) {
  self->state.spec = std::move(spec);
  self->set_down_handler([=](caf::down_msg& d) {
    auto& st = self->state;
    if (auto it = st.agent_names.find(d.source); it != st.agent_names.end()) {
      st.taken.erase(it->second);
      st.agent_names.erase(it);
    }
  });
  return {
      [=](msg::challenge_atom) {
        auto& n = self->state.nonces;
        n.push_back(runtime::make_nonce());
        if (n.size() > 1024) n.pop_front();  // bounded: a flood of challenges cannot grow memory
        return n.back();
      },
      [=](msg::join_request& j) -> caf::result<msg::join_welcome> {
        auto& st = self->state;
        auto it = std::find(st.nonces.begin(), st.nonces.end(), j.nonce);
        if (it == st.nonces.end()) return refuse(self, j, "unknown or already used challenge");
        st.nonces.erase(it);
        if (!runtime::same_proof(j.proof, runtime::join_proof(st.spec.secret, j.nonce, j.name, j.devices)))
          return refuse(self, j, "wrong cluster secret");
        if (j.devices < 1 || j.devices > 4096)
          return refuse(self, j, "devices = " + std::to_string(j.devices) + ", expected 1..4096");
        if (st.admitted.size() >= 4096) return refuse(self, j, "the job has had 4096 nodes already");
        const int index = static_cast<int>(st.admitted.size());
        // Names are unique among live nodes: a node joining under the name of one still in the
        // job (two started with the same --name, or on one host without one) gets its index
        // appended. A node that comes back after its predecessor went down keeps the name.
        if (st.taken.count(j.name)) {
          const auto asked = j.name;
          j.name += "#" + std::to_string(index);
          spdlog::warn("node '{}' is already in the job: the node joining under that name is '{}'", asked, j.name);
        }
        st.taken.insert(j.name);
        st.admitted.push_back(j);
        if (index < st.spec.expected_nodes)
          spdlog::info("node '{}' admitted as node {} with {} device(s) ({} of {})", j.name, index, j.devices,
                       st.admitted.size(), st.spec.expected_nodes);
        else
          spdlog::info("node '{}' admitted as node {} with {} device(s); it joins the running job when ready", j.name,
                       index, j.devices);
        return msg::join_welcome{index, st.spec.job, st.spec.store_port};
      },
      [=](msg::node_ready& r) {
        auto& st = self->state;
        const bool known = r.node >= 0 && r.node < static_cast<int>(st.admitted.size());
        auto is_it = [&](const msg::node_ready& x) { return x.node == r.node; };
        const bool again = std::any_of(st.ready.begin(), st.ready.end(), is_it) ||
                           std::any_of(st.late.begin(), st.late.end(), is_it);
        if (!known || again || !r.agent) {
          spdlog::warn("ignored a ready message for node {} (not admitted, already ready, or no agent)", r.node);
          return;
        }
        r.name = st.admitted[r.node].name;
        self->monitor(r.agent);  // its name is free again once it is gone
        st.agent_names[r.agent.address()] = r.name;
        r.devices = st.admitted[r.node].devices;
        r.at_step = 0;
        if (r.node >= st.spec.expected_nodes) {  // a late node: the coordinator admits it into the job
          st.late.push_back(r);
          caf::anon_send(st.spec.waiter, r);  // (it waits for every node's end)
          if (st.coordinator) caf::send_as(caf::actor_cast<caf::actor>(self), st.coordinator, r);
          return;
        }
        st.ready.push_back(r);
        if (static_cast<int>(st.ready.size()) == st.spec.expected_nodes) {
          auto all = st.ready;
          std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.node < b.node; });
          caf::anon_send(st.spec.waiter, std::move(all));
        }
      },
      [=](msg::late_nodes_to& to) {
        auto& st = self->state;
        if (!self->current_sender() || self->current_sender()->node() != self->node()) {
          spdlog::warn("ignored a late_nodes_to message from another process");
          return;
        }
        if (st.coordinator) return;
        st.coordinator = to.coordinator;
        for (const auto& r : st.late) caf::send_as(caf::actor_cast<caf::actor>(self), st.coordinator, r);
      },
  };
}

}  // namespace

msg::registrar_actor spawn_registrar(caf::actor_system& sys, RegistrarSpec spec) {
  return sys.spawn(registrar_behavior, std::move(spec));
}

}  // namespace floe::actors
