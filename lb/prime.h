// Primality for Maglev table sizes (M must be prime so that every
// (offset, skip) permutation visits every slot).
#pragma once

#include <cstdint>

namespace stratus::lb {

constexpr bool is_prime(std::uint64_t n) {
  if (n < 2)
    return false;
  if (n % 2 == 0)
    return n == 2;
  if (n % 3 == 0)
    return n == 3;
  for (std::uint64_t i = 5; i * i <= n; i += 6) {
    if (n % i == 0 || n % (i + 2) == 0)
      return false;
  }
  return true;
}

static_assert(is_prime(65537) && is_prime(655373) && !is_prime(65536));

}  // namespace stratus::lb
