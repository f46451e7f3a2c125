#pragma once
// Model weights in Hugging Face's safetensors format, read and written without a library:
//
//   8 bytes    N, the header's length, unsigned little-endian
//   N bytes    a JSON object: name -> {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//              plus an optional "__metadata__": {string: string}; trailing spaces pad it
//   the rest   the data section: each tensor's bytes, little-endian, row-major, at
//              [begin, end) counted from the data section's start
//
// The core (Header, parse_header, encode_header) is torch-free and validates a header against
// the bytes of the whole file before anything proportional to a claimed shape is allocated;
// SafetensorsFile maps a file once, read-only; the torch functions copy tensors out of it.
//
// Reading refuses, with floe::InputError "<what>: ..." (`what` is the file's path, or
// "<bytes>" for bytes in memory; the tensor's name when one is at fault; what was expected):
//   - a file shorter than 8 bytes; a header length over 100,000,000 (the reference
//     implementation's limit) or past the end of the file;
//   - a header that is not JSON, not an object, nested deeper than the format, or has a
//     name twice (duplicate keys, which plain JSON parsers silently merge);
//   - a "__metadata__" that is not an object of strings;
//   - a tensor entry that is not an object, lacks dtype, shape or data_offsets, or has one of
//     the wrong type; a dtype outside F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL (the others of the
//     format, such as "F8_E4M3" or "U16", are refused by name: LibTorch 1.13 has no such type);
//     a shape dimension that is negative, not an integer or over 2^63-1, or a shape whose
//     element count (zero dimensions read as 1, as torch's strides do) overflows int64 or
//     whose byte count overflows 64 bits; data_offsets that are not [begin, end] integers with
//     begin <= end <= the data section's size; end - begin other than the dtype's size times
//     the element count;
//   - tensors that overlap, or a data section with bytes no tensor covers (the format has the
//     tensors tile it exactly, in any order);
//   - for BOOL, a byte other than 0 or 1 (only when the tensor is converted to torch).
// Entry fields other than dtype, shape and data_offsets are ignored, as the reference does.
// The host must be little-endian (checked at compile time).
//
// Writing is canonical: tensors sorted by name (byte order), their data laid out in that
// order without gaps, "__metadata__" first when not empty, compact JSON with the fields in the
// order dtype, shape, data_offsets, the header padded with spaces to a multiple of 8 bytes
// (as the reference writer pads). So equal inputs give equal bytes, whatever the map order.
// (The reference writer orders by dtype size first, then name: both are valid files.)
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace floe::runtime {

// The dtypes floe reads and writes; the names are the format's.
enum class SafetensorsDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(SafetensorsDtype dtype);
size_t dtype_size(SafetensorsDtype dtype);  // bytes per element

struct SafetensorsTensor {
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<int64_t> shape;  // empty: a 0-dim scalar
  uint64_t begin = 0, end = 0;  // bytes [begin, end) of the data section
  uint64_t nbytes() const { return end - begin; }
  bool operator==(const SafetensorsTensor& o) const {
    return dtype == o.dtype && shape == o.shape && begin == o.begin && end == o.end;
  }
};

struct SafetensorsHeader {
  std::map<std::string, SafetensorsTensor> tensors;  // by name
  std::map<std::string, std::string> metadata;       // "__metadata__"; empty when absent
  uint64_t data_start = 0;                           // where the data section starts in the file: 8 + N
};

// Parses and validates the header of `file`, the bytes of the whole file (every rule above
// except BOOL's bytes). Allocates only in proportion to the header's own length.
SafetensorsHeader parse_safetensors_header(std::string_view file, const std::string& what);

// The bytes before the data section: the length field and the JSON header, padded. Writes the
// tensors in name order with the offsets they have (data_start is ignored). Throws
// floe::InputError naming `what` and the entry when a name, key or value is not valid UTF-8
// or a tensor is named "__metadata__".
std::string encode_safetensors_header(const SafetensorsHeader& header, const std::string& what);

// A safetensors file mapped into memory read-only, its header validated on opening. The
// views it hands out live as long as it does. (A file truncated by someone else while mapped
// makes reading its pages fault: the usual limit of mmap.)
class SafetensorsFile {
 public:
  // Throws floe::InputError naming the path when it cannot be opened or mapped, or is not a
  // valid safetensors file.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return header_.tensors.count(name) != 0; }
  // Throw floe::InputError naming the file and the tensor when there is no such tensor.
  const SafetensorsTensor& info(const std::string& name) const;
  std::string_view bytes(const std::string& name) const;  // a view into the mapping
  // A copy that owns its memory: contiguous, CPU.
  torch::Tensor tensor(const std::string& name) const;

 private:
  std::string path_;
  const char* data_ = nullptr;  // the mapping (nullptr for an empty mapping)
  size_t size_ = 0;
  SafetensorsHeader header_;
};

// Every tensor of the file or bytes, copied: each owns its memory, contiguous, CPU.
std::map<std::string, torch::Tensor> read_safetensors(const std::string& path);
std::map<std::string, torch::Tensor> decode_safetensors(std::string_view file, const std::string& what);

// The bytes of a canonical file. Tensors may be on any device, non-contiguous or require
// grad (their values are written); floe::InputError naming `what` and the tensor for an
// undefined or non-strided tensor or a dtype outside the list above (complex, quantized, ...).
std::string encode_safetensors(const std::map<std::string, torch::Tensor>& tensors,
                               const std::map<std::string, std::string>& metadata, const std::string& what);

// Writes encode_safetensors' bytes atomically (a temporary file beside `path`, fsync, rename).
// Throws floe::InputError naming the path.
void write_safetensors(const std::string& path, const std::map<std::string, torch::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace floe::runtime
