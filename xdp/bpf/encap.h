/* Leaving the node: transmit on a port (XDP_TX on the ingress port,
 * bpf_redirect_map to another), and the encapsulations that precede it,
 * VXLAN (RFC 7348, SPEC.md §3) and IPIP, toward an underlay next hop that
 * the loader resolved into the route or backend, with the MTU check. Also
 * the packet summary (struct stratus_pkt) that the steps pass along, since
 * packet pointers do not survive a head adjust.
 */
#ifndef STRATUS_XDP_BPF_ENCAP_H
#define STRATUS_XDP_BPF_ENCAP_H

#include "xdp/bpf/csum.h"
#include "lb/flow_hash.h"
#include "xdp/bpf/parse.h"
#include "xdp/bpf/verdict.h"

#define STRATUS_VXLAN_OVERHEAD                                            \
  (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr) + \
   sizeof(struct vxlanhdr_stratus))
#define STRATUS_OUTER_TTL 64

/* What the steps know about the IPv4 packet being processed. */
struct stratus_pkt {
  /* The packet's 5-tuple with vrf 0, unreduced; ports 0 for fragments and
   * for protocols without ports: the VXLAN source-port key. */
  struct stratus_flow_key tuple;
  __u32 in_port; /* ingress port index */
  __u32 vrf;
  __u32 ip_len; /* IPv4 total length: the IP packet ends there */
  __u8 tos;
  __u8 fragment;
  __u8 options;
  __u8 pad;
  /* The VXLAN source port of `tuple` when already known (the load
   * balancer's hash of an unreduced key, or its connection entry); 0: the
   * encapsulation computes it. */
  __u16 vxlan_sport;
  __u16 pad2;
};

/* A forwarded frame ends where its IP packet ends: Ethernet padding (or
 * anything else) after it is cut (docs/packet-behaviour.md §1). Invalidates
 * packet pointers. Returns nonzero on failure. */
static __always_inline int stratus_trim(struct xdp_md *ctx, __u32 keep) {
  __u32 len = stratus_frame_len(ctx);
  if (len <= keep)
    return 0;
  return bpf_xdp_adjust_tail(ctx, -(int)(len - keep));
}

static __always_inline int stratus_transmit(struct xdp_md *ctx, __u32 in_port, __u32 out_port) {
  __u64 len = stratus_frame_len(ctx);
  if (out_port == in_port) {
    stratus_count_port_tx(out_port, len);
    return XDP_TX;
  }
  /* flags 0: XDP_ABORTED when the devmap slot is empty. */
  long rc = bpf_redirect_map(&tx_ports, out_port, 0);
  if (rc != XDP_REDIRECT)
    return stratus_drop(STRATUS_DROP_PORT_DOWN);
  stratus_count_port_tx(out_port, len);
  return XDP_REDIRECT;
}

/* An option-less outer IPv4 header, its checksum summed from the values
 * (the same one's complement sum of the same 16-bit words as summing the
 * written header; the constant words fold at compile time) rather than
 * read back from the packet. The words are composed as a little-endian
 * host loads them, as lb/flow_hash.h already assumes. (Writing the headers
 * in 8-byte words instead of fields measured no faster: not done.) */
static __always_inline void stratus_outer_ipv4(struct iphdr *ip, const struct stratus_node_cfg *cfg,
                                               __be32 dst, __u8 proto, __u8 tos, __u16 tot_len) {
  __be32 src = cfg->vteps[0][0];
  __u16 ver_tos = 0x45 | (__u16)tos << 8; /* version 4, IHL 5, then TOS */
  __u16 len = bpf_htons(tot_len);
  __u16 frag = bpf_htons(STRATUS_IP_DF); /* id 0 */
  __u16 ttl_proto = STRATUS_OUTER_TTL | (__u16)proto << 8;
  __u32 sum = ver_tos + len + frag + ttl_proto + (src & 0xffff) + (src >> 16) + (dst & 0xffff) +
              (dst >> 16);
  __u16 check = stratus_csum_fold(sum);
  ip->version = 4;
  ip->ihl = 5;
  ip->tos = tos;
  ip->tot_len = len;
  ip->id = 0;
  ip->frag_off = frag;
  ip->ttl = STRATUS_OUTER_TTL;
  ip->protocol = proto;
  ip->check = check;
  ip->saddr = src;
  ip->daddr = dst;
}

/* Wraps the whole frame (inner Ethernet first) in VXLAN toward `dst`
 * through `nh` (0: no next hop reaches `dst`). */
static __always_inline int stratus_encap_vxlan(struct xdp_md *ctx,
                                               const struct stratus_node_cfg *cfg,
                                               const struct stratus_pkt *pkt, __be32 dst, __u32 vni,
                                               const struct stratus_nexthop *nh) {
  if (!nh)
    return stratus_drop(STRATUS_DROP_NO_NEXTHOP);

  __u32 inner_len = stratus_frame_len(ctx);
  __u32 ip_len =
      inner_len + sizeof(struct iphdr) + sizeof(struct udphdr) + sizeof(struct vxlanhdr_stratus);
  if (ip_len > cfg->mtu)
    return stratus_drop(STRATUS_DROP_MTU_EXCEEDED);
  __u16 sport =
      pkt->vxlan_sport ? pkt->vxlan_sport : stratus_vxlan_sport(&pkt->tuple, cfg->hash_seed);

  if (bpf_xdp_adjust_head(ctx, -(int)STRATUS_VXLAN_OVERHEAD))
    return stratus_drop(STRATUS_DROP_TX_FAILED);

  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = (void *)(eth + 1);
  struct udphdr *udp = (void *)(ip + 1);
  struct vxlanhdr_stratus *vx = (void *)(udp + 1);
  if ((void *)(vx + 1) > data_end)
    return stratus_drop(STRATUS_DROP_TX_FAILED);

  __builtin_memcpy(eth->h_dest, nh->dst_mac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, nh->src_mac, ETH_ALEN);
  eth->h_proto = bpf_htons(ETH_P_IP);
  stratus_outer_ipv4(ip, cfg, dst, IPPROTO_UDP, pkt->tos, ip_len);
  udp->source = bpf_htons(sport);
  udp->dest = cfg->vxlan_port;
  udp->len = bpf_htons(ip_len - sizeof(struct iphdr));
  udp->check = 0;
  vx->flags = bpf_htonl(STRATUS_VXLAN_I_FLAG);
  vx->vni = bpf_htonl(vni << 8);
  return stratus_transmit(ctx, pkt->in_port, nh->port);
}

/* Replaces the frame's Ethernet header by outer Ethernet + IPv4 (protocol
 * IPIP) toward `dst` through `nh` (0: no next hop reaches `dst`): the inner
 * IPv4 packet is carried unchanged. */
static __always_inline int stratus_encap_ipip(struct xdp_md *ctx,
                                              const struct stratus_node_cfg *cfg,
                                              const struct stratus_pkt *pkt, __be32 dst,
                                              const struct stratus_nexthop *nh) {
  if (!nh)
    return stratus_drop(STRATUS_DROP_NO_NEXTHOP);

  __u32 inner_len = stratus_frame_len(ctx) - sizeof(struct ethhdr);
  __u32 ip_len = inner_len + sizeof(struct iphdr);
  if (ip_len > cfg->mtu)
    return stratus_drop(STRATUS_DROP_MTU_EXCEEDED);

  if (bpf_xdp_adjust_head(ctx, -(int)sizeof(struct iphdr)))
    return stratus_drop(STRATUS_DROP_TX_FAILED);

  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > data_end)
    return stratus_drop(STRATUS_DROP_TX_FAILED);

  __builtin_memcpy(eth->h_dest, nh->dst_mac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, nh->src_mac, ETH_ALEN);
  eth->h_proto = bpf_htons(ETH_P_IP);
  stratus_outer_ipv4(ip, cfg, dst, IPPROTO_IPIP, pkt->tos, ip_len);
  return stratus_transmit(ctx, pkt->in_port, nh->port);
}

#endif /* STRATUS_XDP_BPF_ENCAP_H */
