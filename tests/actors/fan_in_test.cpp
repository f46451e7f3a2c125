// The one fan-in helper every "send to N, gather N answers or the first error" goes through,
// with real actors on CAF's deterministic test coordinator.
#include "actors/fan_in.hpp"
#include "messages/registry.hpp"

#include "tests/caf_catch_dsl.hpp"

using namespace floe;

namespace {

struct fixture : test_coordinator_fixture<msg::system_config> {};

// Doubles a number; refuses a negative one; never answers 0 (a hung peer).
using doubler_actor = caf::typed_actor<caf::replies_to<int>::with<int>>;
doubler_actor::behavior_type doubler(doubler_actor::pointer self) {
  return {[=](int x) -> caf::typed_response_promise<int> {
    auto p = self->make_response_promise<int>();
    if (x < 0)
      p.deliver(caf::make_error(caf::sec::runtime_error, "negative"));
    else if (x > 0)
      p.deliver(2 * x);
    return p;  // 0: never delivered
  }};
}

// What a gathering came to: the answers in request order, or the reason it failed.
struct Outcome {
  bool done = false;
  std::vector<int> answers;
  std::string failed;
  int late = 0;
};

// Spawns an actor that fans `inputs` out to doublers and records the outcome; returns the
// cancel function it got.
std::function<void(const std::string&)> gather(caf::actor_system& sys, std::vector<doubler_actor> to,
                                               std::vector<int> inputs, std::shared_ptr<Outcome> out,
                                               bool tolerate = false) {
  auto cancel = std::make_shared<std::function<void(const std::string&)>>();
  sys.spawn([=](caf::event_based_actor* self) {
    out->answers.assign(inputs.size(), 0);
    actors::Gather<int> g;
    g.timeout = caf::duration{std::chrono::seconds(5)};
    g.each = [=](size_t i, int& a) {
      out->answers[i] = a;
      return a > 100 ? std::string("too large: ") + std::to_string(a) : std::string();
    };
    g.done = [=] { out->done = true; };
    g.failed = [=](const std::string& why) { out->failed = why; };
    g.describe = [=](size_t i, const caf::error& e) { return "doubler " + std::to_string(i) + " failed"; };
    if (tolerate) g.tolerate = [](size_t, const caf::error&) -> std::optional<int> { return -1; };
    g.late = [=](int&) { ++out->late; };
    *cancel = actors::fan_in<int>(self, to, [&](size_t i) { return inputs[i]; }, g);
  });
  return [cancel](const std::string& why) { (*cancel)(why); };
}

}  // namespace

TEST_CASE_METHOD(fixture, "fan_in: every answer, in request order, then done once", "[actors][fan_in]") {
  std::vector<doubler_actor> to{sys.spawn(doubler), sys.spawn(doubler), sys.spawn(doubler)};
  auto out = std::make_shared<Outcome>();
  gather(sys, to, {1, 2, 3}, out);
  sched.run();
  CHECK(out->done);
  CHECK(out->failed.empty());
  CHECK(out->answers == std::vector<int>{2, 4, 6});
}

TEST_CASE_METHOD(fixture, "fan_in: nothing to ask is done at once", "[actors][fan_in]") {
  auto out = std::make_shared<Outcome>();
  gather(sys, {}, {}, out);
  sched.run();
  CHECK(out->done);
}

TEST_CASE_METHOD(fixture, "fan_in: the first error fails it once, named by describe", "[actors][fan_in]") {
  std::vector<doubler_actor> to{sys.spawn(doubler), sys.spawn(doubler), sys.spawn(doubler)};
  auto out = std::make_shared<Outcome>();
  gather(sys, to, {1, -1, -2}, out);
  sched.run();
  CHECK_FALSE(out->done);
  CHECK(out->failed == "doubler 1 failed");
}

TEST_CASE_METHOD(fixture, "fan_in: a check in `each` fails it; later answers go to `late`", "[actors][fan_in]") {
  std::vector<doubler_actor> to{sys.spawn(doubler), sys.spawn(doubler)};
  auto out = std::make_shared<Outcome>();
  gather(sys, to, {60, 3}, out);
  sched.run();
  CHECK_FALSE(out->done);
  CHECK(out->failed == "too large: 120");
  CHECK(out->late == 1);
}

TEST_CASE_METHOD(fixture, "fan_in: a tolerated error counts as an answer", "[actors][fan_in]") {
  std::vector<doubler_actor> to{sys.spawn(doubler), sys.spawn(doubler)};
  auto out = std::make_shared<Outcome>();
  gather(sys, to, {-5, 4}, out, true);
  sched.run();
  CHECK(out->done);
  CHECK(out->answers == std::vector<int>{-1, 8});
}

TEST_CASE_METHOD(fixture, "fan_in: cancel ends a gathering whose answer never comes", "[actors][fan_in]") {
  std::vector<doubler_actor> to{sys.spawn(doubler), sys.spawn(doubler)};
  auto out = std::make_shared<Outcome>();
  auto cancel = gather(sys, to, {7, 0}, out);
  sched.run();
  CHECK_FALSE(out->done);
  CHECK(out->failed.empty());
  cancel("node b left the job");
  CHECK(out->failed == "node b left the job");
  cancel("again");  // settled: nothing more
  CHECK(out->failed == "node b left the job");
}
