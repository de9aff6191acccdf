// lb/flow_hash.h compiled by clang -target bpf (tests/lb/flow_hash_test.bpf.c)
// against the same header compiled by g++: both data planes must pick the
// same Maglev slot and VXLAN source port for every flow. Runs the BPF
// program with BPF_PROG_TEST_RUN on batches of random keys, several seeds and
// random hash flags. Needs root (CAP_BPF); otherwise SKIP, exit 77.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tests/lb/flow_hash_test.h"
// The skeleton refers to struct flow_hash_test_item: include it after.
#include "flow_hash_test.skel.h"

namespace {

struct SkeletonDeleter {
  void operator()(flow_hash_test *s) const { flow_hash_test::destroy(s); }
};
using Skeleton = std::unique_ptr<flow_hash_test, SkeletonDeleter>;

// Loaded once in main() (or the reason it could not be).
flow_hash_test *g_skel = nullptr;

int silent_libbpf(enum libbpf_print_level level, const char *fmt, va_list args) {
  if (level == LIBBPF_WARN)
    return std::vfprintf(stderr, fmt, args);
  return 0;
}

// Runs the BPF program on `items` (any count) with `seed`; fills the outputs.
void run_bpf(std::vector<flow_hash_test_item> &items, std::uint32_t seed) {
  int fd = bpf_program__fd(g_skel->progs.flow_hash_batch);
  for (std::size_t start = 0; start < items.size(); start += FLOW_HASH_TEST_BATCH) {
    std::size_t n = std::min<std::size_t>(FLOW_HASH_TEST_BATCH, items.size() - start);
    g_skel->bss->seed = seed;
    g_skel->bss->count = static_cast<__u32>(n);
    std::memcpy(g_skel->bss->items, &items[start], n * sizeof(flow_hash_test_item));
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    int err = bpf_prog_test_run_opts(fd, &opts);
    ASSERT_EQ(err, 0) << "BPF_PROG_TEST_RUN: " << std::strerror(errno);
    ASSERT_EQ(opts.retval, 0u);
    std::memcpy(&items[start], g_skel->bss->items, n * sizeof(flow_hash_test_item));
  }
}

// Random keys, half of them shaped like IPv4 flows (words 1..3 zero, small
// VRF, TCP/UDP), half random in every byte, with random hash flags.
std::vector<flow_hash_test_item> random_items(std::size_t n, std::mt19937 &rng) {
  std::vector<flow_hash_test_item> items(n);
  for (std::size_t i = 0; i < n; ++i) {
    flow_hash_test_item &it = items[i];
    std::memset(&it, 0, sizeof it);
    auto *w = reinterpret_cast<std::uint32_t *>(&it.key);
    for (int k = 0; k < STRATUS_FLOW_KEY_WORDS; ++k)
      w[k] = static_cast<std::uint32_t>(rng());
    if (i % 2 == 0) {
      it.key.src[1] = it.key.src[2] = it.key.src[3] = 0;
      it.key.dst[1] = it.key.dst[2] = it.key.dst[3] = 0;
      it.key.vrf %= 8;
      it.key.proto = (rng() & 1) ? 6 : 17;
      it.key.pad[0] = it.key.pad[1] = it.key.pad[2] = 0;
    }
    it.flags = static_cast<std::uint32_t>(rng()) & 0x3f;  // bit 5 is no flag: ignored
  }
  return items;
}

TEST(FlowHashBpf, MatchesCxxOnRandomKeys) {
  std::mt19937 rng(20240611);
  const std::uint32_t seeds[] = {0, 1, 0xdeadbeef, 0xffffffff, static_cast<std::uint32_t>(rng())};
  std::size_t compared = 0;
  for (std::uint32_t seed : seeds) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto items = random_items(100000, rng);
    run_bpf(items, seed);
    if (HasFatalFailure())
      return;
    int mismatches = 0;
    for (const flow_hash_test_item &it : items) {
      stratus_flow_key reduced = it.key;
      stratus_flow_key_reduce(&reduced, it.flags);
      bool same = it.hash == stratus_flow_hash(&it.key, seed) &&
                  it.vxlan_sport == stratus_vxlan_sport(&it.key, seed) &&
                  it.reduced_hash == stratus_flow_hash(&reduced, seed);
      if (!same && ++mismatches <= 5) {
        ADD_FAILURE() << "BPF " << it.hash << "/" << it.vxlan_sport << "/" << it.reduced_hash
                      << " C++ " << stratus_flow_hash(&it.key, seed) << "/"
                      << stratus_vxlan_sport(&it.key, seed) << "/"
                      << stratus_flow_hash(&reduced, seed) << " flags " << it.flags;
      }
      ++compared;
    }
    EXPECT_EQ(mismatches, 0);
  }
  std::printf("compared %zu keys (%zu seeds) between BPF and C++\n", compared, std::size(seeds));
}

TEST(FlowHashBpf, ReduceFlagsOneByOne) {
  // Every single flag and every combination, on one IPv6-sized key.
  std::vector<flow_hash_test_item> items(64);
  for (std::uint32_t flags = 0; flags < 64; ++flags) {
    flow_hash_test_item &it = items[flags];
    std::memset(&it, 0, sizeof it);
    for (int k = 0; k < 4; ++k) {
      it.key.src[k] = 0x11111111u * (k + 1);
      it.key.dst[k] = 0x01020304u << k;
    }
    it.key.vrf = 3;
    it.key.sport = 0x3412;
    it.key.dport = 0xbb01;
    it.key.proto = 6;
    it.flags = flags;
  }
  run_bpf(items, 77);
  if (HasFatalFailure())
    return;
  for (std::uint32_t flags = 0; flags < 64; ++flags) {
    stratus_flow_key reduced = items[flags].key;
    stratus_flow_key_reduce(&reduced, flags);
    EXPECT_EQ(items[flags].reduced_hash, stratus_flow_hash(&reduced, 77)) << "flags " << flags;
  }
  // Flags outside STRATUS_HASH_DEFAULT change nothing, on either side.
  for (std::uint32_t flags = 0; flags < 32; ++flags) {
    EXPECT_EQ(items[flags].reduced_hash, items[flags | 32].reduced_hash) << "flags " << flags;
  }
}

TEST(FlowHashBpf, KnownAnswer) {
  // The first vector of flow_hash_test.cc (tests/lb/reference_vectors.py):
  // the BPF build agrees with the independent reference, not only with g++.
  std::vector<flow_hash_test_item> items(1);
  std::memset(items.data(), 0, sizeof(flow_hash_test_item));
  items[0].flags = STRATUS_HASH_DEFAULT;
  run_bpf(items, 0);
  if (HasFatalFailure())
    return;
  EXPECT_EQ(items[0].hash, 0x231874dbu);
  EXPECT_EQ(items[0].vxlan_sport, 62683);
}

}  // namespace

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (geteuid() != 0) {
    std::printf("SKIP: needs root to load BPF programs\n");
    return 77;
  }
  libbpf_set_print(silent_libbpf);
  Skeleton skel(flow_hash_test::open_and_load());
  if (!skel) {
    int err = errno;
    // EPERM: no CAP_BPF (a container, say). Not EACCES: that is how the
    // verifier says no, which is a failure of this test.
    if (err == EPERM) {
      std::printf("SKIP: cannot load BPF programs here: %s\n", std::strerror(err));
      return 77;
    }
    std::fprintf(stderr, "loading flow_hash_test.bpf.o failed: %s\n", std::strerror(err));
    return 1;
  }
  g_skel = skel.get();
  return RUN_ALL_TESTS();
}
