/* The return convention of the packet-processing steps and the counter
 * helpers. Every step returns either STRATUS_CONTINUE ("go on with the next
 * step") or the XDP action that ends processing; drops go through
 * stratus_drop() so that each one is counted once under its reason.
 */
#ifndef STRATUS_XDP_BPF_VERDICT_H
#define STRATUS_XDP_BPF_VERDICT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb/drop_reason.h"
#include "xdp/bpf/maps.h"

#define STRATUS_CONTINUE (-1)

static __always_inline __u64 stratus_frame_len(const struct xdp_md *ctx) {
  return (__u64)ctx->data_end - (__u64)ctx->data;
}

static __always_inline void stratus_count_misc(__u32 which) {
  __u64 *v = bpf_map_lookup_elem(&misc_stats, &which);
  if (v)
    *v += 1;
}

static __always_inline int stratus_drop(enum stratus_drop_reason reason) {
  __u32 key = reason;
  __u64 *v = bpf_map_lookup_elem(&drop_stats, &key);
  if (v)
    *v += 1;
  return XDP_DROP;
}

static __always_inline int stratus_pass(void) {
  stratus_count_misc(STRATUS_MISC_PASS);
  return XDP_PASS;
}

static __always_inline void stratus_count_port_rx(__u32 port, __u64 bytes) {
  struct stratus_port_stats *s = bpf_map_lookup_elem(&port_stats, &port);
  if (s) {
    s->rx_packets += 1;
    s->rx_bytes += bytes;
  }
}

static __always_inline void stratus_count_port_tx(__u32 port, __u64 bytes) {
  struct stratus_port_stats *s = bpf_map_lookup_elem(&port_stats, &port);
  if (s) {
    s->tx_packets += 1;
    s->tx_bytes += bytes;
  }
}

static __always_inline void stratus_count_vrf(__u32 vrf, __u64 bytes, int tx) {
  stratus_vrf_stats *s = bpf_map_lookup_elem(&vrf_stats, &vrf);
  if (!s)
    return;
  if (tx) {
    s->tx_packets += 1;
    s->tx_bytes += bytes;
  } else {
    s->rx_packets += 1;
    s->rx_bytes += bytes;
  }
}

static __always_inline void stratus_count_lb(void *map, __u32 id, __u64 bytes, int new_flow) {
  struct stratus_lb_stats *s = bpf_map_lookup_elem(map, &id);
  if (s) {
    s->packets += 1;
    s->bytes += bytes;
    s->new_flows += new_flow ? 1 : 0;
  }
}

#endif /* STRATUS_XDP_BPF_VERDICT_H */
