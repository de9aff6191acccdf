/* The flow hash: the ONE function that both data planes (BPF programs and
 * C++) use to pick a Maglev slot and the VXLAN UDP source port. Every node,
 * whichever data plane it runs, must compute the same value for the same
 * flow, so this file compiles unchanged with `clang -target bpf` and g++.
 *
 * The key is fixed-width and wide enough for IPv6. IPv4 addresses sit in
 * word 0 of src/dst (network byte order), words 1..3 zero. All fields are
 * stored as they appear on the wire (ports and addresses big-endian); the
 * hash reads them as native 32-bit words, so it is defined for
 * little-endian hosts (x86-64, and BPF on them).
 *
 * The mix is MurmurHash3's 32-bit block/finaliser structure applied to the
 * 11 key words, seeded from the configuration (node table hash_seed).
 */
#ifndef STRATUS_LB_FLOW_HASH_H
#define STRATUS_LB_FLOW_HASH_H

#ifdef __cplusplus
#include <cstdint>
#include <cstring>
typedef std::uint8_t stratus_u8;
typedef std::uint16_t stratus_u16;
typedef std::uint32_t stratus_u32;
#define STRATUS_INLINE static inline __attribute__((always_inline))
#else
#include <linux/types.h>
typedef __u8 stratus_u8;
typedef __u16 stratus_u16;
typedef __u32 stratus_u32;
#define STRATUS_INLINE static __inline __attribute__((always_inline))
#endif

/* Hash flags of a service (services[].hash in the config). A field whose
 * flag is clear is zeroed in the key before hashing and before the
 * connection-table lookup, e.g. clearing SRC_PORT gives client affinity. */
#define STRATUS_HASH_SRC_IP (1u << 0)
#define STRATUS_HASH_DST_IP (1u << 1)
#define STRATUS_HASH_SRC_PORT (1u << 2)
#define STRATUS_HASH_DST_PORT (1u << 3)
#define STRATUS_HASH_PROTO (1u << 4)
#define STRATUS_HASH_DEFAULT                                                                   \
  (STRATUS_HASH_SRC_IP | STRATUS_HASH_DST_IP | STRATUS_HASH_SRC_PORT | STRATUS_HASH_DST_PORT | \
   STRATUS_HASH_PROTO)

/* Words in struct stratus_flow_key. */
#define STRATUS_FLOW_KEY_WORDS 11

struct stratus_flow_key {
  stratus_u32 src[4]; /* network byte order; IPv4 in src[0] */
  stratus_u32 dst[4]; /* network byte order; IPv4 in dst[0] */
  stratus_u32 vrf;    /* VRF id; 0 = underlay */
  stratus_u16 sport;  /* network byte order; 0 when not TCP/UDP */
  stratus_u16 dport;  /* network byte order; 0 when not TCP/UDP */
  stratus_u8 proto;   /* IPPROTO_* */
  stratus_u8 pad[3];  /* always zero */
};

#ifdef __cplusplus
static_assert(sizeof(struct stratus_flow_key) == STRATUS_FLOW_KEY_WORDS * 4,
              "stratus_flow_key layout is part of the hash contract");
#endif

STRATUS_INLINE stratus_u32 stratus_rotl32(stratus_u32 x, int r) {
  return (x << r) | (x >> (32 - r));
}

STRATUS_INLINE stratus_u32 stratus_hash_block(stratus_u32 h, stratus_u32 k) {
  k *= 0xcc9e2d51u;
  k = stratus_rotl32(k, 15);
  k *= 0x1b873593u;
  h ^= k;
  h = stratus_rotl32(h, 13);
  return h * 5u + 0xe6546b64u;
}

STRATUS_INLINE stratus_u32 stratus_hash_final(stratus_u32 h, stratus_u32 len_bytes) {
  h ^= len_bytes;
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/* Hash of a whole key (fields already reduced by the service's flags). */
/* The key is hashed as 32-bit words, read through a type that may alias
 * its 16- and 8-bit fields: through a plain stratus_u32 pointer the
 * compiler may read a word before the field stores that fill it (strict
 * aliasing), and did, for a key built in a temporary and hashed at once. */
typedef stratus_u32 __attribute__((__may_alias__)) stratus_u32_alias;

STRATUS_INLINE stratus_u32 stratus_flow_hash(const struct stratus_flow_key *key, stratus_u32 seed) {
  const stratus_u32_alias *w = (const stratus_u32_alias *)key;
  stratus_u32 h = seed;
  h = stratus_hash_block(h, w[0]);
  h = stratus_hash_block(h, w[1]);
  h = stratus_hash_block(h, w[2]);
  h = stratus_hash_block(h, w[3]);
  h = stratus_hash_block(h, w[4]);
  h = stratus_hash_block(h, w[5]);
  h = stratus_hash_block(h, w[6]);
  h = stratus_hash_block(h, w[7]);
  h = stratus_hash_block(h, w[8]);
  h = stratus_hash_block(h, w[9]);
  h = stratus_hash_block(h, w[10]);
  return stratus_hash_final(h, STRATUS_FLOW_KEY_WORDS * 4);
}

/* Zeroes the fields that the service's hash flags leave out. */
STRATUS_INLINE void stratus_flow_key_reduce(struct stratus_flow_key *key, stratus_u32 flags) {
  if (!(flags & STRATUS_HASH_SRC_IP)) {
    key->src[0] = key->src[1] = key->src[2] = key->src[3] = 0;
  }
  if (!(flags & STRATUS_HASH_DST_IP)) {
    key->dst[0] = key->dst[1] = key->dst[2] = key->dst[3] = 0;
  }
  if (!(flags & STRATUS_HASH_SRC_PORT))
    key->sport = 0;
  if (!(flags & STRATUS_HASH_DST_PORT))
    key->dport = 0;
  if (!(flags & STRATUS_HASH_PROTO))
    key->proto = 0;
}

/* VXLAN outer UDP source port for an inner flow (SPEC §3): 49152 + hash mod
 * 16384, host byte order. The key is the inner packet's full 5-tuple with
 * vrf = 0 and no reduction (ports 0 for non-TCP/UDP and for fragments), so
 * that routed and load-balanced packets of one flow take one underlay path. */
STRATUS_INLINE stratus_u16 stratus_vxlan_sport_from_hash(stratus_u32 inner_hash) {
  return (stratus_u16)(49152u + (inner_hash & 16383u));
}

STRATUS_INLINE stratus_u16 stratus_vxlan_sport(const struct stratus_flow_key *inner,
                                               stratus_u32 seed) {
  return stratus_vxlan_sport_from_hash(stratus_flow_hash(inner, seed));
}

#endif /* STRATUS_LB_FLOW_HASH_H */
