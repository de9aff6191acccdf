/* The batch exchanged between tests/lb/flow_hash_test.bpf.c and
 * tests/lb/flow_hash_bpf_test.cc through the program's .bss: the C++ side
 * fills keys, seed and flags, runs the program once per batch with
 * BPF_PROG_TEST_RUN, and compares the hashes with its own build of
 * lb/flow_hash.h. */
#ifndef STRATUS_TESTS_LB_FLOW_HASH_TEST_H
#define STRATUS_TESTS_LB_FLOW_HASH_TEST_H

#include "lb/flow_hash.h"

#define FLOW_HASH_TEST_BATCH 256

struct flow_hash_test_item {
  struct stratus_flow_key key; /* in */
  stratus_u32 flags;           /* in: STRATUS_HASH_* for the reduced hash */
  stratus_u32 hash;            /* out: stratus_flow_hash(key, seed) */
  stratus_u32 reduced_hash;    /* out: the same after stratus_flow_key_reduce(flags) */
  stratus_u16 vxlan_sport;     /* out: stratus_vxlan_sport(key, seed) */
  stratus_u16 pad;
};

#ifdef __cplusplus
static_assert(sizeof(struct flow_hash_test_item) == 60, "layout shared with the BPF program");
#endif

#endif /* STRATUS_TESTS_LB_FLOW_HASH_TEST_H */
