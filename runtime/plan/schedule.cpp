#include "runtime/plan/schedule.hpp"

#include "models/errors.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>

namespace floe::runtime {
namespace {

void require_shape(int stages, int micro_batches) {
  if (stages < 1 || micro_batches < 1)
    throw std::invalid_argument("schedule: stages and micro-batches must be >= 1");
}

void append_update(StageProgram& p, int s) {
  p.push_back({s, ActionKind::reduce, -1});
  p.push_back({s, ActionKind::step, -1});
}

}  // namespace

Schedule gpipe_schedule(int stages, int m) {
  require_shape(stages, m);
  Schedule out(stages);
  for (int s = 0; s < stages; ++s) {
    for (int i = 0; i < m; ++i) out[s].push_back({s, ActionKind::forward, i});
    for (int i = 0; i < m; ++i) out[s].push_back({s, ActionKind::backward, i});
    append_update(out[s], s);
  }
  return out;
}

Schedule one_f_one_b_schedule(int stages, int m) {
  require_shape(stages, m);
  Schedule out(stages);
  for (int s = 0; s < stages; ++s) {
    const int warmup = std::min(stages - s - 1, m);
    int f = 0, b = 0;
    for (; f < warmup; ++f) out[s].push_back({s, ActionKind::forward, f});
    while (f < m) {
      out[s].push_back({s, ActionKind::forward, f++});
      out[s].push_back({s, ActionKind::backward, b++});
    }
    while (b < m) out[s].push_back({s, ActionKind::backward, b++});
    append_update(out[s], s);
  }
  return out;
}

namespace {

// The zero-bubble list scheduler. Stage s may start a forward while fewer than activations(s)
// micro-batches await their I and at most `held` await their W. Every action takes one unit;
// transfers are free. Among the stages, the action that can start earliest runs first.
Schedule list_schedule(int k, int m, int (*activations)(int k, int s), int held) {
  require_shape(k, m);
  Schedule out(k);
  std::vector<int> nf(k, 0), ni(k, 0), nw(k, 0);
  std::vector<double> free_at(k, 0);
  std::vector<std::vector<double>> f_end(k, std::vector<double>(m, -1)), i_end = f_end;
  struct Pick {
    double start;
    int priority;  // 0: I, 1: F, 2: W
  };
  for (;;) {
    std::optional<std::pair<Pick, int>> best;  // (pick, stage)
    for (int s = 0; s < k; ++s) {
      if (nw[s] == m) continue;
      std::vector<Pick> options;
      if (ni[s] < nf[s]) {
        const double ready = s == k - 1 ? f_end[s][ni[s]] : i_end[s + 1][ni[s]];
        if (ready >= 0) options.push_back({std::max(free_at[s], ready), 0});
      }
      if (nf[s] < m && nf[s] - ni[s] < activations(k, s) && ni[s] - nw[s] <= held) {
        const double ready = s == 0 ? 0 : f_end[s - 1][nf[s]];
        if (ready >= 0) options.push_back({std::max(free_at[s], ready), 1});
      }
      if (nw[s] < ni[s]) options.push_back({free_at[s], 2});
      if (options.empty()) continue;
      // What is ready when the stage is free, by priority; else whatever is ready first.
      auto by_time = [](const Pick& a, const Pick& b) {
        return a.start < b.start || (a.start == b.start && a.priority < b.priority);
      };
      std::optional<Pick> now;
      for (const auto& o : options)
        if (o.start <= free_at[s] && (!now || o.priority < now->priority)) now = o;
      const Pick pick = now ? *now : *std::min_element(options.begin(), options.end(), by_time);
      if (!best || pick.start < best->first.start) best = std::make_pair(pick, s);
    }
    if (!best) break;
    const auto [pick, s] = *best;
    free_at[s] = pick.start + 1;
    if (pick.priority == 0) {
      i_end[s][ni[s]] = free_at[s];
      out[s].push_back({s, ActionKind::input_backward, ni[s]++});
    } else if (pick.priority == 1) {
      f_end[s][nf[s]] = free_at[s];
      out[s].push_back({s, ActionKind::forward, nf[s]++});
    } else {
      out[s].push_back({s, ActionKind::weight_backward, nw[s]++});
    }
  }
  for (int s = 0; s < k; ++s) {
    if (nw[s] != m) throw std::logic_error("zero-bubble scheduler stalled on stage " + std::to_string(s));
    append_update(out[s], s);
  }
  return out;
}

}  // namespace

Schedule zb_h1_schedule(int stages, int m) {
  return list_schedule(stages, m, [](int k, int s) { return k - s; }, stages - 1);
}

Schedule zb_h2_schedule(int stages, int m) {
  return list_schedule(stages, m, [](int k, int s) { return 2 * (k - s) - 1; }, 2 * stages - 1);
}

Schedule forward_only_schedule(int stages, int m) {
  require_shape(stages, m);
  Schedule out(stages);
  for (int s = 0; s < stages; ++s)
    for (int i = 0; i < m; ++i) out[s].push_back({s, ActionKind::forward, i});
  return out;
}

Schedule make_schedule(ScheduleKind kind, int stages, int m) {
  switch (kind) {
    case ScheduleKind::gpipe: return gpipe_schedule(stages, m);
    case ScheduleKind::one_f_one_b: return one_f_one_b_schedule(stages, m);
    case ScheduleKind::zb_h1: return zb_h1_schedule(stages, m);
    case ScheduleKind::zb_h2: return zb_h2_schedule(stages, m);
    case ScheduleKind::automatic: return make_schedule(choose_schedule(stages, m), stages, m);
  }
  throw std::logic_error("make_schedule: unknown kind");
}

namespace {
constexpr ScheduleKind kGenerated[] = {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::zb_h1,
                                       ScheduleKind::zb_h2};
}

const char* to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::gpipe: return "gpipe";
    case ScheduleKind::one_f_one_b: return "1f1b";
    case ScheduleKind::zb_h1: return "zb-h1";
    case ScheduleKind::zb_h2: return "zb-h2";
    case ScheduleKind::automatic: return "auto";
  }
  return "?";
}

ScheduleKind parse_schedule_kind(const std::string& name) {
  for (auto k : kGenerated)
    if (name == to_string(k)) return k;
  if (name == "auto") return ScheduleKind::automatic;
  throw InputError("pipeline.schedule: expected \"gpipe\", \"1f1b\", \"zb-h1\", \"zb-h2\" or \"auto\", got \"" +
                   name + "\"");
}

std::string to_string(const Action& a) {
  std::string s = std::to_string(a.stage) + static_cast<char>(a.kind);
  if (a.micro_batch >= 0) s += std::to_string(a.micro_batch);
  return s;
}

std::string to_string(const StageProgram& p) {
  std::string out;
  for (const auto& a : p) out += (out.empty() ? "" : " ") + to_string(a);
  return out;
}

std::ostream& operator<<(std::ostream& os, const Action& a) { return os << to_string(a); }

StageProgram parse_program(const std::string& text) {
  StageProgram p;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    size_t i = 0;
    while (i < tok.size() && std::isdigit(static_cast<unsigned char>(tok[i]))) ++i;
    if (i == 0 || i == tok.size() || std::string("FBIWRS").find(tok[i]) == std::string::npos)
      throw std::invalid_argument("schedule action \"" + tok + "\": expected <stage><F|B|I|W|R|S>[micro-batch]");
    Action a{std::stoi(tok.substr(0, i)), static_cast<ActionKind>(tok[i]), -1};
    const auto rest = tok.substr(i + 1);
    const bool needs_mb = a.kind != ActionKind::reduce && a.kind != ActionKind::step;
    if (needs_mb == rest.empty() || (!rest.empty() && rest.find_first_not_of("0123456789") != std::string::npos))
      throw std::invalid_argument("schedule action \"" + tok + "\": F, B, I and W take a micro-batch, R and S none");
    if (!rest.empty()) a.micro_batch = std::stoi(rest);
    p.push_back(a);
  }
  return p;
}

namespace {

// Every action at most once; with m > 0, every micro-batch forwarded and backpropagated once.
std::string check_actions(const StageProgram& p, int st, int m) {
  std::map<std::pair<char, int>, int> seen;
  for (const auto& a : p) {
    if (a.stage != st) return "stage " + std::to_string(st) + " holds " + to_string(a) + " of another stage";
    if (m > 0 && a.micro_batch >= m) return "stage " + std::to_string(st) + ": " + to_string(a) + " is past the last micro-batch";
    if (++seen[{static_cast<char>(a.kind), a.micro_batch}] > 1)
      return "stage " + std::to_string(st) + " runs " + to_string(a) + " twice";
  }
  auto has = [&](ActionKind k, int mb) { return seen.count({static_cast<char>(k), mb}) > 0; };
  for (int mb = 0; mb < m; ++mb) {
    const bool b = has(ActionKind::backward, mb), i = has(ActionKind::input_backward, mb),
               w = has(ActionKind::weight_backward, mb);
    if (!has(ActionKind::forward, mb)) return "stage " + std::to_string(st) + " never forwards micro-batch " + std::to_string(mb);
    if (b ? (i || w) : !(i && w))
      return "stage " + std::to_string(st) + " must backpropagate micro-batch " + std::to_string(mb) +
             " once: by B, or by I and W";
  }
  return {};
}

}  // namespace

namespace {

// Executes the programs with their data dependencies, each action taking what its stage's
// timing says (R and S their costs) and a transfer arriving its delay after the action that
// sends it. R and S wait for every one of the stage's first `m` weight gradients (m = 0: for
// nothing but the program before them). Returns the timeline, or the first blocked action
// when the programs deadlock.
struct Execution {
  Timeline timeline;
  std::string blocked;
};

Execution execute(const Schedule& s, int m, const std::vector<StageTiming>& timing) {
  const int k = static_cast<int>(s.size());
  // (stage, mb) -> when its forward, its input gradient, its weight gradient was done here,
  // and when the forward's output and the input gradient arrived at the neighbour.
  using Done = std::map<std::pair<int, int>, double>;
  Done fwd_end, grad_end, weights_end, fwd_sent, grad_sent;
  std::vector<size_t> pc(k, 0);
  std::vector<double> clock(k, 0);
  Execution run;
  run.timeline.busy.assign(k, 0);
  run.timeline.actions.resize(k);
  for (bool progress = true; progress;) {
    progress = false;
    for (int st = 0; st < k; ++st) {
      const auto& t = timing[st];
      while (pc[st] < s[st].size()) {
        const auto& a = s[st][pc[st]];
        const std::pair<int, int> key{st, a.micro_batch};
        double ready = clock[st], cost = 0;
        auto after = [&](const Done& done, std::pair<int, int> at) {
          auto it = done.find(at);
          if (it == done.end()) return false;
          ready = std::max(ready, it->second);
          return true;
        };
        bool can = true;
        switch (a.kind) {
          case ActionKind::forward:
            can = st == 0 || after(fwd_sent, {st - 1, a.micro_batch});
            cost = t.costs.forward;
            break;
          case ActionKind::backward:
          case ActionKind::input_backward:
            can = after(fwd_end, key) && (st == k - 1 || after(grad_sent, {st + 1, a.micro_batch}));
            cost = a.kind == ActionKind::backward ? t.costs.backward : t.costs.input;
            break;
          case ActionKind::weight_backward:
            can = after(grad_end, key);
            cost = t.costs.weight;
            break;
          default:  // R and S need every local gradient (or nothing, in a forward-only program)
            for (int i = 0; i < m && can; ++i) can = after(weights_end, {st, i});
            cost = a.kind == ActionKind::reduce ? t.reduce : t.step;
        }
        if (!can) break;
        clock[st] = ready + cost;
        run.timeline.busy[st] += cost;
        run.timeline.actions[st].push_back({a, ready, clock[st]});
        if (a.kind == ActionKind::forward) {
          fwd_end[key] = clock[st];
          fwd_sent[key] = clock[st] + t.to_next;
        }
        if (a.kind == ActionKind::backward || a.kind == ActionKind::input_backward) {
          grad_end[key] = clock[st];
          grad_sent[key] = clock[st] + t.to_previous;
        }
        if (a.kind == ActionKind::backward || a.kind == ActionKind::weight_backward) weights_end[key] = clock[st];
        ++pc[st];
        progress = true;
      }
    }
  }
  for (int st = 0; st < k; ++st)
    if (pc[st] < s[st].size()) {
      run.blocked = "stage " + std::to_string(st) + " blocked at " + to_string(s[st][pc[st]]);
      return run;
    }
  run.timeline.makespan = k == 0 ? 0 : *std::max_element(clock.begin(), clock.end());
  return run;
}

std::vector<StageTiming> uniform(int stages, const ActionCosts& costs) {
  return std::vector<StageTiming>(stages, StageTiming{costs});
}

}  // namespace

std::string check_schedule(const Schedule& s, int m) {
  for (int st = 0; st < static_cast<int>(s.size()); ++st)
    if (auto e = check_actions(s[st], st, m); !e.empty()) return e;
  return execute(s, m, uniform(static_cast<int>(s.size()), {})).blocked;
}

ProgramMemory peak_memory(const StageProgram& p) {
  ProgramMemory peak, now;
  for (const auto& a : p) {
    switch (a.kind) {
      case ActionKind::forward: ++now.activations; ++now.in_flight; break;
      case ActionKind::backward: --now.activations; --now.in_flight; break;
      case ActionKind::input_backward: --now.activations; ++now.held; break;
      case ActionKind::weight_backward: --now.held; --now.in_flight; break;
      default: break;
    }
    peak.activations = std::max(peak.activations, now.activations);
    peak.held = std::max(peak.held, now.held);
    peak.in_flight = std::max(peak.in_flight, now.in_flight);
  }
  return peak;
}

double modelled_makespan(const Schedule& s, const ActionCosts& costs) {
  auto run = execute(s, 0, uniform(static_cast<int>(s.size()), costs));
  if (!run.blocked.empty()) throw std::invalid_argument("modelled_makespan: " + run.blocked);
  return run.timeline.makespan;
}

Timeline timed_execution(const Schedule& s, int micro_batches, const std::vector<StageTiming>& timing) {
  if (timing.size() != s.size())
    throw std::invalid_argument("timed_execution: " + std::to_string(timing.size()) + " stage timings for " +
                                std::to_string(s.size()) + " programs");
  auto run = execute(s, micro_batches, timing);
  if (!run.blocked.empty()) throw std::invalid_argument("timed_execution: " + run.blocked);
  return std::move(run.timeline);
}

ScheduleKind choose_schedule(int stages, int m) {
  const auto reference = one_f_one_b_schedule(stages, m);
  ScheduleKind best = ScheduleKind::gpipe;
  double best_time = -1;
  for (auto kind : kGenerated) {
    const auto s = make_schedule(kind, stages, m);
    bool fits = true;
    for (int st = 0; st < stages && fits; ++st)
      fits = peak_memory(s[st]).activations <= peak_memory(reference[st]).activations;
    if (!fits) continue;
    const double t = modelled_makespan(s);
    if (best_time < 0 || t < best_time) best = kind, best_time = t;
  }
  return best;
}

}  // namespace floe::runtime
