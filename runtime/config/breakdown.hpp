#pragma once
// The paper's Fig. 9 breakdown as job overrides: the rows that bench/elastic measures and
// `floe simulate --rows` predicts, from the static baseline to all four components.
#include <string>
#include <vector>

namespace floe::runtime {

struct BreakdownRow {
  std::string name;
  std::vector<std::string> sets;  // key=value overrides on top of the job
};

//   baseline          static pipeline, no freezing (PipeTransformer's "Pipe + DDP" baseline)
//   freeze-only       schedule freezing, static plan (frozen prefix moves, K and R stay)
//   freeze-cache      freeze-only plus AutoCache
//   freeze-pipe-cache freezing with AutoPipe (K shrinks, freed devices idle) and AutoCache
//   freeze-elastic    schedule freezing with AutoPipe + AutoDP (live transitions), no cache
//   elastic-schedule  all four: freezing, AutoPipe, AutoDP, AutoCache
//   elastic-adaptive  all four, freezing by gradient norms
//   elastic-plasticity all four, freezing by plasticity (docs/freeze.md)
const std::vector<BreakdownRow>& breakdown_rows();

// The rows named in `list` ("a,b,c"), in the table's order. Throws floe::InputError naming
// `what` when a name is not a row.
std::vector<BreakdownRow> select_rows(const std::string& list, const std::string& what);

}  // namespace floe::runtime
