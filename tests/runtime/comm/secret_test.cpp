#include "models/errors.hpp"
#include "runtime/comm/secret.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using namespace floe;

TEST_CASE("a join proof is an HMAC-SHA256 bound to the nonce, the name and the devices", "[secret]") {
  // The text is "nonce|name|devices"; the vector comes from `openssl dgst -sha256 -hmac Jefe`.
  CHECK(runtime::join_proof("Jefe", "what do ya want ", "for nothing?", 0) ==
        "cd0d24282e95daf9ca7cf18fa5c530bc3ffe28112ea77fe6b5f8e364c9932637");
  const auto n1 = runtime::make_nonce(), n2 = runtime::make_nonce();
  CHECK(n1.size() == 64);
  CHECK(n1 != n2);
  const auto p = runtime::join_proof("s", n1, "a", 2);
  CHECK(runtime::same_proof(p, runtime::join_proof("s", n1, "a", 2)));
  CHECK_FALSE(runtime::same_proof(p, runtime::join_proof("t", n1, "a", 2)));
  CHECK_FALSE(runtime::same_proof(p, runtime::join_proof("s", n2, "a", 2)));
  CHECK_FALSE(runtime::same_proof(p, runtime::join_proof("s", n1, "b", 2)));
  CHECK_FALSE(runtime::same_proof(p, runtime::join_proof("s", n1, "a", 3)));
  CHECK_FALSE(runtime::same_proof(p, p.substr(1)));
}

TEST_CASE("the secret comes from a file or FLOE_SECRET, never empty", "[secret]") {
  const auto dir = std::filesystem::temp_directory_path() / "floe-secret-test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "s") << "hunter2\n";
  CHECK(runtime::read_secret((dir / "s").string()) == "hunter2");
  std::ofstream(dir / "empty") << "\n";
  CHECK_THROWS_AS(runtime::read_secret((dir / "empty").string()), InputError);
  CHECK_THROWS_WITH(runtime::read_secret((dir / "missing").string()), Catch::Contains("missing"));
  setenv("FLOE_SECRET", "from-env", 1);
  CHECK(runtime::read_secret("") == "from-env");
  unsetenv("FLOE_SECRET");
  CHECK_THROWS_WITH(runtime::read_secret(""), Catch::Contains("FLOE_SECRET"));
  std::filesystem::remove_all(dir);
}
