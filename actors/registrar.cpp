#include "actors/registrar.hpp"

#include "runtime/secret.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>

namespace floe::actors {
namespace {

struct RegistrarState {
  static inline const char* name = "floe.registrar";
  RegistrarSpec spec;
  std::deque<std::string> nonces;          // issued and not yet used (each answers one join)
  std::vector<msg::join_request> admitted;  // by node index
  std::vector<msg::node_ready> ready;
};

using registrar_ptr = msg::registrar_actor::stateful_pointer<RegistrarState>;

caf::error refuse(registrar_ptr self, const msg::join_request& j, const std::string& why) {
  const auto from = self->current_sender() ? to_string(self->current_sender()->node()) : std::string("?");
  spdlog::warn("refused node '{}' (from {}): {}", j.name, from, why);
  return caf::make_error(caf::sec::invalid_argument, "join refused: " + why);
}

msg::registrar_actor::behavior_type registrar_behavior(registrar_ptr self, RegistrarSpec spec) {
  self->state.spec = std::move(spec);
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
        if (static_cast<int>(st.admitted.size()) >= st.spec.expected_nodes)
          return refuse(self, j, "the job already has its " + std::to_string(st.spec.expected_nodes) + " node(s)");
        const int index = static_cast<int>(st.admitted.size());
        st.admitted.push_back(j);
        spdlog::info("node '{}' admitted as node {} with {} device(s) ({} of {})", j.name, index, j.devices,
                     st.admitted.size(), st.spec.expected_nodes);
        return msg::join_welcome{index, st.spec.job, st.spec.store_port};
      },
      [=](msg::node_ready& r) {
        auto& st = self->state;
        const bool known = r.node >= 0 && r.node < static_cast<int>(st.admitted.size());
        const bool again = std::any_of(st.ready.begin(), st.ready.end(), [&](auto& x) { return x.node == r.node; });
        if (!known || again || !r.agent) {
          spdlog::warn("ignored a ready message for node {} (not admitted, already ready, or no agent)", r.node);
          return;
        }
        r.name = st.admitted[r.node].name;
        r.devices = st.admitted[r.node].devices;
        st.ready.push_back(r);
        if (static_cast<int>(st.ready.size()) == st.spec.expected_nodes) {
          auto all = st.ready;
          std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.node < b.node; });
          caf::anon_send(st.spec.waiter, std::move(all));
        }
      },
  };
}

}  // namespace

msg::registrar_actor spawn_registrar(caf::actor_system& sys, RegistrarSpec spec) {
  return sys.spawn(registrar_behavior, std::move(spec));
}

}  // namespace floe::actors
