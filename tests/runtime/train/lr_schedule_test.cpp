#include "runtime/train/lr_schedule.hpp"

#include <catch2/catch.hpp>

using floe::runtime::WarmupCosine;

TEST_CASE("warm-up rises linearly, cosine decays to min_lr", "[lr]") {
  WarmupCosine s{1.0, 0.1, 4, 104};
  CHECK(s.at(0) == Approx(0.25));
  CHECK(s.at(3) == Approx(1.0));
  CHECK(s.at(4) == Approx(1.0));
  CHECK(s.at(54) == Approx(0.55));
  CHECK(s.at(104) == Approx(0.1));
  CHECK(s.at(500) == Approx(0.1));
  for (int64_t t = 5; t < 104; ++t) REQUIRE(s.at(t) <= s.at(t - 1));
}

TEST_CASE("freeze.anneal: each block decays to min_lr by its freeze, the others follow the job", "[lr]") {
  const WarmupCosine job{1.0, 0.1, 4, 104};
  const floe::runtime::BlockAnneal cosine{job, {24, 54, 104, 500}, false};
  for (int64_t t = 0; t < 4; ++t) {  // one warm-up for all
    const auto r = cosine.at(t);
    REQUIRE(r.size() == 4);
    for (double x : r) CHECK(x == Approx(job.at(t)));
  }
  CHECK(cosine.at(14)[0] == Approx(0.55));  // halfway from the warm-up's end to its freeze
  CHECK(cosine.at(23)[0] < 0.11);           // the last step before its freeze: almost min_lr
  CHECK(cosine.at(24)[0] == Approx(0.1));
  CHECK(cosine.at(80)[0] == Approx(0.1));  // and it stays there if the freeze comes later
  CHECK(cosine.at(29)[1] == Approx(0.55));
  for (int64_t t = 0; t < 110; ++t) {
    const auto r = cosine.at(t);
    CHECK(r[2] == Approx(job.at(t)));  // due at the job's end: the job's schedule
    CHECK(r[3] == Approx(job.at(t)));  // never due
    CHECK(r[0] <= r[1] + 1e-12);       // an earlier freeze never has a higher rate
    CHECK(r[1] <= r[2] + 1e-12);
  }

  // scaled: block 0 trains for a quarter of the job (after warm-up ~ a fifth), so it starts higher.
  const floe::runtime::BlockAnneal scaled{job, {26, 104}, true};
  CHECK(scaled.at(3)[0] == Approx(4.0));  // 1.0 · 104 / 26 at the warm-up's end
  CHECK(scaled.at(3)[1] == Approx(1.0));
  CHECK(scaled.at(26)[0] == Approx(0.1));

  // A freeze due inside the warm-up: the rate is min_lr right after it.
  const floe::runtime::BlockAnneal early{job, {2}, false};
  CHECK(early.at(5)[0] == Approx(0.1));
  CHECK(floe::runtime::BlockAnneal{job, {}, false}.at(10).empty());
}
