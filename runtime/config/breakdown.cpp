#include "runtime/config/breakdown.hpp"

#include "models/errors.hpp"

#include <algorithm>
#include <sstream>

namespace floe::runtime {

const std::vector<BreakdownRow>& breakdown_rows() {
  static const std::vector<BreakdownRow> rows{
      {"baseline", {"freeze.policy=none", "elastic=false", "cache.enabled=false"}},
      {"freeze-only", {"freeze.policy=schedule", "elastic=false", "cache.enabled=false"}},
      {"freeze-cache", {"freeze.policy=schedule", "elastic=false", "cache.enabled=true"}},
      {"freeze-pipe-cache", {"freeze.policy=schedule", "elastic=true", "autodp=false", "cache.enabled=true"}},
      {"freeze-elastic", {"freeze.policy=schedule", "elastic=true", "autodp=true", "cache.enabled=false"}},
      {"elastic-schedule", {"freeze.policy=schedule", "elastic=true", "autodp=true", "cache.enabled=true"}},
      {"elastic-annealed",
       {"freeze.policy=schedule", "freeze.anneal=\"cosine\"", "elastic=true", "autodp=true", "cache.enabled=true"}},
      {"elastic-adaptive", {"freeze.policy=adaptive", "elastic=true", "autodp=true", "cache.enabled=true"}},
      {"elastic-plasticity", {"freeze.policy=plasticity", "elastic=true", "autodp=true", "cache.enabled=true"}},
  };
  return rows;
}

std::vector<BreakdownRow> select_rows(const std::string& list, const std::string& what) {
  std::vector<std::string> names;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');)
    if (!name.empty()) names.push_back(name);
  std::string known;
  for (const auto& r : breakdown_rows()) known += (known.empty() ? "" : ", ") + r.name;
  for (const auto& n : names)
    if (std::none_of(breakdown_rows().begin(), breakdown_rows().end(), [&](const BreakdownRow& r) { return r.name == n; }))
      throw InputError(what + " " + list + ": " + n + " is not a row (known: " + known + ")");
  if (names.empty()) throw InputError(what + ": no row named (known: " + known + ")");
  std::vector<BreakdownRow> out;
  for (const auto& r : breakdown_rows())
    if (std::find(names.begin(), names.end(), r.name) != names.end()) out.push_back(r);
  return out;
}

}  // namespace floe::runtime
