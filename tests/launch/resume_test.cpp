// Checkpoints and resume as a user meets them: `floe train` killed with SIGKILL resumes with
// `--resume` to the very weights of an undisturbed run; a corrupted newest checkpoint is
// passed over (and said so); a job resumes on a different device count; SIGUSR1 asks for a
// checkpoint; a state dict starts a job. Real processes, real files.
#include <torch/torch.h>

#include "runtime/state/state_dict.hpp"

#include "tests/launch/processes.hpp"

#include <nlohmann/json.hpp>

using namespace floe;
using test::scratch;
using test::sh;
using test::slurp;
namespace fs = std::filesystem;

namespace {

// 3 epochs of 12 steps of a tiny ViT; 2 of its 4 blocks freeze after epoch 1 (K=2 R=1 ->
// K=1 R=2). The AutoCache is off: with it, a resumed run recomputes the frozen prefix for
// other batches than the original cached it with, which moves the last bits (docs/checkpoints.md).
const std::string job =
    " --set data.dataset=synthetic --set data.subset=768 --set data.test_subset=256 --set model.depth=4"
    " --set model.dim=16 --set model.heads=2 --set model.patch=7 --set batch_size=64 --set optimizer.warmup=4"
    " --set epochs=3 --set devices=2 --set pipeline.length=2 --set pipeline.micro_batches=2"
    " --set freeze.policy=manual --set 'freeze.script=[0, 2]' --set cache.enabled=false";

// The largest absolute difference between two state dicts (they must hold the same tensors).
double largest_difference(const fs::path& a, const fs::path& b) {
  const auto x = runtime::load_state_dict(a.string()), y = runtime::load_state_dict(b.string());
  REQUIRE(x.size() == y.size());
  double worst = 0;
  for (const auto& [name, t] : x) {
    REQUIRE(y.count(name));
    worst = std::max(worst, (t - y.at(name)).abs().max().item<double>());
  }
  return worst;
}

}  // namespace

namespace {

// `floe train` of `job`, killed with SIGKILL after its checkpoint at step 16, resumes to the
// weights of the same job run undisturbed.
void check_sigkill_resume(const std::string& name, const std::string& job) {
  const auto dir = scratch(name);
  const int code = sh(dir, "$F train" + job + " --save-weights whole.pt > whole.log 2>&1 || exit 10\n"
                           "$F train" + job + " --set checkpoint.dir=ck --set checkpoint.interval=4"
                           " --save-weights resumed.pt > first.log 2>&1 &\n"
                           "pid=$!\n"
                           "for i in $(seq 1200); do [ -d ck/step-000000016 ] && break; sleep 0.05; done\n"
                           "kill -9 $pid; wait $pid; echo $? > killed.code\n"
                           "$F train --resume ck --summary resumed.json > second.log 2>&1 || exit 11");
  const auto second = slurp(dir / "second.log");
  INFO(slurp(dir / "whole.log") << slurp(dir / "first.log") << second);
  REQUIRE(code == 0);
  CHECK(slurp(dir / "killed.code").rfind("137", 0) == 0);  // it really died mid-run
  CHECK_THAT(second, Catch::Contains("resuming from ck/step-0000000"));
  CHECK_FALSE(fs::exists(dir / "first.json"));
  const auto summary = nlohmann::json::parse(slurp(dir / "resumed.json"));
  CHECK(summary["epochs"].size() == 3);  // the epochs before the kill come from the checkpoint
  CHECK(summary["steps"] == 36);
  CHECK(summary["resumed_at_step"].get<int>() >= 16);
  REQUIRE(summary["transitions"].size() == 1);
  CHECK(largest_difference(dir / "whole.pt", dir / "resumed.pt") == 0.0);
  fs::remove_all(dir);
}

}  // namespace

TEST_CASE("a job killed with SIGKILL resumes from its last checkpoint to the same weights, bit for bit", "[resume]") {
  check_sigkill_resume("sigkill", job);
}

TEST_CASE("a ZB-V job (two chunks per device) killed with SIGKILL resumes with its chunks, bit for bit", "[resume]") {
  // The freeze comes after epoch 2, so the checkpoint at step 16 holds K=2 with 2 chunks each.
  check_sigkill_resume("sigkill-zbv", job + " --set pipeline.schedule=zb-v --set 'freeze.script=[0, 0, 2]'");
}

TEST_CASE("a cluster job whose coordinator was killed resumes with `floe coordinator --resume`, bit for bit", "[resume][cluster]") {
  const auto dir = scratch("coordinator");
  const auto at = "127.0.0.1:" + std::to_string(test::free_port());
  const auto again = "127.0.0.1:" + std::to_string(test::free_port());
  const int code = sh(dir, "$F train" + job + " --save-weights whole.pt > whole.log 2>&1 || exit 10\n"
                           "export FLOE_SECRET=k\n"
                           "$F coordinator --listen " + at + " --nodes 1" + job + " --set checkpoint.dir=ck"
                           " --set checkpoint.interval=4 > first.log 2>&1 &\n"
                           "pid=$!\n"
                           "$F node --join " + at + " --devices cpu:2 > node1.log 2>&1 &\n"
                           "node=$!\n"
                           "for i in $(seq 1200); do [ -d ck/step-000000016 ] && break; sleep 0.05; done\n"
                           "kill -9 $pid; wait $node; echo $? > node1.code\n"
                           "$F coordinator --listen " + again + " --nodes 1 --resume ck --save-weights resumed.pt"
                           " --summary resumed.json > second.log 2>&1 &\n"
                           "pid=$!\n"
                           "$F node --join " + again + " --devices cpu:2 > node2.log 2>&1 || exit 11\n"
                           "wait $pid || exit 12");
  const auto second = slurp(dir / "second.log");
  INFO(slurp(dir / "first.log") << slurp(dir / "node1.log") << second << slurp(dir / "node2.log"));
  REQUIRE(code == 0);
  CHECK(slurp(dir / "node1.code").rfind("1", 0) == 0);  // the node noticed its coordinator was gone
  CHECK_THAT(slurp(dir / "node1.log"), Catch::Contains("lost the coordinator"));
  CHECK_THAT(second, Catch::Contains("resuming from ck/step-0000000"));
  const auto summary = nlohmann::json::parse(slurp(dir / "resumed.json"));
  CHECK(summary["epochs"].size() == 3);
  CHECK(summary["steps"] == 36);
  CHECK(largest_difference(dir / "whole.pt", dir / "resumed.pt") == 0.0);
  fs::remove_all(dir);
}

TEST_CASE("a corrupted newest checkpoint is passed over, and a job resumes on other devices", "[resume]") {
  const auto dir = scratch("fallback");
  int code = sh(dir, "$F train" + job + " --set checkpoint.dir=ck --set checkpoint.interval=4 --set checkpoint.keep=20"
                     " --save-weights whole.pt --summary whole.json > whole.log 2>&1");
  INFO(slurp(dir / "whole.log"));
  REQUIRE(code == 0);
  REQUIRE(fs::exists(dir / "ck" / "step-000000036"));  // the final one
  REQUIRE(fs::exists(dir / "ck" / "step-000000016"));

  // Damage the newest: the resumed run says so and starts from step 32, to the same end.
  {
    std::fstream f(dir / "ck" / "step-000000036" / "parameters.pt", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  code = sh(dir, "$F train --resume ck --save-weights again.pt > again.log 2>&1");
  const auto again = slurp(dir / "again.log");
  INFO(again);
  REQUIRE(code == 0);
  CHECK_THAT(again, Catch::Contains("skipping a damaged checkpoint") && Catch::Contains("step-000000036/parameters.pt") &&
                        Catch::Contains("corrupt"));
  CHECK_THAT(again, Catch::Contains("resuming from ck/step-000000032"));
  CHECK(largest_difference(dir / "whole.pt", dir / "again.pt") == 0.0);

  // Twice the devices from step 16 (epoch 2, after the freeze): re-planned, and the loss goes on
  // where it was.
  code = sh(dir, "$F train --resume ck/step-000000016 --set devices=4 --save-weights wide.pt --summary wide.json"
                 " > wide.log 2>&1");
  const auto wide_log = slurp(dir / "wide.log");
  INFO(wide_log);
  REQUIRE(code == 0);
  CHECK_THAT(wide_log, Catch::Contains("re-planned"));
  const auto whole = nlohmann::json::parse(slurp(dir / "whole.json"));
  const auto wide = nlohmann::json::parse(slurp(dir / "wide.json"));
  REQUIRE(wide["epochs"].size() == 3);
  CHECK(wide["epochs"][2]["replicas"].get<int>() > whole["epochs"][2]["replicas"].get<int>());
  for (int e : {1, 2}) {
    const double a = whole["epochs"][e]["train_loss"], b = wide["epochs"][e]["train_loss"];
    INFO("epoch " << e + 1 << " train loss: undisturbed " << a << ", resumed on 4 devices " << b);
    CHECK(std::abs(a - b) < 0.02 * a);
  }
  CHECK(std::abs(whole["final_test_accuracy"].get<double>() - wide["final_test_accuracy"].get<double>()) < 0.03);
  fs::remove_all(dir);
}

TEST_CASE("SIGUSR1 asks a running job for a checkpoint", "[resume]") {
  const auto dir = scratch("sigusr1");
  const int code = sh(dir, "$F train" + job + " --set epochs=6 --set checkpoint.dir=ck --set checkpoint.interval=0"
                           " --set checkpoint.keep=5 > run.log 2>&1 &\n"
                           "pid=$!\n"
                           "for i in $(seq 600); do grep -q 'epoch 1/6 ' run.log && break; sleep 0.05; done\n"
                           "kill -USR1 $pid; wait $pid");
  const auto log = slurp(dir / "run.log");
  INFO(log);
  REQUIRE(code == 0);
  std::vector<std::string> steps;
  for (const auto& e : fs::directory_iterator(dir / "ck")) steps.push_back(e.path().filename().string());
  std::sort(steps.begin(), steps.end());
  REQUIRE(steps.size() == 2);  // the one asked for, and the final one
  CHECK(steps[0] > "step-000000011");
  CHECK(steps[0] < "step-000000072");
  CHECK(steps[1] == "step-000000072");
  fs::remove_all(dir);
}

TEST_CASE("init_weights starts a job from a state dict; a mismatched one is refused by name", "[resume]") {
  const auto dir = scratch("init");
  int code = sh(dir, "$F train" + job + " --save-weights trained.pt --summary trained.json > trained.log 2>&1");
  REQUIRE(code == 0);
  // With a learning rate of 0 the weights stay as loaded: the test accuracy is the trained one.
  code = sh(dir, "$F train" + job + " --set epochs=1 --set optimizer.lr=0 --set optimizer.min_lr=0"
                 " --set init_weights=trained.pt --summary frozen.json > frozen.log 2>&1");
  INFO(slurp(dir / "frozen.log"));
  REQUIRE(code == 0);
  const auto trained = nlohmann::json::parse(slurp(dir / "trained.json"));
  const auto frozen = nlohmann::json::parse(slurp(dir / "frozen.json"));
  CHECK(std::abs(trained["final_test_accuracy"].get<double>() - frozen["final_test_accuracy"].get<double>()) <= 1.5 / 256);

  code = sh(dir, "$F train" + job + " --set model.depth=2 --set init_weights=trained.pt > wrong.log 2>&1");
  const auto wrong = slurp(dir / "wrong.log");
  INFO(wrong);
  CHECK(code != 0);
  CHECK_THAT(wrong, Catch::Contains("init_weights trained.pt") && Catch::Contains("is not a parameter of this model"));
  fs::remove_all(dir);
}

TEST_CASE("resuming refuses what it cannot continue, naming it", "[resume][cli]") {
  const auto dir = scratch("refuse");
  int code = sh(dir, "$F train --resume nowhere > none.log 2>&1");
  CHECK(code == 2);
  CHECK_THAT(slurp(dir / "none.log"), Catch::Contains("--resume nowhere: no such folder"));
  code = sh(dir, "$F train" + job + " --set epochs=1 --set checkpoint.dir=ck > first.log 2>&1");
  REQUIRE(code == 0);
  code = sh(dir, "touch job.toml; $F train --resume ck --config job.toml > config.log 2>&1");
  CHECK(code == 2);
  CHECK_THAT(slurp(dir / "config.log"), Catch::Contains("keeps the configuration in its checkpoint"));
  code = sh(dir, "$F train --resume ck --set model.dim=32 > model.log 2>&1");
  CHECK(code != 0);
  CHECK_THAT(slurp(dir / "model.log"), Catch::Contains("model.dim = 16 there but 32 now"));
  fs::remove_all(dir);
}
