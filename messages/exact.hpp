#pragma once
// Doubles on the wire as their IEEE-754 bits. CAF 0.17's own double encoding
// (caf::detail::pack754) never returns for an infinity, turns a NaN into -1 and a denormal
// into -1.6e293 (found by tests/fuzz): a diverged loss would hang the sender's middleman.
// Every double of a floe message goes through exact().
#include <caf/all.hpp>

#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

namespace floe::msg {

// A double, std::vector<double> or std::map<std::string, double> field of a message.
template <class T>
struct exact_t {
  T& value;
};
template <class T>
exact_t<T> exact(T& x) {
  return {x};
}

inline uint64_t to_bits(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}
inline void from_bits(uint64_t b, double& x) { std::memcpy(&x, &b, sizeof x); }
inline std::vector<uint64_t> to_bits(const std::vector<double>& xs) {
  std::vector<uint64_t> out;
  for (double x : xs) out.push_back(to_bits(x));
  return out;
}
inline void from_bits(const std::vector<uint64_t>& bs, std::vector<double>& xs) {
  xs.resize(bs.size());
  for (size_t i = 0; i < bs.size(); ++i) from_bits(bs[i], xs[i]);
}
inline std::map<std::string, uint64_t> to_bits(const std::map<std::string, double>& xs) {
  std::map<std::string, uint64_t> out;
  for (const auto& [k, x] : xs) out.emplace(k, to_bits(x));
  return out;
}
inline void from_bits(const std::map<std::string, uint64_t>& bs, std::map<std::string, double>& xs) {
  xs.clear();
  for (const auto& [k, b] : bs) from_bits(b, xs[k]);
}

template <class Inspector, class T>
typename Inspector::result_type inspect(Inspector& f, exact_t<T>& x) {
  if constexpr (std::is_base_of<caf::serializer, Inspector>::value) {
    auto bits = to_bits(x.value);
    return f(bits);
  } else if constexpr (std::is_base_of<caf::deserializer, Inspector>::value) {
    decltype(to_bits(x.value)) bits{};
    if (auto err = f(bits)) return err;
    from_bits(bits, x.value);
    return caf::none;
  } else {
    return f(x.value);
  }
}

}  // namespace floe::msg
