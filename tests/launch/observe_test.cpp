// Observing real runs: the trace follows the Trace Event format, the metrics are JSONL, the
// report renders in a real browser, injected faults show up where they should, and a
// scripted scenario gives the same event order twice.
#include "launch/scenario.hpp"
#include "tests/skip.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

using floe::launch::Scenario;
using floe::runtime::EventKind;
namespace fs = std::filesystem;

namespace {

fs::path temp(const std::string& name) { return fs::temp_directory_path() / ("floe-observe-" + name); }

// Checks what the Trace Event format requires of every event, that flows pair up, and that
// slices on one track nest (Perfetto draws partial overlaps wrongly). Returns slices by name.
std::map<std::string, int> check_trace(const nlohmann::json& j) {
  REQUIRE(j.is_object());
  REQUIRE(j["traceEvents"].is_array());
  std::map<std::string, int> names;
  std::map<long, std::pair<double, std::string>> flow_start;
  std::map<std::pair<int, int>, std::vector<std::pair<double, double>>> tracks;
  const std::set<std::string> phases{"X", "i", "s", "f", "M", "C"};
  for (const auto& e : j["traceEvents"]) {
    INFO(e.dump());
    REQUIRE(e.contains("ph"));
    const std::string ph = e["ph"];
    REQUIRE(phases.count(ph));
    REQUIRE(e["name"].is_string());
    REQUIRE(e["pid"].is_number_integer());
    REQUIRE(e["tid"].is_number_integer());
    if (ph == "M") {
      CHECK(e["args"].is_object());
      continue;
    }
    REQUIRE(e["ts"].is_number());
    CHECK(e["ts"].get<double>() >= 0);
    if (ph == "X") {
      REQUIRE(e["dur"].is_number());
      CHECK(e["dur"].get<double>() >= 0);
      ++names[e["name"].get<std::string>()];
      tracks[{e["pid"], e["tid"]}].push_back({e["ts"].get<double>(), e["ts"].get<double>() + e["dur"].get<double>()});
    }
    if (ph == "i") CHECK(std::string("gpt").find(e["s"].get<std::string>()) != std::string::npos);
    if (ph == "C") CHECK(e["args"].is_object());
    if (ph == "s") flow_start[e["id"].get<long>()] = {e["ts"].get<double>(), e["name"]};
    if (ph == "f") {
      auto it = flow_start.find(e["id"].get<long>());
      REQUIRE(it != flow_start.end());
      CHECK(it->second.first <= e["ts"].get<double>());
      CHECK(it->second.second == e["name"]);
      flow_start.erase(it);
    }
  }
  CHECK(flow_start.empty());
  for (auto& [track, slices] : tracks) {
    std::sort(slices.begin(), slices.end(), [](auto a, auto b) { return a.first < b.first || (a.first == b.first && a.second > b.second); });
    std::vector<double> open;  // ends of the enclosing slices
    for (auto [b, e] : slices) {
      while (!open.empty() && open.back() <= b) open.pop_back();
      INFO("track pid " << track.first << " tid " << track.second << " slice " << b << ".." << e);
      if (!open.empty()) CHECK(e <= open.back());
      open.push_back(e);
    }
  }
  return names;
}

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  return out;
}

}  // namespace

TEST_CASE("a run with a live transition leaves a valid trace, JSONL metrics and an HTML report", "[observe]") {
  const auto trace = temp("trace.json"), metrics = temp("metrics.jsonl"), report = temp("report.html");
  for (const auto& p : {trace, metrics, report}) fs::remove(p);
  auto r = Scenario(4)
               .set("observe.trace=\"" + trace.string() + "\"")
               .set("observe.metrics=\"" + metrics.string() + "\"")
               .set("observe.report=\"" + report.string() + "\"")
               .freeze_at(10, 2)
               .run();
  INFO(r.error);
  REQUIRE(r.error.empty());

  std::ifstream tin(trace);
  const auto names = check_trace(nlohmann::json::parse(tin));
  CHECK(names.count("F0"));
  CHECK(names.count("B0"));
  CHECK(names.count("all-reduce"));
  CHECK(names.count("transition"));
  CHECK(names.count("spawn"));

  std::ifstream min(metrics);
  std::map<std::string, int> kinds;
  std::string line;
  while (std::getline(min, line)) {
    auto j = nlohmann::json::parse(line);  // every line is one JSON object
    ++kinds[j["kind"].get<std::string>()];
    if (j["kind"] == "step") {
      CHECK(j.contains("loss"));
      CHECK(j["bubble"].size() >= 1);
    }
  }
  const auto steps = r.summary.steps;
  CHECK(kinds["step"] == steps);
  CHECK(kinds["epoch"] == 2);
  CHECK(kinds["transition"] >= 1);
  CHECK(kinds["job"] == 1);
  // The summary carries the bubble accounting too; the transition moved to K=1, R=4.
  REQUIRE(r.summary.epochs.size() == 2);
  CHECK(r.summary.epochs[1].stage_bubble_fraction.size() == 1);
  CHECK(r.summary.epochs[1].replicas == 4);
  CHECK(r.summary.epochs[0].samples == 1024);  // the mid-epoch transition lost no sample

  std::ifstream hin(report);
  const std::string html((std::istreambuf_iterator<char>(hin)), std::istreambuf_iterator<char>());
  CHECK(html.find("<svg class=\"chart\"") != std::string::npos);
  CHECK(html.find("http") == std::string::npos);  // nothing fetched from the network
  for (const auto& p : {trace, metrics, report}) fs::remove(p);
}

TEST_CASE("the HTML report draws its charts in headless Chromium", "[observe][browser][needs-chromium]") {
  const std::string chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium)) FLOE_SKIP(chromium + " is not installed (make test installs Debian's chromium package)");
  const auto report = temp("browser.html");
  auto r = Scenario(2).set("observe.report=\"" + report.string() + "\"").freeze_at(10, 1).run();
  REQUIRE(r.error.empty());
  const auto profile = temp("chromium-profile");
  const auto dom = run_capture(chromium + " --headless --no-sandbox --disable-gpu --user-data-dir=" + profile.string() +
                               " --dump-dom file://" + report.string() + " 2>/dev/null");
  INFO(dom.substr(0, 400));
  const auto count = [&](const std::string& attr) {
    const auto at = dom.find(attr + "=\"");
    return at == std::string::npos ? -1 : std::stoi(dom.substr(at + attr.size() + 2));
  };
  CHECK(count("data-charts") == 5);
  CHECK(count("data-charts-drawn") == 5);  // every chart laid out with non-empty lines
  fs::remove(report);
  fs::remove_all(profile);
}

TEST_CASE("an injected delay shows up as idle time of the delayed stage", "[observe][faults]") {
  // K = 2, M = 4: from step 12, every activation into stage 1 is held 100 ms on arrival. The
  // four are held side by side, so stage 1 waits about 100 ms more per step (less the few
  // ms in which stage 0 still computes the later micro-batches).
  const double delay = 0.1;
  auto r = Scenario(2).set("epochs=1").fault("delay activation replica=0 stage=1 seconds=0.1 at=12").run();
  INFO(r.error);
  REQUIRE(r.error.empty());
  double idle_before = 0, idle_after = 0;
  int before = 0, after = 0;
  for (const auto& e : r.of(EventKind::step)) {
    REQUIRE(e.per_stage.size() == 2);
    const double idle1 = e.per_stage[1] * e.values.at("makespan");
    if (e.step >= 2 && e.step < 12) idle_before += idle1, ++before;
    if (e.step >= 12) idle_after += idle1, ++after;
  }
  REQUIRE(before > 0);
  REQUIRE(after > 0);
  CHECK(idle_after / after - idle_before / before > 0.7 * delay);
  CHECK(r.of(EventKind::fault).size() >= 4);  // each held message is reported
}

TEST_CASE("a slowed stage is busier and its neighbour waits for it", "[observe][faults]") {
  auto r = Scenario(2).set("epochs=1").fault("slow replica=0 stage=1 seconds=0.01 at=8").run();
  REQUIRE(r.error.empty());
  std::map<bool, std::vector<double>> busy1, bubble0;
  for (const auto& e : r.of(EventKind::stage_step))
    if (e.stage == 1 && e.detail.empty() && e.step >= 2) busy1[e.step >= 8].push_back(e.values.at("busy"));
  for (const auto& e : r.of(EventKind::step))
    if (e.step >= 2) bubble0[e.step >= 8].push_back(e.per_stage[0]);
  auto mean = [](const std::vector<double>& v) {
    REQUIRE(!v.empty());
    double s = 0;
    for (double x : v) s += x;
    return s / v.size();
  };
  // 4 forwards and 4 backwards sleep 10 ms each on stage 1: at least 80 ms more of its busy
  // time (a sleep never ends early), however loaded the machine is.
  CHECK(mean(busy1[true]) >= 8 * 0.01);
  CHECK(mean(busy1[true]) > mean(busy1[false]));
  CHECK(mean(bubble0[true]) > mean(bubble0[false]));
}

TEST_CASE("a dropped message stops the job at the step deadline with a clear error", "[observe][faults]") {
  auto r = Scenario(2).set("epochs=1").set("step_timeout=2").fault("drop gradient replica=0 stage=0 at=3 count=1").run();
  CHECK(r.error.find("step 3") != std::string::npos);
  CHECK(r.error.find("step_timeout") != std::string::npos);
  CHECK(r.summary.epochs.empty());
  CHECK(r.of(EventKind::fault).size() >= 2);  // the drop, and the stop it caused
}

TEST_CASE("a killed stage stops the job with the reason, and the observers still get every event", "[observe][faults]") {
  auto r = Scenario(2).set("epochs=1").fault("kill replica=0 stage=1 at=5").run();
  CHECK(!r.error.empty());
  INFO(r.error);
  CHECK(r.error.find("step 5") != std::string::npos);
  CHECK(r.of(EventKind::step).size() == 5);
}

TEST_CASE("a scripted scenario gives the same event order twice", "[observe][scenario]") {
  // Two live freezes at scripted steps on 4 devices (K 2 -> 2 -> 1, R 1 -> 2 -> 4). Every
  // actor's own events come in the same order on both runs; only the interleaving of
  // different devices is left to real concurrency, and so is the moment a tensor arrives
  // (before or after the stage's previous action): transfers are compared as a set.
  // AutoCache is off: whether it pays is measured on the run (timing), and rows advanced
  // from a cached level may differ from a recomputation in the last bit.
  auto script = [] {
    return Scenario(4).set("epochs=2").set("cache.enabled=false").freeze_at(6, 1).freeze_at(20, 3).run();
  };
  const auto a = script(), b = script();
  REQUIRE(a.error.empty());
  REQUIRE(b.error.empty());
  auto streams = [](const floe::launch::ScenarioResult& r) {
    std::map<std::pair<int, int>, std::vector<std::string>> out;  // by (replica, stage); (-1, -1) the coordinator
    for (const auto& e : r.events) {
      const bool staged = e.kind == EventKind::forward || e.kind == EventKind::backward ||
                          e.kind == EventKind::reduce || e.kind == EventKind::optimizer ||
                          e.kind == EventKind::transfer || e.kind == EventKind::stage_step;
      if (e.kind == EventKind::transfer) {
        out[{e.replica, -2 - e.stage}].push_back(std::to_string(e.step) + "/" + std::to_string(e.micro_batch) + "/" +
                                                 e.detail);
        continue;
      }
      out[staged ? std::pair{e.replica, e.stage} : std::pair{-1, -1}].push_back(
          std::string(floe::runtime::kind_name(e.kind)) + "/" + std::to_string(e.epoch) + "/" +
          std::to_string(e.step) + "/" + std::to_string(e.micro_batch) + "/" + e.detail);
    }
    for (auto& [source, events] : out)
      if (source.second <= -2) std::sort(events.begin(), events.end());
    return out;
  };
  const auto sa = streams(a), sb = streams(b);
  // The coordinator; stages (0,0) (0,1) (1,0) (1,1) (2,0) (3,0); transfers into the four
  // stages of the two-stage pipelines (activations up, gradients down).
  CHECK(sa.size() == 1 + 6 + 4);
  REQUIRE(sa.size() == sb.size());
  for (const auto& [source, events] : sa) {
    INFO("replica " << source.first << " stage " << source.second);
    REQUIRE(sb.count(source));
    const auto& other = sb.at(source);
    size_t first = 0;
    while (first < events.size() && first < other.size() && events[first] == other[first]) ++first;
    INFO("first difference at " << first << " of " << events.size() << ": "
                                << (first < events.size() ? events[first] : "end") << " vs "
                                << (first < other.size() ? other[first] : "end"));
    CHECK(events == other);
  }
  // The script happened: freezes at the scripted steps, and training is bit-identical.
  const auto f = a.of(EventKind::freeze);
  REQUIRE(f.size() == 2);
  CHECK(f[0].step == 6);
  CHECK(f[1].step == 20);
  CHECK(a.summary.final_test_loss == b.summary.final_test_loss);
  CHECK(a.summary.epochs[0].samples == 1024);
}
