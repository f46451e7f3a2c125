// The event stream's plain parts: fault scripts, bubble accounting, metrics lines, and the
// trace writer's output for a hand-made stream.
#include "models/errors.hpp"
#include "runtime/observe/event_writer.hpp"
#include "runtime/control/faults.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <set>

using namespace floe::runtime;

TEST_CASE("fault scripts parse, print back, and count down", "[events][faults]") {
  auto f = parse_fault("delay activation replica=1 stage=2 seconds=0.05 at=10 count=2");
  CHECK(f.kind == FaultKind::delay);
  CHECK(f.message == "activation");
  CHECK(f.replica == 1);
  CHECK(f.stage == 2);
  CHECK(f.seconds == Approx(0.05));
  CHECK(f.at_step == 10);
  CHECK(parse_fault(describe(f)).count == 2);
  CHECK_FALSE(fault_applies(f, "activation", 9));  // not yet
  CHECK_FALSE(fault_applies(f, "gradient", 10));   // another message
  CHECK(fault_applies(f, "activation", 10));
  CHECK(fault_applies(f, "activation", 11));
  CHECK_FALSE(fault_applies(f, "activation", 12));  // used up
  auto slow = parse_fault("slow stage=1 seconds=0.01");
  CHECK(slow.count == -1);
  CHECK(fault_applies(slow, "step", 0));
  CHECK(fault_applies(slow, "step", 1000));
  CHECK(parse_fault("kill replica=1 stage=-1 at=30").stage == -1);
  const auto node = parse_fault("kill node=1 at=30");
  CHECK(node.node == 1);
  CHECK(describe(node) == "kill node=1 at=30");
}

TEST_CASE("bad fault scripts are refused with the text and what was expected", "[events][faults]") {
  for (const char* bad : {"", "explode stage=1", "delay stage=1", "delay activation seconds=-1", "slow seconds=x",
                          "drop activation stage=-1", "slow seconds=1 colour=red", "delay weights seconds=1",
                          "kill at=-3", "drop activation count=0", "slow node=1 seconds=1", "kill node=-2"}) {
    INFO(bad);
    try {
      parse_fault(bad);
      FAIL("accepted");
    } catch (const floe::InputError& e) {
      CHECK(std::string(e.what()).find("fault \"" + std::string(bad) + "\"") != std::string::npos);
    }
  }
}

TEST_CASE("bubble fraction is the idle share of the replicas' step time per position", "[events][bubble]") {
  const auto b = bubble_fractions({3.0, 1.5, 0.0}, 4.0);
  REQUIRE(b.size() == 3);
  CHECK(b[0] == Approx(0.25));
  CHECK(b[1] == Approx(0.625));
  CHECK(b[2] == Approx(1.0));
  CHECK(bubble_fractions({1.0}, 0.0)[0] == 0.0);  // no time measured: no bubble claimed
  CHECK(bubble_fractions({5.0}, 4.0)[0] == 0.0);  // clock skew never gives a negative share
}

TEST_CASE("a metrics line is one JSON object with times relative to the job", "[events][metrics]") {
  Event e;
  e.kind = EventKind::step;
  e.start_us = 3'500'000;
  e.duration_us = 250'000;
  e.epoch = 1;
  e.step = 42;
  e.values = {{"loss", 0.5}, {"samples", 128}};
  e.per_stage = {0.1, 0.2};
  const auto line = to_json_line(e, 1'000'000);
  CHECK(line.find('\n') == std::string::npos);
  auto j = nlohmann::json::parse(line);
  CHECK(j["kind"] == "step");
  CHECK(j["t"].get<double>() == Approx(2.5));
  CHECK(j["seconds"].get<double>() == Approx(0.25));
  CHECK(j["step"] == 42);
  CHECK(j["loss"].get<double>() == Approx(0.5));
  CHECK(j["bubble"].size() == 2);
}

TEST_CASE("the trace writer lays stages out per device with nested slices and flows", "[events][trace]") {
  const auto path = std::filesystem::temp_directory_path() / "floe-trace-unit.json";
  auto w = make_trace_writer(path.string());
  auto ev = [](EventKind k, int64_t start, int64_t dur, int stage, int mb) {
    Event e;
    e.kind = k;
    e.start_us = start;
    e.duration_us = dur;
    e.step = 0;
    e.replica = 0;
    e.stage = stage;
    e.device = stage;
    e.micro_batch = mb;
    return e;
  };
  Event job;
  job.kind = EventKind::job;
  job.start_us = 1000;
  w->on(job);
  w->on(ev(EventKind::stage_step, 1000, 500, 0, -1));
  w->on(ev(EventKind::forward, 1010, 100, 0, 0));
  auto t = ev(EventKind::transfer, 1100, 20, 1, 0);
  t.detail = "activation";
  t.values = {{"from_stage", 0}, {"from_device", 0}, {"bytes", 4096}};
  w->on(t);
  w->on(ev(EventKind::forward, 1130, 100, 1, 0));
  w->flush();
  std::ifstream in(path);
  auto j = nlohmann::json::parse(in);
  int slices = 0, flows = 0;
  std::set<int> pids;
  for (const auto& e : j["traceEvents"]) {
    if (e["ph"] == "X") {
      ++slices;
      pids.insert(e["pid"].get<int>());
      CHECK(e["ts"].get<double>() >= 0);
    }
    if (e["ph"] == "s" || e["ph"] == "f") ++flows;
  }
  CHECK(slices == 3);
  CHECK(flows == 2);
  CHECK(pids == std::set<int>{1, 2});  // device 0 and device 1
  std::filesystem::remove(path);
}

TEST_CASE("observer files that cannot be written are refused up front, naming the path", "[events]") {
  CHECK_THROWS_WITH(make_metrics_writer("/nonexistent-dir/m.jsonl"), Catch::Contains("/nonexistent-dir/m.jsonl"));
  CHECK_THROWS_WITH(make_trace_writer("/nonexistent-dir/t.json"), Catch::Contains("/nonexistent-dir/t.json"));
  CHECK_THROWS_WITH(make_report_writer("/nonexistent-dir/r.html", "x"), Catch::Contains("/nonexistent-dir/r.html"));
}
