#pragma once
// A tensor inside a message. Within a process it travels as the tensor itself (zero copy,
// aliasing: never mutate a tensor after sending it); across processes it serialises as
// dtype, shape and raw bytes.
#include <torch/torch.h>

#include <caf/all.hpp>
#include <caf/binary_deserializer.hpp>

#include <string>
#include <type_traits>
#include <vector>

namespace floe::msg {

struct wire_tensor {
  torch::Tensor t;
};

// The dtypes a received tensor may have: those with a plain element layout (not quantized or
// sub-byte ones). Dtype 18 (Undefined) made torch throw inside the deserializer, where
// nothing catches it (found by tests/fuzz).
inline bool plain_dtype(int8_t dt) {
  using c10::ScalarType;
  switch (static_cast<ScalarType>(dt)) {
    case ScalarType::Byte: case ScalarType::Char: case ScalarType::Short: case ScalarType::Int:
    case ScalarType::Long: case ScalarType::Half: case ScalarType::Float: case ScalarType::Double:
    case ScalarType::ComplexFloat: case ScalarType::ComplexDouble: case ScalarType::Bool: case ScalarType::BFloat16:
      return true;
    default:
      return false;
  }
}

// A tensor whose bytes travel outside the message, over UCX (runtime/comm/ucx_transport.hpp):
// the receiver posts a receive with `tag` into a buffer of this dtype and shape. Tag 0: no
// ticket (the tensor is in the message).
struct tensor_ticket {
  uint64_t tag = 0;
  int8_t dtype = -1;
  std::vector<int64_t> shape;
};

// Whether `shape` has no negative extent and at most 2^40 elements.
inline bool plain_shape(const std::vector<int64_t>& shape, int64_t* numel = nullptr) {
  int64_t n = 1;
  for (auto d : shape) {
    if (d < 0 || (d > 0 && n > (int64_t(1) << 40) / d)) return false;
    n *= d;
  }
  if (numel) *numel = n;
  return true;
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, tensor_ticket& x) {
  auto check = caf::meta::load_callback([&]() -> caf::error {
    if (x.tag != 0 && (!plain_dtype(x.dtype) || !plain_shape(x.shape)))
      return caf::make_error(caf::sec::invalid_argument, "tensor_ticket: bad dtype or shape");
    return caf::none;
  });
  return f(caf::meta::type_name("tensor_ticket"), x.tag, x.dtype, x.shape, check);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, wire_tensor& x) {
  if constexpr (std::is_base_of<caf::serializer, Inspector>::value) {
    auto c = x.t.defined() ? x.t.contiguous() : torch::Tensor();
    int8_t dt = c.defined() ? int8_t(c.scalar_type()) : int8_t(-1);
    std::vector<int64_t> shape = c.defined() ? c.sizes().vec() : std::vector<int64_t>{};
    uint64_t n = c.defined() ? c.nbytes() : 0;
    if (auto err = f(dt, shape, n)) return err;
    return n ? f.apply_raw(n, c.data_ptr()) : caf::error{};
  } else if constexpr (std::is_base_of<caf::deserializer, Inspector>::value) {
    int8_t dt = -1;
    std::vector<int64_t> shape;
    uint64_t n = 0;
    if (auto err = f(dt, shape, n)) return err;
    if (dt < 0) {
      x.t = torch::Tensor();
      return n ? caf::make_error(caf::sec::invalid_argument, "wire_tensor: undefined tensor with payload") : caf::error{};
    }
    if (!plain_dtype(dt))
      return caf::make_error(caf::sec::invalid_argument, "wire_tensor: unknown dtype " + std::to_string(dt));
    int64_t numel = 1;
    if (!plain_shape(shape, &numel)) return caf::make_error(caf::sec::invalid_argument, "wire_tensor: bad shape");
    const auto type = c10::ScalarType(dt);
    if (uint64_t(numel) * c10::elementSize(type) != n)
      return caf::make_error(caf::sec::invalid_argument, "wire_tensor: payload size does not match shape and dtype");
    // Allocate only what the message holds: a forged header of a few bytes must not make the
    // receiver reserve gigabytes (found by tests/fuzz). The middleman decodes with a
    // binary_deserializer.
    if (auto* bytes = dynamic_cast<caf::binary_deserializer*>(&f); bytes && bytes->remaining() < n)
      return caf::make_error(caf::sec::end_of_stream, "wire_tensor: payload shorter than its header says");
    x.t = torch::empty(shape, torch::dtype(type));
    return n ? f.apply_raw(n, x.t.data_ptr()) : caf::error{};
  } else {
    if (!x.t.defined()) return f(caf::meta::type_name("wire_tensor"), std::string("undefined"));
    return f(caf::meta::type_name("wire_tensor"), std::string(c10::toString(x.t.scalar_type())), x.t.sizes().vec());
  }
}

}  // namespace floe::msg
