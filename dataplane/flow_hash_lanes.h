// Several flow hashes at once: lb/flow_hash.h's own block and final steps
// (not a copy of them) applied in lock-step over lanes, keys stored word by
// word across lanes, so that the compiler computes the lanes in vector
// registers. One flow hash is a chain of ~30 dependent operations; a burst
// of them done one by one is bound by that latency. Equal to
// stratus_flow_hash() lane by lane (tests/dataplane/flow_table_test.cc).
#pragma once

#include <cstdint>

#include "lb/flow_hash.h"

namespace stratus::dpdk {

template <unsigned N>
struct FlowHashLanes {
  std::uint32_t words[STRATUS_FLOW_KEY_WORDS][N] = {};  // words[i][lane]: word i of lane's key
  std::uint32_t hash[N] = {};

  void set_key(unsigned lane, const stratus_flow_key &k) {
    const auto *b = reinterpret_cast<const std::uint8_t *>(&k);
    for (unsigned i = 0; i < STRATUS_FLOW_KEY_WORDS; ++i)
      __builtin_memcpy(&words[i][lane], b + 4 * i, 4);
  }

  // An IPv4 key (see stratus_flow_key): addresses, VRF, the two ports as
  // one word, protocol; all as on the wire.
  void set_v4(unsigned lane, std::uint32_t src, std::uint32_t dst, std::uint32_t vrf,
              std::uint32_t ports, std::uint8_t proto) {
    words[0][lane] = src;
    words[1][lane] = words[2][lane] = words[3][lane] = 0;
    words[4][lane] = dst;
    words[5][lane] = words[6][lane] = words[7][lane] = 0;
    words[8][lane] = vrf;
    words[9][lane] = ports;
    words[10][lane] = proto;
  }

  void compute(std::uint32_t seed) {
    std::uint32_t h[N];
    for (unsigned l = 0; l < N; ++l)
      h[l] = seed;
    for (unsigned i = 0; i < STRATUS_FLOW_KEY_WORDS; ++i) {
      for (unsigned l = 0; l < N; ++l)
        h[l] = stratus_hash_block(h[l], words[i][l]);
    }
    for (unsigned l = 0; l < N; ++l)
      hash[l] = stratus_hash_final(h[l], STRATUS_FLOW_KEY_WORDS * 4);
  }
};

// The same over IPv4 keys only (address words 1..3 zero, as in every key
// of the fast path), stored field by field: the zero words are constants
// for the compiler, which drops their multiplications (stratus_hash_block
// of 0 is a rotate, a multiply by 5 and an add), and a key costs five
// stores instead of eleven. Equal to stratus_flow_hash() of the key with
// those fields (tests/dataplane/flow_table_test.cc).
//
// The build targets a baseline x86-64 (SSE4.2: four lanes per vector);
// where the CPU has AVX2 (checked once, at construction) the same code is
// compiled for it too and runs eight lanes per vector.
template <unsigned N>
struct FlowHashLanesV4 {
  std::uint32_t src[N] = {};
  std::uint32_t dst[N] = {};
  std::uint32_t vrf[N] = {};
  std::uint32_t ports[N] = {};  // sport, dport as one word
  std::uint32_t proto[N] = {};
  std::uint32_t hash[N] = {};

  void set(unsigned lane, std::uint32_t src_be, std::uint32_t dst_be, std::uint32_t vrf_id,
           std::uint32_t ports_be, std::uint8_t proto_num) {
    src[lane] = src_be;
    dst[lane] = dst_be;
    vrf[lane] = vrf_id;
    ports[lane] = ports_be;
    proto[lane] = proto_num;
  }

  void compute(std::uint32_t seed) {
    if (avx2_)
      compute_avx2(seed);
    else
      compute_any(seed);
  }

 private:
  bool avx2_ = __builtin_cpu_supports("avx2");

  [[gnu::target("avx2")]] void compute_avx2(std::uint32_t seed) { compute_lanes(seed); }
  void compute_any(std::uint32_t seed) { compute_lanes(seed); }

  [[gnu::always_inline]] void compute_lanes(std::uint32_t seed) {
    for (unsigned l = 0; l < N; ++l) {
      std::uint32_t h = stratus_hash_block(seed, src[l]);
      h = stratus_hash_block(h, 0);
      h = stratus_hash_block(h, 0);
      h = stratus_hash_block(h, 0);
      h = stratus_hash_block(h, dst[l]);
      h = stratus_hash_block(h, 0);
      h = stratus_hash_block(h, 0);
      h = stratus_hash_block(h, 0);
      h = stratus_hash_block(h, vrf[l]);
      h = stratus_hash_block(h, ports[l]);
      h = stratus_hash_block(h, proto[l]);
      hash[l] = stratus_hash_final(h, STRATUS_FLOW_KEY_WORDS * 4);
    }
  }
};

}  // namespace stratus::dpdk
