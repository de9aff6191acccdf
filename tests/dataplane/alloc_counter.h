// Counts heap allocations (global operator new) made by this thread while an
// AllocationCounter is alive: lets a test prove that a fast path does not
// allocate. Linking alloc_counter.cc replaces the global operator new.
#pragma once

#include <cstdint>

namespace stratus::dpdk::testing {

class AllocationCounter {
 public:
  AllocationCounter();
  ~AllocationCounter();
  AllocationCounter(const AllocationCounter &) = delete;
  AllocationCounter &operator=(const AllocationCounter &) = delete;
  std::uint64_t count() const;
};

}  // namespace stratus::dpdk::testing
