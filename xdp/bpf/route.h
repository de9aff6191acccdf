/* The overlay route step (SPEC.md §3.4): longest-prefix match in the
 * packet's VRF, inner TTL decrement, inner MAC rewrite, then VXLAN toward a
 * remote VTEP, delivery on a local tenant port, or a counted drop.
 */
#ifndef STRATUS_XDP_BPF_ROUTE_H
#define STRATUS_XDP_BPF_ROUTE_H

#include "xdp/bpf/encap.h"

static __always_inline int stratus_route(struct xdp_md *ctx, const struct stratus_node_cfg *cfg,
                                         const struct stratus_pkt *pkt) {
  struct stratus_route_key key = {
      .prefixlen = 32 + 32,
      .vrf = bpf_htonl(pkt->vrf),
      .addr = {pkt->tuple.dst[0], 0, 0, 0},
  };
  struct stratus_route *rt = bpf_map_lookup_elem(&routes, &key);
  if (!rt)
    return stratus_drop(STRATUS_DROP_NO_ROUTE);
  if (rt->kind == STRATUS_ROUTE_BLACKHOLE)
    return stratus_drop(STRATUS_DROP_BLACKHOLE);

  if (stratus_trim(ctx, sizeof(struct ethhdr) + pkt->ip_len))
    return stratus_drop(STRATUS_DROP_TX_FAILED);
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > data_end)
    return stratus_drop(STRATUS_DROP_MALFORMED_IPV4);
  if (ip->ttl <= 1)
    return stratus_drop(STRATUS_DROP_TTL_EXCEEDED);
  stratus_ipv4_decrement_ttl(ip);
  __builtin_memcpy(eth->h_source, cfg->gateway_mac, ETH_ALEN);
  __builtin_memcpy(eth->h_dest, rt->dst_mac, ETH_ALEN);
  eth->h_proto = bpf_htons(ETH_P_IP);

  __u64 len = stratus_frame_len(ctx);
  int rc;
  if (rt->kind == STRATUS_ROUTE_REMOTE)
    rc = stratus_encap_vxlan(ctx, cfg, pkt, rt->vtep[0], rt->vni,
                             rt->has_nexthop ? &rt->nexthop : 0);
  else
    rc = stratus_transmit(ctx, pkt->in_port, rt->port);
  if (rc != XDP_DROP)
    stratus_count_vrf(pkt->vrf, len, 1);
  return rc;
}

#endif /* STRATUS_XDP_BPF_ROUTE_H */
