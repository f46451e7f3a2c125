#pragma once
// The freeze protocol: coordinator -> freeze controller at each freeze decision point.
#include "messages/exact.hpp"

#include <caf/all.hpp>

#include <vector>

namespace floe::msg {

struct freeze_query {
  int32_t epoch = 0;       // the epoch about to start
  int64_t step = 0;        // global optimizer steps so far
  int32_t frozen = 0;      // blocks frozen now
  int32_t layers = 0;      // blocks in the model
  std::vector<double> grad_norms;  // per block, accumulated over the last interval (empty: none)
  std::vector<double> plasticity;  // per block, the interval's mean (-1: not measured; empty: none)
  int32_t timestep = 0;    // what the policy counts: the epoch, or intervals of freeze.interval_steps
  double val_loss = -1;    // evaluation loss after the latest epoch (-1: none yet)
  int32_t evaluations = 0; // evaluations so far
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, freeze_query& x) {
  return f(caf::meta::type_name("freeze_query"), x.epoch, x.step, x.frozen, x.layers, exact(x.grad_norms),
           exact(x.plasticity), x.timestep, exact(x.val_loss), x.evaluations);
}

struct freeze_decision {
  int32_t frozen = 0;
  std::vector<double> policy_state;  // the policy's state after deciding (checkpoints keep it)
};
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, freeze_decision& x) {
  return f(caf::meta::type_name("freeze_decision"), x.frozen, exact(x.policy_state));
}

using freeze_controller_actor = caf::typed_actor<caf::replies_to<freeze_query>::with<freeze_decision>>;

}  // namespace floe::msg
