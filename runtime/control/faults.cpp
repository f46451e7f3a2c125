#include "runtime/control/faults.hpp"

#include "models/errors.hpp"

#include <sstream>

namespace floe::runtime {
namespace {

const char* kind_text(FaultKind k) {
  switch (k) {
    case FaultKind::delay: return "delay";
    case FaultKind::drop: return "drop";
    case FaultKind::slow: return "slow";
    case FaultKind::kill: return "kill";
  }
  return "?";
}

template <class T>
T number(const std::string& text, const std::string& key, const std::string& value) {
  std::istringstream in(value);
  T out{};
  if (!(in >> out) || !in.eof())
    throw InputError("fault \"" + text + "\": " + key + "=" + value + ": expected a number");
  return out;
}

}  // namespace

Fault parse_fault(const std::string& text) {
  const std::string expected =
      "expected \"KIND [MESSAGE] [replica=R] [stage=S] [node=N] [seconds=X] [at=STEP] [count=N]\" with KIND "
      "delay|drop|slow|kill, MESSAGE activation|gradient (delay, drop), node only for kill";
  std::istringstream in(text);
  std::string word;
  if (!(in >> word)) throw InputError("fault \"" + text + "\": empty; " + expected);
  Fault f;
  if (word == "delay") f.kind = FaultKind::delay;
  else if (word == "drop") f.kind = FaultKind::drop;
  else if (word == "slow") f.kind = FaultKind::slow;
  else if (word == "kill") f.kind = FaultKind::kill;
  else throw InputError("fault \"" + text + "\": unknown kind \"" + word + "\"; " + expected);
  bool seconds_given = false;
  while (in >> word) {
    const auto eq = word.find('=');
    if (eq == std::string::npos) {
      if ((f.kind == FaultKind::delay || f.kind == FaultKind::drop) && (word == "activation" || word == "gradient")) {
        f.message = word;
        continue;
      }
      throw InputError("fault \"" + text + "\": unexpected \"" + word + "\"; " + expected);
    }
    const auto key = word.substr(0, eq), value = word.substr(eq + 1);
    if (key == "replica") f.replica = number<int32_t>(text, key, value);
    else if (key == "stage") f.stage = number<int32_t>(text, key, value);
    else if (key == "node" && f.kind == FaultKind::kill) f.node = number<int32_t>(text, key, value);
    else if (key == "seconds") f.seconds = number<double>(text, key, value), seconds_given = true;
    else if (key == "at") f.at_step = number<int64_t>(text, key, value);
    else if (key == "count") f.count = number<int64_t>(text, key, value);
    else throw InputError("fault \"" + text + "\": unknown key \"" + key + "\"; " + expected);
  }
  if (f.replica < 0 || f.stage < -1 || (f.stage == -1 && f.kind != FaultKind::kill) || f.node < -1)
    throw InputError("fault \"" + text + "\": replica must be >= 0 and stage >= 0 (stage=-1 only for kill)");
  if ((f.kind == FaultKind::delay || f.kind == FaultKind::slow) && (!seconds_given || f.seconds <= 0 || f.seconds > 3600))
    throw InputError("fault \"" + text + "\": " + kind_text(f.kind) + " needs seconds=X with 0 < X <= 3600");
  if (f.at_step < 0 || f.count < -1 || f.count == 0)
    throw InputError("fault \"" + text + "\": expected at >= 0 and count >= 1 (or -1 for no limit)");
  return f;
}

std::string describe(const Fault& f) {
  std::ostringstream out;
  out << kind_text(f.kind);
  if (f.kind == FaultKind::delay || f.kind == FaultKind::drop) out << ' ' << f.message;
  if (f.node >= 0)
    out << " node=" << f.node;
  else
    out << " replica=" << f.replica << " stage=" << f.stage;
  if (f.kind == FaultKind::delay || f.kind == FaultKind::slow) out << " seconds=" << f.seconds;
  out << " at=" << f.at_step;
  if (f.count >= 0) out << " count=" << f.count;
  return out.str();
}

bool fault_applies(Fault& f, const std::string& message, int64_t step) {
  if (f.count == 0 || step < f.at_step) return false;
  if ((f.kind == FaultKind::delay || f.kind == FaultKind::drop) && message != f.message) return false;
  if (f.kind == FaultKind::slow && message != "step") return false;
  if (f.count > 0) --f.count;
  return true;
}

}  // namespace floe::runtime
