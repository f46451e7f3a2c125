// The text job as a user runs it: the shipped vocabulary is what `floe vocab` builds, a tiny
// BERT trains on SST-2 end to end (MLM, then fine-tuning from its weights), and bad text
// input stops with exit code 2 and a message naming it.
#include "tests/launch/processes.hpp"

#include <nlohmann/json.hpp>

#include <catch2/catch.hpp>

#include <set>
#include <sstream>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unistd.h>

namespace fs = std::filesystem;
using floe::test::run_floe;
using floe::test::slurp;

namespace {

struct Scratch {
  fs::path dir;
  explicit Scratch(const std::string& name)
      : dir(fs::temp_directory_path() / ("floe-text-" + name + "-" + std::to_string(getpid()))) {
    fs::create_directories(dir);
  }
  ~Scratch() { fs::remove_all(dir); }
};

const std::string kSst = std::string(FLOE_SOURCE_DIR) + "/data/sst";

// A tiny BERT on a slice of SST-2: fast enough for the suite, real all the same.
const std::string kTiny =
    "--set model.kind=bert --set data.dataset=sst2 --set model.dim=32 --set model.depth=2 --set model.heads=2 "
    "--set model.ffn_dim=64 --set model.max_len=48 --set model.classes=2 --set data.subset=3000 "
    "--set data.test_subset=200 --set batch_size=64 --set devices=2 --set data.length_buckets=8 --set log_interval=1000";

}  // namespace

TEST_CASE("data/sst/vocab.txt is what floe vocab builds from the SST training text", "[cli][text]") {
  Scratch s("vocab");
  const auto out = s.dir / "vocab.txt";
  auto r = run_floe("vocab --trees --corpus " + kSst + "/train.txt --size 8000 --out " + out.string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("8000 tokens"));
  CHECK(slurp(out) == slurp(kSst + "/vocab.txt"));
}

TEST_CASE("a tiny BERT pre-trains by MLM and fine-tunes on SST-2 from those weights, elastically", "[cli][text]") {
  Scratch s("train");
  const auto mlm = s.dir / "mlm.pt", pre = s.dir / "mlm.json", fine = s.dir / "fine.json";
  auto r = run_floe("train " + kTiny + " --set task=mlm --set cache.enabled=false --set freeze.policy=none --set epochs=1 "
                "--set optimizer.lr=1e-3 --save-weights " + mlm.string() + " --summary " + pre.string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  const auto p = nlohmann::json::parse(slurp(pre));
  // accuracy over masked tokens: well above chance over an 8000-token vocabulary
  CHECK(p["final_test_accuracy"].get<double>() > 0.02);

  r = run_floe("train " + kTiny + " --set epochs=3 --set freeze.policy=manual --set freeze.script=[0,1,2] "
           "--set init_weights=\\\"" + mlm.string() + "\\\" --set init_skip=[\\\"head.\\\"] --summary " + fine.string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("kept the model's own head.pooler.weight") &&
                           Catch::Contains("ignored head.decoder.bias"));
  CHECK_THAT(r.output, Catch::Contains("transition"));
  const auto f = nlohmann::json::parse(slurp(fine));
  const auto& epochs = f["epochs"];
  REQUIRE(epochs.size() == 3);
  CHECK(epochs[2]["frozen_layers"] == 2);
  CHECK(epochs[2]["pipeline_length"].get<int>() < epochs[0]["pipeline_length"].get<int>());
  CHECK(epochs[2]["replicas"].get<int>() > epochs[0]["replicas"].get<int>());
  // two balanced-ish classes: learning shows as accuracy above a coin
  CHECK(f["final_test_accuracy"].get<double>() > 0.55);
}

TEST_CASE("bad text input stops with exit code 2 naming it", "[cli][text]") {
  Scratch s("bad");
  SECTION("a malformed tree line names file, line and column") {
    for (auto f : {"dev.txt", "test.txt", "vocab.txt"}) fs::copy_file(kSst + "/" + f, s.dir / f);
    std::ofstream(s.dir / "train.txt") << "(3 (2 good) (3 film))\n(4 (2 a) (x b))\n";
    auto r = run_floe("train " + kTiny + " --set data.root=\\\"" + s.dir.string() + "\\\" --set epochs=1");
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains((s.dir / "train.txt").string() + ":2:11"));
  }
  SECTION("a vocabulary with a duplicate, or without [UNK]") {
    std::ofstream(s.dir / "dup.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nfilm\ngood\nfilm\n";
    auto r = run_floe("train " + kTiny + " --set data.vocab=\\\"" + (s.dir / "dup.txt").string() + "\\\"");
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("dup.txt:8") && Catch::Contains("duplicate"));
    std::ofstream(s.dir / "nounk.txt") << "[PAD]\n[CLS]\n[SEP]\n[MASK]\nfilm\ngood\n";
    r = run_floe("train " + kTiny + " --set data.vocab=\\\"" + (s.dir / "nounk.txt").string() + "\\\"");
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("nounk.txt") && Catch::Contains("[UNK]"));
  }
  SECTION("init_weights with another shape, and a model.max_len above its position table") {
    const auto w = s.dir / "w.pt";
    auto r = run_floe("train " + kTiny + " --set epochs=1 --set data.subset=64 --set freeze.policy=none --save-weights " +
                  w.string());
    REQUIRE(r.code == 0);
    r = run_floe("train " + kTiny + " --set model.max_len=64 --set init_weights=\\\"" + w.string() + "\\\"");
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("model.max_len = 64 exceeds the position table") && Catch::Contains("48 positions"));
    r = run_floe("train " + kTiny + " --set model.ffn_dim=48 --set init_weights=\\\"" + w.string() + "\\\"");
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("block0.ffn.ffn.intermediate.weight") && Catch::Contains("[48, 32]"));
  }
  SECTION("text keys that do not fit") {
    auto r = run_floe("train --set data.dataset=sst2");
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("model.kind = \"bert\""));
    r = run_floe("train " + kTiny + " --set task=mlm");
    CHECK(r.code == 2);
    CHECK_THAT(r.output, Catch::Contains("task = \"mlm\"") && Catch::Contains("cache.frozen_augmentation"));
  }
}

TEST_CASE("a Hugging Face BERT folder fine-tunes elastically; floe eval of the result equals the summary",
          "[cli][text][hf]") {
  Scratch s("hf");
  const auto folder = s.dir / "bert-hf", out = s.dir / "fine-hf", summary = s.dir / "fine.json";
  // A BertForMaskedLM folder as transformers' save_pretrained leaves it, vocab.txt beside it.
  const std::string make = "/usr/bin/python3 " + std::string(FLOE_SOURCE_DIR) + "/tests/reference/hf_reference.py bert --out " +
                           folder.string() + " --vocab " + kSst + "/vocab.txt --hidden 32 --layers 2 --heads 2 "
                           "--intermediate 64 --max-pos 48";
  REQUIRE(std::system(make.c_str()) == 0);
  // Its config.json sets the shapes the job leaves open; the job's own keys must agree with it.
  const std::string job = "--set data.dataset=sst2 --set model.classes=2 --set data.subset=2000 --set data.test_subset=200 "
                          "--set batch_size=64 --set data.length_buckets=8 --set log_interval=1000 --set init_skip=[\\\"head.\\\"]";
  auto r = run_floe("train " + job + " --set epochs=2 --set freeze.policy=manual --set freeze.script=[0,2] "
                "--set init_weights=\\\"" + folder.string() + "\\\" --set save_format=hf --save-weights " + out.string() +
                " --summary " + summary.string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("transition"));
  CHECK(fs::exists(out / "config.json"));
  CHECK(fs::exists(out / "model.safetensors"));
  const auto fine = nlohmann::json::parse(slurp(summary));
  CHECK(fine["config"]["model.dim"] == "32");  // from config.json
  CHECK(fine["epochs"][1]["replicas"] == 2);
  const double trained = fine["final_test_accuracy"].get<double>();

  const auto eval_summary = s.dir / "eval.json", predictions = s.dir / "predictions.jsonl";
  r = run_floe("eval --weights " + out.string() + " " + job + " --set model.kind=bert --summary " + eval_summary.string() +
               " --predictions " + predictions.string());
  INFO(r.output);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.output, Catch::Contains("eval: sst2/dev, 200 samples"));
  CHECK(nlohmann::json::parse(slurp(eval_summary))["final_test_accuracy"].get<double>() == trained);
  // One line per sample, each sample once; the predicted classes give the accuracy printed.
  std::istringstream lines(slurp(predictions));
  std::set<int64_t> ids;
  int right = 0;
  for (std::string line; std::getline(lines, line);) {
    const auto row = nlohmann::json::parse(line);
    ids.insert(row["id"].get<int64_t>());
    const auto p = row["probabilities"].get<std::vector<double>>();
    REQUIRE(p.size() == 2);
    CHECK(p[0] + p[1] == Approx(1.0).epsilon(1e-5));
    CHECK(row["predicted"] == (p[1] > p[0] ? 1 : 0));
    right += row["predicted"] == row["label"];
  }
  CHECK(ids.size() == 200);
  CHECK(*ids.begin() == 0);
  CHECK(*ids.rbegin() == 199);
  CHECK(right / 200.0 == Approx(trained).margin(1e-9));
  // A masked-language model has no class per sample.
  r = run_floe("eval --weights " + out.string() + " " + job + " --set task=mlm --set cache.enabled=false --predictions " + predictions.string());
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains("--predictions") && Catch::Contains("\"mlm\""));
  // A checkpoint's word embeddings need its own vocabulary.
  fs::remove(folder / "vocab.txt");
  r = run_floe("train " + job + " --set epochs=1 --set init_weights=\\\"" + folder.string() + "\\\"");
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains("has no vocab.txt: set data.vocab"));
  // A job that disagrees with the checkpoint names both values.
  r = run_floe("eval --weights " + out.string() + " " + job + " --set model.dim=64");
  CHECK(r.code == 2);
  CHECK_THAT(r.output, Catch::Contains("model.dim = 64 in the job but hidden_size = 32"));
}
