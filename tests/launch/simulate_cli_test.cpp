// floe profile and floe simulate as a user runs them: the paper's job on its testbed, a
// profile of a real (tiny) job here compared with a real run of it, and bad input.
#include "tests/launch/processes.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using floe::test::run_floe;
namespace fs = std::filesystem;

namespace {
const std::string src = FLOE_SOURCE_DIR;
const std::string paper = " --config " + src + "/docs/examples/paper-vit-b16.toml --hardware " + src +
                          "/docs/hardware/paper-testbed.toml --cluster 2x8 --samples 1281167 --eval-samples 50000 "
                          "--paper-batch";
nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}
}  // namespace

TEST_CASE("floe simulate runs the paper's ViT-B/16 job on its testbed with the paper's plans", "[cli][simulate]") {
  const auto dir = fs::temp_directory_path() / ("floe-sim-" + std::to_string(getpid()));
  fs::create_directories(dir);
  auto r = run_floe("simulate" + paper + " --json " + (dir / "s.json").string() + " --trace " + (dir / "t.json").string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  const auto s = read_json(dir / "s.json");
  REQUIRE(s["epochs"].size() == 10);
  // spec §3.6: K = 8, 8, 4, 2, 2, 1 ... at F = 0, 4, 7, 9, 10, 11 ...
  std::vector<int> k, f;
  for (const auto& e : s["epochs"]) {
    k.push_back(e["pipeline_length"]);
    f.push_back(e["frozen_layers"]);
  }
  CHECK(k == std::vector<int>{8, 8, 4, 2, 2, 1, 1, 1, 1, 1});
  CHECK(f == std::vector<int>{0, 4, 7, 9, 10, 11, 11, 12, 12, 12});
  CHECK(s["epochs"][9]["replicas"] == 16);
  CHECK(s["simulated"]["hardware"].get<std::string>().find("RTX 5000") != std::string::npos);
  CHECK(s["total_seconds"].get<double>() > 0);
  const auto t = read_json(dir / "t.json");
  CHECK(t["traceEvents"].size() > 100);
  // The breakdown rows, side by side: all four components beat the baseline.
  r = run_floe("simulate" + paper + " --rows baseline,elastic-schedule");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("baseline") && Catch::Contains("elastic-schedule"));
  // The BERT-large example prices 24 blocks of 256 tokens from their shapes.
  r = run_floe("simulate --config " + src + "/docs/examples/paper-bert-large.toml --hardware " + src +
               "/docs/hardware/paper-testbed.toml --cluster 2x8 --samples 88641 --eval-samples 10833 --sequence 256 "
               "--paper-batch");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("depth=24"));
  fs::remove_all(dir);
}

TEST_CASE("floe profile measures a job here and floe simulate compares it with a real run", "[cli][simulate]") {
  const auto dir = fs::temp_directory_path() / ("floe-prof-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string job = " --set data.dataset=\"synthetic\" --set model.depth=2 --set model.dim=32 --set batch_size=32"
                          " --set epochs=2 --set freeze.start=1";
  auto r = run_floe("train" + job + " --set data.subset=640 --summary " + (dir / "run.json").string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  r = run_floe("profile" + job + " --micro-batches 8,16,32 --repeats 1 --calibrate 6 --out " + (dir / "p.json").string());
  REQUIRE(r.code == 0);
  const auto p = read_json(dir / "p.json");
  CHECK(p["units"].size() == 7);  // embed, 2 x (attn, mlp), norm, head
  CHECK(p["units"][1]["points"].size() == 3);
  CHECK(p["calibration"].get<double>() > 0);
  r = run_floe("simulate --profile " + (dir / "p.json").string() + " --compare " + (dir / "run.json").string() + job);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("measured") && Catch::Contains("simulated") && Catch::Contains("K2R1F0"));
  // A profile of another model is refused, naming the unit that differs.
  r = run_floe("simulate --profile " + (dir / "p.json").string() + " --set model.depth=3 --samples 100");
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains("cost model"));
  fs::remove_all(dir);
}

TEST_CASE("floe simulate: bad input names it and exits 2", "[cli][simulate]") {
  auto r = run_floe("simulate --samples 10");
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains("--profile") && Catch::Contains("--hardware"));
  r = run_floe("simulate --config " + src + "/docs/examples/paper-vit-b16.toml --hardware " + src +
                "/docs/hardware/paper-testbed.toml --samples 100 --cluster 2by8");
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains("NODESxDEVICES"));
  r = run_floe("simulate" + paper + " --set freeze.policy=\"adaptive\"");
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains("gradient norms"));
  const auto bad = fs::temp_directory_path() / ("floe-hw-" + std::to_string(getpid()) + ".toml");
  std::ofstream(bad) << "intra_bandwidth = \"fast\"\n";
  r = run_floe("simulate --hardware " + bad.string() + " --samples 10");
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains(bad.string()) && Catch::Contains("intra_bandwidth"));
  fs::remove(bad);
  r = run_floe("profile --out /nonexistent/dir/p.json");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("/nonexistent/dir/p.json"));
}
