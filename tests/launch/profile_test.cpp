// The micro-batch profiler in a real job: pipeline.micro_batches = 0 sweeps M on the first
// training steps of a K = 2 pipeline, trains on with the fastest, and keeps it in the profile
// file; a second job reads it and does not sweep again.
#include "launch/scenario.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

using floe::launch::Scenario;
namespace fs = std::filesystem;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST_CASE("pipeline.micro_batches = 0 profiles M per K once and keeps it", "[profile][elastic]") {
  const auto dir = fs::temp_directory_path() / ("floe-mb-" + std::to_string(getpid()));
  fs::remove_all(dir);
  const auto path = dir / "profile.json";
  auto job = Scenario(2).set("pipeline.micro_batches=0").set("pipeline.profile=\"" + path.string() + "\"");
  const auto first = job.run();
  REQUIRE(first.error.empty());
  const auto j = nlohmann::json::parse(slurp(path));
  REQUIRE(j["entries"].size() == 1);
  const auto& e = j["entries"][0];
  CHECK(e["stages"] == 2);
  CHECK(e["batch"] == 64);
  CHECK(e["seconds"].size() == 6);  // M = 2, 4, ..., 12
  const int m = e["micro_batches"];
  CHECK(m % 2 == 0);
  CHECK(e["seconds"].contains(std::to_string(m)));
  // The sweep ended within the first epoch (16 steps, 12 of them profiled): both epochs report M.
  REQUIRE(first.summary.epochs.size() == 2);
  CHECK(first.summary.epochs[0].micro_batches == m);
  const auto before = slurp(path);
  const auto second = job.run();
  REQUIRE(second.error.empty());
  CHECK(second.summary.epochs[0].micro_batches == m);
  CHECK(slurp(path) == before);  // read, not profiled again
  // Both jobs learn alike: a different M cuts the same steps differently, nothing else.
  CHECK(second.summary.final_test_accuracy == Approx(first.summary.final_test_accuracy).margin(0.05));
  std::ofstream(path) << "{\"version\": 1}";
  const auto damaged = job.run();
  CHECK_THAT(damaged.error, Catch::Contains("micro-batch profile " + path.string()));
  fs::remove_all(dir);
}
