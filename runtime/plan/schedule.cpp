#include "runtime/plan/schedule.hpp"

#include "models/errors.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <tuple>

namespace floe::runtime {
namespace {

void require_shape(int stages, int micro_batches) {
  if (stages < 1 || micro_batches < 1)
    throw std::invalid_argument("schedule: stages and micro-batches must be >= 1");
}

// R, then S, of every stage of a device.
void append_updates(StageProgram& p, const std::vector<int>& stages) {
  for (int s : stages) p.push_back({s, ActionKind::reduce, -1});
  for (int s : stages) p.push_back({s, ActionKind::step, -1});
}

}  // namespace

Schedule gpipe_schedule(int stages, int m) {
  require_shape(stages, m);
  Schedule out(stages);
  for (int s = 0; s < stages; ++s) {
    for (int i = 0; i < m; ++i) out[s].push_back({s, ActionKind::forward, i});
    for (int i = 0; i < m; ++i) out[s].push_back({s, ActionKind::backward, i});
    append_updates(out[s], {s});
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
    append_updates(out[s], {s});
  }
  return out;
}

ChunkPlacement placement_of(ScheduleKind kind, int chunks) {
  const bool v = kind == ScheduleKind::zb_v || (kind == ScheduleKind::automatic && chunks == 2);
  return v ? ChunkPlacement::v_shape : ChunkPlacement::looped;
}

int device_of_stage(ChunkPlacement placement, int devices, int stage) {
  if (placement == ChunkPlacement::looped) return stage % devices;
  return stage < devices ? stage : 2 * devices - 1 - stage;
}

int chunks_for(ScheduleKind kind, int configured) {
  if (kind == ScheduleKind::zb_v) return 2;
  if (kind == ScheduleKind::interleaved) return configured > 0 ? configured : 2;
  if (kind == ScheduleKind::automatic) return std::max(1, configured);
  return 1;
}

std::vector<int> stages_on_device(ChunkPlacement placement, int k, int chunks, int d) {
  std::vector<int> out;
  for (int s = 0; s < k * chunks; ++s)
    if (device_of_stage(placement, k, s) == d) out.push_back(s);
  return out;
}

StageProgram actions_of_stage(const StageProgram& device_program, int stage) {
  StageProgram out;
  for (const auto& a : device_program)
    if (a.stage == stage) out.push_back(a);
  return out;
}

namespace {

// The zero-bubble list scheduler. A device may start a forward while fewer than
// activations(k, d) micro-batches (of one stage each) await their I and at most `held` await
// their W. Every action takes one unit; transfers are free. Among the devices, the action
// that can start earliest runs first; on a device, what is ready when it is free by priority
// (I, then F, then W), the deeper stage first; else whatever is ready first.
Schedule list_schedule(int k, int m, int chunks, ChunkPlacement placement, int (*activations)(int k, int d),
                       int held) {
  require_shape(k, m);
  const int v_total = k * chunks;
  Schedule out(k);
  std::vector<std::vector<int>> on(k);
  for (int d = 0; d < k; ++d) on[d] = stages_on_device(placement, k, chunks, d);
  std::vector<int> nf(v_total, 0), ni(v_total, 0), nw(v_total, 0);
  std::vector<int> in_act(k, 0), in_held(k, 0), done(k, 0);
  std::vector<std::vector<Action>> pending_w(k);  // per device, held W in the order of their I
  std::vector<double> free_at(k, 0);
  std::vector<std::vector<double>> f_end(v_total, std::vector<double>(m, -1)), i_end = f_end;
  struct Pick {
    double start;
    int priority;  // 0: I, 1: F, 2: W
    int stage;
  };
  // Earlier start, then priority, then the deeper stage.
  auto before = [](const Pick& a, const Pick& b) {
    if (a.start != b.start) return a.start < b.start;
    if (a.priority != b.priority) return a.priority < b.priority;
    return a.stage > b.stage;
  };
  for (;;) {
    std::optional<std::pair<Pick, int>> best;  // (pick, device)
    for (int d = 0; d < k; ++d) {
      if (done[d] == m * static_cast<int>(on[d].size())) continue;
      std::vector<Pick> options;
      for (int s : on[d]) {
        if (ni[s] < nf[s]) {
          const double ready = s == v_total - 1 ? f_end[s][ni[s]] : i_end[s + 1][ni[s]];
          if (ready >= 0) options.push_back({std::max(free_at[d], ready), 0, s});
        }
        if (nf[s] < m && in_act[d] < activations(k, d) && in_held[d] <= held) {
          const double ready = s == 0 ? 0 : f_end[s - 1][nf[s]];
          if (ready >= 0) options.push_back({std::max(free_at[d], ready), 1, s});
        }
      }
      if (!pending_w[d].empty()) options.push_back({free_at[d], 2, pending_w[d].front().stage});
      if (options.empty()) continue;
      std::optional<Pick> now;
      for (const auto& o : options)
        if (o.start <= free_at[d] && (!now || o.priority < now->priority ||
                                      (o.priority == now->priority && o.stage > now->stage)))
          now = o;
      const Pick pick = now ? *now : *std::min_element(options.begin(), options.end(), before);
      if (!best || pick.start < best->first.start) best = std::make_pair(pick, d);
    }
    if (!best) break;
    const auto [pick, d] = *best;
    const int s = pick.stage;
    free_at[d] = pick.start + 1;
    if (pick.priority == 0) {
      i_end[s][ni[s]] = free_at[d];
      out[d].push_back({s, ActionKind::input_backward, ni[s]});
      pending_w[d].push_back({s, ActionKind::weight_backward, ni[s]++});
      --in_act[d], ++in_held[d];
    } else if (pick.priority == 1) {
      f_end[s][nf[s]] = free_at[d];
      out[d].push_back({s, ActionKind::forward, nf[s]++});
      ++in_act[d];
    } else {
      out[d].push_back(pending_w[d].front());
      pending_w[d].erase(pending_w[d].begin());
      ++nw[s], --in_held[d], ++done[d];
    }
  }
  for (int d = 0; d < k; ++d) {
    if (done[d] != m * static_cast<int>(on[d].size()))
      throw std::logic_error("zero-bubble scheduler stalled on device " + std::to_string(d));
    append_updates(out[d], on[d]);
  }
  return out;
}

}  // namespace

Schedule zb_h1_schedule(int stages, int m) {
  return list_schedule(stages, m, 1, ChunkPlacement::looped, [](int k, int s) { return k - s; }, stages - 1);
}

Schedule zb_h2_schedule(int stages, int m) {
  return list_schedule(stages, m, 1, ChunkPlacement::looped, [](int k, int s) { return 2 * (k - s) - 1; },
                       2 * stages - 1);
}

Schedule zb_v_schedule(int devices, int m) {
  return list_schedule(devices, m, 2, ChunkPlacement::v_shape, [](int k, int) { return 2 * k; }, devices - 1);
}

Schedule interleaved_schedule(int k, int m, int chunks) {
  require_shape(k, m);
  if (chunks < 1) throw std::invalid_argument("interleaved schedule: chunks must be >= 1");
  if (chunks == 1) return one_f_one_b_schedule(k, m);
  // Per device, the order of its forwards and of its backwards as (chunk, micro-batch).
  std::vector<std::pair<int, int>> fwd, bwd;
  for (int b0 = 0; b0 < m; b0 += k) {
    const int b1 = std::min(m, b0 + k);
    for (int c = 0; c < chunks; ++c)
      for (int i = b0; i < b1; ++i) fwd.push_back({c, i});
    for (int c = chunks - 1; c >= 0; --c)
      for (int i = b0; i < b1; ++i) bwd.push_back({c, i});
  }
  const int total = m * chunks;
  for (int extra = 0; extra <= total; ++extra) {
    Schedule out(k);
    for (int d = 0; d < k; ++d) {
      auto action = [&](ActionKind kind, std::pair<int, int> at) { return Action{at.first * k + d, kind, at.second}; };
      const int warmup = std::min(total, 2 * (k - d - 1) + (chunks - 1) * k + extra);
      int f = 0, b = 0;
      for (; f < warmup; ++f) out[d].push_back(action(ActionKind::forward, fwd[f]));
      while (f < total) {
        out[d].push_back(action(ActionKind::forward, fwd[f++]));
        out[d].push_back(action(ActionKind::backward, bwd[b++]));
      }
      while (b < total) out[d].push_back(action(ActionKind::backward, bwd[b++]));
      append_updates(out[d], stages_on_device(ChunkPlacement::looped, k, chunks, d));
    }
    if (check_schedule(out, m).empty()) return out;
  }
  throw std::logic_error("interleaved schedule: no warm-up runs");
}

Schedule forward_only_schedule(int k, int m, int chunks, ChunkPlacement placement) {
  require_shape(k, m);
  if (chunks < 1) throw std::invalid_argument("schedule: chunks must be >= 1");
  Schedule out(k);
  for (int d = 0; d < k; ++d)
    for (int s : stages_on_device(placement, k, chunks, d))
      for (int i = 0; i < m; ++i) out[d].push_back({s, ActionKind::forward, i});
  return out;
}

Schedule make_schedule(ScheduleKind kind, int k, int m, int chunks) {
  if (chunks < 1 || (chunks > 1 && kind != ScheduleKind::interleaved && kind != ScheduleKind::automatic &&
                     !(kind == ScheduleKind::zb_v && chunks == 2)))
    throw std::invalid_argument(std::string("schedule ") + to_string(kind) + " cannot run " + std::to_string(chunks) +
                                " chunks per device");
  switch (kind) {
    case ScheduleKind::gpipe: return gpipe_schedule(k, m);
    case ScheduleKind::one_f_one_b: return one_f_one_b_schedule(k, m);
    case ScheduleKind::zb_h1: return zb_h1_schedule(k, m);
    case ScheduleKind::zb_h2: return zb_h2_schedule(k, m);
    case ScheduleKind::interleaved: return interleaved_schedule(k, m, chunks);
    case ScheduleKind::zb_v: return chunks == 1 ? zb_h1_schedule(k, m) : zb_v_schedule(k, m);
    case ScheduleKind::automatic: return make_schedule(resolve_schedule(kind, k, m, chunks), k, m, chunks);
  }
  throw std::logic_error("make_schedule: unknown kind");
}

namespace {
constexpr ScheduleKind kGenerated[] = {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::zb_h1,
                                       ScheduleKind::zb_h2, ScheduleKind::interleaved, ScheduleKind::zb_v};
}

const char* to_string(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::gpipe: return "gpipe";
    case ScheduleKind::one_f_one_b: return "1f1b";
    case ScheduleKind::zb_h1: return "zb-h1";
    case ScheduleKind::zb_h2: return "zb-h2";
    case ScheduleKind::interleaved: return "interleaved";
    case ScheduleKind::zb_v: return "zb-v";
    case ScheduleKind::automatic: return "auto";
  }
  return "?";
}

ScheduleKind parse_schedule_kind(const std::string& name) {
  for (auto k : kGenerated)
    if (name == to_string(k)) return k;
  if (name == "auto") return ScheduleKind::automatic;
  throw InputError(
      "pipeline.schedule: expected \"gpipe\", \"1f1b\", \"zb-h1\", \"zb-h2\", \"interleaved\", \"zb-v\" or "
      "\"auto\", got \"" + name + "\"");
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

int stage_count(const Schedule& s) {
  int v = 0;
  for (const auto& p : s)
    for (const auto& a : p) v = std::max(v, a.stage + 1);
  return v;
}

namespace {

// Every stage 0..V-1 on exactly one device; every action at most once; with m > 0, every
// micro-batch forwarded and backpropagated once on every stage.
std::string check_actions(const Schedule& s, int m) {
  const int v = stage_count(s);
  std::vector<int> device(v, -1);
  std::vector<std::map<std::pair<char, int>, int>> seen(v);
  for (int d = 0; d < static_cast<int>(s.size()); ++d)
    for (const auto& a : s[d]) {
      const auto st = std::to_string(a.stage);
      if (a.stage < 0) return "device " + std::to_string(d) + " holds " + to_string(a) + " of no stage";
      if (device[a.stage] >= 0 && device[a.stage] != d)
        return "stage " + st + " has actions on devices " + std::to_string(device[a.stage]) + " and " + std::to_string(d);
      device[a.stage] = d;
      if (m > 0 && a.micro_batch >= m) return "stage " + st + ": " + to_string(a) + " is past the last micro-batch";
      if (++seen[a.stage][{static_cast<char>(a.kind), a.micro_batch}] > 1) return "stage " + st + " runs " + to_string(a) + " twice";
    }
  for (int st = 0; st < v; ++st) {
    if (device[st] < 0) return "no device runs stage " + std::to_string(st);
    auto has = [&](ActionKind k, int mb) { return seen[st].count({static_cast<char>(k), mb}) > 0; };
    for (int mb = 0; mb < m; ++mb) {
      const bool b = has(ActionKind::backward, mb), i = has(ActionKind::input_backward, mb),
                 w = has(ActionKind::weight_backward, mb);
      if (!has(ActionKind::forward, mb)) return "stage " + std::to_string(st) + " never forwards micro-batch " + std::to_string(mb);
      if (b ? (i || w) : !(i && w))
        return "stage " + std::to_string(st) + " must backpropagate micro-batch " + std::to_string(mb) +
               " once: by B, or by I and W";
    }
  }
  return {};
}

// Executes the device programs with their data dependencies, each action taking what its
// stage's timing says (R and S their costs) and a transfer arriving its delay after the action
// that sends it. R and S wait for every one of their stage's first `m` weight gradients (m = 0:
// for nothing but the program before them). A device that runs one stage fills a wait with an
// early W (early_weight_gradient), as the stage's interpreter does. Events go in time order:
// the device that can act soonest acts, so that a wait is known to be one (nothing can reach a
// device sooner than the soonest action ends). Returns the timeline, or the first blocked action
// when the programs deadlock.
struct Execution {
  Timeline timeline;
  std::string blocked;
};

Execution execute(const Schedule& s, int m, const std::vector<StageTiming>& timing,
                  const std::vector<double>& weights = {}) {
  const int k = static_cast<int>(s.size()), last = stage_count(s) - 1;
  // (stage, mb) -> when its forward, its input gradient, its weight gradient was done, and
  // when the forward's output and the input gradient arrived at the neighbouring stage.
  using Done = std::map<std::pair<int, int>, double>;
  Done fwd_end, grad_end, weights_end, fwd_sent, grad_sent;
  std::vector<size_t> pc(k, 0);
  std::vector<double> clock(k, 0);
  std::vector<std::vector<char>> early(k);
  std::vector<bool> fills(k);
  for (int d = 0; d < k; ++d) {
    early[d].assign(s[d].size(), 0);
    fills[d] = std::all_of(s[d].begin(), s[d].end(), [&](const Action& a) { return a.stage == s[d][0].stage; });
  }
  // When device d's action `a` can start (its inputs here), or a negative value while one of
  // them is not yet made.
  auto ready_at = [&](int d, const Action& a) {
    const int st = a.stage;
    double ready = clock[d];
    auto after = [&](const Done& done, std::pair<int, int> at) {
      auto it = done.find(at);
      if (it == done.end()) return false;
      ready = std::max(ready, it->second);
      return true;
    };
    bool can = true;
    switch (a.kind) {
      case ActionKind::forward: can = st == 0 || after(fwd_sent, {st - 1, a.micro_batch}); break;
      case ActionKind::backward:
      case ActionKind::input_backward:
        can = after(fwd_end, {st, a.micro_batch}) && (st == last || after(grad_sent, {st + 1, a.micro_batch}));
        break;
      case ActionKind::weight_backward: can = after(grad_end, {st, a.micro_batch}); break;
      default:  // R and S need every local gradient (or nothing, in a forward-only program)
        for (int i = 0; i < m && can; ++i) can = after(weights_end, {st, i});
    }
    return can ? ready : -1.0;
  };
  Execution run;
  run.timeline.busy.assign(k, 0);
  run.timeline.actions.resize(k);
  for (;;) {
    // Every device's next move: (when, an early W, device, index in its program).
    std::tuple<double, bool, int, size_t> next{0, false, -1, 0};
    for (int d = 0; d < k; ++d) {
      while (pc[d] < s[d].size() && early[d][pc[d]]) ++pc[d];
      if (pc[d] == s[d].size()) continue;
      double when = ready_at(d, s[d][pc[d]]);
      size_t index = pc[d];
      bool fill = false;
      const auto kind = s[d][pc[d]].kind;
      const bool from_neighbour = kind == ActionKind::forward || kind == ActionKind::backward ||
                                  kind == ActionKind::input_backward;
      if (when != clock[d] && from_neighbour && fills[d]) {
        const int j = early_weight_gradient(s[d], pc[d], early[d]);
        if (j >= 0) when = clock[d], index = static_cast<size_t>(j), fill = true;
      }
      if (when < 0) continue;
      const std::tuple<double, bool, int, size_t> move{when, fill, d, index};
      if (std::get<2>(next) < 0 || move < next) next = move;
    }
    const auto [start, fill, d, index] = next;
    if (d < 0) break;
    const auto& a = s[d][index];
    const auto& t = timing[a.stage];
    const std::pair<int, int> key{a.stage, a.micro_batch};
    double cost = 0;
    switch (a.kind) {
      case ActionKind::forward: cost = t.costs.forward; break;
      case ActionKind::backward: cost = t.costs.backward; break;
      case ActionKind::input_backward: cost = t.costs.input; break;
      case ActionKind::weight_backward: cost = t.costs.weight; break;
      default: cost = a.kind == ActionKind::reduce ? t.reduce : t.step;
    }
    if (a.micro_batch >= 0 && a.micro_batch < static_cast<int>(weights.size())) cost *= weights[a.micro_batch];
    clock[d] = start + cost;
    run.timeline.busy[d] += cost;
    run.timeline.actions[d].push_back({a, start, clock[d]});
    if (a.kind == ActionKind::forward) {
      fwd_end[key] = clock[d];
      fwd_sent[key] = clock[d] + t.to_next;
    }
    if (a.kind == ActionKind::backward || a.kind == ActionKind::input_backward) {
      grad_end[key] = clock[d];
      grad_sent[key] = clock[d] + t.to_previous;
    }
    if (a.kind == ActionKind::backward || a.kind == ActionKind::weight_backward) weights_end[key] = clock[d];
    if (fill)
      early[d][index] = 1;
    else
      ++pc[d];
  }
  for (int d = 0; d < k; ++d)
    if (pc[d] < s[d].size()) {
      run.blocked = "device " + std::to_string(d) + " blocked at " + to_string(s[d][pc[d]]);
      return run;
    }
  run.timeline.makespan = k == 0 ? 0 : *std::max_element(clock.begin(), clock.end());
  return run;
}

std::vector<StageTiming> uniform(const Schedule& s, const ActionCosts& costs) {
  return std::vector<StageTiming>(stage_count(s), StageTiming{costs});
}

}  // namespace

int early_weight_gradient(const StageProgram& p, size_t pc, const std::vector<char>& early) {
  for (size_t j = pc + 1; j < p.size(); ++j) {
    const auto& w = p[j];
    if (w.kind != ActionKind::weight_backward || (j < early.size() && early[j])) continue;
    for (size_t i = 0; i < pc; ++i)
      if (p[i].kind == ActionKind::input_backward && p[i].stage == w.stage && p[i].micro_batch == w.micro_batch)
        return static_cast<int>(j);
    return -1;  // the first W left waits for its I
  }
  return -1;
}

std::string check_schedule(const Schedule& s, int m) {
  if (auto e = check_actions(s, m); !e.empty()) return e;
  return execute(s, m, uniform(s, {})).blocked;
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
  auto run = execute(s, 0, uniform(s, costs));
  if (!run.blocked.empty()) throw std::invalid_argument("modelled_makespan: " + run.blocked);
  return run.timeline.makespan;
}

Timeline timed_execution(const Schedule& s, int micro_batches, const std::vector<StageTiming>& timing,
                         const std::vector<double>& weights) {
  if (static_cast<int>(timing.size()) != stage_count(s))
    throw std::invalid_argument("timed_execution: " + std::to_string(timing.size()) + " stage timings for " +
                                std::to_string(stage_count(s)) + " stages");
  if (!weights.empty() && static_cast<int>(weights.size()) < micro_batches)
    throw std::invalid_argument("timed_execution: " + std::to_string(weights.size()) + " micro-batch weights for " +
                                std::to_string(micro_batches) + " micro-batches");
  auto run = execute(s, micro_batches, timing, weights);
  if (!run.blocked.empty()) throw std::invalid_argument("timed_execution: " + run.blocked);
  return std::move(run.timeline);
}

std::vector<double> micro_batch_weights(int64_t parts, int depth) {
  if (parts <= 0) throw std::invalid_argument("micro_batch_weights: parts must be positive");
  std::vector<double> w(static_cast<size_t>(parts), 1.0);
  if (depth <= 1) return w;
  double sum = 0;
  for (int64_t i = 0; i < parts; ++i) sum += w[i] = static_cast<double>(std::min<int64_t>({depth, i + 1, parts - i}));
  for (auto& x : w) x *= static_cast<double>(parts) / sum;
  return w;
}

Taper parse_taper(const std::string& name) {
  if (name == "off") return Taper::off;
  if (name == "on") return Taper::on;
  if (name == "auto") return Taper::automatic;
  throw InputError("pipeline.taper = \"" + name + "\": expected \"auto\", \"on\" or \"off\"");
}

const char* to_string(Taper taper) {
  switch (taper) {
    case Taper::off: return "off";
    case Taper::on: return "on";
    case Taper::automatic: return "auto";
  }
  return "?";
}

bool taper_pays(ScheduleKind kind, int devices, int m, int chunks) {
  if (devices <= 1 || m < 3) return false;  // (with M ≤ 2 every weight is 1)
  const auto s = make_schedule(kind, devices, m, chunks);  // ("auto" resolved there)
  const auto weights = micro_batch_weights(m, devices);
  double change = 0;  // the tapered step's relative change, summed over the two models
  for (const ActionCosts& costs : {ActionCosts{}, ActionCosts{1, 1.5, 1, 0.5}}) {
    const std::vector<StageTiming> timing(static_cast<size_t>(stage_count(s)), StageTiming{costs});
    change += timed_execution(s, m, timing, weights).makespan / timed_execution(s, m, timing).makespan - 1;
  }
  return change < 0;
}

bool tapers(Taper taper, ScheduleKind kind, int devices, int m, int chunks) {
  if (devices <= 1 || taper == Taper::off) return false;
  return taper == Taper::on || taper_pays(kind, devices, m, chunks);
}

ScheduleKind choose_schedule(int k, int m, int chunks) {
  if (chunks == 2) return ScheduleKind::zb_v;
  if (chunks > 2) return ScheduleKind::interleaved;
  // A device's memory: 1F1B's largest high-water mark, on its first device.
  const int limit = peak_memory(one_f_one_b_schedule(k, m)[0]).activations;
  ScheduleKind best = ScheduleKind::gpipe;
  double best_time = -1;
  for (auto kind : {ScheduleKind::gpipe, ScheduleKind::one_f_one_b, ScheduleKind::zb_h1, ScheduleKind::zb_h2}) {
    const auto s = make_schedule(kind, k, m);
    bool fits = true;
    for (const auto& p : s) fits = fits && peak_memory(p).activations <= limit;
    if (!fits) continue;
    const double t = modelled_makespan(s);
    if (best_time < 0 || t < best_time) best = kind, best_time = t;
  }
  return best;
}

ScheduleKind resolve_schedule(ScheduleKind kind, int devices, int m, int chunks) {
  return kind == ScheduleKind::automatic ? choose_schedule(devices, m, chunks) : kind;
}

}  // namespace floe::runtime
