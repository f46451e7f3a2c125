#include <torch/torch.h>

#include "models/errors.hpp"
#include "runtime/config/job_config.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

using namespace floe;
using namespace floe::runtime;

namespace {
std::string write_temp(const std::string& text) {
  char name[] = "/tmp/floe-config-XXXXXX";
  const int fd = mkstemp(name);
  close(fd);
  std::ofstream(name) << text;
  return name;
}
}  // namespace

TEST_CASE("a TOML file and --set overrides fill the job config", "[config]") {
  const auto path = write_temp("epochs = 3\nreplicas = 2\ndevices = 4\n[model]\ndepth = 2\n[pipeline]\nlength = 2\n"
                               "partition = [4, 3]\n");
  auto cfg = load_job_config(path, {"optimizer.lr=0.01", "data.dataset=synthetic", "pipeline.schedule=\"1f1b\""});
  CHECK(cfg.epochs == 3);
  CHECK(cfg.replicas == 2);
  CHECK(cfg.model.depth == 2);
  CHECK(cfg.pipeline.partition == std::vector<int>{4, 3});
  CHECK(cfg.optimizer.lr == Approx(0.01));
  CHECK(cfg.data.dataset == "synthetic");
  CHECK(cfg.pipeline.schedule == "1f1b");
  CHECK(to_flat_map(cfg).at("epochs") == "3");
  std::remove(path.c_str());
}

TEST_CASE("bad configuration names the key, the value and the expectation", "[config]") {
  CHECK_THROWS_WITH(load_job_config("", {"model.dpeth=3"}), Catch::Contains("unknown config key 'model.dpeth'"));
  CHECK_THROWS_WITH(load_job_config("", {"epochs=abc"}), Catch::Contains("'epochs'") && Catch::Contains("abc") &&
                                                            Catch::Contains("expected an integer"));
  CHECK_THROWS_WITH(load_job_config("", {"epochs=0"}), Catch::Contains("'epochs'"));
  CHECK_THROWS_WITH(load_job_config("", {"freeze.anneal=\"always\""}), Catch::Contains("freeze.anneal"));
  CHECK_THROWS_WITH(load_job_config("", {"freeze.anneal=\"cosine\"", "freeze.policy=\"plasticity\""}),
                    Catch::Contains("freeze.anneal") && Catch::Contains("known ahead of time"));
  CHECK(load_job_config("", {"freeze.anneal=\"scaled\"", "freeze.policy=\"none\""}).freeze.anneal == "scaled");
  CHECK_THROWS_WITH(load_job_config("", {"data.dataset=cifar"}), Catch::Contains("\"fashion-mnist\""));
  CHECK_THROWS_WITH(load_job_config("", {"replicas=many"}),
                    Catch::Contains("'replicas'") && Catch::Contains("\"auto\" or an integer in 1..1024"));
  CHECK_THROWS_WITH(load_job_config("", {"model.dim=30", "model.heads=4"}), Catch::Contains("model.dim"));
  CHECK_THROWS_WITH(load_job_config("", {"pipeline.partition=[1,2]"}), Catch::Contains("pipeline.partition"));
  // Virtual stages: only schedules that run them, ZB-V with two, never across nodes, and a
  // partition lists every chunk.
  CHECK_THROWS_WITH(load_job_config("", {"pipeline.virtual_stages=2"}),
                    Catch::Contains("pipeline.virtual_stages = 2") && Catch::Contains("\"gpipe\""));
  CHECK_THROWS_WITH(load_job_config("", {"pipeline.schedule=zb-v", "pipeline.virtual_stages=3"}),
                    Catch::Contains("2 chunks per device"));
  CHECK_THROWS_WITH(load_job_config("", {"pipeline.schedule=zb-v", "pipeline.span_nodes=true"}),
                    Catch::Contains("cannot span nodes"));
  CHECK_THROWS_WITH(load_job_config("", {"pipeline.schedule=interleaved", "pipeline.partition=[7, 8]"}),
                    Catch::Contains("4 stage sizes (pipeline.length x chunks per device)"));
  CHECK_THROWS_WITH(load_job_config("", {"pipeline.schedule=interleaved", "pipeline.virtual_stages=9"}),
                    Catch::Contains("pipeline.length x chunks per device = 18"));
  CHECK(load_job_config("", {"pipeline.schedule=interleaved", "pipeline.virtual_stages=3"}).pipeline.virtual_stages == 3);
  CHECK_THROWS_WITH(load_job_config("", {"planner.costs=flops"}), Catch::Contains("planner.costs") && Catch::Contains("measured"));
  CHECK(planner_micro_batch(load_job_config("", {"batch_size=128", "pipeline.micro_batches=8"})) == 16);
  CHECK_THROWS_WITH(load_job_config("", {"novalue"}), Catch::Contains("expected key=value"));
  const auto path = write_temp("epochs = [\n");
  CHECK_THROWS_WITH(load_job_config(path, {}), Catch::Contains(path) && Catch::Contains("line"));
  std::remove(path.c_str());
  CHECK_THROWS_AS(load_job_config("", {"batch_size=-1"}), InputError);
  CHECK_THROWS_WITH(load_job_config("", {"cache.budget=lots"}), Catch::Contains("cache.budget") && Catch::Contains("lots"));
  CHECK_THROWS_WITH(load_job_config("", {"freeze.start=0"}), Catch::Contains("freeze.start"));
  CHECK(load_job_config("", {"cache.disk_budget=0"}).cache.disk_budget == "0");  // a plain integer is bytes
  CHECK(load_job_config("", {"cache.budget=512MiB"}).cache.budget == "512MiB");
  CHECK_THROWS_WITH(load_job_config("", {"cache.budget=true"}), Catch::Contains("cache.budget"));
  CHECK_THROWS_WITH(load_job_config("", {"data.classes=[0, 10]"}), Catch::Contains("data.classes") && Catch::Contains("below model.classes = 10"));
  CHECK_THROWS_WITH(load_job_config("", {"data.classes=[1, 1]"}), Catch::Contains("distinct"));
  CHECK_THROWS_WITH(load_job_config("", {"data.classes=[-1]"}), Catch::Contains("data.classes"));
  CHECK(load_job_config("", {"data.classes=[4, 0]"}).data.classes == std::vector<int>{4, 0});
}

TEST_CASE("the cache is refused under random augmentation unless frozen augmentations are accepted", "[config][cache]") {
  CHECK_THROWS_WITH(load_job_config("", {"data.augment=flip"}),
                    Catch::Contains("cache.enabled") && Catch::Contains("data.augment") &&
                        Catch::Contains("cache.frozen_augmentation"));
  CHECK_NOTHROW(load_job_config("", {"data.augment=flip", "cache.enabled=false"}));
  CHECK_NOTHROW(load_job_config("", {"data.augment=flip", "cache.frozen_augmentation=true"}));
}

TEST_CASE("a config handed to a node as overrides comes back exactly", "[config][cluster]") {
  auto cfg = load_job_config("", {"freeze.alpha=0.3333333333333333", "optimizer.lr=0.0007", "cache.dir=\"/tmp/a \\\"b\\\"\"",
                                  "faults=[\"slow stage=0 seconds=0.25\"]", "pipeline.partition=[7, 8]"});
  cfg.optimizer.beta2 = 0.99 + 1e-12;
  const auto back = load_job_config("", to_overrides(cfg));
  CHECK(to_flat_map(back) == to_flat_map(cfg));
  CHECK(back.freeze.alpha == cfg.freeze.alpha);  // bit-exact, not just printed alike
  CHECK(back.optimizer.beta2 == cfg.optimizer.beta2);
  CHECK(back.cache.dir == "/tmp/a \"b\"");
  CHECK(back.faults == cfg.faults);
}

TEST_CASE("a bare --set string comes back from the overrides too, or is refused", "[config][cluster]") {
  // Found by tests/fuzz: a value that is not TOML was kept as typed, quotes and all, and
  // to_overrides then wrote it so that it loaded back as something else.
  CHECK_THROWS_WITH(load_job_config("", {"data.root=\"a \\\"quote\xff\xff\\\" path\""}),
                    Catch::Contains("--set data.root=") && Catch::Contains("UTF-8"));
  const auto cfg = load_job_config("", {std::string("data.root=a\x01" "b\x7f"), "cache.dir=/tmp/x y", "faults=[\"kill node=1\tat=3\"]"});
  CHECK(cfg.data.root == "a\x01" "b\x7f");
  CHECK(cfg.cache.dir == "/tmp/x y");
  const auto back = load_job_config("", to_overrides(cfg));
  CHECK(to_flat_map(back) == to_flat_map(cfg));
  CHECK(back.data.root == cfg.data.root);
  CHECK(back.faults == cfg.faults);
}

TEST_CASE("text and model keys that do not fit together are refused naming them", "[config][text]") {
  CHECK_THROWS_WITH(load_job_config("", {"data.dataset=sst2"}), Catch::Contains("model.kind = \"bert\""));
  CHECK_THROWS_WITH(load_job_config("", {"model.kind=bert", "model.vocab_size=100"}),
                    Catch::Contains("data.dataset = \"fashion-mnist\" needs model.kind = \"vit\""));
  CHECK_THROWS_WITH(load_job_config("", {"model.image_size=32"}), Catch::Contains("model.image_size = 32"));
  CHECK_THROWS_WITH(load_job_config("", {"data.eval_split=dev"}), Catch::Contains("test split only"));
  CHECK_THROWS_WITH(load_job_config("", {"model.kind=bert", "data.dataset=sst2", "task=mlm", "cache.enabled=false",
                                         "data.mlm_probability=0"}),
                    Catch::Contains("data.mlm_probability > 0"));
  CHECK_THROWS_WITH(load_job_config("", {"model.kind=bert", "data.dataset=sst2", "data.vocab=/nonexistent/vocab.txt"}),
                    Catch::Contains("/nonexistent/vocab.txt"));
  // vocab_size 0 is the size of the vocabulary the job reads
  const auto cfg = load_job_config("", {"model.kind=bert", "data.dataset=sst2"});
  CHECK(cfg.model.vocab_size == 8000);
  CHECK(cfg.model.task == "classify");
}

TEST_CASE("replicas: \"auto\" fills the devices; an explicit count is checked against the devices the job has",
          "[config]") {
  auto cfg = load_job_config("", {"pipeline.length=2", "devices=5"});
  CHECK(cfg.replicas == 0);  // the default is "auto"
  CHECK(replicas_on(cfg, 5) == 2);
  CHECK(replicas_on(cfg, 1) == 1);
  CHECK_NOTHROW(check_devices(cfg, 5, "key devices"));
  // An explicit count is the user's: a job in one process that asks for more than its devices
  // is refused when it starts, naming where the devices came from. Loading the config does
  // not decide: a coordinator's nodes bring their own devices.
  cfg = load_job_config("", {"pipeline.length=1", "replicas=3", "devices=2"});
  CHECK(cfg.replicas == 3);
  CHECK_NOTHROW(check_devices(cfg, 3, "3 node(s)"));
  CHECK_THROWS_WITH(check_devices(cfg, 2, "key devices"),
                    Catch::Contains("pipeline.length x replicas = 3 exceeds the 2 device(s)") &&
                        Catch::Contains("key devices"));
  cfg = load_job_config("", {"pipeline.length=4"});
  CHECK_THROWS_WITH(check_devices(cfg, 2, "key devices"), Catch::Contains("pipeline.length = 4 exceeds the 2"));
  // Round trip through the overrides a coordinator hands its nodes.
  for (const char* r : {"replicas=\"auto\"", "replicas=2"}) {
    auto a = load_job_config("", {r});
    CHECK(load_job_config("", to_overrides(a)).replicas == a.replicas);
  }
}

TEST_CASE("every job file in docs/examples loads; the demo's is the defaults with its freezing", "[config]") {
  const std::string dir = FLOE_SOURCE_DIR "/docs/examples/";
  for (const auto* name : {"demo.toml", "sst2.toml", "paper-vit-b16.toml", "paper-bert-large.toml"}) {
    INFO(name);
    CHECK_NOTHROW(load_job_config(dir + name, {}));
  }
  // make demo runs docs/examples/demo.toml: the README describes it as floe's default job with
  // freezing by plasticity decided four times per epoch, and nothing else may differ.
  const auto demo = to_flat_map(load_job_config(dir + "demo.toml", {}));
  const auto defaults = to_flat_map(load_job_config("", {}));
  std::vector<std::string> differ;
  for (const auto& [key, value] : defaults)
    if (demo.at(key) != value) differ.push_back(key + " = " + demo.at(key));
  CHECK(differ == std::vector<std::string>{"freeze.interval_steps = 117", "freeze.policy = plasticity"});
}
