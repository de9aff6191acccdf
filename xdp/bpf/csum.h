/* Internet checksum helpers: the full header checksum of an option-less
 * IPv4 header that we build (outer headers), and the incremental update for
 * a TTL decrement (RFC 1624) on headers that we forward.
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

/* Checksum of a 20-byte IPv4 header whose check field is zero. */
static __always_inline __u16 stratus_ipv4_csum(const struct iphdr *ip) {
  const __u16 *w = (const __u16 *)ip;
  __u32 sum = 0;
#pragma unroll
  for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
    sum += w[i];
  return stratus_csum_fold(sum);
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
