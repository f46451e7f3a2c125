#include "runtime/state/safetensors.hpp"

#include "models/files.hpp"
#include "models/errors.hpp"
#include "runtime/observe/summary.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <optional>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

namespace floe::runtime {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian: copied as is");

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderLength = 100'000'000;  // the reference implementation's limit
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kDtypeList = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

struct DtypeRow {
  SafetensorsDtype dtype;
  const char* name;
  size_t size;
  c10::ScalarType scalar_type;
};

constexpr DtypeRow kDtypes[] = {
    {SafetensorsDtype::F64, "F64", 8, c10::ScalarType::Double},
    {SafetensorsDtype::F32, "F32", 4, c10::ScalarType::Float},
    {SafetensorsDtype::F16, "F16", 2, c10::ScalarType::Half},
    {SafetensorsDtype::BF16, "BF16", 2, c10::ScalarType::BFloat16},
    {SafetensorsDtype::I64, "I64", 8, c10::ScalarType::Long},
    {SafetensorsDtype::I32, "I32", 4, c10::ScalarType::Int},
    {SafetensorsDtype::I16, "I16", 2, c10::ScalarType::Short},
    {SafetensorsDtype::I8, "I8", 1, c10::ScalarType::Char},
    {SafetensorsDtype::U8, "U8", 1, c10::ScalarType::Byte},
    {SafetensorsDtype::BOOL, "BOOL", 1, c10::ScalarType::Bool},
};

const DtypeRow& row(SafetensorsDtype dtype) {
  for (const auto& r : kDtypes)
    if (r.dtype == dtype) return r;
  throw std::logic_error("safetensors: a dtype missing from the table");
}

// A short, printable rendering of a name or JSON value for an error message.
std::string shown(const json& j) {
  auto s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}
std::string named(const std::string& name) { return shown(json(name)); }

uint64_t little_endian_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Builds the header's JSON as nlohmann's DOM parser would, but refuses duplicate keys (which
// the DOM parser merges, last one winning) and nesting deeper than the format's three levels
// (which keeps every later step, dump() included, off deep recursion).
class HeaderSax : public nlohmann::json_sax<json> {
 public:
  explicit HeaderSax(const std::string& what) : what_(what) {}
  json root;

  bool null() override { return leaf(json(nullptr)); }
  bool boolean(bool v) override { return leaf(json(v)); }
  bool number_integer(number_integer_t v) override { return leaf(json(v)); }
  bool number_unsigned(number_unsigned_t v) override { return leaf(json(v)); }
  bool number_float(number_float_t v, const string_t&) override { return leaf(json(v)); }
  bool string(string_t& v) override { return leaf(json(std::move(v))); }
  bool binary(binary_t&) override { fail("binary values are not JSON"); }
  bool start_object(std::size_t) override { return open(json::object()); }
  bool start_array(std::size_t) override { return open(json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(string_t& k) override {
    if (stack_.back()->contains(k))
      fail(stack_.size() == 1 ? named(k) + " appears twice in the header (expected each name once)"
                              : named(entry_) + ": key " + named(k) + " appears twice");
    if (stack_.size() == 1) entry_ = k;
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    std::string message = e.what();
    if (message.size() > 200) message = message.substr(0, 197) + "...";
    throw InputError(what_ + ": header is not valid JSON (" + message + ")");
  }

 private:
  [[noreturn]] void fail(const std::string& why) { throw InputError(what_ + ": " + why); }

  json* place(json v) {
    if (stack_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& top = *stack_.back();
    if (top.is_array()) {
      top.push_back(std::move(v));
      return &top.back();
    }
    return &(top[key_] = std::move(v));
  }
  bool leaf(json v) {
    place(std::move(v));
    return true;
  }
  bool open(json container) {
    if (stack_.size() >= 3)
      fail("header nested deeper than the format's {name: {dtype, shape, data_offsets}}");
    // A child is only added to the container on top of the stack, so the pointers below it stay valid.
    stack_.push_back(place(std::move(container)));
    return true;
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  const std::string& what_;
  std::vector<json*> stack_;
  std::string key_, entry_;
};

// A non-negative integer of the header, or nullopt (negative, fractional, not a number).
std::optional<uint64_t> non_negative_integer(const json& j) {
  if (j.is_number_unsigned()) return j.get<uint64_t>();
  if (j.is_number_integer() && j.get<int64_t>() == 0) return 0;  // "-0"
  return std::nullopt;
}

SafetensorsTensor parse_entry(const std::string& name, const json& entry, uint64_t data_size, const std::string& what) {
  const std::string at = what + ": tensor " + named(name) + ": ";
  if (!entry.is_object())
    throw InputError(at + "expected an object {\"dtype\", \"shape\", \"data_offsets\"}, got " + shown(entry));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field))
      throw InputError(at + "missing \"" + field + "\" (expected {\"dtype\", \"shape\", \"data_offsets\"})");
  SafetensorsTensor t;

  const json& dtype = entry.at("dtype");
  if (!dtype.is_string()) throw InputError(at + "dtype: expected a string such as \"F32\", got " + shown(dtype));
  const auto found = std::find_if(std::begin(kDtypes), std::end(kDtypes),
                                  [&](const DtypeRow& r) { return dtype.get_ref<const std::string&>() == r.name; });
  if (found == std::end(kDtypes))
    throw InputError(at + "dtype " + shown(dtype) + " is not supported (expected one of " + kDtypeList + ")");
  t.dtype = found->dtype;

  // The element count, and the count with zero dimensions read as 1: torch's strides are
  // products of the latter, so it must fit in int64 too.
  const json& shape = entry.at("shape");
  if (!shape.is_array()) throw InputError(at + "shape: expected a list of non-negative integers, got " + shown(shape));
  constexpr uint64_t int64_max = uint64_t(std::numeric_limits<int64_t>::max());
  uint64_t count = 1, strided = 1;
  for (const auto& d : shape) {
    const auto dim = non_negative_integer(d);
    if (!dim || *dim > int64_max)
      throw InputError(at + "shape " + shown(shape) + ": dimension " + shown(d) +
                       " is not an integer in 0..9223372036854775807");
    if (__builtin_mul_overflow(strided, std::max<uint64_t>(*dim, 1), &strided) || strided > int64_max)
      throw InputError(at + "shape " + shown(shape) + ": the element count overflows int64");
    count *= *dim;  // <= strided
    t.shape.push_back(static_cast<int64_t>(*dim));
  }
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(count, row(t.dtype).size, &nbytes))
    throw InputError(at + "shape " + shown(shape) + " of " + row(t.dtype).name + " needs over 2^64 bytes");

  const json& offsets = entry.at("data_offsets");
  std::optional<uint64_t> begin, end;
  if (offsets.is_array() && offsets.size() == 2) {
    begin = non_negative_integer(offsets[0]);
    end = non_negative_integer(offsets[1]);
  }
  if (!begin || !end || *begin > *end)
    throw InputError(at + "data_offsets " + shown(offsets) + ": expected [begin, end], integers with 0 <= begin <= end");
  if (*end > data_size)
    throw InputError(at + "data_offsets " + shown(offsets) + " run past the data section's " + std::to_string(data_size) +
                     " bytes");
  t.begin = *begin;
  t.end = *end;
  if (t.nbytes() != nbytes)
    throw InputError(at + "data_offsets " + shown(offsets) + " hold " + std::to_string(t.nbytes()) + " bytes, expected " +
                     std::to_string(nbytes) + " (" + row(t.dtype).name + " of " + std::to_string(row(t.dtype).size) +
                     " bytes x shape " + shown(shape) + ")");
  return t;
}

// The tensors must tile [0, data_size): sorted by offset, each begins where the one before ends.
void check_tiling(const std::map<std::string, SafetensorsTensor>& tensors, uint64_t data_size, const std::string& what) {
  std::vector<std::pair<const std::string*, const SafetensorsTensor*>> order;
  order.reserve(tensors.size());
  for (const auto& [name, t] : tensors) order.emplace_back(&name, &t);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::make_pair(a.second->begin, a.second->end) < std::make_pair(b.second->begin, b.second->end);
  });
  auto range = [](const SafetensorsTensor& t) {
    return "[" + std::to_string(t.begin) + ", " + std::to_string(t.end) + ")";
  };
  auto hole = [&](uint64_t from, uint64_t to) {
    return InputError(what + ": bytes [" + std::to_string(from) + ", " + std::to_string(to) +
                      ") of the data section belong to no tensor (expected the tensors to cover its " +
                      std::to_string(data_size) + " bytes without gaps)");
  };
  uint64_t covered = 0;
  const std::pair<const std::string*, const SafetensorsTensor*>* last = nullptr;
  for (const auto& entry : order) {
    const auto& t = *entry.second;
    if (t.begin < covered)
      throw InputError(what + ": tensors " + named(*last->first) + " " + range(*last->second) + " and " +
                       named(*entry.first) + " " + range(t) + " overlap (expected each byte in one tensor)");
    if (t.begin > covered) throw hole(covered, t.begin);
    covered = t.end;
    if (t.end > t.begin || last == nullptr) last = &entry;
  }
  if (covered != data_size) throw hole(covered, data_size);
}

void check_utf8(const std::string& text, const std::string& what, const std::string& role) {
  try {
    (void)json(text).dump();
  } catch (const json::type_error&) {
    throw InputError(what + ": " + role + " " + named(text) + " is not valid UTF-8");
  }
}

std::optional<SafetensorsDtype> dtype_of(c10::ScalarType type) {
  for (const auto& r : kDtypes)
    if (r.scalar_type == type) return r.dtype;
  return std::nullopt;
}

torch::Tensor to_torch(const std::string& name, const SafetensorsTensor& info, std::string_view bytes,
                       const std::string& what) {
  if (info.dtype == SafetensorsDtype::BOOL)
    for (size_t i = 0; i < bytes.size(); ++i)
      if (bytes[i] != 0 && bytes[i] != 1)
        throw InputError(what + ": tensor " + named(name) + ": BOOL element " + std::to_string(i) + " is byte " +
                         std::to_string(static_cast<unsigned char>(bytes[i])) + " (expected 0 or 1)");
  auto t = torch::empty(info.shape, torch::TensorOptions().dtype(row(info.dtype).scalar_type));
  TORCH_INTERNAL_ASSERT(t.nbytes() == bytes.size());
  if (!bytes.empty()) std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
  return t;
}

}  // namespace

const char* dtype_name(SafetensorsDtype dtype) { return row(dtype).name; }
size_t dtype_size(SafetensorsDtype dtype) { return row(dtype).size; }

SafetensorsHeader parse_safetensors_header(std::string_view file, const std::string& what) {
  if (file.size() < 8)
    throw InputError(what + ": " + std::to_string(file.size()) +
                     " bytes, too short for a safetensors file (expected an 8-byte header length first)");
  const uint64_t length = little_endian_u64(file.data());
  if (length > kMaxHeaderLength)
    throw InputError(what + ": header length " + std::to_string(length) + " exceeds the format's limit of " +
                     std::to_string(kMaxHeaderLength) + " bytes");
  if (length > file.size() - 8)
    throw InputError(what + ": header length " + std::to_string(length) + " runs past the end of the file (" +
                     std::to_string(file.size() - 8) + " bytes after the length field)");
  HeaderSax sax(what);
  const char* text = file.data() + 8;
  json::sax_parse(text, text + length, &sax);
  if (!sax.root.is_object())
    throw InputError(what + ": header is not a JSON object (expected {name: {dtype, shape, data_offsets}, ...}), got " +
                     shown(sax.root));

  SafetensorsHeader h;
  h.data_start = 8 + length;
  const uint64_t data_size = file.size() - h.data_start;
  for (auto it = sax.root.begin(); it != sax.root.end(); ++it) {
    if (it.key() == kMetadataKey) {
      if (!it->is_object())
        throw InputError(what + ": __metadata__: expected an object of string values, got " + shown(*it));
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          throw InputError(what + ": __metadata__: " + named(m.key()) + ": expected a string, got " + shown(*m));
        h.metadata.emplace(m.key(), m->get<std::string>());
      }
      continue;
    }
    h.tensors.emplace(it.key(), parse_entry(it.key(), *it, data_size, what));
  }
  check_tiling(h.tensors, data_size, what);
  return h;
}

std::string encode_safetensors_header(const SafetensorsHeader& header, const std::string& what) {
  auto string = [&](const std::string& s, const std::string& role) {
    check_utf8(s, what, role);
    return json(s).dump();
  };
  std::string text = "{";
  if (!header.metadata.empty()) {
    text += "\"__metadata__\":{";
    for (const auto& [k, v] : header.metadata) {
      if (text.back() != '{') text += ',';
      text += string(k, "metadata key") + ":" + string(v, "metadata value of " + named(k));
    }
    text += '}';
  }
  for (const auto& [name, t] : header.tensors) {
    if (name == kMetadataKey) throw InputError(what + ": a tensor may not be named \"__metadata__\" (the format's key)");
    if (text.back() != '{') text += ',';
    text += string(name, "tensor name") + ":{\"dtype\":\"" + dtype_name(t.dtype) + "\",\"shape\":[";
    for (size_t i = 0; i < t.shape.size(); ++i) text += (i ? "," : "") + std::to_string(t.shape[i]);
    text += "],\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
  }
  text += '}';
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderLength)
    throw InputError(what + ": a header of " + std::to_string(text.size()) + " bytes exceeds the format's limit of " +
                     std::to_string(kMaxHeaderLength));
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((uint64_t(text.size()) >> (8 * i)) & 0xff);
  return out + text;
}

// --- the mapped file ----------------------------------------------------------------------

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const std::string why = ::fstat(fd, &st) != 0 ? std::strerror(errno) : "not a regular file";
    ::close(fd);
    throw InputError(path + ": cannot read (" + why + ")");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      throw InputError(path + ": cannot map into memory (" + why + ")");
    }
    data_ = static_cast<const char*>(p);
  }
  ::close(fd);  // the mapping keeps the file
  try {
    header_ = parse_safetensors_header(std::string_view(data_, size_), path_);
  } catch (...) {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      header_(std::move(other.header_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    header_ = std::move(other.header_);
  }
  return *this;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, info] : header_.tensors) out.push_back(name);
  return out;
}

const SafetensorsTensor& SafetensorsFile::info(const std::string& name) const {
  const auto it = header_.tensors.find(name);
  if (it == header_.tensors.end())
    throw InputError(path_ + ": no tensor named " + named(name) + " (the file has " +
                     std::to_string(header_.tensors.size()) + ")");
  return it->second;
}

std::string_view SafetensorsFile::bytes(const std::string& name) const {
  const auto& t = info(name);
  return std::string_view(data_, size_).substr(header_.data_start + t.begin, t.nbytes());
}

torch::Tensor SafetensorsFile::tensor(const std::string& name) const {
  return to_torch(name, info(name), bytes(name), path_);
}

// --- torch ----------------------------------------------------------------------------------

std::map<std::string, torch::Tensor> read_safetensors(const std::string& path) {
  const SafetensorsFile file(path);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : file.header().tensors) out.emplace(name, file.tensor(name));
  return out;
}

std::map<std::string, torch::Tensor> decode_safetensors(std::string_view file, const std::string& what) {
  const auto h = parse_safetensors_header(file, what);
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, info] : h.tensors)
    out.emplace(name, to_torch(name, info, file.substr(h.data_start + info.begin, info.nbytes()), what));
  return out;
}

std::string encode_safetensors(const std::map<std::string, torch::Tensor>& tensors,
                               const std::map<std::string, std::string>& metadata, const std::string& what) {
  // Two passes: the header from the tensors' sizes, then each tensor's bytes, made contiguous
  // on the CPU one at a time.
  SafetensorsHeader h;
  h.metadata = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const std::string at = what + ": tensor " + named(name) + ": ";
    if (!t.defined()) throw InputError(at + "undefined (expected a tensor)");
    if (t.layout() != torch::kStrided)
      throw InputError(at + "layout " + c10::str(t.layout()) + " cannot be written (expected a dense tensor)");
    const auto dtype = dtype_of(t.scalar_type());
    if (!dtype)
      throw InputError(at + "dtype " + std::string(c10::toString(t.scalar_type())) +
                       " cannot be written (expected one of safetensors' " + kDtypeList + ")");
    SafetensorsTensor info;
    info.dtype = *dtype;
    info.shape = t.sizes().vec();
    info.begin = offset;
    info.end = offset + uint64_t(t.numel()) * dtype_size(*dtype);
    offset = info.end;
    h.tensors.emplace(name, std::move(info));
  }
  std::string out = encode_safetensors_header(h, what);
  out.reserve(out.size() + offset);
  for (const auto& [name, t] : tensors) {
    const auto c = t.detach().resolve_neg().to(torch::kCPU).contiguous();
    if (c.nbytes() > 0) out.append(static_cast<const char*>(c.data_ptr()), c.nbytes());
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, encode_safetensors(tensors, metadata, path));
}

}  // namespace floe::runtime
