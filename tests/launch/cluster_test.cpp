// One job over several processes: a coordinator and node processes on loopback train to the
// same weights as one process does; peers without the secret, or speaking garbage, are
// refused and the job goes on. Everything is real: processes, sockets, CAF's middleman,
// Gloo all-reduce.
#include <torch/torch.h>

#include "launch/job.hpp"
#include "runtime/state_dict.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace floe;
namespace fs = std::filesystem;

namespace {

fs::path scratch(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("floe-cluster-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// Runs a bash script in `dir`; the exit code.
int sh(const fs::path& dir, const std::string& script) {
  std::ofstream(dir / "run.sh") << "set -u\ncd " << dir << "\nF=" << FLOE_BINARY << "\n" << script << "\n";
  const int status = std::system(("timeout 300 bash " + (dir / "run.sh").string()).c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A tiny ViT on synthetic data; freezing 2 of 4 blocks after epoch 1 re-plans the job.
const std::vector<std::string> job = {
    "data.dataset=synthetic", "data.subset=768",        "data.test_subset=256", "model.depth=4",
    "model.dim=16",           "model.heads=2",          "model.patch=7",        "batch_size=64",
    "optimizer.warmup=4",     "epochs=3",               "devices=4",            "pipeline.length=2",
    "pipeline.micro_batches=2", "freeze.policy=manual", "freeze.script=[0, 2]", "cache.enabled=false",
    "planner.frozen_cost=false"};

std::string set_flags() {
  std::string out;
  for (const auto& s : job) out += " --set '" + s + "'";
  return out;
}

}  // namespace

TEST_CASE("two node processes train to the same weights as one process, through a live transition", "[cluster]") {
  const auto dir = scratch("same");
  // The reference: the whole job in this process.
  auto cfg = runtime::load_job_config("", job);
  cfg.save_weights = (dir / "single.pt").string();
  const auto single = launch::run_job(cfg, launch::load_job_data(cfg.data, cfg.seed));
  REQUIRE(single.transitions.size() == 1);
  REQUIRE(single.transitions[0].to.replicas > 2);  // replicas spread over both nodes after it

  const int port = free_port();
  const auto at = "127.0.0.1:" + std::to_string(port);
  const int code = sh(dir, "export FLOE_SECRET=correct-horse\n"
                           "$F coordinator --listen " + at + " --nodes 2" + set_flags() +
                           " --save-weights multi.pt --summary multi.json > coordinator.log 2>&1 &\n"
                           "$F node --join " + at + " --devices cpu:2 --name left > left.log 2>&1 &\n"
                           "$F node --join " + at + " --devices cpu:2 --name right > right.log 2>&1 &\n"
                           "fail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail");
  INFO(slurp(dir / "coordinator.log") << slurp(dir / "left.log") << slurp(dir / "right.log"));
  REQUIRE(code == 0);
  CHECK(slurp(dir / "left.log").find("the job ended") != std::string::npos);

  const auto summary = nlohmann::json::parse(slurp(dir / "multi.json"));
  REQUIRE(summary["transitions"].size() == 1);
  CHECK(summary["transitions"][0]["ok"] == true);
  CHECK(summary["transitions"][0]["to"]["R"] == single.transitions[0].to.replicas);
  CHECK(summary["epochs"].size() == 3);

  const auto a = runtime::load_state_dict((dir / "single.pt").string());
  const auto b = runtime::load_state_dict((dir / "multi.pt").string());
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (const auto& [name, t] : a) {
    REQUIRE(b.count(name));
    REQUIRE(b.at(name).sizes() == t.sizes());
    const double rel = (t - b.at(name)).norm().item<double>() / std::max(1e-12, t.norm().item<double>());
    worst = std::max(worst, rel);
  }
  INFO("largest relative difference of a parameter tensor: " << worst);
  CHECK(worst <= 1e-5);
  fs::remove_all(dir);
}

TEST_CASE("a node without the secret is refused, garbage on the port is dropped, and the job goes on", "[cluster]") {
  const auto dir = scratch("refuse");
  const int port = free_port();
  const auto at = "127.0.0.1:" + std::to_string(port);
  const std::string sets = " --set data.dataset=synthetic --set data.subset=256 --set data.test_subset=64"
                           " --set model.depth=2 --set model.dim=16 --set model.heads=2 --set model.patch=7"
                           " --set epochs=1 --set devices=1 --set pipeline.length=1 --set cache.enabled=false";
  const int code = sh(dir, "echo correct-horse > secret; chmod 600 secret\n"
                           "$F coordinator --listen " + at + " --nodes 1 --secret-file secret" + sets +
                           " --summary out.json > coordinator.log 2>&1 &\n"
                           "coordinator=$!\n"
                           "for i in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) +
                           ") 2>/dev/null && break; sleep 0.2; done\n"
                           "(exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) +
                           "; head -c 65536 /dev/urandom >&3; exec 3>&-) 2>/dev/null\n"
                           "FLOE_SECRET=wrong $F node --join " + at + " --name intruder > intruder.log 2>&1\n"
                           "echo $? > intruder.code\n"
                           "FLOE_SECRET=correct-horse $F node --join " + at + " --name good > good.log 2>&1\n"
                           "wait $coordinator");
  const auto log = slurp(dir / "coordinator.log");
  INFO(log << slurp(dir / "intruder.log") << slurp(dir / "good.log"));
  REQUIRE(code == 0);
  CHECK(slurp(dir / "intruder.code").rfind("3", 0) == 0);
  CHECK(slurp(dir / "intruder.log").find("refused") != std::string::npos);
  CHECK(log.find("refused node 'intruder'") != std::string::npos);
  CHECK(log.find("wrong cluster secret") != std::string::npos);
  const auto summary = nlohmann::json::parse(slurp(dir / "out.json"));
  CHECK(summary["epochs"].size() == 1);
  fs::remove_all(dir);
}

TEST_CASE("cluster flags and the secret are checked before anything starts", "[cluster][cli]") {
  const auto dir = scratch("flags");
  CHECK(sh(dir, "unset FLOE_SECRET; $F node --join 127.0.0.1:1 > out.log 2>&1") == 2);
  CHECK(slurp(dir / "out.log").find("FLOE_SECRET") != std::string::npos);
  CHECK(sh(dir, "FLOE_SECRET=x $F node --join 127.0.0.1:1 --devices gpu:1 > out.log 2>&1") == 2);
  CHECK(slurp(dir / "out.log").find("--devices \"gpu:1\"") != std::string::npos);
  CHECK(sh(dir, "FLOE_SECRET=x $F node --join localhost > out.log 2>&1") == 2);
  CHECK(slurp(dir / "out.log").find("expected HOST:PORT") != std::string::npos);
  CHECK(sh(dir, ": > empty; $F coordinator --nodes 1 --secret-file empty > out.log 2>&1") == 2);
  CHECK(slurp(dir / "out.log").find("empty") != std::string::npos);
  fs::remove_all(dir);
}
