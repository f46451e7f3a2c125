// The floe binary as a user runs it: bad input exits non-zero with a message naming it;
// a small job runs end to end and writes its summary.
#include "launch/blas.hpp"
#include "tests/launch/processes.hpp"
#include "tests/skip.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

using floe::test::run_floe;

TEST_CASE("where OpenBLAS takes the CPU for a Prescott, floe restarts itself on the CPU's kernels", "[cli][needs-prescott-openblas]") {
  const auto forced = floe::launch::better_blas_kernels();
  if (forced.empty()) FLOE_SKIP("OpenBLAS runs " + floe::launch::blas_kernels() + "'s kernels here, not Prescott's on a CPU with AVX2 or AVX-512");
  const auto restarted = run_floe("plan --set devices=3", "-u OPENBLAS_CORETYPE");
  INFO(restarted.output);
  CHECK(restarted.code == 0);
  CHECK_THAT(restarted.output, Catch::Contains(std::string("restarted with OPENBLAS_CORETYPE=") + forced));
  CHECK_THAT(restarted.output, Catch::Contains("3 devices"));  // the same arguments after the restart
  const auto chosen = run_floe("plan --set devices=3", "OPENBLAS_CORETYPE=Prescott");  // a user's choice stays
  INFO(chosen.output);
  CHECK(chosen.code == 0);
  CHECK_THAT(chosen.output, !Catch::Contains("restarted"));
  CHECK_THAT(chosen.output, Catch::Contains("3 devices"));
}

TEST_CASE("an unknown config key exits non-zero and names the key", "[cli]") {
  auto r = run_floe("train --set model.dpeth=3");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("unknown config key 'model.dpeth'"));
}

TEST_CASE("a bad value exits non-zero and names key, value and expectation", "[cli]") {
  auto r = run_floe("train --set epochs=many");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("'epochs'") && Catch::Contains("many") && Catch::Contains("expected"));
  auto f = std::filesystem::temp_directory_path() / "floe-bad.toml";
  std::ofstream(f) << "[pipeline]\nlength = \"two\"\n";
  r = run_floe("train --config " + f.string());
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains(f.string()) && Catch::Contains("pipeline.length"));
  std::filesystem::remove(f);
}

TEST_CASE("a missing data file exits non-zero and names the file", "[cli]") {
  auto r = run_floe("train --set data.root=/nonexistent/fmnist --set epochs=1");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("/nonexistent/fmnist/train-images-idx3-ubyte.gz"));
}

TEST_CASE("a missing config file and an unknown flag are refused", "[cli]") {
  auto r = run_floe("train --config /nonexistent/job.toml");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("/nonexistent/job.toml"));
  r = run_floe("train --frobnicate");
  CHECK(r.code != 0);
  CHECK_THAT(r.output, Catch::Contains("frobnicate"));
}

TEST_CASE("help explains the options and every config key", "[cli]") {
  auto r = run_floe("--help");
  CHECK(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("train"));
  r = run_floe("train --help");
  CHECK(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("--summary") && Catch::Contains("pipeline.micro_batches") &&
                           Catch::Contains("optimizer.warmup"));
}

TEST_CASE("floe plan: replicas = auto fills the devices; an explicit count says which devices idle", "[cli]") {
  auto r = run_floe("plan --set devices=4 --set pipeline.length=2");
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("R=2") && !Catch::Contains("idle devices"));
  r = run_floe("plan --set devices=4 --set pipeline.length=2 --set replicas=1");
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("R=1") && Catch::Contains("idle devices: 2 of 4"));
}

TEST_CASE("a small pipelined, data-parallel job trains end to end and writes its summary", "[cli]") {
  const auto out = std::filesystem::temp_directory_path() / "floe-cli-summary.json";
  std::filesystem::remove(out);
  auto r = run_floe("train --set data.dataset=synthetic --set data.subset=512 --set data.test_subset=256 "
                "--set model.depth=2 --set model.dim=16 --set model.heads=2 --set model.patch=7 --set epochs=2 "
                "--set devices=4 --set pipeline.length=2 --set replicas=2 --set batch_size=32 --set optimizer.warmup=4 "
                "--set log_interval=8 --summary " + out.string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  // The console observer: a progress line every 8 of the 16 steps of each epoch (not a terminal).
  for (const char* line : {"epoch 1/2 step 8/16  loss", "epoch 1/2 step 16/16", "epoch 2/2 step 16/16"})
    CHECK_THAT(r.output, Catch::Contains(line));
  CHECK_THAT(r.output, !Catch::Contains("step 4/16"));
  std::ifstream in(out);
  auto j = nlohmann::json::parse(in);
  CHECK(j["epochs"].size() == 2);
  CHECK(j["final_test_accuracy"].get<double>() > 0.5);  // synthetic classes are easy to separate
  CHECK(j["total_seconds"].get<double>() > 0);
  for (const char* k : {"epoch", "train_loss", "test_accuracy", "seconds", "samples_per_second", "pipeline_length",
                        "replicas", "micro_batches", "frozen_layers"})
    CHECK(j["epochs"][0].contains(k));
  CHECK(j["epochs"][1]["replicas"] == 2);
  CHECK(j["epochs"][1]["pipeline_length"] == 2);
  std::filesystem::remove(out);
}

TEST_CASE("docs/config.md documents every config key that floe accepts", "[cli][docs]") {
  auto r = run_floe("train --help");
  REQUIRE(r.code == 0);
  std::ifstream doc(std::string(FLOE_SOURCE_DIR) + "/docs/config.md");
  const std::string text((std::istreambuf_iterator<char>(doc)), std::istreambuf_iterator<char>());
  REQUIRE(!text.empty());
  std::istringstream lines(r.output.substr(r.output.find("Configuration keys")));
  std::string line;
  std::getline(lines, line);
  int keys = 0;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string key;
    if (!(words >> key)) continue;
    INFO("key " << key);
    CHECK(text.find("`" + key + "`") != std::string::npos);
    ++keys;
  }
  CHECK(keys >= 30);
}
