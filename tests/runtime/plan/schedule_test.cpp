#include "runtime/plan/schedule.hpp"

#include <catch2/catch.hpp>

using namespace floe::runtime;

TEST_CASE("GPipe programs in text form", "[schedule]") {
  auto s = gpipe_schedule(2, 3);
  REQUIRE(s.size() == 2);
  CHECK(to_string(s[0]) == "0F0 0F1 0F2 0B0 0B1 0B2 0R 0S");
  CHECK(to_string(s[1]) == "1F0 1F1 1F2 1B0 1B1 1B2 1R 1S");
}

TEST_CASE("1F1B programs warm up by distance to the last stage", "[schedule]") {
  auto s = one_f_one_b_schedule(3, 4);
  CHECK(to_string(s[0]) == "0F0 0F1 0F2 0B0 0F3 0B1 0B2 0B3 0R 0S");
  CHECK(to_string(s[1]) == "1F0 1F1 1B0 1F2 1B1 1F3 1B2 1B3 1R 1S");
  CHECK(to_string(s[2]) == "2F0 2B0 2F1 2B1 2F2 2B2 2F3 2B3 2R 2S");
}

TEST_CASE("every generated schedule runs to completion", "[schedule]") {
  for (int k = 1; k <= 8; ++k)
    for (int m = 1; m <= 12; ++m) {
      INFO("K=" << k << " M=" << m);
      CHECK(check_schedule(gpipe_schedule(k, m), m).empty());
      CHECK(check_schedule(one_f_one_b_schedule(k, m), m).empty());
      auto f = forward_only_schedule(k, m);
      CHECK(check_schedule(f, 0).empty());
    }
}

TEST_CASE("a schedule that waits on itself is reported as a deadlock", "[schedule]") {
  Schedule bad{parse_program("0F0 0B0 0R 0S"), parse_program("1B0 1F0 1R 1S")};
  CHECK(check_schedule(bad, 1) == "device 0 blocked at 0B0");
}

TEST_CASE("program text round-trips and rejects malformed actions", "[schedule]") {
  const std::string text = "1F0 1F1 1B0 1B1 1R 1S";
  CHECK(to_string(parse_program(text)) == text);
  CHECK_THROWS_WITH(parse_program("1X0"), Catch::Contains("1X0"));
  CHECK_THROWS_AS(parse_program("1R3"), std::invalid_argument);
  CHECK_THROWS_AS(parse_program("F0"), std::invalid_argument);
  CHECK_THROWS_AS(parse_schedule_kind("zigzag"), std::runtime_error);
}

TEST_CASE("split backward actions round-trip in text form", "[schedule]") {
  const std::string text = "0F0 0F1 0I0 0F2 0I1 0W0 0I2 0W1 0W2 0R 0S";
  CHECK(to_string(parse_program(text)) == text);
  CHECK_THROWS_AS(parse_program("0W"), std::invalid_argument);
  CHECK(parse_schedule_kind("zb-h1") == ScheduleKind::zb_h1);
  CHECK(parse_schedule_kind(to_string(ScheduleKind::zb_h2)) == ScheduleKind::zb_h2);
  CHECK_THROWS_WITH(parse_schedule_kind("zb"), Catch::Contains("pipeline.schedule") && Catch::Contains("zb-h1"));
}

TEST_CASE("the checker finds missing, repeated and misplaced actions", "[schedule]") {
  CHECK(check_schedule({parse_program("0F0 0F0 0B0 0R 0S")}, 1) == "stage 0 runs 0F0 twice");
  CHECK(check_schedule({parse_program("0F0 0I0 0R 0S")}, 1) ==
        "stage 0 must backpropagate micro-batch 0 once: by B, or by I and W");
  CHECK(check_schedule({parse_program("0F0 0B0 0W0 0R 0S")}, 1) ==
        "stage 0 must backpropagate micro-batch 0 once: by B, or by I and W");
  CHECK(check_schedule({parse_program("0F0 0B0 0R 0S")}, 2) == "stage 0 never forwards micro-batch 1");
  // A stage lives on the device whose program holds its actions: on one device only, and
  // every stage up to the last one named is somewhere.
  CHECK(check_schedule({parse_program("0F0 0B0 1R 0S")}, 1) == "stage 1 never forwards micro-batch 0");
  CHECK(check_schedule({parse_program("0F0 0B0 0R"), parse_program("0S")}, 1) == "stage 0 has actions on devices 0 and 1");
  CHECK(check_schedule({parse_program("0F0 0B0 2F0 2B0")}, 1) == "no device runs stage 1");
  // W before its I, and an all-reduce before a W, wait forever.
  CHECK(check_schedule({parse_program("0F0 0W0 0I0 0R 0S")}, 1) == "device 0 blocked at 0W0");
  CHECK(check_schedule({parse_program("0F0 0I0 0R 0W0 0S")}, 1) == "device 0 blocked at 0R");
}

TEST_CASE("zero-bubble programs run to completion and split every backward", "[schedule]") {
  for (int k = 1; k <= 8; ++k)
    for (int m = 1; m <= 16; ++m)
      for (auto kind : {ScheduleKind::zb_h1, ScheduleKind::zb_h2}) {
        INFO("K=" << k << " M=" << m << " " << to_string(kind));
        const auto s = make_schedule(kind, k, m);
        REQUIRE(check_schedule(s, m).empty());
        for (const auto& p : s)
          for (const auto& a : p) CHECK(a.kind != ActionKind::backward);
      }
}

TEST_CASE("ZB-H1 keeps 1F1B's activations; ZB-H2 trades memory for the drain", "[schedule]") {
  for (int k = 2; k <= 8; ++k)
    for (int m = k; m <= 4 * k; m += k) {
      INFO("K=" << k << " M=" << m);
      const auto f = one_f_one_b_schedule(k, m), h1 = zb_h1_schedule(k, m), h2 = zb_h2_schedule(k, m);
      for (int s = 0; s < k; ++s) {
        INFO("stage " << s);
        CHECK(peak_memory(h1[s]).activations <= peak_memory(f[s]).activations);
        CHECK(peak_memory(h1[s]).held <= k);
        CHECK(peak_memory(h2[s]).activations <= 2 * (k - s) - 1);
      }
    }
}

TEST_CASE("ZB-H1 on two stages in text form", "[schedule]") {
  // Unit-cost list scheduling: stage 0 runs its W in the slots where 1F1B waits for B.
  auto s = zb_h1_schedule(2, 4);
  CHECK(to_string(s[0]) == "0F0 0F1 0I0 0F2 0I1 0W0 0F3 0I2 0W1 0W2 0I3 0W3 0R 0S");
  CHECK(to_string(s[1]) == "1F0 1I0 1F1 1I1 1W0 1F2 1I2 1W1 1F3 1I3 1W2 1W3 1R 1S");
}

TEST_CASE("memory high-water marks count activations and held weight gradients apart", "[schedule]") {
  auto m = peak_memory(parse_program("0F0 0F1 0I0 0F2 0I1 0W0 0I2 0W1 0W2 0R 0S"));
  CHECK(m.activations == 2);
  CHECK(m.held == 2);
  CHECK(m.in_flight == 3);
  auto b = peak_memory(parse_program("0F0 0F1 0B0 0F2 0B1 0B2"));
  CHECK(b.activations == 2);
  CHECK(b.held == 0);
  CHECK(b.in_flight == 2);
}

TEST_CASE("modelled makespans: fill-drain by hand, and zero bubble as the paper counts it", "[schedule]") {
  // Uniform units, F = 1 and B = 2: GPipe and 1F1B take (M + K - 1) (F + B).
  CHECK(modelled_makespan(gpipe_schedule(2, 4)) == Approx(15));
  CHECK(modelled_makespan(one_f_one_b_schedule(2, 4)) == Approx(15));
  CHECK(modelled_makespan(gpipe_schedule(4, 8), {1, 3, 1.5, 1.5}) == Approx(11 * 4));
  // ZB-H1 with I = W = F: 3M + K - 1 units (Qi et al.: a bubble of (K - 1)(F + I - W)).
  for (int k = 2; k <= 8; k *= 2) {
    INFO("K=" << k);
    CHECK(modelled_makespan(zb_h1_schedule(k, 4 * k)) == Approx(3 * 4 * k + k - 1));
  }
  CHECK_THROWS_AS(modelled_makespan({parse_program("0F0 0B0 0R 0S"), parse_program("1B0 1F0 1R 1S")}),
                  std::invalid_argument);
}

TEST_CASE("pipeline.schedule = auto picks the smallest modelled bubble within 1F1B's activations", "[schedule]") {
  // One stage: every schedule takes 3M; GPipe holds all M activations, so 1F1B (the first within
  // its own memory) is chosen.
  CHECK(choose_schedule(1, 4) == ScheduleKind::one_f_one_b);
  CHECK(choose_schedule(2, 4) == ScheduleKind::zb_h1);
  CHECK(choose_schedule(4, 16) == ScheduleKind::zb_h1);
  CHECK(parse_schedule_kind("auto") == ScheduleKind::automatic);
  CHECK(make_schedule(ScheduleKind::automatic, 2, 4) == zb_h1_schedule(2, 4));
  CHECK(resolve_schedule(ScheduleKind::automatic, 2, 4) == ScheduleKind::zb_h1);
  CHECK(resolve_schedule(ScheduleKind::automatic, 2, 8, 2) == ScheduleKind::zb_v);
  CHECK(resolve_schedule(ScheduleKind::gpipe, 2, 4) == ScheduleKind::gpipe);
}

TEST_CASE("a timed execution charges each stage its own costs and the transfers between them", "[schedule][simulate]") {
  // K = 2, M = 1 GPipe, F = 1, B = 2, each transfer d: F0 [0,1], F1 [1+d, 2+d], B1 [2+d, 4+d],
  // B0 [4+2d, 6+2d]; R and S follow on each stage.
  const double d = 0.25;
  std::vector<StageTiming> t(2);
  for (auto& s : t) {
    s.costs = {1, 2, 1, 1};
    s.to_next = s.to_previous = d;
    s.reduce = 0.5;
    s.step = 0.125;
  }
  const auto run = timed_execution(gpipe_schedule(2, 1), 1, t);
  CHECK(run.makespan == Approx(6 + 2 * d + 0.5 + 0.125));
  REQUIRE(run.actions[1].size() == 4);
  CHECK(run.actions[1][0].start == Approx(1 + d));
  CHECK(run.actions[0][1].start == Approx(4 + 2 * d));
  CHECK(run.busy[0] == Approx(3.625));
  // Uniform costs and no transfers: the modelled makespan.
  const auto s = one_f_one_b_schedule(3, 5);
  CHECK(timed_execution(s, 0, std::vector<StageTiming>(3, StageTiming{{1, 2, 1, 1}})).makespan ==
        Approx(modelled_makespan(s)));
  CHECK_THROWS_AS(timed_execution(s, 5, std::vector<StageTiming>(2)), std::invalid_argument);
}

TEST_CASE("tapered micro-batches scale each action by its micro-batch's weight", "[schedule][simulate]") {
  // K=2 M=3 weights 1, 2, 1 (scaled to 0.75, 1.5, 0.75). GPipe with F = 1, B = 2: stage 0's
  // forwards end at 0.75, 2.25, 3; stage 1's at 1.5, 3.75, 4.5; its backwards run [4.5, 6],
  // [6, 9], [9, 10.5]; stage 0's [6, 7.5], [9, 12], [12, 13.5]. The large middle micro-batch
  // lies on the drain's path: 13.5 against 12 with equal micro-batches.
  CHECK(micro_batch_weights(3, 2) == std::vector<double>{0.75, 1.5, 0.75});
  const std::vector<StageTiming> unit(2, StageTiming{{1, 2, 1, 1}});
  const auto gpipe = gpipe_schedule(2, 3);
  CHECK(timed_execution(gpipe, 3, unit).makespan == Approx(12));
  const auto run = timed_execution(gpipe, 3, unit, micro_batch_weights(3, 2));
  CHECK(run.makespan == Approx(13.5));
  CHECK(run.busy[0] == Approx(9));  // the same work
  CHECK(run.actions[1][1].start == Approx(2.25));
  CHECK_THROWS_AS(timed_execution(gpipe, 3, unit, {1, 1}), std::invalid_argument);
  // Weights of 1 change nothing.
  const auto ofob = one_f_one_b_schedule(3, 6);
  const std::vector<StageTiming> unit3(3, StageTiming{{1, 2, 1, 1}});
  CHECK(timed_execution(ofob, 6, unit3, micro_batch_weights(6, 1)).makespan == Approx(timed_execution(ofob, 6, unit3).makespan));
}

TEST_CASE("a wait for a neighbour is filled with the first weight gradient due", "[schedule]") {
  const auto p = parse_program("0F0 0F1 0I0 0I1 0W0 0W1 0S");
  std::vector<char> early(p.size(), 0);
  CHECK(early_weight_gradient(p, 2, early) == -1);  // waiting for I0's gradient: no I done yet
  CHECK(early_weight_gradient(p, 3, early) == 4);   // waiting for I1's: W0 is due
  early[4] = 1;
  CHECK(early_weight_gradient(p, 3, early) == -1);  // W1 waits for its own I
  CHECK(early_weight_gradient(p, 5, early) == -1);  // nothing after the last W
  // W's keep their order: W1 never goes before a W0 that is not due.
  const auto q = parse_program("0F0 0F1 0I1 0F2 0I0 0W0 0W1");
  CHECK(early_weight_gradient(q, 3, std::vector<char>(q.size(), 0)) == -1);
  CHECK(early_weight_gradient(parse_program("0F0 0F1 0B0 0B1"), 2, std::vector<char>(4, 0)) == -1);
}

TEST_CASE("a timed execution fills a device's wait with a due weight gradient, as the stage does", "[schedule][simulate]") {
  // F = I = W = 1, no transfers. Device 0: F0 [0,1], F1 [1,2], waits for I0's gradient (device 1's
  // F0 [1,2], I0 [2,3]), I0 [3,4]; waits for I1's (device 1's F1 [3,4], I1 [4,5]) and runs W0
  // meanwhile [4,5], then I1 [5,6], W1 [6,7]: 7, where the programs' own order gives 8.
  const Schedule s{parse_program("0F0 0F1 0I0 0I1 0W0 0W1"), parse_program("1F0 1I0 1F1 1I1 1W0 1W1")};
  REQUIRE(check_schedule(s, 2).empty());
  const auto run = timed_execution(s, 2, std::vector<StageTiming>(2, StageTiming{{1, 2, 1, 1}}));
  CHECK(run.makespan == Approx(7));
  REQUIRE(run.actions[0].size() == 6);
  CHECK(to_string(run.actions[0][3].action) == "0W0");  // in the order they ran
  CHECK(run.actions[0][3].start == Approx(4));
  CHECK(run.busy[0] == Approx(6));
}

TEST_CASE("tapering pays for 1F1B and the zero-bubble schedules with enough micro-batches, not for GPipe",
          "[schedule]") {
  // The tapered step's change in the two models (B = 2F, I = W = F; B = 1.5F, I = F, W = F/2):
  // 1F1B K=2 M=8 −2.6 and −3.5 %, K=3 M=8 −3.7 and −4.9 %, K=4 M=16 −3.9 and −5.1 %; ZB-H1
  // K=2 M=8 −1.7 and −4.3 %, K=4 M=8 +2.2 and −2.9 %; ZB-H2 K=2 M=8 −1.7 and −2.0 %, K=3 M=8 −2.6
  // and −3.0 %, K=4 M=16 −2.3 and −2.3 % (the small micro-batches' I leaves waits that a due W
  // fills).
  CHECK(taper_pays(ScheduleKind::one_f_one_b, 2, 8));
  CHECK(taper_pays(ScheduleKind::zb_h1, 2, 8));
  CHECK(taper_pays(ScheduleKind::zb_h1, 4, 8));
  CHECK(taper_pays(ScheduleKind::one_f_one_b, 3, 8));
  CHECK(taper_pays(ScheduleKind::one_f_one_b, 4, 16));
  CHECK(taper_pays(ScheduleKind::zb_h2, 2, 8));
  CHECK(taper_pays(ScheduleKind::zb_h2, 3, 8));
  CHECK(taper_pays(ScheduleKind::zb_h2, 4, 16));
  CHECK(taper_pays(ScheduleKind::automatic, 2, 8, 2) == taper_pays(ScheduleKind::zb_v, 2, 8, 2));
  // Not: GPipe (its drain waits on the large middle micro-batches), 1F1B with M = K, the
  // interleaved schedules, two micro-batches (nothing to taper), no pipeline.
  for (int k : {2, 3, 4}) CHECK_FALSE(taper_pays(ScheduleKind::gpipe, k, 4 * k));
  CHECK_FALSE(taper_pays(ScheduleKind::gpipe, 2, 4));  // the demo's layout
  CHECK_FALSE(taper_pays(ScheduleKind::one_f_one_b, 4, 4));
  CHECK_FALSE(taper_pays(ScheduleKind::interleaved, 2, 8, 2));
  CHECK_FALSE(taper_pays(ScheduleKind::zb_v, 2, 8, 2));
  CHECK_FALSE(taper_pays(ScheduleKind::one_f_one_b, 2, 2));
  CHECK_FALSE(taper_pays(ScheduleKind::one_f_one_b, 1, 8));
  // 1F1B K=2 M=8 in the first model.
  const std::vector<StageTiming> unit(2, StageTiming{ActionCosts{}});
  const auto s = one_f_one_b_schedule(2, 8);
  CHECK(timed_execution(s, 8, unit).makespan == Approx(27));  // (M + K − 1)(F + B)
  CHECK(timed_execution(s, 8, unit, micro_batch_weights(8, 2)).makespan < 26.5);
  // The step's decision: never without a pipeline, always with "on", the model's with "auto".
  CHECK(tapers(Taper::on, ScheduleKind::gpipe, 2, 4));
  CHECK_FALSE(tapers(Taper::on, ScheduleKind::one_f_one_b, 1, 8));
  CHECK_FALSE(tapers(Taper::off, ScheduleKind::one_f_one_b, 2, 8));
  CHECK(tapers(Taper::automatic, ScheduleKind::one_f_one_b, 2, 8));
  CHECK_FALSE(tapers(Taper::automatic, ScheduleKind::gpipe, 2, 8));
  CHECK(parse_taper("auto") == Taper::automatic);
  CHECK(std::string(to_string(Taper::on)) == "on");
  CHECK_THROWS_WITH(parse_taper("yes"), Catch::Contains("pipeline.taper") && Catch::Contains("\"auto\""));
}

TEST_CASE("chunks are placed looped (interleaved) or in a V (ZB-V)", "[schedule]") {
  // K = 3, two chunks: looped 0 1 2 | 0 1 2; V 0 1 2 | 2 1 0.
  const std::vector<int> looped{0, 1, 2, 0, 1, 2}, v{0, 1, 2, 2, 1, 0};
  for (int s = 0; s < 6; ++s) {
    CHECK(device_of_stage(ChunkPlacement::looped, 3, s) == looped[s]);
    CHECK(device_of_stage(ChunkPlacement::v_shape, 3, s) == v[s]);
  }
  CHECK(stages_on_device(ChunkPlacement::looped, 3, 2, 1) == std::vector<int>{1, 4});
  CHECK(stages_on_device(ChunkPlacement::v_shape, 3, 2, 0) == std::vector<int>{0, 5});
  CHECK(to_string(actions_of_stage(parse_program("0F0 3F0 3B0 0B0 0R 3R 0S 3S"), 3)) == "3F0 3B0 3R 3S");
  CHECK(placement_of(ScheduleKind::zb_v, 2) == ChunkPlacement::v_shape);
  CHECK(placement_of(ScheduleKind::automatic, 2) == ChunkPlacement::v_shape);
  CHECK(placement_of(ScheduleKind::interleaved, 2) == ChunkPlacement::looped);
  CHECK(chunks_for(ScheduleKind::zb_v, 0) == 2);
  CHECK(chunks_for(ScheduleKind::interleaved, 0) == 2);
  CHECK(chunks_for(ScheduleKind::interleaved, 3) == 3);
  CHECK(chunks_for(ScheduleKind::zb_h2, 0) == 1);
  CHECK(parse_schedule_kind("interleaved") == ScheduleKind::interleaved);
  CHECK(parse_schedule_kind("zb-v") == ScheduleKind::zb_v);
  CHECK_THROWS_AS(make_schedule(ScheduleKind::zb_h1, 2, 4, 2), std::invalid_argument);
  CHECK_THROWS_AS(make_schedule(ScheduleKind::zb_v, 2, 4, 3), std::invalid_argument);
  // One chunk left (K = 1, or too few units): ZB-V runs ZB-H1 and interleaved runs 1F1B.
  CHECK(make_schedule(ScheduleKind::zb_v, 2, 4, 1) == zb_h1_schedule(2, 4));
  CHECK(make_schedule(ScheduleKind::interleaved, 2, 4, 1) == one_f_one_b_schedule(2, 4));
}

TEST_CASE("interleaved 1F1B and ZB-V run to completion on every device count, micro-batch count and chunk count",
          "[schedule]") {
  for (int k = 1; k <= 6; ++k)
    for (int m = 1; m <= 13; ++m) {
      for (int v = 2; v <= 4; ++v) {
        INFO("interleaved K=" << k << " M=" << m << " v=" << v);
        const auto s = interleaved_schedule(k, m, v);
        REQUIRE(s.size() == static_cast<size_t>(k));
        CHECK(stage_count(s) == k * v);
        CHECK(check_schedule(s, m).empty());
        CHECK(check_schedule(forward_only_schedule(k, m, v), 0).empty());
      }
      INFO("ZB-V K=" << k << " M=" << m);
      const auto z = zb_v_schedule(k, m);
      CHECK(check_schedule(z, m).empty());
      CHECK(check_schedule(forward_only_schedule(k, m, 2, ChunkPlacement::v_shape), 0).empty());
      for (int d = 0; d < k; ++d)
        for (const auto& a : z[d]) {
          CHECK(device_of_stage(ChunkPlacement::v_shape, k, a.stage) == d);
          CHECK(a.kind != ActionKind::backward);
        }
    }
}

TEST_CASE("interleaved 1F1B in text form: Megatron-LM's order and warm-up", "[schedule]") {
  // K = 2, v = 2, M = 4: device 0 holds stages 0 and 2, device 1 stages 1 and 3. Device 0
  // warms up with 2 (K - 1) + (v - 1) K = 4 forwards, device 1 with 2.
  const auto s = interleaved_schedule(2, 4, 2);
  CHECK(to_string(s[0]) == "0F0 0F1 2F0 2F1 0F2 2B0 0F3 2B1 2F2 0B0 2F3 0B1 2B2 2B3 0B2 0B3 0R 2R 0S 2S");
  CHECK(to_string(s[1]) == "1F0 1F1 3F0 3B0 3F1 3B1 1F2 1B0 1F3 1B1 3F2 3B2 3F3 3B3 1B2 1B3 1R 3R 1S 3S");
}

TEST_CASE("modelled bubbles: interleaving divides 1F1B's by the chunks; ZB-V halves ZB-H1's in 1F1B's memory",
          "[schedule]") {
  for (int k = 2; k <= 4; k *= 2)
    for (int m = 2 * k; m <= 4 * k; m += 2 * k) {
      INFO("K=" << k << " M=" << m);
      // A chunk costs 1/v of a device's stage: F = 1/v, B = 2/v, I = W = 1/v.
      const double f1 = modelled_makespan(one_f_one_b_schedule(k, m)), h1 = modelled_makespan(zb_h1_schedule(k, m));
      const double i2 = modelled_makespan(interleaved_schedule(k, m, 2), {0.5, 1, 0.5, 0.5});
      const double zv = modelled_makespan(zb_v_schedule(k, m), {0.5, 1, 0.5, 0.5});
      const double work = 3.0 * m;
      // 1F1B's bubble is (K - 1)(F + B); interleaved with v chunks, (K - 1)(F + B) / v.
      CHECK(f1 - work == Approx(3 * (k - 1)));
      CHECK(i2 - work == Approx(1.5 * (k - 1)));
      CHECK(zv - work <= 0.5 * (h1 - work));
      // ZB-V holds at most 2K chunks (K micro-batches of a device's layers), as 1F1B's first device.
      for (const auto& p : zb_v_schedule(k, m)) CHECK(peak_memory(p).activations <= 2 * k);
    }
  CHECK(choose_schedule(2, 8, 2) == ScheduleKind::zb_v);
  CHECK(choose_schedule(2, 8, 3) == ScheduleKind::interleaved);
  CHECK(make_schedule(ScheduleKind::automatic, 2, 8, 2) == zb_v_schedule(2, 8));
}

TEST_CASE("a timed execution with virtual stages charges each stage its costs on its device", "[schedule][simulate]") {
  // One device, two chunks (V-shape on K = 1): stage 0 costs 1 per action, stage 1 costs 2.
  const auto s = forward_only_schedule(1, 2, 2, ChunkPlacement::v_shape);
  CHECK(to_string(s[0]) == "0F0 0F1 1F0 1F1");
  std::vector<StageTiming> t(2);
  t[0].costs.forward = 1;
  t[1].costs.forward = 2;
  const auto run = timed_execution(s, 0, t);
  CHECK(run.makespan == Approx(6));
  REQUIRE(run.busy.size() == 1);
  CHECK(run.busy[0] == Approx(6));
  CHECK_THROWS_AS(timed_execution(s, 0, std::vector<StageTiming>(1)), std::invalid_argument);
}
