// main() of the DPDK test binaries: initialises the EAL first, and reports
// SKIP (exit 77, which meson counts as skipped) when it cannot.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "tests/dataplane/harness.h"

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::string why;
  if (!stratus::dpdk::testing::init_eal(&why)) {
    std::printf("SKIP: DPDK EAL cannot initialise here: %s\n", why.c_str());
    return 77;
  }
  return RUN_ALL_TESTS();
}
