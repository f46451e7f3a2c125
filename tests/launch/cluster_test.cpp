// One job over several processes: a coordinator and node processes on loopback train to the
// same weights as one process does; peers without the secret, or speaking garbage, are
// refused and the job goes on. Everything is real: processes, sockets, CAF's middleman,
// Gloo all-reduce.
#include <torch/torch.h>

#include "launch/job.hpp"
#include "launch/scenario.hpp"
#include "runtime/state/state_dict.hpp"

#include "tests/launch/processes.hpp"
#include "tests/skip.hpp"

#include <nlohmann/json.hpp>

#include <linux/capability.h>
#include <signal.h>

#include <fstream>
#include <map>

using namespace floe;
namespace fs = std::filesystem;

namespace {

using test::Background;
using test::free_port;
using test::scratch;
using test::sh;
using test::slurp;
using test::wait_for_log;

// What a cluster's processes share: the secret of these tests.
const std::map<std::string, std::string> secret_k = {{"FLOE_SECRET", "k"}};

// A tiny ViT on synthetic data; freezing 2 of 4 blocks after epoch 1 re-plans the job.
const std::vector<std::string> job = {
    "data.dataset=synthetic", "data.subset=768",        "data.test_subset=256", "model.depth=4",
    "model.dim=16",           "model.heads=2",          "model.patch=7",        "batch_size=64",
    "optimizer.warmup=4",     "epochs=3",               "devices=4",            "pipeline.length=2",
    "pipeline.micro_batches=2", "freeze.policy=manual", "freeze.script=[0, 2]", "cache.enabled=false",
    "planner.frozen_cost=false"};

// One epoch of a smaller model on one device: for tests about joining, not about training.
const std::string one_device_job =
    " --set data.dataset=synthetic --set data.subset=256 --set data.test_subset=64 --set model.depth=2"
    " --set model.dim=16 --set model.heads=2 --set model.patch=7 --set epochs=1 --set devices=1"
    " --set pipeline.length=1 --set cache.enabled=false";

// K2 R2 on 4 devices, frozen to K1 R4 at step 8 of the one epoch, on virtual nodes of these
// devices (none: one node); the final weights go to `weights`.
launch::ScenarioResult freeze_mid_epoch(const fs::path& weights, std::vector<int> nodes, bool span = false) {
  auto s = launch::Scenario(4).set("replicas=2").set("epochs=1").set("save_weights=\"" + weights.string() + "\"");
  if (span) s.set("pipeline.span_nodes=true");
  s.freeze_at(8, 2);
  if (!nodes.empty()) s.nodes(nodes);
  return s.run();
}

// Two weight files hold bit-identical tensors.
void check_same_weights(const fs::path& x, const fs::path& y) {
  const auto a = runtime::load_state_dict(x.string());
  const auto b = runtime::load_state_dict(y.string());
  REQUIRE(a.size() == b.size());
  for (const auto& [name, t] : a) {
    REQUIRE(b.count(name));
    CHECK(torch::equal(t, b.at(name)));
  }
}

// Whether this process holds capability `cap` (CapEff of /proc/self/status).
bool has_capability(int cap) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("CapEff:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> cap) & 1;
  return false;
}

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
  const auto single = launch::run_job(cfg, launch::load_job_data(cfg));
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
  const int code = sh(dir, "echo correct-horse > secret; chmod 600 secret\n"
                           "$F coordinator --listen " + at + " --nodes 1 --secret-file secret" + one_device_job +
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

TEST_CASE("two hosts in network namespaces: the traffic really crosses an interface", "[cluster][netns][needs-root]") {
  // Two namespaces joined by a veth pair stand for two machines: the coordinator and one node
  // on host A (10.231.<n>.1), the other node on host B (10.231.<n>.2). Needs root: `ip netns
  // add` mounts (CAP_SYS_ADMIN), the veth pair needs CAP_NET_ADMIN. Without them the test is
  // skipped (tests/skip.hpp); with them it must set the hosts up, or fail saying why.
  if (geteuid() != 0 || !has_capability(CAP_NET_ADMIN) || !has_capability(CAP_SYS_ADMIN))
    FLOE_SKIP("network namespaces need root with CAP_NET_ADMIN and CAP_SYS_ADMIN (CI runs the tests as root)");
  const auto dir = scratch("netns");
  const auto id = std::to_string(getpid() % 100000);
  const auto net = "10.231." + std::to_string(getpid() % 250 + 1);
  const std::string a = "floeA" + id, b = "floeB" + id, va = "fa" + id, vb = "fb" + id;
  const std::string setup = "set -e\nip netns add " + a + "\nip netns add " + b + "\nip link add " + va +
                            " type veth peer name " + vb + "\nip link set " + va + " netns " + a + "\nip link set " +
                            vb + " netns " + b + "\nip -n " + a + " addr add " + net + ".1/24 dev " + va + "\nip -n " +
                            b + " addr add " + net + ".2/24 dev " + vb + "\nfor n in " + a + " " + b +
                            "; do ip -n $n link set lo up; done\nip -n " + a + " link set " + va + " up\nip -n " + b +
                            " link set " + vb + " up\n";
  const std::string cleanup = "ip netns del " + a + " 2>/dev/null; ip netns del " + b + " 2>/dev/null; true";
  if (sh(dir, setup + " > setup.log 2>&1") != 0) {
    sh(dir, cleanup);
    FAIL("cannot create the network namespaces, as root: " << slurp(dir / "setup.log"));
  }
  const auto at = net + ".1:4500";
  const std::string sets = " --set data.dataset=synthetic --set data.subset=512 --set data.test_subset=128"
                           " --set model.depth=2 --set model.dim=32 --set model.heads=2 --set model.patch=7"
                           " --set epochs=1 --set pipeline.length=1 --set replicas=2 --set cache.enabled=false";
  const int code = sh(dir, "export FLOE_SECRET=namespaces\n"
                           "ip netns exec " + a + " $F coordinator --listen " + at + " --nodes 2" + sets +
                           " --summary out.json > coordinator.log 2>&1 &\n"
                           "ip netns exec " + a + " $F node --join " + at + " --devices cpu:1 --name hostA > a.log 2>&1 &\n"
                           "ip netns exec " + b + " $F node --join " + at + " --devices cpu:1 --name hostB > b.log 2>&1 &\n"
                           "fail=0; for j in $(jobs -p); do wait $j || fail=1; done\n"
                           "ip -n " + b + " -s link show " + vb + " > link.txt\n" + cleanup + "\nexit $fail");
  INFO(slurp(dir / "coordinator.log") << slurp(dir / "a.log") << slurp(dir / "b.log"));
  REQUIRE(code == 0);
  const auto summary = nlohmann::json::parse(slurp(dir / "out.json"));
  CHECK(summary["epochs"][0]["replicas"] == 2);
  // Host B received the job, its weights and every step's gradient sums through the veth.
  std::istringstream link(slurp(dir / "link.txt"));
  std::string line;
  long long rx_bytes = -1;
  while (std::getline(link, line))
    if (line.find("RX:") != std::string::npos && std::getline(link, line)) rx_bytes = std::stoll(line);
  INFO(slurp(dir / "link.txt"));
  CHECK(rx_bytes > 100000);
  fs::remove_all(dir);
}

TEST_CASE("with TLS a node needs a certificate from the cluster's CA", "[cluster][tls]") {
  const auto dir = scratch("tls");
  // A cluster CA, a certificate for the coordinator and one for the node; an outsider signs
  // its own with another CA.
  const std::string certs = R"(set -e
mk_ca() { openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" -keyout $1.key -out $1.pem 2>/dev/null; }
mk_cert() { openssl req -newkey rsa:2048 -nodes -subj "/CN=$1" -keyout $1.key -out $1.csr 2>/dev/null
            openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -days 2 -out $1.pem 2>/dev/null; }
mk_ca ca; mk_cert coordinator ca; mk_cert node ca; mk_ca other; mk_cert outsider other
)";
  REQUIRE(sh(dir, certs + " > certs.log 2>&1") == 0);
  const int port = free_port();
  const auto at = "127.0.0.1:" + std::to_string(port);
  const int code = sh(dir, "export FLOE_SECRET=tls\n"
                           "$F coordinator --listen " + at + " --nodes 1" + one_device_job +
                           " --tls-cert coordinator.pem --tls-key coordinator.key --tls-ca ca.pem"
                           " --summary out.json > coordinator.log 2>&1 &\n"
                           "coordinator=$!\n"
                           "$F node --join " + at + " --connect-timeout 3 --tls-cert outsider.pem --tls-key outsider.key"
                           " --tls-ca other.pem > outsider.log 2>&1; echo $? > outsider.code\n"
                           "$F node --join " + at + " --connect-timeout 3 > plain.log 2>&1; echo $? > plain.code\n"
                           "$F node --join " + at + " --devices cpu:1 --tls-cert node.pem --tls-key node.key"
                           " --tls-ca ca.pem > node.log 2>&1\n"
                           "wait $coordinator");
  INFO(slurp(dir / "coordinator.log") << slurp(dir / "outsider.log") << slurp(dir / "plain.log") << slurp(dir / "node.log"));
  REQUIRE(code == 0);
  CHECK(slurp(dir / "coordinator.log").find("(TLS)") != std::string::npos);
  CHECK(slurp(dir / "outsider.code").rfind("1", 0) == 0);  // the handshake fails: no coordinator reached
  CHECK(slurp(dir / "plain.code").rfind("1", 0) == 0);
  CHECK(nlohmann::json::parse(slurp(dir / "out.json"))["epochs"].size() == 1);
  fs::remove_all(dir);
}

TEST_CASE("with recover = false a node killed mid-job stops the job with an error that names it", "[cluster]") {
  const auto dir = scratch("kill");
  const int port = free_port();
  const auto at = "127.0.0.1:" + std::to_string(port);
  Background coordinator(dir, "$F coordinator --listen " + at + " --nodes 2" + one_device_job +
                         " --set epochs=50 --set devices=2 --set replicas=2 --set recover=false > coordinator.log 2>&1",
                         secret_k);
  Background steady(dir, "$F node --join " + at + " --devices cpu:1 --name steady > steady.log 2>&1", secret_k);
  Background victim(dir, "$F node --join " + at + " --devices cpu:1 --name victim > victim.log 2>&1", secret_k);
  REQUIRE(wait_for_log(dir / "coordinator.log", "epoch 1/50"));
  victim.kill(SIGKILL);
  const int code = coordinator.wait();
  steady.wait();
  victim.wait();
  const auto log = slurp(dir / "coordinator.log");
  INFO(log << slurp(dir / "steady.log"));
  CHECK(code == 1);
  CHECK(log.find("node victim left the job") != std::string::npos);
  CHECK(log.find("epoch 50/50") == std::string::npos);
  fs::remove_all(dir);
}

namespace {

// Three nodes of one device, one replica each, on a job that learns the synthetic classes to
// ~98 % in 12 epochs.
const std::string three_replica_job =
    " --set data.dataset=synthetic --set data.subset=1536 --set data.test_subset=1000 --set model.depth=2"
    " --set model.dim=16 --set model.heads=2 --set model.patch=7 --set devices=3 --set pipeline.length=1"
    " --set replicas=3 --set batch_size=96 --set pipeline.micro_batches=1 --set freeze.policy=none"
    " --set cache.enabled=false --set optimizer.warmup=10 --set optimizer.lr=5e-3 --set epochs=12";

// Starts a coordinator and nodes a, b and victim, sends `to_victim` to the victim 0.1 s after
// epoch 2 has begun, waits for the coordinator, then kills what is left of the victim and
// waits for the nodes. The coordinator's exit code.
int three_nodes_and(const fs::path& dir, int to_victim, const std::string& extra = "") {
  const auto at = "127.0.0.1:" + std::to_string(free_port());
  Background coordinator(dir, "$F coordinator --listen " + at + " --nodes 3" + three_replica_job + extra +
                         " --summary cluster.json > coordinator.log 2>&1", secret_k);
  const auto node = [&](const std::string& n) {
    return "$F node --join " + at + " --devices cpu:1 --name " + n + " > " + n + ".log 2>&1";
  };
  Background a(dir, node("a"), secret_k), b(dir, node("b"), secret_k), victim(dir, node("victim"), secret_k);
  REQUIRE(wait_for_log(dir / "coordinator.log", "epoch 2/12 "));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  victim.kill(to_victim);
  const int code = coordinator.wait();
  victim.kill(SIGKILL);
  victim.wait();
  a.wait();
  b.wait();
  return code;
}

}  // namespace

TEST_CASE("one of three nodes killed mid-epoch: the others recover live and finish as accurately", "[cluster][recovery]") {
  const auto dir = scratch("recover");
  REQUIRE(sh(dir, "$F train" + three_replica_job + " --summary undisturbed.json > undisturbed.log 2>&1") == 0);
  const int code = three_nodes_and(dir, SIGKILL);
  const auto log = slurp(dir / "coordinator.log");
  INFO(log << slurp(dir / "a.log"));
  REQUIRE(code == 0);
  CHECK_THAT(log, Catch::Contains("node victim left the job") && Catch::Contains("recovered in"));
  const auto summary = nlohmann::json::parse(slurp(dir / "cluster.json"));
  CHECK(summary["epochs"].size() == 12);
  REQUIRE(summary["transitions"].size() == 1);
  const auto& t = summary["transitions"][0];
  CHECK(t["cause"] == "recovery: node victim lost");
  CHECK(t["from"]["R"] == 3);
  CHECK(t["to"]["R"] == 2);
  CHECK(summary["epochs"][11]["replicas"] == 2);
  const double undisturbed = nlohmann::json::parse(slurp(dir / "undisturbed.json"))["final_test_accuracy"];
  const double recovered = summary["final_test_accuracy"];
  INFO("final test accuracy: undisturbed " << undisturbed << ", with a node killed " << recovered
                                            << "; recovery took " << t["seconds"] << " s");
  CHECK(std::abs(undisturbed - recovered) <= 0.005);
  // The survivors went on to the end (whether they saw an all-reduce fail depends on whether
  // the kill landed in a training step or in an evaluation).
  CHECK_THAT(slurp(dir / "a.log"), Catch::Contains("the job ended"));
  CHECK_THAT(slurp(dir / "b.log"), Catch::Contains("the job ended"));
  fs::remove_all(dir);
}

TEST_CASE("a stopped (SIGSTOP) node is noticed by the heartbeat and recovered from", "[cluster][recovery]") {
  const auto dir = scratch("sigstop");
  // The survivors' all-reduce waits collective_timeout for the stopped peer, then fails.
  const int code = three_nodes_and(dir, SIGSTOP, " --set collective_timeout=2");
  const auto log = slurp(dir / "coordinator.log");
  INFO(log);
  REQUIRE(code == 0);
  CHECK_THAT(log, Catch::Contains("node victim left the job") && Catch::Contains("recovered in"));
  const auto summary = nlohmann::json::parse(slurp(dir / "cluster.json"));
  CHECK(summary["epochs"].size() == 12);
  REQUIRE(summary["transitions"].size() == 1);
  CHECK(summary["transitions"][0]["to"]["R"] == 2);
  fs::remove_all(dir);
}

TEST_CASE("a node killed with the only replica: recovery from the last checkpoint, to the same weights", "[cluster][recovery]") {
  // One pipeline of 2 stages, on the node admitted first; 2 of 4 blocks freeze after epoch 1.
  const std::string pipeline_job =
      " --set data.dataset=synthetic --set data.subset=768 --set data.test_subset=256 --set model.depth=4"
      " --set model.dim=16 --set model.heads=2 --set model.patch=7 --set batch_size=64 --set optimizer.warmup=4"
      " --set epochs=3 --set pipeline.length=2 --set pipeline.micro_batches=2 --set freeze.policy=manual"
      " --set 'freeze.script=[0, 2]' --set cache.enabled=false --set replicas=1";
  const auto dir = scratch("from-checkpoint");
  const auto at = "127.0.0.1:" + std::to_string(free_port());
  {
    const int code =
        sh(dir, "$F train" + pipeline_job + " --set devices=2 --save-weights undisturbed.pt > undisturbed.log 2>&1");
    INFO(slurp(dir / "undisturbed.log"));
    REQUIRE(code == 0);
  }
  Background coordinator(dir, "$F coordinator --listen " + at + " --nodes 2" + pipeline_job +
                         " --set devices=4 --set checkpoint.dir=ck --set checkpoint.interval=4 --save-weights recovered.pt"
                         " --summary cluster.json > coordinator.log 2>&1", secret_k);
  Background victim(dir, "$F node --join " + at + " --devices cpu:2 --name victim > victim.log 2>&1", secret_k);
  REQUIRE(wait_for_log(dir / "coordinator.log", "'victim' admitted as node 0"));
  Background spare(dir, "$F node --join " + at + " --devices cpu:2 --name spare > spare.log 2>&1", secret_k);
  {
    INFO("the checkpoint of step 8 was never written");
    REQUIRE(test::wait_until([&] { return fs::is_directory(dir / "ck/step-000000008"); }, std::chrono::seconds(60)));
  }
  victim.kill(SIGKILL);
  const int code = coordinator.wait();
  victim.wait();
  spare.wait();
  const auto log = slurp(dir / "coordinator.log");
  INFO(log << slurp(dir / "spare.log"));
  REQUIRE(code == 0);
  CHECK_THAT(log, Catch::Contains("left the job with every replica") &&
                      Catch::Contains("recovered from the checkpoint of step 8"));
  const auto summary = nlohmann::json::parse(slurp(dir / "cluster.json"));
  CHECK(summary["epochs"].size() == 3);
  CHECK(summary["steps"] == 36);
  REQUIRE(summary["transitions"].size() == 2);  // the recovery, then the freeze
  CHECK_THAT(summary["transitions"][0]["cause"].get<std::string>(), Catch::Contains("from the checkpoint of step 8"));
  CHECK(summary["transitions"][1]["cause"] == "freeze");
  // The same plan on the spare node from the checkpoint on: the weights of an undisturbed run.
  check_same_weights(dir / "undisturbed.pt", dir / "recovered.pt");
  fs::remove_all(dir);
}

TEST_CASE("virtual nodes in one process behave as separate nodes, with the same weights", "[cluster][scenario]") {
  // For test harnesses: a multi-node topology without processes. Replicas on different virtual
  // nodes meet in Gloo groups over loopback, exactly as on real nodes.
  const auto dir = scratch("virtual");
  const auto one = freeze_mid_epoch(dir / "one.pt", {});
  const auto two = freeze_mid_epoch(dir / "two.pt", {2, 2});
  REQUIRE(one.error.empty());
  REQUIRE(two.error.empty());
  REQUIRE(two.summary.transitions.size() == 1);
  CHECK(two.summary.transitions[0].to.replicas == 4);
  check_same_weights(dir / "one.pt", dir / "two.pt");
  fs::remove_all(dir);
}

TEST_CASE("every device busy from the start: replicas = \"auto\" on nodes of one device each", "[cluster][scenario]") {
  // pipeline.length = 2 fits on none of three one-device nodes: the plan runs K=1, and "auto"
  // puts a replica on every node rather than one pipeline and two idle devices.
  const auto r = launch::Scenario(3).set("epochs=1").set("pipeline.length=2").nodes({1, 1, 1}).run();
  INFO(r.error);
  REQUIRE(r.error.empty());
  CHECK(r.summary.epochs.at(0).pipeline_length == 1);
  CHECK(r.summary.epochs.at(0).replicas == 3);
  CHECK(r.summary.epochs.at(0).samples == 1024);
}

TEST_CASE("a virtual node killed by a fault script mid-epoch, or during a transition, is recovered from", "[cluster][scenario][recovery]") {
  // K2 R2 on nodes of 2 devices: one replica per node.
  SECTION("mid-epoch: the other node's replica goes on alone") {
    const auto r = launch::Scenario(4).set("replicas=2").set("epochs=1").nodes({2, 2}).fault("kill node=1 at=5").run();
    INFO(r.error);
    REQUIRE(r.error.empty());
    REQUIRE(r.summary.transitions.size() == 1);
    CHECK(r.summary.transitions[0].cause == "recovery: node virtual1 lost");
    CHECK(r.summary.transitions[0].to.replicas == 1);
    CHECK(r.summary.steps == r.summary.epochs.at(0).samples / 64 + (r.summary.epochs.at(0).samples % 64 != 0));
    CHECK(r.of(runtime::EventKind::fault).size() >= 2);  // injected, then the loss
  }
  SECTION("a pipeline that spans the lost node is lost with it; the other goes on") {
    // pipeline.span_nodes on nodes of 1, 1 and 2 devices: replica 0 has a stage on each of
    // the first two nodes, replica 1 is on the third. Losing node 0 loses replica 0 only, and
    // the re-plan over the 3 devices left spans nodes 1 and 2 again.
    const auto r = launch::Scenario(4).set("replicas=2").set("epochs=1").set("pipeline.span_nodes=true")
                       .nodes({1, 1, 2}).fault("kill node=0 at=5").run();
    INFO(r.error);
    REQUIRE(r.error.empty());
    REQUIRE(r.summary.transitions.size() == 1);
    CHECK(r.summary.transitions[0].cause == "recovery: node virtual0 lost");
    CHECK(r.summary.transitions[0].from.replicas == 2);
    CHECK(r.summary.transitions[0].to.replicas == 1);
    CHECK(r.summary.transitions[0].to.pipeline_length == 2);
    CHECK(r.summary.steps == r.summary.epochs.at(0).samples / 64 + (r.summary.epochs.at(0).samples % 64 != 0));
  }
  SECTION("during the transition of a freeze: the job ends on a consistent plan") {
    // The kill goes out just before the transition of the freeze at step 8 starts.
    const auto r = launch::Scenario(4).set("replicas=2").set("epochs=1").nodes({2, 2}).freeze_at(8, 2)
                       .fault("kill node=1 at=8").run();
    INFO(r.error);
    REQUIRE(r.error.empty());
    int recoveries = 0;
    for (const auto& t : r.summary.transitions) {
      INFO("transition at step " << t.step << ": " << t.cause << (t.ok ? "" : " failed: " + t.error));
      recoveries += t.cause.rfind("recovery", 0) == 0;
      CHECK(t.to.replicas * t.to.pipeline_length <= 4);
    }
    CHECK(recoveries == 1);
    const auto& last = r.summary.epochs.back();
    CHECK(last.replicas * last.pipeline_length <= 2);  // only node 0's two devices are left
    CHECK(last.frozen_layers == 2);  // the interrupted freeze happened with the recovery
  }
}

TEST_CASE("a node process killed as a freeze's transition starts: the job ends on a consistent plan", "[cluster][recovery]") {
  // K2 R2 over two nodes of 2 devices, a replica on each; 2 of 4 blocks freeze after epoch 1
  // (step 12, K1 R4), and the fault script kills node 1's agent, and so its process, as that
  // transition starts.
  const auto dir = scratch("transition-kill");
  const auto at = "127.0.0.1:" + std::to_string(free_port());
  const int code = sh(dir, "export FLOE_SECRET=k\n"
                           "$F coordinator --listen " + at + " --nodes 2" + set_flags() + " --set replicas=2"
                           " --set 'faults=[\"kill node=1 at=12\"]' --summary cluster.json > coordinator.log 2>&1 &\n"
                           "coordinator=$!\n"
                           "for n in left right; do $F node --join " + at + " --devices cpu:2 --name $n > $n.log 2>&1 & done\n"
                           "wait $coordinator; echo $? > coordinator.code; wait");
  const auto log = slurp(dir / "coordinator.log");
  INFO(log);
  REQUIRE(code == 0);
  REQUIRE(slurp(dir / "coordinator.code").rfind("0", 0) == 0);
  CHECK_THAT(log, Catch::Contains("fault injected: kill node=1 at=12"));
  const auto summary = nlohmann::json::parse(slurp(dir / "cluster.json"));
  REQUIRE(summary["epochs"].size() == 3);
  int recoveries = 0;
  for (const auto& t : summary["transitions"]) {
    INFO("transition at step " << t["step"] << ": " << t["cause"] << (t["ok"] == true ? "" : " failed"));
    recoveries += t["cause"].get<std::string>().rfind("recovery", 0) == 0;
    CHECK(t["to"]["R"].get<int>() * t["to"]["K"].get<int>() <= 4);
  }
  CHECK(recoveries == 1);
  for (int e = 1; e < 3; ++e) {  // after the kill: one node of 2 devices, the freeze carried out
    const auto& rec = summary["epochs"][e];
    CHECK(rec["replicas"].get<int>() * rec["pipeline_length"].get<int>() <= 2);
    CHECK(rec["frozen_layers"] == 2);
  }
  fs::remove_all(dir);
}

TEST_CASE("a node that comes back, and a new node, join the running job and get replicas", "[cluster][recovery]") {
  // replicas = 3 on nodes of one device: R=2 on a and victim; victim is killed (R=1), comes
  // back under its name (R=2), then newcomer joins (R=3).
  const auto dir = scratch("rejoin");
  const auto at = "127.0.0.1:" + std::to_string(free_port());
  const auto node = "$F node --join " + at + " --devices cpu:1 --name ";
  const auto log_file = dir / "coordinator.log";
  Background coordinator(dir, "$F coordinator --listen " + at + " --nodes 2" + three_replica_job +
                         " --set epochs=20 --summary cluster.json > coordinator.log 2>&1", secret_k);
  Background a(dir, node + "a > a.log 2>&1", secret_k);
  Background victim(dir, node + "victim > victim.log 2>&1", secret_k);
  REQUIRE(wait_for_log(log_file, "epoch 2/20 "));
  victim.kill(SIGKILL);
  REQUIRE(wait_for_log(log_file, "recovered in"));
  Background back(dir, node + "victim > back.log 2>&1", secret_k);
  REQUIRE(wait_for_log(log_file, "transition (join: node victim)"));
  Background newcomer(dir, node + "newcomer > newcomer.log 2>&1", secret_k);
  const int code = coordinator.wait();
  for (auto* p : {&a, &victim, &back, &newcomer}) p->wait();
  const auto log = slurp(log_file);
  INFO(log << slurp(dir / "back.log") << slurp(dir / "newcomer.log"));
  REQUIRE(code == 0);
  const auto summary = nlohmann::json::parse(slurp(dir / "cluster.json"));
  REQUIRE(summary["epochs"].size() == 20);
  REQUIRE(summary["transitions"].size() == 3);
  const auto& t = summary["transitions"];
  CHECK(t[0]["cause"] == "recovery: node victim lost");
  CHECK(t[1]["cause"] == "join: node victim");
  CHECK(t[2]["cause"] == "join: node newcomer");
  for (int i = 0; i < 3; ++i) {
    CHECK(t[i]["ok"] == true);
    CHECK(t[i]["to"]["R"] == std::vector<int>{1, 2, 3}[i]);
  }
  CHECK(summary["epochs"][19]["replicas"] == 3);
  CHECK(summary["final_test_accuracy"].get<double>() >= 0.9);
  CHECK_THAT(slurp(dir / "back.log"), Catch::Contains("the job ended"));
  CHECK_THAT(slurp(dir / "newcomer.log"), Catch::Contains("the job ended"));
  fs::remove_all(dir);
}

TEST_CASE("a scripted virtual node joins at its step, and one that left comes back", "[cluster][scenario]") {
  // K2 on one node of 2 devices with replicas = 2: R=1 until a second node joins.
  SECTION("a new node") {
    const auto r = launch::Scenario(4).set("replicas=2").set("epochs=1").nodes({2}).join_at(5, 2).run();
    INFO(r.error);
    REQUIRE(r.error.empty());
    REQUIRE(r.summary.transitions.size() == 1);
    const auto& t = r.summary.transitions[0];
    CHECK(t.cause == "join: node virtual1");
    CHECK(t.step == 5);
    CHECK(t.from.replicas == 1);
    CHECK(t.to.replicas == 2);
    CHECK(r.summary.epochs.at(0).replicas == 2);
  }
  SECTION("a node lost at step 3, another in its place at step 6") {
    const auto r = launch::Scenario(4).set("replicas=2").set("epochs=1").nodes({2, 2}).fault("kill node=1 at=3")
                       .join_at(6, 2).run();
    INFO(r.error);
    REQUIRE(r.error.empty());
    REQUIRE(r.summary.transitions.size() == 2);
    CHECK(r.summary.transitions[0].cause == "recovery: node virtual1 lost");
    CHECK(r.summary.transitions[0].to.replicas == 1);
    CHECK(r.summary.transitions[1].cause == "join: node virtual2");
    CHECK(r.summary.transitions[1].step == 6);
    CHECK(r.summary.transitions[1].to.replicas == 2);
    CHECK(r.summary.steps == r.summary.epochs.at(0).samples / 64 + (r.summary.epochs.at(0).samples % 64 != 0));
  }
}

TEST_CASE("with pipeline.span_nodes a pipeline spans virtual nodes, with the same weights", "[cluster][scenario][span]") {
  // Nodes of 1 and 3 devices: replica 0's two stages sit on both nodes, replica 1 on the
  // second; the freeze then re-plans to K1 R4 over both.
  const auto dir = scratch("span-virtual");
  const auto one = freeze_mid_epoch(dir / "one.pt", {}, true);
  const auto split = freeze_mid_epoch(dir / "split.pt", {1, 3}, true);
  REQUIRE(one.error.empty());
  REQUIRE(split.error.empty());
  REQUIRE(split.summary.transitions.size() == 1);
  CHECK(split.summary.transitions[0].from.replicas == 2);
  CHECK(split.summary.transitions[0].to.replicas == 4);
  check_same_weights(dir / "one.pt", dir / "split.pt");
  // Without span_nodes a pipeline of 2 stages fits these nodes once.
  const auto inside = freeze_mid_epoch(dir / "inside.pt", {1, 3});
  REQUIRE(inside.error.empty());
  REQUIRE(inside.summary.transitions.size() == 1);
  CHECK(inside.summary.transitions[0].from.replicas == 1);
  fs::remove_all(dir);
}

TEST_CASE("a pipeline split over two node processes moves its tensors over UCX, to the same weights", "[cluster][span]") {
  // Two nodes of one device each: the K=2 pipeline has a stage on each, so every activation
  // and gradient crosses processes (over UCX, the CAF message carries only a ticket). The
  // freeze then re-plans to K1 R2, one replica per node, reduced over Gloo.
  const auto dir = scratch("span");
  std::vector<std::string> split_job = job;
  for (auto& s : split_job)
    if (s == "devices=4") s = "devices=2";
  split_job.push_back("epochs=2");
  split_job.push_back("pipeline.span_nodes=true");
  auto cfg = runtime::load_job_config("", split_job);
  cfg.save_weights = (dir / "single.pt").string();
  const auto single = launch::run_job(cfg, launch::load_job_data(cfg));
  REQUIRE(single.transitions.size() == 1);
  REQUIRE(single.transitions[0].to.replicas == 2);

  std::string flags;
  for (const auto& s : split_job) flags += " --set '" + s + "'";
  const int port = free_port();
  const auto at = "127.0.0.1:" + std::to_string(port);
  const int code = sh(dir, "export FLOE_SECRET=correct-horse\n"
                           "$F coordinator --listen " + at + " --nodes 2" + flags +
                           " --save-weights multi.pt --summary multi.json > coordinator.log 2>&1 &\n"
                           "$F node --join " + at + " --devices cpu:1 --name left > left.log 2>&1 &\n"
                           "$F node --join " + at + " --devices cpu:1 --name right > right.log 2>&1 &\n"
                           "fail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail");
  const auto left = slurp(dir / "left.log"), right = slurp(dir / "right.log");
  INFO(slurp(dir / "coordinator.log") << left << right);
  REQUIRE(code == 0);
  // Which node is admitted first (and gets stage 0) is a race; each has one side of the link.
  const auto first = std::string("stage 0 of replica 0: tensors to and from stage 1 on another node go over UCX");
  const auto second = std::string("stage 1 of replica 0: tensors to and from stage 0 on another node go over UCX");
  const bool left_first = left.find(first) != std::string::npos;
  CHECK((left_first ? right : left).find(first) == std::string::npos);
  CHECK((left_first ? right : left).find(second) != std::string::npos);
  CHECK((left_first ? left : right).find(first) != std::string::npos);
  const auto summary = nlohmann::json::parse(slurp(dir / "multi.json"));
  REQUIRE(summary["transitions"].size() == 1);
  CHECK(summary["transitions"][0]["from"]["K"] == 2);
  CHECK(summary["transitions"][0]["to"]["R"] == 2);

  check_same_weights(dir / "single.pt", dir / "multi.pt");
  fs::remove_all(dir);
}

TEST_CASE("floe ignores SIGPIPE: a write to a peer that died fails, it does not end the process", "[cluster][recovery]") {
  // Gloo sends with writev(2), which has no MSG_NOSIGNAL: with SIGPIPE's default action, a
  // node whose all-reduce partner was killed could die silently in the next write.
  const auto dir = scratch("sigpipe");
  Background node(dir, "$F node --join 127.0.0.1:" + std::to_string(free_port()) +
                           " --connect-timeout 30 --name lonely > node.log 2>&1", secret_k);
  const auto status = fs::path("/proc") / std::to_string(node.pid()) / "status";
  // Background starts bash with SIGPIPE's default action, and bash keeps it: once the mask
  // (hexadecimal, signal n at bit n - 1) says ignored, floe set it.
  const auto ignored = [&] {
    const auto text = slurp(status);
    const auto at = text.find("SigIgn:");
    return at != std::string::npos && (std::stoull(text.substr(at + 7), nullptr, 16) >> (SIGPIPE - 1) & 1) == 1;
  };
  CHECK(test::wait_until(ignored, std::chrono::seconds(20)));
  node.kill(SIGTERM);
  node.wait();
  fs::remove_all(dir);
}

TEST_CASE("a node under a pipeline that spans nodes killed with kill -9: the other replica goes on", "[cluster][span][recovery]") {
  // Nodes of 1, 1 and 2 devices with pipeline.span_nodes: K2 R2, one pipeline on the two
  // 1-device nodes (its tensors over UCX), one on the 2-device node. Killing a 1-device node
  // loses the spanning pipeline; the other one's state carries the job on over the 3
  // devices left. The two stages of that replica reduce with different nodes, so the kill
  // can leave its stages one optimizer step apart (one group's all-reduce failed, the other's
  // did not): recovery then starts from the newest checkpoint instead (docs/checkpoints.md).
  const auto dir = scratch("span-kill");
  const auto at = "127.0.0.1:" + std::to_string(free_port());
  Background coordinator(dir, "$F coordinator --listen " + at + " --nodes 3" + set_flags() +
                         " --set replicas=2 --set freeze.policy=none --set epochs=10 --set pipeline.span_nodes=true"
                         " --set checkpoint.dir=ck --set checkpoint.interval=4"
                         " --summary cluster.json > coordinator.log 2>&1", secret_k);
  Background big(dir, "$F node --join " + at + " --devices cpu:2 --name big > big.log 2>&1", secret_k);
  Background a(dir, "$F node --join " + at + " --devices cpu:1 --name a > a.log 2>&1", secret_k);
  Background victim(dir, "$F node --join " + at + " --devices cpu:1 --name victim > victim.log 2>&1", secret_k);
  REQUIRE(wait_for_log(dir / "coordinator.log", "epoch 2/10 "));
  victim.kill(SIGKILL);
  const int code = coordinator.wait();
  const int big_code = big.wait(), a_code = a.wait();
  victim.wait();
  const auto log = slurp(dir / "coordinator.log");
  INFO(log << slurp(dir / "a.log") << slurp(dir / "big.log") << "exit codes: big " << big_code << ", a " << a_code);
  REQUIRE(code == 0);
  CHECK(big_code == 0);  // the survivors' all-reduce with the victim failed: an error, not their end
  CHECK(a_code == 0);
  CHECK_THAT(slurp(dir / "a.log"), Catch::Contains("on another node go over UCX"));
  const auto summary = nlohmann::json::parse(slurp(dir / "cluster.json"));
  CHECK(summary["epochs"].size() == 10);
  REQUIRE(summary["transitions"].size() == 1);
  const auto& t = summary["transitions"][0];
  CHECK(t["cause"].get<std::string>().rfind("recovery: node victim lost", 0) == 0);  // live, or from the checkpoint
  CHECK(t["from"]["R"] == 2);
  CHECK(t["to"]["R"] == 1);
  CHECK(t["to"]["K"] == 2);
  fs::remove_all(dir);
}
