/* Internet checksum helpers: folding a one's complement sum (the outer
 * IPv4 headers that we build, encap.h), and the incremental update for a
 * TTL decrement (RFC 1624) on headers that we forward.
 */
#ifndef STRATUS_XDP_BPF_CSUM_H
#define STRATUS_XDP_BPF_CSUM_H

#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 stratus_csum_fold(__u32 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)~sum;
}

/* TTL - 1 with the checksum patched: the TTL is the high byte of its 16-bit
 * word, so the word drops by 0x0100 and the one's complement sum rises by
 * it (with end-around carry), as Linux's ip_decrease_ttl does. */
static __always_inline void stratus_ipv4_decrement_ttl(struct iphdr *ip) {
  __u32 check = ip->check;
  check += bpf_htons(0x0100);
  ip->check = (__u16)(check + (check >= 0xffff));
  ip->ttl -= 1;
}

#endif /* STRATUS_XDP_BPF_CSUM_H */
