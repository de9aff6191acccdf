/* The order of the steps of SPEC.md §3 and docs/packet-behaviour.md for a
 * frame, by ingress port role. Underlay: VXLAN to a local VTEP is
 * decapsulated and goes through the VRF pipeline in the VNI's VRF; traffic
 * to a VRF-0 VIP goes through the VRF pipeline in VRF 0 (to the host where
 * it would be routed); everything else goes to the host. Tenant: ARP for a
 * gateway is answered, IPv4 goes through the VRF pipeline in the port's VRF.
 * The VRF pipeline: fragments to a VIP, L4 validation, ICMP errors about
 * VIP flows, load balancing, then (STRATUS_CONTINUE) routing.
 */
#ifndef STRATUS_XDP_BPF_PIPELINE_H
#define STRATUS_XDP_BPF_PIPELINE_H

#include "xdp/bpf/arp.h"
#include "xdp/bpf/lb.h"
#include "xdp/bpf/route.h"

static __always_inline int stratus_is_local_vtep(const struct stratus_node_cfg *cfg, __be32 addr) {
#pragma unroll
  for (__u32 i = 0; i < STRATUS_MAX_VTEPS; i++) {
    if (i < cfg->n_vteps && cfg->vteps[i][0] == addr && cfg->vteps[i][1] == 0 &&
        cfg->vteps[i][2] == 0 && cfg->vteps[i][3] == 0)
      return 1;
  }
  return 0;
}

/* §4.1-§4.5 on the IPv4 frame that starts at ctx->data, in `pkt->vrf`.
 * Returns STRATUS_CONTINUE when the packet is to be routed (§4.6), with
 * `pkt` filled for the route step. `vip`: the `vips` entry of (vrf, dst,
 * proto) when the caller (the underlay) already looked it up, else 0.
 * (Inlined: as a BPF-to-BPF call of its own the verifier rejects the
 * program, "combined stack size of 3 calls is 576. Too large".) */
static __always_inline int stratus_vrf_pipeline(struct xdp_md *ctx,
                                                const struct stratus_node_cfg *cfg,
                                                struct stratus_pkt *pkt,
                                                const struct stratus_vip *vip) {
  struct stratus_cursor c;
  stratus_cursor_init(&c, ctx);
  struct ethhdr *eth;
  if (stratus_parse_eth(&c, &eth) < 0)
    return stratus_drop(STRATUS_DROP_MALFORMED_ETHERNET);
  struct iphdr *ip;
  int proto = stratus_parse_ipv4(&c, &ip);
  if (proto < 0)
    return stratus_drop(STRATUS_DROP_MALFORMED_IPV4);
  pkt->tuple.src[0] = ip->saddr;
  pkt->tuple.dst[0] = ip->daddr;
  pkt->tuple.proto = proto;
  pkt->ip_len = bpf_ntohs(ip->tot_len);
  pkt->tos = ip->tos;
  pkt->fragment = stratus_ipv4_is_fragment(ip);
  pkt->options = ip->ihl > 5;
  stratus_count_vrf(pkt->vrf, sizeof(struct ethhdr) + pkt->ip_len, 0);

  /* §4.1: fragments are never L4-parsed; to a VIP they are dropped. */
  if (pkt->fragment) {
    if (vip || stratus_vip_v4(pkt->vrf, ip->daddr, proto))
      return stratus_drop(STRATUS_DROP_LB_FRAGMENT);
    return STRATUS_CONTINUE;
  }

  /* §4.2: L4 validation. */
  if (proto == IPPROTO_TCP) {
    struct tcphdr *tcp;
    if (stratus_parse_tcp(&c, &tcp) < 0)
      return stratus_drop(STRATUS_DROP_MALFORMED_L4);
    pkt->tuple.sport = tcp->source;
    pkt->tuple.dport = tcp->dest;
  } else if (proto == IPPROTO_UDP) {
    struct udphdr *udp;
    if (stratus_parse_udp(&c, &udp) < 0)
      return stratus_drop(STRATUS_DROP_MALFORMED_L4);
    pkt->tuple.sport = udp->source;
    pkt->tuple.dport = udp->dest;
  } else if (proto == IPPROTO_ICMP) {
    struct stratus_icmphdr *icmp;
    if (stratus_parse_icmp(&c, &icmp) < 0)
      return stratus_drop(STRATUS_DROP_MALFORMED_L4);
    /* §4.3 */
    return stratus_lb_icmp_error(ctx, cfg, pkt, icmp, &c);
  }

  /* §4.4-§4.5 */
  return stratus_lb(ctx, cfg, pkt, vip);
}

/* The VRF pipeline, then routing; in VRF 0 (the underlay, never a
 * tenant's) routing is the host's business: pass. A BPF-to-BPF call rather
 * than inlined: the tenant, VXLAN and underlay paths share one copy (the
 * program is smaller and verifies faster), and the pipeline's stack is not
 * added to the entry's (inlined into the entry, it made the two frames
 * 272 + 272 bytes: "combined stack size of 2 calls is 544. Too large").
 * `vip`: as for stratus_vrf_pipeline. */
static __noinline int stratus_vrf_forward(struct xdp_md *ctx, const struct stratus_node_cfg *cfg,
                                          __u32 in_port, __u32 vrf, const struct stratus_vip *vip) {
  struct stratus_pkt pkt = {.in_port = in_port, .vrf = vrf};
  int rc = stratus_vrf_pipeline(ctx, cfg, &pkt, vip);
  if (rc != STRATUS_CONTINUE)
    return rc;
  if (vrf == 0)
    return stratus_pass();
  return stratus_route(ctx, cfg, &pkt);
}

static __always_inline int stratus_from_tenant(struct xdp_md *ctx,
                                               const struct stratus_node_cfg *cfg,
                                               const struct stratus_port *port) {
  struct stratus_cursor c;
  stratus_cursor_init(&c, ctx);
  struct ethhdr *eth;
  int proto = stratus_parse_eth(&c, &eth);
  if (proto < 0)
    return stratus_drop(STRATUS_DROP_MALFORMED_ETHERNET);
  if (proto == bpf_htons(ETH_P_ARP))
    return stratus_arp(ctx, cfg, port, &c);
  if (proto != bpf_htons(ETH_P_IP))
    return stratus_drop(STRATUS_DROP_UNSUPPORTED_INNER);
  return stratus_vrf_forward(ctx, cfg, port->index, port->vrf, 0);
}

/* §3.2: checks the VXLAN header and the inner Ethernet header, maps the VNI
 * to its VRF, strips everything up to the inner Ethernet header and all
 * after the outer IP packet, and continues in that VRF. `c` is past the
 * outer UDP header and limited to the outer IP packet. */
static __always_inline int stratus_decap(struct xdp_md *ctx, const struct stratus_node_cfg *cfg,
                                         const struct stratus_port *port,
                                         struct stratus_cursor *c) {
  long vni = stratus_parse_vxlan(c);
  if (vni < 0)
    return stratus_drop(STRATUS_DROP_MALFORMED_VXLAN);
  __u32 vni_key = vni;
  __u32 *vrf = bpf_map_lookup_elem(&vnis, &vni_key);
  if (!vrf)
    return stratus_drop(STRATUS_DROP_UNKNOWN_VNI);
  __u32 vrf_id = *vrf;

  void *inner = c->pos;
  struct ethhdr *eth;
  int proto = stratus_parse_eth(c, &eth);
  if (proto < 0)
    return stratus_drop(STRATUS_DROP_MALFORMED_ETHERNET);
  if (proto != bpf_htons(ETH_P_IP))
    return stratus_drop(STRATUS_DROP_UNSUPPORTED_INNER);

  void *data = (void *)(long)ctx->data;
  int outer_len = inner - data;
  __u32 keep = c->limit - data;
  if (stratus_trim(ctx, keep))
    return stratus_drop(STRATUS_DROP_MALFORMED_VXLAN);
  if (bpf_xdp_adjust_head(ctx, outer_len))
    return stratus_drop(STRATUS_DROP_MALFORMED_VXLAN);
  return stratus_vrf_forward(ctx, cfg, port->index, vrf_id, 0);
}

static __always_inline int stratus_from_underlay(struct xdp_md *ctx,
                                                 const struct stratus_node_cfg *cfg,
                                                 const struct stratus_port *port) {
  struct stratus_cursor c;
  stratus_cursor_init(&c, ctx);
  struct ethhdr *eth;
  int proto = stratus_parse_eth(&c, &eth);
  if (proto < 0)
    return stratus_drop(STRATUS_DROP_MALFORMED_ETHERNET);
  if (proto != bpf_htons(ETH_P_IP))
    return stratus_pass();

  struct iphdr *ip;
  int l4 = stratus_parse_ipv4(&c, &ip);
  if (l4 < 0)
    return stratus_drop(STRATUS_DROP_MALFORMED_IPV4);
  __be32 dst = ip->daddr;

  /* §3.1: to a local VTEP. */
  if (stratus_is_local_vtep(cfg, dst)) {
    if (l4 != IPPROTO_UDP || stratus_ipv4_is_fragment(ip))
      return stratus_pass();
    struct udphdr *udp;
    if (stratus_parse_udp(&c, &udp) < 0)
      return stratus_drop(STRATUS_DROP_MALFORMED_L4);
    if (udp->dest != cfg->vxlan_port)
      return stratus_pass();
    return stratus_decap(ctx, cfg, port, &c);
  }

  /* §3.3: to a VIP of VRF 0 (TCP or UDP, whatever the packet's protocol);
   * routing is the host's business. A hit for the packet's own protocol
   * spares the load balancer its `vips` lookup. (TCP first whatever the
   * packet's protocol: choosing the order by protocol made the pass path
   * measurably slower.) */
  const struct stratus_vip *tcp_vip = stratus_vip_v4(0, dst, IPPROTO_TCP);
  const struct stratus_vip *udp_vip = tcp_vip ? 0 : stratus_vip_v4(0, dst, IPPROTO_UDP);
  if (!tcp_vip && !udp_vip)
    return stratus_pass();
  return stratus_vrf_forward(ctx, cfg, port->index, 0,
                             l4 == IPPROTO_TCP   ? tcp_vip
                             : l4 == IPPROTO_UDP ? udp_vip
                                                 : 0);
}

#endif /* STRATUS_XDP_BPF_PIPELINE_H */
