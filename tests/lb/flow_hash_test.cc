// lb/flow_hash.h as compiled by g++: known-answer vectors computed once,
// independently, by tests/lb/reference_vectors.py (a Python transcription of
// the header's description). Every node and both data planes must agree on
// these numbers, so a change of the hash shows up here even without BPF.
#include "lb/flow_hash.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace {

stratus_flow_key key_of(const char *src, const char *dst, std::uint32_t vrf, std::uint16_t sport,
                        std::uint16_t dport, std::uint8_t proto) {
  stratus_flow_key k{};
  int family = std::strchr(src, ':') ? AF_INET6 : AF_INET;
  EXPECT_EQ(inet_pton(family, src, k.src), 1) << src;
  EXPECT_EQ(inet_pton(family, dst, k.dst), 1) << dst;
  k.vrf = vrf;
  k.sport = htons(sport);
  k.dport = htons(dport);
  k.proto = proto;
  return k;
}

struct Vector {
  const char *name;
  stratus_flow_key key;
  std::uint32_t seed;
  std::uint32_t hash;
  std::uint16_t vxlan_sport;
};

stratus_flow_key all_ones() {
  stratus_flow_key k;
  std::memset(&k, 0xff, sizeof k);
  return k;
}

TEST(FlowHash, KnownAnswers) {
  const Vector vectors[] = {
      {"all zero", {}, 0, 0x231874db, 62683},
      {"all zero, seeded", {}, 0x12345678, 0x38792770, 59248},
      {"tcp v4", key_of("10.0.0.1", "10.0.0.2", 0, 12345, 80, 6), 0, 0x1717f3b3, 62387},
      {"tcp v4, seeded", key_of("10.0.0.1", "10.0.0.2", 0, 12345, 80, 6), 0xdeadbeef, 0x644cab69,
       60265},
      {"udp v4 vrf 7", key_of("192.168.1.10", "172.16.0.1", 7, 53000, 53, 17), 42, 0xd3e1b499,
       62617},
      {"tcp v6", key_of("2001:db8::1", "2001:db8::2", 3, 40000, 443, 6), 1, 0xe3344cd5, 52437},
      {"all ones", all_ones(), 0xffffffff, 0x7b18f99c, 63900},
  };
  for (const Vector &v : vectors) {
    SCOPED_TRACE(v.name);
    EXPECT_EQ(stratus_flow_hash(&v.key, v.seed), v.hash);
    EXPECT_EQ(stratus_vxlan_sport(&v.key, v.seed), v.vxlan_sport);
  }
}

TEST(FlowHash, VxlanSourcePortRange) {
  stratus_flow_key k = key_of("10.0.0.1", "10.0.0.2", 0, 1, 2, 17);
  for (std::uint32_t seed = 0; seed < 20000; ++seed) {
    std::uint16_t port = stratus_vxlan_sport(&k, seed);
    ASSERT_GE(port, 49152);
    ASSERT_EQ(port - 49152, stratus_flow_hash(&k, seed) % 16384) << "seed " << seed;
  }
}

TEST(FlowHash, EveryKeyWordMatters) {
  // The 11 words of the key each change the hash (no word skipped by the mix).
  const stratus_flow_key base = key_of("10.0.0.1", "10.0.0.2", 1, 1000, 80, 6);
  const std::uint32_t h = stratus_flow_hash(&base, 7);
  for (int word = 0; word < STRATUS_FLOW_KEY_WORDS; ++word) {
    stratus_flow_key k = base;
    reinterpret_cast<std::uint32_t *>(&k)[word] ^= 0x00010000u;
    EXPECT_NE(stratus_flow_hash(&k, 7), h) << "word " << word;
  }
  EXPECT_NE(stratus_flow_hash(&base, 8), h) << "seed";
}

TEST(FlowHash, ReduceKeepsOnlyFlaggedFields) {
  const stratus_flow_key base = key_of("10.0.0.1", "10.0.0.2", 9, 1000, 80, 6);
  stratus_flow_key k = base;
  stratus_flow_key_reduce(&k, STRATUS_HASH_DEFAULT);
  EXPECT_EQ(std::memcmp(&k, &base, sizeof k), 0);
  k = base;
  stratus_flow_key_reduce(&k, 0);
  stratus_flow_key only_vrf{};
  only_vrf.vrf = 9;
  EXPECT_EQ(std::memcmp(&k, &only_vrf, sizeof k), 0);
}

}  // namespace
