#include "actors/coordinator_state.hpp"

#include "actors/fan_in.hpp"
#include "runtime/plan/plan_request.hpp"

#include <spdlog/spdlog.h>

#include <numeric>

namespace floe::actors::coord {

void emit(coord_ptr self, runtime::Event e) {
  if (self->state.observed) self->send(self->state.bus, msg::event_batch{{std::move(e)}});
}

runtime::Event event(coord_ptr self, runtime::EventKind kind, int64_t start_us) {
  runtime::Event e;
  e.kind = kind;
  e.start_us = start_us;
  e.duration_us = runtime::now_us() - start_us;
  e.epoch = self->state.epoch;
  e.step = self->state.global_step;
  return e;
}

namespace {

// The node agents stop when the coordinator does (see the start handler).
void conclude_with(coord_ptr self, std::function<void()> deliver_result) {
  if (self->state.concluding) return;
  self->state.concluding = true;
  shutdown(self->state.pipelines);
  auto deliver = [=] {
    anon_send_exit(self->state.freezer, caf::exit_reason::user_shutdown);
    deliver_result();
    anon_send_exit(self->state.bus, caf::exit_reason::user_shutdown);
    self->quit();
  };
  if (!self->state.observed) return deliver();
  self->request(self->state.bus, std::chrono::seconds(180), msg::flush_atom::value)
      .then([=](bool) { deliver(); }, [=](caf::error&) { deliver(); });
}

}  // namespace

void conclude(coord_ptr self, runtime::TrainingSummary summary) {
  auto& st = self->state;
  if (st.concluding || st.telling_done) return;
  st.telling_done = true;
  // Every live node hears that the job is done before anything stops (msg::job_done_atom); a
  // node that does not answer in time changes nothing here.
  std::vector<msg::node_actor> live;
  for (const auto& n : st.nodes)
    if (!st.lost.count(n.agent.address())) live.push_back(n.agent);
  auto finish = [=] { conclude_with(self, [=] { self->state.promise.deliver(summary); }); };
  Gather<bool> g;
  g.timeout = caf::duration{std::chrono::seconds(5)};
  g.done = finish;
  g.failed = [=](const std::string&) { finish(); };
  g.tolerate = [](size_t, const caf::error&) { return std::optional<bool>(false); };
  fan_in<bool>(self, live, [](size_t) { return msg::job_done_atom::value; }, std::move(g));
}

void fail(coord_ptr self, caf::error err) {
  if (self->state.concluding) return;
  const auto what = self->system().render(err);
  spdlog::error("training stopped: {}", what);
  auto e = event(self, runtime::EventKind::fault, runtime::now_us());
  e.detail = "training stopped: " + what;
  emit(self, std::move(e));
  conclude_with(self, [=] { self->state.promise.deliver(err); });
}

void fail(coord_ptr self, const std::string& why) { fail(self, caf::make_error(caf::sec::runtime_error, why)); }

std::string lost_names(coord_ptr self) {
  auto& st = self->state;
  std::string names;
  for (const auto& n : st.nodes)
    if (st.lost.count(n.agent.address())) names += (names.empty() ? "" : ", ") + n.name;
  return names;
}

std::vector<int> node_devices(coord_ptr self) {
  std::vector<int> out;
  for (const auto& n : self->state.nodes) out.push_back(n.devices);
  return out;
}

// What the micro-batch profile keys a plan's M by: the model, the samples per replica and K.
runtime::ProfileKey profile_key(coord_ptr self, const runtime::Plan& plan) {
  const auto& c = self->state.spec.config;
  return {fmt::format("{}; {} thread(s) per device", models::describe(c.model), c.threads_per_device),
          (c.batch_size + plan.replicas - 1) / plan.replicas, plan.stages};
}

runtime::Plan plan_for(coord_ptr self, int frozen, int current_stages) {
  auto plan = runtime::make_plan(
      runtime::plan_request(self->state.spec.config, self->state.model, frozen, current_stages, node_devices(self)));
  if (const auto& profile = self->state.profile; profile && plan.stages > 1)
    plan.micro_batches = profile->lookup(profile_key(self, plan)).value_or(plan.micro_batches);
  return plan;
}

void profiled(coord_ptr self, double seconds) {
  auto& st = self->state;
  if (!st.sweep) return;
  st.sweep->record(seconds);
  if (!st.sweep->done()) return;
  const auto key = profile_key(self, st.plan);
  st.plan.micro_batches = st.sweep->best();
  std::string tried;
  for (const auto& [m, s] : st.sweep->results()) tried += fmt::format("{}M={} {:.3f}s", tried.empty() ? "" : ", ", m, s);
  spdlog::info("micro-batch profile, K={} with {} samples per replica: M={} (fastest step: {})", key.stages, key.batch,
               st.plan.micro_batches, tried);
  if (const auto why = st.profile->store(key, *st.sweep); !why.empty())
    spdlog::warn("the micro-batch profile is kept for this run only: {}", why);
  st.sweep.reset();
}

}  // namespace floe::actors::coord
