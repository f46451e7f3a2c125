// Every message type that can cross a process survives serialisation, and corrupt bytes are
// rejected with an error instead of crashing the receiver.
#include <torch/torch.h>

#include "messages/registry.hpp"

#include <catch2/catch.hpp>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <cmath>
#include <cstring>
#include <limits>

using namespace floe;

namespace {

template <class T>
std::vector<char> save(caf::actor_system& sys, T x) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  REQUIRE(!sink(x));
  return buf;
}

template <class T>
caf::error load(caf::actor_system& sys, const std::vector<char>& buf, T& x) {
  caf::binary_deserializer source{sys, buf};
  return source(x);
}

// An activation whose tensor header claims `shape` but carries `bytes` payload bytes.
std::vector<char> forged_activation(caf::actor_system& sys, int8_t dtype, std::vector<int64_t> shape, uint64_t bytes) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  int64_t step = 1;
  int32_t mb = 0;
  REQUIRE(!sink(step, mb, dtype, shape, bytes));
  std::vector<char> payload(bytes, 0);
  if (bytes) REQUIRE(!sink.apply_raw(bytes, payload.data()));
  int64_t sent_us = 0;
  msg::tensor_ticket none;
  REQUIRE(!sink(sent_us, none));
  return buf;
}

}  // namespace

TEST_CASE("training messages round-trip exactly", "[messages]") {
  msg::system_config cfg;
  caf::actor_system sys{cfg};
  msg::activation a{7, 3, {torch::randn({2, 5, 4})}};
  msg::activation a2;
  REQUIRE(!load(sys, save(sys, a), a2));
  CHECK(a2.step == 7);
  CHECK(a2.micro_batch == 3);
  CHECK(torch::equal(a.value.t, a2.value.t));

  msg::stage_task t;
  t.step = 4;
  t.lr = 0.5;
  t.program = runtime::gpipe_schedule(2, 2)[1];
  t.targets = {{torch::tensor({1, 2}, torch::kInt64)}};
  msg::stage_task t2;
  REQUIRE(!load(sys, save(sys, t), t2));
  CHECK(t2.program == t.program);
  CHECK(t2.lr == 0.5);
  CHECK(torch::equal(t2.targets[0].t, t.targets[0].t));

  msg::replica_step r{3, true, 0.1, {5, 6, 7}, 9};
  r.predictions = true;
  msg::replica_step r2;
  REQUIRE(!load(sys, save(sys, r), r2));
  CHECK(r2.uids == r.uids);
  CHECK(r2.global_samples == 9);
  CHECK(r2.predictions);

  // What floe eval --predictions and a recovery read travel across processes too.
  msg::step_report rep;
  rep.uids = {4, 9};
  rep.probabilities = {{torch::tensor({{0.25f, 0.75f}, {0.5f, 0.5f}})}};
  msg::step_report rep2;
  REQUIRE(!load(sys, save(sys, rep), rep2));
  CHECK(rep2.uids == rep.uids);
  REQUIRE(rep2.probabilities.size() == 1);
  CHECK(torch::equal(rep2.probabilities[0].t, rep.probabilities[0].t));
  msg::stage_state st{{{"w"}, {{torch::ones({2})}}}, {}, {12, -1}};
  msg::stage_state st2;
  REQUIRE(!load(sys, save(sys, st), st2));
  CHECK(st2.optimizer_steps == std::vector<int64_t>{12, -1});
  CHECK(st2.parameters.names == st.parameters.names);

  runtime::TrainingSummary s;
  s.final_test_accuracy = 0.9;
  s.epochs.push_back({});
  s.epochs[0].stage_busy_fraction = {0.5, 0.25};
  s.config["epochs"] = "1";
  runtime::TrainingSummary s2;
  REQUIRE(!load(sys, save(sys, s), s2));
  CHECK(s2.final_test_accuracy == 0.9);
  CHECK(s2.epochs.at(0).stage_busy_fraction == std::vector<double>{0.5, 0.25});
  CHECK(s2.config.at("epochs") == "1");
}

TEST_CASE("corrupt tensor payloads are rejected, not trusted", "[messages]") {
  msg::system_config cfg;
  caf::actor_system sys{cfg};
  msg::activation out;
  const auto f32 = static_cast<int8_t>(c10::ScalarType::Float);
  CHECK(!load(sys, forged_activation(sys, f32, {4}, 16), out));  // a well-formed one loads
  CHECK(out.value.t.numel() == 4);
  CHECK(load(sys, forged_activation(sys, f32, {5}, 16), out));         // shape disagrees with bytes
  CHECK(load(sys, forged_activation(sys, 99, {4}, 16), out));          // unknown dtype
  CHECK(load(sys, forged_activation(sys, f32, {-4}, 0), out));         // negative dimension
  // A ticket (the tensor's bytes over UCX): it round-trips, and a forged one is refused.
  msg::activation ticketed{5, 1, {}, 0, {0x8000000000000001ull, f32, {2, 3}}}, back;
  REQUIRE(!load(sys, save(sys, ticketed), back));
  CHECK(back.ticket.tag == ticketed.ticket.tag);
  CHECK(back.ticket.shape == ticketed.ticket.shape);
  CHECK(!back.value.t.defined());
  ticketed.ticket.dtype = 99;
  CHECK(load(sys, save(sys, ticketed), back));
  ticketed.ticket = {1, f32, {-2, 3}};
  CHECK(load(sys, save(sys, ticketed), back));
  ticketed.ticket = {1, f32, {int64_t(1) << 30, int64_t(1) << 30}};
  CHECK(load(sys, save(sys, ticketed), back));
  auto cut = forged_activation(sys, f32, {4}, 16);
  cut.resize(cut.size() - 8 - 3);
  CHECK(load(sys, cut, out));  // truncated payload
}

TEST_CASE("a forged tensor header is refused before anything is allocated or thrown", "[messages]") {
  msg::system_config cfg;
  caf::actor_system sys{cfg};
  // Found by tests/fuzz: 75 bytes of a gradient whose header claims 2 x 2^26 floats (512 MiB)
  // made the receiver allocate them before reading the payload.
  const char found[] =
      "\x00\x00\x00\x00\x00\x00\x00\x07\x00\x00\x00\x03\x06\x02\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00\x04"
      "\x00\x00\x00\x00\x00\x00\x00\x20\x00\x00\x00\x00\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80"
      "\x40\x00\x00\xa0\x40\x00\x00\xc0\x40\x00\x00\xe0\x40\x00\x00\x00\x00\x00\x00\x00\x7b";
  msg::gradient g;
  const auto err = load(sys, std::vector<char>(found, found + sizeof found - 1), g);
  REQUIRE(err);
  CHECK_THAT(sys.render(err), Catch::Contains("payload shorter than its header says"));
  // 2^40 floats (4 TiB) and no payload: torch's allocation used to throw out of the deserializer.
  std::vector<char> header;
  caf::binary_serializer sink{sys, header};
  int64_t step = 1;
  int32_t mb = 0;
  auto dtype = static_cast<int8_t>(c10::ScalarType::Float);
  std::vector<int64_t> shape{int64_t(1) << 40};
  uint64_t bytes = uint64_t(4) << 40;
  REQUIRE(!sink(step, mb, dtype, shape, bytes));
  msg::activation a;
  CHECK(load(sys, header, a));
  // Found by tests/fuzz: dtype 18 (Undefined) passed the range check and made torch throw.
  for (int dt = -128; dt < 128; ++dt) CHECK_NOTHROW(load(sys, forged_activation(sys, int8_t(dt), {4}, 16), a));
  CHECK(load(sys, forged_activation(sys, int8_t(c10::ScalarType::Undefined), {4}, 16), a));
  CHECK(load(sys, forged_activation(sys, int8_t(c10::ScalarType::QInt8), {4}, 4), a));  // quantized: no plain layout
}

TEST_CASE("doubles cross bit-exactly: an infinite loss does not hang the sender, a NaN stays NaN", "[messages]") {
  // Found by tests/fuzz: CAF 0.17's own double encoding loops forever on an infinity and turns
  // a NaN into -1 and 5e-324 into -1.6e293 (messages/exact.hpp).
  msg::system_config cfg;
  caf::actor_system sys{cfg};
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  auto same = [](double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; };
  for (double v : {inf, -inf, nan, 5e-324, -0.0, 0.1}) {
    msg::step_report r;
    r.loss_sum = v;
    r.seconds = v;
    r.stage_busy_seconds = {v, 1.0};
    r.block_values = {v};
    msg::step_report back;
    REQUIRE(!load(sys, save(sys, r), back));
    CHECK(same(back.loss_sum, v));
    CHECK(same(back.seconds, v));
    CHECK(same(back.stage_busy_seconds.at(0), v));
    CHECK(same(back.block_values.at(0), v));
  }
  runtime::Event e;
  e.values = {{"loss", nan}};
  e.per_stage = {inf};
  msg::event_batch b{{e}}, b2;
  REQUIRE(!load(sys, save(sys, b), b2));
  CHECK(std::isnan(b2.events.at(0).values.at("loss")));
  CHECK(b2.events.at(0).per_stage == std::vector<double>{inf});
  msg::freeze_query q{1, 2, 0, 4, {inf, 5e-324}, {0.5, -1.0}}, q2;
  REQUIRE(!load(sys, save(sys, q), q2));
  CHECK(q2.grad_norms == q.grad_norms);
  CHECK(q2.plasticity == q.plasticity);
  runtime::TrainingSummary s;
  s.final_test_loss = inf;
  s.epochs.resize(1);
  s.epochs[0].cache.read_seconds = 5e-324;
  runtime::TrainingSummary s2;
  REQUIRE(!load(sys, save(sys, s), s2));
  CHECK(s2.final_test_loss == inf);
  CHECK(s2.epochs.at(0).cache.read_seconds == 5e-324);
}

TEST_CASE("observation and hook messages round-trip, and unknown kinds are rejected", "[messages][events]") {
  msg::system_config cfg;
  caf::actor_system sys{cfg};
  runtime::Event e;
  e.kind = runtime::EventKind::transfer;
  e.start_us = 123456789;
  e.duration_us = 42;
  e.step = 17;
  e.replica = 1;
  e.stage = 2;
  e.device = 5;
  e.micro_batch = 3;
  e.detail = "activation";
  e.values = {{"bytes", 4096}};
  e.per_stage = {0.25};
  msg::event_batch b{{e, e}};
  msg::event_batch b2;
  REQUIRE(!load(sys, save(sys, b), b2));
  REQUIRE(b2.events.size() == 2);
  CHECK(b2.events[1].kind == runtime::EventKind::transfer);
  CHECK(b2.events[1].start_us == 123456789);
  CHECK(b2.events[1].detail == "activation");
  CHECK(b2.events[1].values.at("bytes") == 4096);
  CHECK(b2.events[1].per_stage == std::vector<double>{0.25});

  msg::inject_fault f{runtime::parse_fault("delay gradient replica=1 stage=0 seconds=0.5 at=3 count=2")};
  msg::inject_fault f2;
  REQUIRE(!load(sys, save(sys, f), f2));
  CHECK(runtime::describe(f2.fault) == runtime::describe(f.fault));

  msg::scripted_freeze z{40, 3}, z2;
  REQUIRE(!load(sys, save(sys, z), z2));
  CHECK(z2.at_step == 40);
  CHECK(z2.frozen == 3);

  // A remote peer sending a kind this build does not know is refused, not cast.
  auto bytes = save(sys, e);
  bytes[0] = 99;
  runtime::Event bad;
  CHECK(load(sys, bytes, bad));
  auto fbytes = save(sys, f.fault);
  fbytes[0] = -7;
  runtime::Fault badf;
  CHECK(load(sys, fbytes, badf));
}

TEST_CASE("membership messages round-trip: the join and the placement of pipelines", "[messages][cluster]") {
  msg::system_config cfg;
  caf::actor_system sys{cfg};
  msg::join_request j{"node-a", 4, "ab12", "cd34"}, j2;
  REQUIRE(!load(sys, save(sys, j), j2));
  CHECK(j2.name == "node-a");
  CHECK(j2.devices == 4);
  CHECK(j2.nonce == "ab12");
  CHECK(j2.proof == "cd34");

  msg::join_welcome w{2, {"epochs=3", "data.root=\"/x\""}, 4711}, w2;
  REQUIRE(!load(sys, save(sys, w), w2));
  CHECK(w2.node == 2);
  CHECK(w2.config == w.config);
  CHECK(w2.store_port == 4711);

  msg::pipelines_request q;
  q.generation = 3;
  q.units_per_stage = {5, 6};
  q.frozen_units = 2;
  q.micro_batches = 4;
  q.replicas = 4;
  q.pieces = {{2, 0, 2}, {3, 1, 1}};
  q.parameters = {{"block0.w"}, {{torch::randn({3, 2})}}};
  q.optimizer = {{"block0.w#exp_avg"}, {{torch::zeros({3, 2})}}};
  q.across_nodes = true;
  msg::pipelines_request q2;
  REQUIRE(!load(sys, save(sys, q), q2));
  CHECK(q2.generation == 3);
  CHECK(q2.units_per_stage == q.units_per_stage);
  CHECK(q2.frozen_units == 2);
  CHECK(q2.micro_batches == 4);
  CHECK(q2.replicas == 4);
  REQUIRE(q2.pieces.size() == 2);
  CHECK(q2.pieces[1].replica == 3);
  CHECK(q2.pieces[1].first_stage == 1);
  CHECK(q2.pieces[1].stages == 1);
  CHECK(q2.parameters.names == q.parameters.names);
  CHECK(torch::equal(q2.parameters.values[0].t, q.parameters.values[0].t));
  CHECK(q2.optimizer.names == q.optimizer.names);
  CHECK(q2.across_nodes);
  CHECK(!q2.events);

  msg::pipelines_built b, b2;  // handles are tested across real processes (tests/launch/cluster_test.cpp)
  b.tensor_address = std::string("ucx\0y", 5);
  REQUIRE(!load(sys, save(sys, b), b2));
  CHECK(b2.tensor_address == b.tensor_address);
  msg::pipelines_join pj, pj2;
  pj.replicas = {1};
  pj.micro_batches = 8;
  pj.stages.resize(2);
  pj.addresses = {"a", ""};
  REQUIRE(!load(sys, save(sys, pj), pj2));
  CHECK(pj2.replicas == pj.replicas);
  CHECK(pj2.micro_batches == 8);
  CHECK(pj2.stages.size() == 2);
  CHECK(pj2.addresses == pj.addresses);
  msg::node_ready r{1, {}, "n", 2}, r2;
  REQUIRE(!load(sys, save(sys, r), r2));
  CHECK(r2.node == 1);
  CHECK(r2.name == "n");
  CHECK(r2.devices == 2);

  auto cut = save(sys, q);
  cut.resize(cut.size() / 2);
  CHECK(load(sys, cut, q2));  // a truncated request is an error, not a half-filled plan
}
