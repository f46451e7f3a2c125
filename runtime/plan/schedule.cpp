#include "runtime/plan/schedule.hpp"

#include "models/errors.hpp"

#include <ostream>
#include <set>
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

Schedule forward_only_schedule(int stages, int m) {
  require_shape(stages, m);
  Schedule out(stages);
  for (int s = 0; s < stages; ++s)
    for (int i = 0; i < m; ++i) out[s].push_back({s, ActionKind::forward, i});
  return out;
}

Schedule make_schedule(ScheduleKind kind, int stages, int m) {
  return kind == ScheduleKind::gpipe ? gpipe_schedule(stages, m) : one_f_one_b_schedule(stages, m);
}

ScheduleKind parse_schedule_kind(const std::string& name) {
  if (name == "gpipe") return ScheduleKind::gpipe;
  if (name == "1f1b") return ScheduleKind::one_f_one_b;
  throw InputError("pipeline.schedule: expected \"gpipe\" or \"1f1b\", got \"" + name + "\"");
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
    if (i == 0 || i == tok.size() || std::string("FBRS").find(tok[i]) == std::string::npos)
      throw std::invalid_argument("schedule action \"" + tok + "\": expected <stage><F|B|R|S>[micro-batch]");
    Action a{std::stoi(tok.substr(0, i)), static_cast<ActionKind>(tok[i]), -1};
    const auto rest = tok.substr(i + 1);
    const bool needs_mb = a.kind == ActionKind::forward || a.kind == ActionKind::backward;
    if (needs_mb == rest.empty() || (!rest.empty() && rest.find_first_not_of("0123456789") != std::string::npos))
      throw std::invalid_argument("schedule action \"" + tok + "\": F and B take a micro-batch, R and S none");
    if (!rest.empty()) a.micro_batch = std::stoi(rest);
    p.push_back(a);
  }
  return p;
}

std::string check_schedule(const Schedule& s, int m) {
  const int k = static_cast<int>(s.size());
  std::set<std::pair<int, int>> fwd_done, bwd_done;  // (stage, mb)
  std::vector<size_t> pc(k, 0);
  for (bool progress = true; progress;) {
    progress = false;
    for (int st = 0; st < k; ++st) {
      while (pc[st] < s[st].size()) {
        const auto& a = s[st][pc[st]];
        bool ready = true;
        if (a.kind == ActionKind::forward)
          ready = st == 0 || fwd_done.count({st - 1, a.micro_batch});
        else if (a.kind == ActionKind::backward)
          ready = fwd_done.count({st, a.micro_batch}) && (st == k - 1 || bwd_done.count({st + 1, a.micro_batch}));
        else  // R and S need every local backward (or nothing, in a forward-only program)
          for (int i = 0; i < m && ready; ++i) ready = bwd_done.count({st, i}) > 0;
        if (!ready) break;
        if (a.kind == ActionKind::forward) fwd_done.insert({st, a.micro_batch});
        if (a.kind == ActionKind::backward) bwd_done.insert({st, a.micro_batch});
        ++pc[st];
        progress = true;
      }
    }
  }
  for (int st = 0; st < k; ++st)
    if (pc[st] < s[st].size()) return "stage " + std::to_string(st) + " blocked at " + to_string(s[st][pc[st]]);
  return {};
}

}  // namespace floe::runtime
