#pragma once
// Fan-in: send one request to each of N actors and gather the N answers, or stop at the first
// failure; with a timeout. What CAF 0.18's fan_out_request gives, for CAF 0.17's request/then,
// so that no handler counts answers with shared counters and flags of its own.
//
//   auto cancel = fan_in<msg::step_report>(self, replicas, [&](size_t i) { return step_for(i); },
//                                          {timeout, each, done, failed});
//
// The gathering settles exactly once: `done` when every answer came and `each` accepted it,
// `failed` with the first reason otherwise (an error answer, a timeout, a check in `each`
// that failed, or `cancel(why)` from outside: a node left while the requests were in flight).
#include <caf/all.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace floe::actors {

template <class Answer>
struct Gather {
  caf::duration timeout = caf::infinite;
  // Each answer as it comes, with the index of its request; a non-empty result fails the whole
  // gathering with that reason. Empty: answers are only counted.
  std::function<std::string(size_t i, Answer&)> each{};
  std::function<void()> done{};
  std::function<void(const std::string& why)> failed{};
  // How request i's error reads in `failed` (default: the actor system's rendering).
  std::function<std::string(size_t i, const caf::error&)> describe{};
  // Turns request i's error into an answer instead of a failure (e.g. an observer that could
  // not flush counts as "false"); nullopt: the error fails the gathering.
  std::function<std::optional<Answer>(size_t i, const caf::error&)> tolerate{};
  // Answers that come after the gathering failed: to stop what they started.
  std::function<void(Answer&)> late{};
};

// Sends `message(i)` to `to[i]` for every i and gathers as `g` says. Returns the cancel
// function (fails the gathering with `why` if it has not settled). No requests: done at once.
template <class Answer, class Self, class Handle, class MakeMessage>
std::function<void(const std::string&)> fan_in(Self self, const std::vector<Handle>& to, MakeMessage message,
                                               Gather<Answer> g) {
  struct Progress {
    size_t pending;
    bool settled = false;
  };
  auto p = std::make_shared<Progress>(Progress{to.size()});
  auto calls = std::make_shared<Gather<Answer>>(std::move(g));
  auto fail = [p, calls](const std::string& why) {
    if (p->settled) return;
    p->settled = true;
    calls->failed(why);
  };
  auto accept = [p, calls, fail](size_t i, Answer& a) {
    if (p->settled) {
      if (calls->late) calls->late(a);
      return;
    }
    if (calls->each)
      if (auto why = calls->each(i, a); !why.empty()) return fail(why);
    if (--p->pending == 0) {
      p->settled = true;
      calls->done();
    }
  };
  if (to.empty()) {
    p->settled = true;
    calls->done();
    return fail;
  }
  for (size_t i = 0; i < to.size(); ++i)
    self->request(to[i], calls->timeout, message(i))
        .then([accept, i](Answer& a) { accept(i, a); },
              [self, p, calls, accept, fail, i](caf::error& e) {
                if (p->settled) return;
                if (calls->tolerate)
                  if (auto a = calls->tolerate(i, e)) return accept(i, *a);
                fail(calls->describe ? calls->describe(i, e) : self->system().render(e));
              });
  return fail;
}

}  // namespace floe::actors
