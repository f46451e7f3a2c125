#include "runtime/control/recovery.hpp"
#include "runtime/control/resume.hpp"

#include <catch2/catch.hpp>

using namespace floe::runtime;

TEST_CASE("plan_recovery: survivors are the replicas on no lost node; the first is the source", "[control]") {
  struct Row {
    std::vector<std::vector<int>> hosts;
    std::vector<int> lost;
    std::vector<int> survivors;
    int source;
  };
  const std::vector<Row> table{
      {{{0}, {1}}, {1}, {0}, 0},                     // two nodes, one replica each: node 1 lost
      {{{0}, {1}}, {0}, {1}, 1},                     // the source need not be replica 0
      {{{0}, {1}}, {0, 1}, {}, -1},                  // all replicas lost: only a checkpoint will do
      {{{0, 1}, {1, 2}, {2}}, {1}, {2}, 2},          // pipelines that span nodes are lost with any of them
      {{{0}, {0}, {1}, {1}}, {0}, {2, 3}, 2},        // several replicas on the lost node
      {{{0}, {1}}, {}, {0, 1}, 0},                   // nothing lost (recovered before)
  };
  for (const auto& r : table) {
    const auto p = plan_recovery(r.hosts, r.lost);
    CHECK(p.survivors == r.survivors);
    CHECK(p.source == r.source);
  }
}

TEST_CASE("step_in_flight: redo, applied, or a checkpoint, from the source's optimizer steps", "[control]") {
  struct Row {
    std::vector<int64_t> steps;
    int64_t global_step;
    InFlight what;
  };
  const std::vector<Row> table{
      {{12, 12}, 12, InFlight::redo},            // the step in flight was not applied: redo it
      {{13, 13}, 12, InFlight::applied},         // a survivor one step ahead: it finished the step
      {{-1, 13}, 12, InFlight::applied},         // a stage with nothing to train does not count
      {{12, 13}, 12, InFlight::checkpoint},      // lost between two stages' optimizer steps
      {{0, 0}, 0, InFlight::redo},               // the very first step
      {{-1, -1}, 5, InFlight::redo},             // everything frozen: nothing to apply
      {{15, 15}, 12, InFlight::inconsistent},    // neither: the job stops, naming both counts
  };
  for (const auto& r : table) {
    const auto d = step_in_flight(r.steps, r.global_step);
    INFO("global step " << r.global_step << ", " << d.why);
    CHECK(static_cast<int>(d.what) == static_cast<int>(r.what));
  }
  CHECK_THAT(step_in_flight({15, 15}, 12).why, Catch::Contains("15") && Catch::Contains("12"));
  CHECK_THAT(step_in_flight({12, 13}, 12).why, Catch::Contains("12..13"));
}

TEST_CASE("resume_point: mid-epoch, the next epoch, or only the end", "[control]") {
  JobState j;
  j.epoch = 2;
  j.step = 7;
  j.decided = true;
  j.epoch_seconds = 3.5;
  auto p = resume_point(j, 4);
  CHECK(p.kind == ResumeKind::mid_epoch);
  CHECK(p.epoch == 2);
  CHECK(p.step == 7);
  CHECK(p.epoch_seconds == 3.5);
  j.decided = false;  // the job's final checkpoint: epoch counts the epochs done
  j.step = 0;
  CHECK(resume_point(j, 4).kind == ResumeKind::next_epoch);  // more epochs configured now
  j.epoch = 4;
  CHECK(resume_point(j, 4).kind == ResumeKind::finish);
}
