// safetensors: the bytes floe writes are the standard format's, byte for byte; what is written
// comes back exactly (every dtype, 0-dim and empty tensors, metadata); the header is canonical
// whatever order the tensors came in; every malformed file is refused with a message naming
// the file, the tensor and what was expected, the same in memory ("<bytes>") as on disk.
#include <torch/torch.h>

#include "models/errors.hpp"
#include "runtime/state/safetensors.hpp"

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

using namespace floe;
using namespace floe::runtime;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char name[] = "/tmp/floe-safetensors-XXXXXX";
    path = mkdtemp(name);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string length_field(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

// A file of this header text (not padded) and data section.
std::string file_of(const std::string& header, const std::string& data = "") {
  return length_field(header.size()) + header + data;
}

// The JSON of a file's header, without the padding.
std::string header_text(const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[i]);
  REQUIRE(n % 8 == 0);
  auto text = file.substr(8, n);
  return text.substr(0, text.find_last_not_of(' ') + 1);
}

std::string raw(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

// The message read_safetensors throws for these bytes on disk. decode_safetensors must throw
// the same for them in memory, naming "<bytes>" where the other names the path.
std::string error_of(const std::string& bytes) {
  TempDir dir;
  const auto path = dir.file("bad.safetensors");
  write_bytes(path, bytes);
  std::string on_disk, in_memory;
  try {
    read_safetensors(path);
  } catch (const InputError& e) {
    on_disk = e.what();
  }
  try {
    decode_safetensors(bytes, "<bytes>");
  } catch (const InputError& e) {
    in_memory = e.what();
  }
  REQUIRE(on_disk.rfind(path + ": ", 0) == 0);
  REQUIRE(in_memory == "<bytes>" + on_disk.substr(path.size()));
  return on_disk;
}

// A header of one entry "w" whose value is `entry`, over `data`.
std::string entry_file(const std::string& entry, const std::string& data = std::string(8, '\0')) {
  return file_of("{\"w\":" + entry + "}", data);
}

std::map<std::string, torch::Tensor> every_dtype() {
  return {
      {"f64", torch::tensor({1.5, -0.0, 1e300, std::numeric_limits<double>::denorm_min()}, torch::kFloat64)},
      {"f32", torch::arange(12, torch::kFloat32).reshape({3, 4}) / 7},
      {"f16", torch::tensor({0.5, -2.0, 65504.0}).to(torch::kFloat16)},
      {"bf16", torch::tensor({1.0, 3.0e38, -1.0 / 3}).to(torch::kBFloat16)},
      {"i64", torch::tensor({std::numeric_limits<int64_t>::min(), int64_t(0), std::numeric_limits<int64_t>::max()})},
      {"i32", torch::tensor({-7, 2147483647}, torch::kInt32).reshape({1, 2, 1})},
      {"i16", torch::tensor({-32768, 12345}, torch::kInt16)},
      {"i8", torch::tensor({-128, 127, 0}, torch::kInt8)},
      {"u8", torch::tensor({0, 200, 255}, torch::kUInt8)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(3.25)},  // 0-dim
      {"empty", torch::zeros({2, 0, 3}, torch::kInt16)},
  };
}

void require_same(const std::map<std::string, torch::Tensor>& got, const std::map<std::string, torch::Tensor>& want) {
  REQUIRE(got.size() == want.size());
  for (const auto& [name, t] : want) {
    INFO(name);
    REQUIRE(got.count(name) == 1);
    const auto& g = got.at(name);
    CHECK(g.scalar_type() == t.scalar_type());
    CHECK(g.sizes() == t.sizes());
    CHECK(g.is_contiguous());
    CHECK(g.device() == torch::kCPU);
    CHECK(raw(g) == raw(t));  // bit for bit: -0.0 and denormals included
  }
}

}  // namespace

TEST_CASE("safetensors: the bytes of a one-tensor file are the standard format's", "[safetensors]") {
  const auto bytes = encode_safetensors({{"a", torch::tensor({1.0f, 2.0f})}}, {}, "a.safetensors");
  const std::string json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  REQUIRE(json.size() == 54);
  // 56 = 54 padded with two spaces to a multiple of 8; 1.0f and 2.0f little-endian.
  const std::string expected = std::string("\x38\0\0\0\0\0\0\0", 8) + json + "  " + std::string("\0\0\x80\x3f\0\0\0\x40", 8);
  CHECK(bytes == expected);

  TempDir dir;
  write_safetensors(dir.file("a.safetensors"), {{"a", torch::tensor({1.0f, 2.0f})}});
  CHECK(read_bytes(dir.file("a.safetensors")) == expected);
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);  // no temporary left
}

TEST_CASE("safetensors: every dtype comes back exactly, 0-dim and empty tensors included", "[safetensors]") {
  TempDir dir;
  const auto path = dir.file("all.safetensors");
  const auto tensors = every_dtype();
  write_safetensors(path, tensors);
  require_same(read_safetensors(path), tensors);
  require_same(decode_safetensors(read_bytes(path), "<bytes>"), tensors);

  const SafetensorsFile file(path);
  CHECK(file.info("scalar").shape.empty());
  CHECK(file.info("scalar").dtype == SafetensorsDtype::F32);
  CHECK(file.info("empty").nbytes() == 0);
  CHECK(file.info("bf16").dtype == SafetensorsDtype::BF16);
  CHECK(file.info("f64").dtype == SafetensorsDtype::F64);
  CHECK(file.info("u8").dtype == SafetensorsDtype::U8);
  CHECK(file.info("bool").dtype == SafetensorsDtype::BOOL);
}

TEST_CASE("safetensors: tensors written are their values, whatever their layout", "[safetensors]") {
  const auto base = torch::arange(24, torch::kFloat32).reshape({4, 6});
  const auto param = torch::ones({3}, torch::requires_grad());
  const std::map<std::string, torch::Tensor> in = {
      {"transposed", base.t()},                      // non-contiguous
      {"slice", base.index({torch::indexing::Slice(1, 3)})},  // a storage offset
      {"strided", base.index({torch::indexing::Slice(), torch::indexing::Slice(0, 6, 2)})},
      {"negated", torch::_neg_view(base)},            // a lazily negated view
      {"param", param},
  };
  const auto out = decode_safetensors(encode_safetensors(in, {}, "<mem>"), "<bytes>");
  for (const auto& [name, t] : in) {
    INFO(name);
    CHECK(torch::equal(out.at(name), t.detach().resolve_neg().contiguous()));
    CHECK(out.at(name).is_contiguous());
    CHECK_FALSE(out.at(name).requires_grad());
  }
}

TEST_CASE("safetensors: tensors read own their memory after the file is gone", "[safetensors]") {
  TempDir dir;
  const auto path = dir.file("w.safetensors");
  write_safetensors(path, {{"w", torch::full({1000}, 2.5)}});
  torch::Tensor kept;
  {
    const SafetensorsFile file(path);
    kept = file.tensor("w");
  }
  auto all = read_safetensors(path);
  fs::remove(path);
  CHECK(kept.sum().item<double>() == 2500.0);
  CHECK(all.at("w").sum().item<double>() == 2500.0);
  all.at("w").add_(1);  // writable
  CHECK(all.at("w")[0].item<double>() == 3.5);
}

TEST_CASE("safetensors: metadata comes back; none is written without any", "[safetensors]") {
  TempDir dir;
  const auto path = dir.file("m.safetensors");
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "\"quoted\"\n\x01 ünïcode"}, {"", ""}};
  write_safetensors(path, {{"x", torch::ones({2})}}, metadata);
  const SafetensorsFile file(path);
  CHECK(file.metadata() == metadata);
  CHECK(read_bytes(path).find("{\"__metadata__\":{") == 8);  // first, as the reference writes it

  write_safetensors(path, {{"x", torch::ones({2})}});
  CHECK(read_bytes(path).find("__metadata__") == std::string::npos);
  CHECK(SafetensorsFile(path).metadata().empty());

  // An empty file: a header and no data.
  write_safetensors(path, {}, {{"k", "v"}});
  CHECK(read_safetensors(path).empty());
  CHECK(SafetensorsFile(path).metadata().at("k") == "v");
}

TEST_CASE("safetensors: the header is canonical, names sorted and data in that order", "[safetensors]") {
  const auto a = torch::tensor({1, 2, 3}, torch::kInt8), b = torch::tensor({4.0}), c = torch::tensor({5, 6}, torch::kInt16);
  const std::map<std::string, torch::Tensor> in = {{"b", b}, {"_c", c}, {"B", a}, {"a", a}};
  const auto bytes = encode_safetensors(in, {}, "<mem>");
  CHECK(header_text(bytes) ==
        "{\"B\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[0,3]},"
        "\"_c\":{\"dtype\":\"I16\",\"shape\":[2],\"data_offsets\":[3,7]},"
        "\"a\":{\"dtype\":\"I8\",\"shape\":[3],\"data_offsets\":[7,10]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[10,14]}}");
  CHECK(bytes.substr(bytes.size() - 14) == raw(a) + raw(c) + raw(a) + raw(b));

  // A valid file in another order (data reversed, keys out of order, extra whitespace and an
  // unknown field) reads the same and writes back to the canonical bytes.
  const std::string shuffled = file_of(
      "{\"b\": {\"data_offsets\": [0, 4], \"shape\": [1], \"dtype\": \"F32\", \"extra\": 1},\n"
      "   \"a\": {\"dtype\": \"I8\", \"shape\": [3], \"data_offsets\": [4, 7]},\n"
      "   \"_c\": {\"dtype\": \"I16\", \"shape\": [2], \"data_offsets\": [7, 11]},\n"
      "   \"B\": {\"dtype\": \"I8\", \"shape\": [3], \"data_offsets\": [11, 14]} }   ",
      raw(b) + raw(a) + raw(c) + raw(a));
  const auto read = decode_safetensors(shuffled, "<bytes>");
  require_same(read, in);
  CHECK(encode_safetensors(read, {}, "<mem>") == bytes);
}

TEST_CASE("safetensors: a file's tensors are read lazily by name", "[safetensors]") {
  TempDir dir;
  const auto path = dir.file("lazy.safetensors");
  write_safetensors(path, {{"x", torch::tensor({1.0f, 2.0f})}, {"y", torch::tensor({7}, torch::kInt64)}});
  SafetensorsFile file(path);
  CHECK(file.path() == path);
  CHECK(file.names() == std::vector<std::string>{"x", "y"});
  CHECK(file.contains("y"));
  CHECK_FALSE(file.contains("z"));
  CHECK(file.info("y").begin == 8);
  CHECK(file.info("y").end == 16);
  CHECK(file.bytes("x") == std::string("\0\0\x80\x3f\0\0\0\x40", 8));
  CHECK(file.tensor("y").item<int64_t>() == 7);
  CHECK_THROWS_WITH(file.tensor("z"), path + ": no tensor named \"z\" (the file has 2)");

  SafetensorsFile moved = std::move(file);
  CHECK(moved.tensor("x")[1].item<float>() == 2.0f);
}

TEST_CASE("safetensors: a missing or unreadable file is refused naming it", "[safetensors]") {
  TempDir dir;
  CHECK_THROWS_WITH(read_safetensors(dir.file("none")), Catch::StartsWith(dir.file("none") + ": cannot open"));
  CHECK_THROWS_WITH(read_safetensors(dir.path.string()), Catch::Contains("not a regular file"));
  write_bytes(dir.file("empty"), "");
  CHECK_THROWS_WITH(SafetensorsFile(dir.file("empty")),
                    dir.file("empty") + ": 0 bytes, too short for a safetensors file (expected an 8-byte header length first)");
}

TEST_CASE("safetensors: a bad length field is refused before anything is read", "[safetensors]") {
  using Catch::Contains;
  CHECK_THAT(error_of(std::string("\x10\0\0", 3)), Contains("3 bytes, too short"));
  // Truncated: the header claims 100 bytes, the file has 20 after the length.
  CHECK_THAT(error_of(length_field(100) + std::string(20, ' ')),
             Contains("header length 100 runs past the end of the file (20 bytes after the length field)"));
  CHECK_THAT(error_of(length_field(uint64_t(1) << 63) + "{}"),
             Contains("header length 9223372036854775808 exceeds the format's limit of 100000000 bytes"));
  CHECK_THAT(error_of(length_field(~uint64_t(0))), Contains("exceeds the format's limit"));
  CHECK_THAT(error_of(length_field(100'000'001) + "{}"), Contains("header length 100000001 exceeds"));
  CHECK_THAT(error_of(length_field(0)), Contains("header is not valid JSON"));
  // A header cut off inside: valid length, invalid JSON.
  const auto whole = encode_safetensors({{"a", torch::ones({2})}}, {}, "<mem>");
  CHECK_THAT(error_of(length_field(30) + whole.substr(8)), Contains("header is not valid JSON"));
}

TEST_CASE("safetensors: a header that is not the format's JSON is refused", "[safetensors]") {
  using Catch::Contains;
  CHECK_THAT(error_of(file_of("{\"a\":")), Contains("header is not valid JSON"));
  CHECK_THAT(error_of(file_of("{} x")), Contains("header is not valid JSON"));
  CHECK_THAT(error_of(file_of("{\"\xff\":1}")), Contains("header is not valid JSON"));  // not UTF-8
  CHECK_THAT(error_of(file_of("[1,2]")), Contains("header is not a JSON object (expected {name: {dtype, shape, data_offsets}, ...}), got [1,2]"));
  CHECK_THAT(error_of(file_of("\"x\"")), Contains("header is not a JSON object"));
  CHECK_THAT(error_of(file_of("{\"w\":{\"shape\":[[2]]}}")), Contains("header nested deeper than the format's"));
  CHECK_THAT(error_of(file_of(std::string(100000, '[') + std::string(100000, ']'))), Contains("nested deeper"));
  CHECK_THAT(error_of(file_of("{\"__metadata__\":[]}")), Contains("__metadata__: expected an object of string values, got []"));
  CHECK_THAT(error_of(file_of("{\"__metadata__\":{\"k\":1}}")), Contains("__metadata__: \"k\": expected a string, got 1"));
}

TEST_CASE("safetensors: a name given twice is refused, not merged", "[safetensors]") {
  using Catch::Contains;
  const std::string entry = "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}";
  CHECK_THAT(error_of(file_of("{\"w\":" + entry + ",\"w\":" + entry + "}", "x")),
             Contains("\"w\" appears twice in the header (expected each name once)"));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", "x")),
             Contains("\"w\": key \"dtype\" appears twice"));
  CHECK_THAT(error_of(file_of("{\"__metadata__\":{},\"__metadata__\":{}}")), Contains("\"__metadata__\" appears twice"));
}

TEST_CASE("safetensors: a tensor entry of the wrong form is refused naming the tensor", "[safetensors]") {
  using Catch::Contains;
  CHECK_THAT(error_of(entry_file("5")),
             Contains("tensor \"w\": expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got 5"));
  CHECK_THAT(error_of(entry_file("{\"shape\":[2],\"data_offsets\":[0,8]}")), Contains("tensor \"w\": missing \"dtype\""));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"F32\",\"data_offsets\":[0,8]}")), Contains("tensor \"w\": missing \"shape\""));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"F32\",\"shape\":[2]}")), Contains("tensor \"w\": missing \"data_offsets\""));
  CHECK_THAT(error_of(entry_file("{\"dtype\":4,\"shape\":[2],\"data_offsets\":[0,8]}")),
             Contains("tensor \"w\": dtype: expected a string such as \"F32\", got 4"));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}")),
             Contains("tensor \"w\": shape: expected a list of non-negative integers, got 2"));
  for (const char* offsets : {"\"0,8\"", "[0]", "[0,8,8]", "[0,\"8\"]", "[-1,8]", "[0,8.0]", "null"})
    CHECK_THAT(error_of(entry_file(std::string("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":") + offsets + "}")),
               Contains("tensor \"w\": data_offsets " + std::string(offsets) +
                        ": expected [begin, end], integers with 0 <= begin <= end"));
}

TEST_CASE("safetensors: a dtype floe cannot hold is refused by name", "[safetensors]") {
  using Catch::Contains;
  for (const std::string dtype : {"F8_E4M3", "F8_E5M2", "U16", "U32", "U64", "C64", "f32", ""})
    CHECK_THAT(error_of(entry_file("{\"dtype\":\"" + dtype + "\",\"shape\":[2],\"data_offsets\":[0,8]}")),
               Contains("tensor \"w\": dtype \"" + dtype +
                        "\" is not supported (expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)"));
}

TEST_CASE("safetensors: shapes must be non-negative integers with a countable product", "[safetensors]") {
  using Catch::Contains;
  auto with_shape = [](const std::string& shape, const std::string& dtype = "F32") {
    return entry_file("{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[0,8]}");
  };
  CHECK_THAT(error_of(with_shape("[2,-1]")),
             Contains("tensor \"w\": shape [2,-1]: dimension -1 is not an integer in 0..9223372036854775807"));
  CHECK_THAT(error_of(with_shape("[2.5]")), Contains("dimension 2.5 is not an integer"));
  CHECK_THAT(error_of(with_shape("[2.0]")), Contains("dimension 2.0 is not an integer"));
  CHECK_THAT(error_of(with_shape("[\"2\"]")), Contains("dimension \"2\" is not an integer"));
  CHECK_THAT(error_of(with_shape("[9223372036854775808]")), Contains("dimension 9223372036854775808 is not an integer"));
  CHECK_THAT(error_of(with_shape("[4294967296,4294967296]")),
             Contains("tensor \"w\": shape [4294967296,4294967296]: the element count overflows int64"));
  // Zero elements, but torch's strides would overflow.
  CHECK_THAT(error_of(with_shape("[0,4294967296,4294967296]")), Contains("overflows int64"));
  CHECK_THAT(error_of(with_shape("[4611686018427387904]", "F64")),
             Contains("tensor \"w\": shape [4611686018427387904] of F64 needs over 2^64 bytes"));
}

TEST_CASE("safetensors: offsets must match the dtype and shape and lie in the data", "[safetensors]") {
  using Catch::Contains;
  // Wrong size for the dtype: F32 [2] is 8 bytes, not 4; F64 [2] is 16, not 8.
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}", std::string(4, '\0'))),
             Contains("tensor \"w\": data_offsets [0,4] hold 4 bytes, expected 8 (F32 of 4 bytes x shape [2])"));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}")),
             Contains("hold 8 bytes, expected 16 (F64 of 8 bytes x shape [2])"));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,8]}")), Contains("expected 4"));
  // Out of the file: past the data section, and far past it.
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}")),
             Contains("tensor \"w\": data_offsets [4,12] run past the data section's 8 bytes"));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[18446744073709551614,18446744073709551615]}")),
             Contains("run past the data section's 8 bytes"));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[9,9]}")), Contains("run past"));
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}")),
             Contains("0 <= begin <= end"));
}

TEST_CASE("safetensors: tensors must tile the data section: no overlap, no hole", "[safetensors]") {
  using Catch::Contains;
  auto two = [](const std::string& a, const std::string& b, size_t data) {
    return file_of("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + a +
                       "},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":" + b + "}}",
                   std::string(data, '\0'));
  };
  CHECK_THAT(error_of(two("[0,8]", "[4,12]", 12)), Contains("tensors \"a\" [0, 8) and \"b\" [4, 12) overlap"));
  CHECK_THAT(error_of(two("[0,8]", "[0,8]", 8)), Contains("overlap (expected each byte in one tensor)"));
  CHECK_THAT(error_of(two("[0,8]", "[12,20]", 20)),
             Contains("bytes [8, 12) of the data section belong to no tensor (expected the tensors to cover its 20 bytes "
                      "without gaps)"));
  CHECK_THAT(error_of(two("[8,16]", "[16,24]", 24)), Contains("bytes [0, 8) of the data section belong to no tensor"));
  CHECK_THAT(error_of(two("[0,8]", "[8,16]", 17)), Contains("bytes [16, 17) of the data section belong to no tensor"));
  CHECK_THAT(error_of(file_of("{}", "x")), Contains("bytes [0, 1) of the data section belong to no tensor"));
  // A zero-length tensor inside another overlaps it, as the reference judges.
  CHECK_THAT(error_of(file_of("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                              "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                              std::string(8, '\0'))),
             Contains("tensors \"a\" [0, 8) and \"z\" [4, 4) overlap"));
  // Zero-length tensors at the edges, and in any order, are fine.
  const auto ok = file_of("{\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                          "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                          "\"y\":{\"dtype\":\"I8\",\"shape\":[0,5],\"data_offsets\":[0,0]}}",
                          std::string(8, '\0'));
  CHECK(decode_safetensors(ok, "<bytes>").size() == 3);
}

TEST_CASE("safetensors: a BOOL byte other than 0 or 1 is refused", "[safetensors]") {
  CHECK_THAT(error_of(entry_file("{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]}", std::string("\1\0\2", 3))),
             Catch::Contains("tensor \"w\": BOOL element 2 is byte 2 (expected 0 or 1)"));
}

TEST_CASE("safetensors: what cannot be written is refused naming the file and tensor", "[safetensors]") {
  using Catch::Contains;
  TempDir dir;
  const auto path = dir.file("out.safetensors");
  write_bytes(path, "old");
  CHECK_THROWS_WITH(write_safetensors(path, {{"c", torch::ones({2}, torch::kComplexFloat)}}),
                    path + ": tensor \"c\": dtype ComplexFloat cannot be written (expected one of safetensors' F64, F32, "
                           "F16, BF16, I64, I32, I16, I8, U8, BOOL)");
  CHECK_THROWS_WITH(write_safetensors(path, {{"u", torch::Tensor()}}), Contains("tensor \"u\": undefined"));
  CHECK_THROWS_WITH(write_safetensors(path, {{"s", torch::eye(3).to_sparse()}}), Contains("tensor \"s\": layout Sparse"));
  CHECK_THROWS_WITH(write_safetensors(path, {{"__metadata__", torch::ones({1})}}),
                    Contains("a tensor may not be named \"__metadata__\""));
  CHECK_THROWS_WITH(write_safetensors(path, {{"bad\xff", torch::ones({1})}}), Contains("tensor name \"bad"));
  CHECK_THROWS_WITH(write_safetensors(path, {{"x", torch::ones({1})}}, {{"k", "\xc3"}}),
                    Contains("metadata value of \"k\""));
  CHECK(read_bytes(path) == "old");  // nothing half-written
  CHECK_THROWS_WITH(write_safetensors(dir.file("no/such/dir.safetensors"), {}),
                    Catch::StartsWith("cannot write " + dir.file("no/such/dir.safetensors")));
}

TEST_CASE("safetensors: the header's parse and encoding are inverse", "[safetensors]") {
  const auto bytes = encode_safetensors(every_dtype(), {{"format", "pt"}}, "<mem>");
  const auto h = parse_safetensors_header(bytes, "<bytes>");
  CHECK(h.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(h.data_start % 8 == 0);
  CHECK(h.tensors.at("i32").shape == std::vector<int64_t>{1, 2, 1});
  const auto header = encode_safetensors_header(h, "<bytes>");
  CHECK(header == bytes.substr(0, h.data_start));
}
