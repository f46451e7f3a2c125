// The micro-batch profiler: which M a sweep tries and keeps, and the profile file that
// remembers it (round trip, refusal of a damaged file naming it).
#include "models/errors.hpp"
#include "runtime/plan/microbatch_profile.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace floe::runtime;
namespace fs = std::filesystem;

namespace {
std::vector<int> tried(MicroBatchSweep s, const std::vector<double>& seconds) {
  std::vector<int> ms;
  for (double t : seconds) {
    if (s.done()) break;
    if (ms.empty() || ms.back() != s.next()) ms.push_back(s.next());
    s.record(t);
  }
  return ms;
}
}  // namespace

TEST_CASE("a sweep tries M = K..6K within the batch and keeps the fastest", "[profile]") {
  CHECK(tried(MicroBatchSweep(2, 128), std::vector<double>(12, 1.0)) == std::vector<int>{2, 4, 6, 8, 10, 12});
  CHECK(tried(MicroBatchSweep(4, 10), std::vector<double>(4, 1.0)) == std::vector<int>{4, 8});
  CHECK(tried(MicroBatchSweep(4, 3), std::vector<double>(2, 1.0)) == std::vector<int>{3});
  MicroBatchSweep s(2, 128);
  // Per candidate two steps; the first of each pair is slow (a cold start), the fastest counts.
  const std::vector<double> t{0.9, 0.50, 0.8, 0.40, 0.7, 0.30, 0.9, 0.30, 0.9, 0.35, 0.9, 0.6};
  for (double x : t) s.record(x);
  REQUIRE(s.done());
  CHECK(s.best() == 6);  // 6 and 8 tie at 0.30 s: the smaller M
  REQUIRE(s.results().size() == 6);
  CHECK(s.results()[1] == std::pair<int, double>{4, 0.40});
  CHECK_THROWS_AS(s.next(), std::logic_error);
  CHECK_THROWS_AS(s.record(1), std::logic_error);
  CHECK_THROWS_AS(MicroBatchSweep(1, 8).best(), std::logic_error);
  CHECK_THROWS_AS(MicroBatchSweep(0, 8), std::invalid_argument);
}

TEST_CASE("the profile file keeps M per model, batch and K, and a damaged one is refused", "[profile]") {
  const auto dir = fs::temp_directory_path() / ("floe-profile-" + std::to_string(getpid()));
  fs::remove_all(dir);
  const auto path = (dir / "sub" / "mb.json").string();
  const ProfileKey k2{"vit depth=4", 64, 2}, k4{"vit depth=4", 64, 4}, other{"vit depth=6", 64, 2};
  {
    MicroBatchProfile p(path);  // no file yet: empty
    CHECK(!p.lookup(k2));
    MicroBatchSweep s(2, 64, 1);
    for (double t : {0.5, 0.2, 0.3, 0.4, 0.5, 0.6}) s.record(t);
    CHECK(p.store(k2, s).empty());  // creates the folder
    CHECK(p.lookup(k2) == 4);
  }
  MicroBatchProfile again(path);
  CHECK(again.lookup(k2) == 4);
  CHECK(!again.lookup(k4));
  CHECK(!again.lookup(other));
  MicroBatchProfile memory("");
  MicroBatchSweep one(4, 64, 1);
  while (!one.done()) one.record(1.0);
  CHECK(memory.store(k4, one).empty());
  CHECK(memory.lookup(k4) == 4);
  for (const char* bad : {"not json", "{\"version\": 2, \"entries\": []}",
                          "{\"version\": 1, \"entries\": [{\"model\": \"m\", \"batch\": 0, \"stages\": 2, "
                          "\"micro_batches\": 4, \"seconds\": {}}]}",
                          "{\"version\": 1, \"entries\": [{\"model\": \"m\", \"batch\": 8, \"stages\": 2, "
                          "\"micro_batches\": 4, \"seconds\": {\"x\": 1}}]}"}) {
    std::ofstream(path) << bad;
    INFO(bad);
    CHECK_THROWS_WITH(MicroBatchProfile(path), Catch::Contains("micro-batch profile " + path));
  }
  fs::remove_all(dir);
}

TEST_CASE("a profile path under ~/ is resolved against HOME", "[profile]") {
  const char* home = std::getenv("HOME");
  if (home && *home) CHECK(expand_home("~/.cache/x.json") == std::string(home) + "/.cache/x.json");
  CHECK(expand_home("/tmp/x.json") == "/tmp/x.json");
  CHECK(expand_home("").empty());
}
