// libFuzzer target for floe's decoders of bytes it does not control (docs/checkpoints.md →
// Fuzzing the decoders): every message type registered for the network, decoded alone and inside a whole
// message as CAF's middleman decodes it; the files of a checkpoint folder; the config
// overrides a joining node receives; fault scripts; safetensors files. The first input byte
// picks the decoder, the rest is its input. A decoder must return or refuse with its
// documented error: a crash, another exception, a leak, a hang or a huge allocation is a finding.
//
//   fuzz_decoders [--unguarded] --write-seeds=DIR    a valid input of every decoder into DIR
//   fuzz_decoders [--unguarded] [--only=PREFIX] [libFuzzer flags] DIR...
//
// --only keeps the decoders whose name starts with PREFIX ("MANIFEST", "type floe.", ...);
// the first byte of an input then no longer matters.
// --unguarded adds decoders that run CAF's and torch's own code on the input (a message of
// any type CAF knows, a state dict through torch's zip reader and unpickler): they crash
// in ways floe cannot guard against, so the tests leave them out (docs/checkpoints.md).
#include <torch/torch.h>

#include "messages/registry.hpp"
#include "runtime/state/checkpoint.hpp"
#include "models/errors.hpp"
#include "runtime/control/faults.hpp"
#include "runtime/config/job_config.hpp"
#include "runtime/state/safetensors.hpp"
#include "runtime/state/state_dict.hpp"
#include "runtime/observe/summary.hpp"

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace floe;
namespace fs = std::filesystem;
using bytes = std::vector<char>;

[[noreturn]] void finding(const std::string& decoder, const std::string& what) {
  std::fprintf(stderr, "fuzz_decoders: %s: %s\n", decoder.c_str(), what.c_str());
  std::abort();
}

// Never destroyed: CAF's own statics may be gone by the time exit() would get to it.
caf::actor_system& actor_system() {
  static auto* sys = new caf::actor_system(*new msg::system_config{1});
  return *sys;
}

// The names floe registers (each type T also as std::vector<T> and stream<T>): what a peer
// may name in a message.
std::vector<std::string> registered_type_names() {
  caf::actor_system_config plain, floe_types;
  msg::register_types(floe_types);
  std::vector<std::string> names;
  for (const auto& [name, factory] : floe_types.value_factories_by_name)
    if (plain.value_factories_by_name.count(name) == 0) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

bytes encode(const caf::type_erased_value& x) {
  bytes out;
  caf::binary_serializer sink{actor_system(), out};
  if (auto err = x.save(sink)) finding("encode", actor_system().render(err));
  return out;
}

// A value that decodes must encode to bytes that decode again, to a value that encodes to
// the same bytes (the first decode may normalise: a bool byte of 7 comes back as 1).
void decode_type(const std::string& name, std::string_view in) {
  auto& sys = actor_system();
  auto x = sys.types().make_value(name);
  caf::binary_deserializer source{sys, in.data(), in.size()};
  if (x->load(source)) return;
  const auto once = encode(*x);
  auto y = sys.types().make_value(name);
  caf::binary_deserializer again{sys, once};
  if (auto err = y->load(again)) finding(name, "a decoded value re-encodes to bytes that do not decode: " + sys.render(err));
  if (encode(*y) != once) finding(name, "decode(encode(x)) differs from x");
}

// As caf::io::basp::remote_message_handler reads a message's payload: forwarding stages,
// then the message (type names, then each element).
void decode_message(std::string_view in) {
  auto& sys = actor_system();
  std::vector<caf::strong_actor_ptr> stages;
  caf::message content;
  caf::binary_deserializer source{sys, in.data(), in.size()};
  source(stages, content);
}

// The header of a message of these types, as the middleman writes it (no stages).
bytes message_header(const std::vector<std::string>& types) {
  bytes out;
  caf::binary_serializer sink{actor_system(), out};
  std::vector<caf::strong_actor_ptr> stages;
  uint16_t builtin = 0;
  std::string names = "@<>";
  for (const auto& t : types) names += "+" + t;
  if (sink(stages) || sink.begin_object(builtin, names)) finding("message", "cannot encode a header");
  return out;
}

// A message of 1..4 of floe's types: a count byte and a type byte each pick the header, the
// rest is the elements. (CAF's built-in types have decoders floe cannot guard: --unguarded.)
void decode_floe_message(const std::vector<std::string>& types, std::string_view in) {
  if (in.empty()) return;
  const size_t count = static_cast<unsigned char>(in[0]) % 4 + 1;
  if (in.size() < 1 + count) return;
  std::vector<std::string> picked;
  for (size_t i = 1; i <= count; ++i) picked.push_back(types[static_cast<unsigned char>(in[i]) % types.size()]);
  auto message = message_header(picked);
  message.insert(message.end(), in.begin() + static_cast<std::ptrdiff_t>(1 + count), in.end());
  decode_message(std::string_view(message.data(), message.size()));
}

// `run` must return or throw InputError whose message starts with `what`.
void expect_input_error(const std::string& decoder, const std::string& what, const std::function<void()>& run) {
  try {
    run();
  } catch (const InputError& e) {
    if (std::string_view(e.what()).substr(0, what.size()) != what)
      finding(decoder, "the error does not name the input: " + std::string(e.what()));
  } catch (const std::exception& e) {
    finding(decoder, std::string("not an InputError: ") + e.what());
  }
}

std::vector<std::string> lines_of(std::string_view text) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= text.size()) {
    const auto end = std::min(text.find('\n', at), text.size());
    if (end > at) out.emplace_back(text.substr(at, end - at));
    at = end + 1;
  }
  return out;
}

// A config that loads must come back equal from to_overrides (how a joining node gets it).
void decode_overrides(std::string_view in) {
  runtime::JobConfig cfg;
  try {
    cfg = runtime::load_job_config("", lines_of(in));
  } catch (const InputError&) {
    return;
  } catch (const std::exception& e) {
    finding("config overrides", std::string("not an InputError: ") + e.what());
  }
  try {
    if (runtime::to_flat_map(runtime::load_job_config("", runtime::to_overrides(cfg))) != runtime::to_flat_map(cfg))
      finding("config overrides", "to_overrides does not reproduce the config");
  } catch (const std::exception& e) {
    finding("config overrides", std::string("to_overrides does not load back: ") + e.what());
  }
}

// A safetensors file that decodes must re-encode to a canonical file with the same names,
// dtypes, shapes, bytes and metadata, which decodes and re-encodes to itself.
void decode_safetensors_file(std::string_view in) {
  bool decoded = false;
  runtime::SafetensorsHeader header;
  std::map<std::string, torch::Tensor> tensors;
  expect_input_error("safetensors", "<bytes>: ", [&] {
    header = runtime::parse_safetensors_header(in, "<bytes>");
    tensors = runtime::decode_safetensors(in, "<bytes>");
    decoded = true;
  });
  if (!decoded) return;
  try {
    const auto canonical = runtime::encode_safetensors(tensors, header.metadata, "<canonical>");
    const auto again = runtime::parse_safetensors_header(canonical, "<canonical>");
    if (again.metadata != header.metadata) finding("safetensors", "the metadata differs once re-encoded");
    if (again.tensors.size() != header.tensors.size()) finding("safetensors", "the tensors differ once re-encoded");
    for (const auto& [name, t] : header.tensors) {
      const auto it = again.tensors.find(name);
      if (it == again.tensors.end() || it->second.dtype != t.dtype || it->second.shape != t.shape ||
          canonical.compare(again.data_start + it->second.begin, it->second.nbytes(), in.data() + header.data_start + t.begin,
                            t.nbytes()) != 0)
        finding("safetensors", "tensor \"" + name + "\" differs once re-encoded");
    }
    if (runtime::encode_safetensors(runtime::decode_safetensors(canonical, "<canonical>"), again.metadata, "<canonical>") !=
        canonical)
      finding("safetensors", "a canonical file does not re-encode to itself");
  } catch (const std::exception& e) {
    finding("safetensors", std::string("a decoded file does not round-trip: ") + e.what());
  }
}

std::map<std::string, torch::Tensor> sample_state_dict() {
  return {{"block0.attn.w", torch::arange(12, torch::kFloat32).reshape({3, 4})},
          {"head.b#step", torch::full({1}, 7.0, torch::kFloat64)},
          {"uids", torch::tensor({5, 6}, torch::kInt64)}};
}

// A torch archive (zip) of a valid state dict with its pickle program replaced by `pickle`:
// the unpickler itself gets the input, past the zip's CRC checks.
std::vector<char> archive_with_pickle(std::string_view pickle) {
  static const auto records = [] {
    const auto archive = runtime::pickle_state_dict(sample_state_dict());
    caffe2::serialize::PyTorchStreamReader reader(
        std::make_shared<caffe2::serialize::MemoryReadAdapter>(archive.data(), archive.size()));
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& name : reader.getAllRecords()) {
      if (name == "version") continue;  // the writer adds its own
      auto [data, size] = reader.getRecord(name);
      out.emplace_back(name, std::string(static_cast<const char*>(data.get()), size));
    }
    return out;
  }();
  std::vector<char> out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* p, size_t n) {
    out.insert(out.end(), static_cast<const char*>(p), static_cast<const char*>(p) + n);
    return n;
  });
  for (const auto& [name, data] : records) {
    if (name == "data.pkl")
      writer.writeRecord(name, pickle.data(), pickle.size());
    else
      writer.writeRecord(name, data.data(), data.size());
  }
  writer.writeEndOfFile();
  return out;
}

struct Decoder {
  std::string name;
  std::function<void(std::string_view)> run;
  std::vector<std::string> seeds;
};

std::vector<Decoder> decoders(bool unguarded) {
  std::vector<Decoder> out;
  const auto types = registered_type_names();
  for (const auto& name : types)
    out.push_back({"type " + name, [name](std::string_view in) { decode_type(name, in); }, {}});
  out.push_back({"floe message", [types](std::string_view in) { decode_floe_message(types, in); }, {}});
  out.push_back({"MANIFEST", [](std::string_view in) {
                   expect_input_error("MANIFEST", "MANIFEST", [&] { runtime::parse_manifest(std::string(in), "MANIFEST"); });
                 }, {}});
  out.push_back({"job.json", [](std::string_view in) {
                   expect_input_error("job.json", "job.json", [&] { runtime::job_state_from_json(std::string(in), "job.json"); });
                 }, {}});
  out.push_back({"summary", [](std::string_view in) {
                   try {
                     runtime::summary_from_json(std::string(in));
                   } catch (const std::exception&) {  // its documented errors: std::invalid_argument, nlohmann's
                   }
                 }, {}});
  out.push_back({"config overrides", decode_overrides, {}});
  out.push_back({"fault", [](std::string_view in) {
                   expect_input_error("fault", "fault \"", [&] { runtime::parse_fault(std::string(in)); });
                 }, {}});
  out.push_back({"safetensors", decode_safetensors_file, {}});
  if (unguarded) {
    out.push_back({"any message", decode_message, {}});
    out.push_back({"state dict file", [](std::string_view in) {
                     expect_input_error("state dict file", "parameters.pt",
                                        [&] { runtime::unpickle_state_dict(std::string(in), "parameters.pt"); });
                   }, {}});
    out.push_back({"state dict pickle", [](std::string_view in) {
                     const auto archive = archive_with_pickle(in);
                     expect_input_error("state dict pickle", "parameters.pt", [&] {
                       runtime::unpickle_state_dict(std::string(archive.begin(), archive.end()), "parameters.pt");
                     });
                   }, {}});
  }
  return out;
}

// --- seeds: valid inputs, so that the fuzzer starts inside every decoder, and the inputs of
// the bugs it found ---------------------------------------------------------------------

template <class T>
std::string encoded(T x) {
  bytes out;
  caf::binary_serializer sink{actor_system(), out};
  if (auto err = sink(x)) finding("seed", actor_system().render(err));
  return std::string(out.begin(), out.end());
}

template <class... Ts>
std::string encoded_fields(Ts... xs) {
  bytes out;
  caf::binary_serializer sink{actor_system(), out};
  if (auto err = sink(xs...)) finding("seed", actor_system().render(err));
  return std::string(out.begin(), out.end());
}

torch::Tensor ramp(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return torch::arange(n, torch::kFloat32).reshape(shape);
}

// Values with content for the types whose defaults are mostly empty.
std::map<std::string, std::vector<std::string>> rich_values() {
  std::map<std::string, std::vector<std::string>> out;
  out["floe.wire_tensor"] = {encoded(msg::wire_tensor{ramp({2, 3})}),
                             encoded(msg::wire_tensor{torch::tensor({1, 2, 3}, torch::kInt64)}),
                             encoded(msg::wire_tensor{torch::zeros({0, 4})})};
  out["floe.activation"] = {encoded(msg::activation{7, 3, {ramp({2, 4})}, 123})};
  out["floe.gradient"] = {encoded(msg::gradient{7, 3, {ramp({2, 4})}, 123}),
                          encoded(msg::gradient{7, 3, {}, 123, {0x8000000000000001ull, 6, {2, 4}}})};
  out["floe.stage_links"] = {encoded(msg::stage_links{{}, {}, std::string("ucx\0addr", 8), "x"})};
  msg::pipelines_join join;
  join.replicas = {1};
  join.micro_batches = 4;
  join.stages.resize(2);
  join.addresses = {"a", std::string("\0b", 2)};
  out["floe.pipelines_join"] = {encoded(join)};
  msg::stage_task task;
  task.step = 4;
  task.lr = 0.5;
  task.program = {{0, runtime::ActionKind::forward, 0}, {0, runtime::ActionKind::backward, 0}};
  task.inputs = {{ramp({1, 2})}};
  task.uids = {{torch::tensor({9}, torch::kInt64)}};
  task.targets = {{torch::tensor({1}, torch::kInt64)}};
  out["floe.stage_task"] = {encoded(task)};
  const auto named = msg::from_map(sample_state_dict());
  out["floe.named_tensors"] = {encoded(named)};
  out["floe.stage_state"] = {encoded(msg::stage_state{named, named})};
  runtime::Event e;
  e.kind = runtime::EventKind::transfer;
  e.detail = "activation";
  e.values = {{"bytes", 4096}};
  e.per_stage = {0.25, 0.5};
  out["floe.event_batch"] = {encoded(msg::event_batch{{e, e}})};
  out["floe.event"] = {encoded(e)};
  const auto fault = runtime::parse_fault("delay gradient replica=1 stage=2 seconds=0.5 at=3 count=4");
  out["floe.fault"] = {encoded(fault)};
  out["floe.inject_fault"] = {encoded(msg::inject_fault{runtime::parse_fault("kill node=1 at=30")})};
  runtime::TrainingSummary s;
  s.epochs.resize(1);
  s.epochs[0].stage_busy_fraction = {0.5, 0.25};
  s.transitions.resize(1);
  s.config["epochs"] = "3";
  out["floe.training_summary"] = {encoded(s)};
  out["floe.replica_step"] = {encoded(msg::replica_step{3, true, 0.1, {5, 6, 7}, 9, 1, 1})};
  out["floe.join_welcome"] = {encoded(msg::join_welcome{1, runtime::to_overrides(runtime::JobConfig{}), 4501})};
  out["std::vector<int64_t>"] = {encoded(std::vector<int64_t>{1, -2, 1ll << 40})};
  msg::step_report diverged;  // CAF's own double encoding hung on the infinity
  diverged.loss_sum = std::numeric_limits<double>::infinity();
  diverged.seconds = std::numeric_limits<double>::quiet_NaN();
  diverged.block_values = {5e-324, -0.0};
  out["floe.step_report"] = {encoded(diverged)};
  return out;
}

// The files of a small checkpoint as write_checkpoint writes them.
std::map<std::string, std::string> checkpoint_files() {
  runtime::Checkpoint c;
  c.parameters = sample_state_dict();
  c.optimizer = {{"head.b#exp_avg", torch::full({2}, 0.5)}};
  c.config = runtime::to_overrides(runtime::JobConfig{});
  c.job.global_step = 12;
  c.job.step = 2;
  c.job.units_per_stage = {5, 10};
  c.job.micro_batches = 2;
  c.job.replicas = 1;
  c.job.node_devices = {2};
  c.job.block_grad_sq = {0.5, 0.25};
  c.job.busy = {0.1};
  runtime::TrainingSummary s;
  s.epochs.resize(1);
  s.epochs[0].cached = true;
  s.epochs[0].cache.bypassed_levels = {3};
  s.transitions.resize(1);
  c.job.summary_json = runtime::to_json(s, -1);
  const auto dir = fs::temp_directory_path() / ("floe-fuzz-seeds-" + std::to_string(::getpid()));
  const fs::path folder = runtime::write_checkpoint(dir.string(), c, 1);
  std::map<std::string, std::string> out;
  for (const char* name : {"MANIFEST", "job.json", "config.toml", "parameters.pt", "optimizer.pt"}) {
    std::ifstream in(folder / name, std::ios::binary);
    out[name] = std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  fs::remove_all(dir);
  return out;
}

void add_seeds(std::vector<Decoder>& all) {
  auto& sys = actor_system();
  auto rich = rich_values();
  const auto files = checkpoint_files();
  auto add = [&](const std::string& decoder, std::string seed) {
    for (auto& d : all)
      if (d.name == decoder) d.seeds.push_back(std::move(seed));
  };
  // Every type's default value and those of rich_values: alone, as the one element of a floe
  // message (count byte 0, the type's index) and of any message.
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].name.rfind("type ", 0) != 0) continue;
    const auto type = all[i].name.substr(5);
    const auto plain = encode(*sys.types().make_value(type));
    auto values = rich[type];
    values.emplace_back(plain.begin(), plain.end());
    for (const auto& x : values) {
      caf::binary_deserializer source{sys, x.data(), x.size()};
      if (sys.types().make_value(type)->load(source)) finding("seed", "a seed of " + type + " does not decode");
      all[i].seeds.push_back(x);
      add("floe message", std::string{char(0), static_cast<char>(i)} + x);
      const auto header = message_header({type});
      add("any message", std::string(header.begin(), header.end()) + x);
    }
  }
  // The inputs of the bugs found with this target (handled since): every run tries them again.
  add("type floe.wire_tensor", encoded_fields(int8_t(c10::ScalarType::Undefined), std::vector<int64_t>{4}, uint64_t(4)));
  add("type floe.wire_tensor", encoded_fields(int8_t(c10::ScalarType::Float), std::vector<int64_t>{1 << 27}, uint64_t(1) << 29));
  for (const char* line : {"data.root=\"a \\\"quote\xff\xff\\\" path\"", "data.root=a\x01" "b", "cache.budget=\"nanGiB\"",
                           "cache.disk_budget=\"1e308TiB\""})
    add("config overrides", line);
  add("MANIFEST", files.at("MANIFEST"));
  add("job.json", files.at("job.json"));
  add("summary", nlohmann::json::parse(files.at("job.json")).at("summary").dump());
  add("config overrides", files.at("config.toml"));
  add("config overrides",
      "pipeline.partition=[5, 10]\nfreeze.policy=manual\nfreeze.script=[0, 2]\ncache.budget=\"2GiB\"\n"
      "faults=[\"slow stage=1 seconds=0.01 at=5\"]\ndata.root=\"a \\\"quoted\\\" path\"\n");
  for (const char* f : {"delay activation replica=0 stage=1 seconds=0.05 at=10 count=4", "drop gradient stage=1",
                        "slow stage=1 seconds=0.01", "kill replica=1 stage=-1 at=30", "kill node=1 at=30"})
    add("fault", f);
  add("safetensors", runtime::encode_safetensors(sample_state_dict(), {{"format", "pt"}}, "seed"));
  add("safetensors", runtime::encode_safetensors({{"f64", torch::tensor({1.5}, torch::kFloat64)},
                                                  {"f16", torch::tensor({0.5, 2.0}).to(torch::kFloat16)},
                                                  {"bf16", torch::tensor({-1.0}).to(torch::kBFloat16)},
                                                  {"i32", torch::tensor({-7}, torch::kInt32)},
                                                  {"i16", torch::tensor({3}, torch::kInt16)},
                                                  {"i8", torch::tensor({-1, 1}, torch::kInt8)},
                                                  {"u8", torch::tensor({255}, torch::kUInt8)},
                                                  {"bool", torch::tensor({true, false})},
                                                  {"scalar", torch::tensor(2.5)},
                                                  {"empty", torch::zeros({0, 3})}},
                                                 {}, "seed"));
  auto safetensors_file = [](const std::string& header, const std::string& data) {
    std::string length(8, '\0');
    for (size_t i = 0; i < 8; ++i) length[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
    return length + header + data;
  };
  // Not canonical: data in reverse name order, whitespace, an unknown field, zero-length tensors.
  add("safetensors", safetensors_file("{\"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [0, 2], \"x\": 0},\n"
                                      " \"a\": {\"dtype\": \"I16\", \"shape\": [1, 1], \"data_offsets\": [2, 4]},"
                                      " \"z\": {\"dtype\": \"I64\", \"shape\": [0, 9], \"data_offsets\": [4, 4]},"
                                      " \"__metadata__\": {\"k\": \"v\"}}  ",
                                      "\x01\x02\x03\x04"));
  // Refused, a byte away from valid: overlapping tensors, a size that is not the dtype's.
  add("safetensors", safetensors_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                                      std::string(12, '\0')));
  add("safetensors", safetensors_file("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                                      std::string(8, '\0')));
  add("state dict file", files.at("parameters.pt"));
  add("state dict file", files.at("optimizer.pt"));
  caffe2::serialize::PyTorchStreamReader reader(std::make_shared<caffe2::serialize::MemoryReadAdapter>(
      files.at("parameters.pt").data(), files.at("parameters.pt").size()));
  auto [pickle, size] = reader.getRecord("data.pkl");
  add("state dict pickle", std::string(static_cast<const char*>(pickle.get()), size));
}

void write_seeds(std::vector<Decoder>& all, const fs::path& dir) {
  add_seeds(all);
  fs::create_directories(dir);
  size_t count = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    std::string stem = all[i].name;
    for (auto& ch : stem)
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    for (size_t k = 0; k < all[i].seeds.size(); ++k) {
      std::ofstream out(dir / (std::to_string(i) + "-" + stem + "-" + std::to_string(k)), std::ios::binary);
      out.put(static_cast<char>(i));
      out << all[i].seeds[k];
      if (!out) finding("seed", "cannot write into " + dir.string());
      ++count;
    }
  }
  std::printf("fuzz_decoders: %zu seeds for %zu decoders in %s\n", count, all.size(), dir.c_str());
}

std::vector<Decoder>& table() {
  static std::vector<Decoder> t;
  return t;
}

}  // namespace

// Our options start with "--", which libFuzzer ignores (and fork mode hands to its workers).
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  bool unguarded = false;
  std::string seeds_dir, only;
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = (*argv)[i];
    if (arg == "--unguarded") unguarded = true;
    if (arg.rfind("--write-seeds=", 0) == 0) seeds_dir = arg.substr(14);
    if (arg.rfind("--only=", 0) == 0) only = arg.substr(7);
  }
  torch::set_num_threads(1);  // the tensors here are tiny; leave the other core alone
  auto& t = table();
  t = decoders(unguarded);
  if (!seeds_dir.empty()) {
    write_seeds(t, seeds_dir);
    std::exit(0);
  }
  t.erase(std::remove_if(t.begin(), t.end(), [&](const Decoder& d) { return d.name.rfind(only, 0) != 0; }), t.end());
  if (t.empty()) finding("--only", "no decoder's name starts with \"" + only + "\"");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& decoder = table()[data[0] % table().size()];
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    decoder.run(in);
  } catch (const std::exception& e) {
    finding(decoder.name, std::string("an exception escaped: ") + e.what());
  }
  return 0;
}
