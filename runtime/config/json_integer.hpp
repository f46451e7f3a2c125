#pragma once
// Integers in floe's JSON files, read exactly. nlohmann's get<int>() of 1e300 is undefined
// behaviour and of 2^40 wraps silently; these throw std::invalid_argument naming the key.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace floe::runtime {

template <class T>
T json_integer(const nlohmann::json& j, const std::string& key) {
  static_assert(std::is_integral_v<T> && std::is_signed_v<T>);
  constexpr int64_t lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
  if (j.is_number_unsigned() ? j.get<uint64_t>() <= uint64_t(hi)
                             : j.is_number_integer() && j.get<int64_t>() >= lo && j.get<int64_t>() <= hi)
    return static_cast<T>(j.get<int64_t>());
  throw std::invalid_argument(key + ": expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
                              ", got " + j.dump().substr(0, 40));
}

template <class T>
std::vector<T> json_integers(const nlohmann::json& j, const std::string& key) {
  if (!j.is_array()) throw std::invalid_argument(key + ": expected a list of integers, got " + j.dump().substr(0, 40));
  std::vector<T> out;
  for (const auto& x : j) out.push_back(json_integer<T>(x, key));
  return out;
}

}  // namespace floe::runtime
