/* lb/flow_hash.h compiled for BPF: hashes a batch of keys placed in .bss by
 * tests/lb/flow_hash_bpf_test.cc, run with BPF_PROG_TEST_RUN. A syscall
 * program because it needs no packet, only its globals. */
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#include "tests/lb/flow_hash_test.h"

__u32 seed;
__u32 count;
struct flow_hash_test_item items[FLOW_HASH_TEST_BATCH];

SEC("syscall")
int flow_hash_batch(void *ctx __attribute__((unused))) {
  __u32 n = count;

  if (n > FLOW_HASH_TEST_BATCH)
    n = FLOW_HASH_TEST_BATCH;
  for (__u32 i = 0; i < n; i++) {
    struct flow_hash_test_item *it = &items[i];
    struct stratus_flow_key reduced = it->key;

    it->hash = stratus_flow_hash(&it->key, seed);
    it->vxlan_sport = stratus_vxlan_sport(&it->key, seed);
    stratus_flow_key_reduce(&reduced, it->flags);
    it->reduced_hash = stratus_flow_hash(&reduced, seed);
  }
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
