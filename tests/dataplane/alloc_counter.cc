// Replaces the global operator new/delete with malloc/free plus a per-thread
// count (in its own file so that no caller sees the replacement inlined).
#include "tests/dataplane/alloc_counter.h"

#include <cstdlib>
#include <new>

namespace {
thread_local bool t_counting = false;
thread_local std::uint64_t t_count = 0;
}  // namespace

void *operator new(std::size_t n) {
  if (t_counting)
    ++t_count;
  if (void *p = std::malloc(n == 0 ? 1 : n))
    return p;
  throw std::bad_alloc();
}
void *operator new[](std::size_t n) {
  return operator new(n);
}
void operator delete(void *p) noexcept {
  std::free(p);
}
void operator delete[](void *p) noexcept {
  std::free(p);
}
void operator delete(void *p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void *p, std::size_t) noexcept {
  std::free(p);
}

namespace stratus::dpdk::testing {

AllocationCounter::AllocationCounter() {
  t_count = 0;
  t_counting = true;
}
AllocationCounter::~AllocationCounter() {
  t_counting = false;
}
std::uint64_t AllocationCounter::count() const {
  return t_count;
}

}  // namespace stratus::dpdk::testing
