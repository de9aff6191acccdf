/* ARP on tenant ports (SPEC.md §3.5, docs/packet-behaviour.md §5): the node
 * answers requests for its tenant gateway addresses in the port's VRF, in
 * place, with XDP_TX; every other ARP frame on a tenant port is dropped.
 */
#ifndef STRATUS_XDP_BPF_ARP_H
#define STRATUS_XDP_BPF_ARP_H

#include "xdp/bpf/encap.h"

#define STRATUS_ARP_FRAME_LEN (sizeof(struct ethhdr) + sizeof(struct stratus_arp_eth_ipv4))

static __always_inline int stratus_arp(struct xdp_md *ctx, const struct stratus_node_cfg *cfg,
                                       const struct stratus_port *port, struct stratus_cursor *c) {
  struct stratus_arp_eth_ipv4 *arp;
  if (stratus_parse_arp(c, &arp) != STRATUS_ARPOP_REQUEST)
    return stratus_drop(STRATUS_DROP_ARP_IGNORED);
  struct stratus_gw_key key = {.vrf = port->vrf, .addr = {arp->tpa, 0, 0, 0}};
  if (!bpf_map_lookup_elem(&gateways, &key))
    return stratus_drop(STRATUS_DROP_ARP_IGNORED);

  /* The reply is exactly 42 bytes: cut any padding first. */
  __u32 port_index = port->index;
  if (stratus_trim(ctx, STRATUS_ARP_FRAME_LEN))
    return stratus_drop(STRATUS_DROP_TX_FAILED);
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  arp = (void *)(eth + 1);
  if ((void *)(arp + 1) > data_end)
    return stratus_drop(STRATUS_DROP_TX_FAILED);

  __be32 gw = arp->tpa;
  __builtin_memcpy(eth->h_dest, arp->sha, ETH_ALEN);
  __builtin_memcpy(eth->h_source, cfg->gateway_mac, ETH_ALEN);
  arp->hdr.ar_op = bpf_htons(STRATUS_ARPOP_REPLY);
  __builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
  arp->tpa = arp->spa;
  __builtin_memcpy(arp->sha, cfg->gateway_mac, ETH_ALEN);
  arp->spa = gw;
  stratus_count_misc(STRATUS_MISC_ARP_REPLY);
  stratus_count_port_tx(port_index, STRATUS_ARP_FRAME_LEN);
  return XDP_TX;
}

#endif /* STRATUS_XDP_BPF_ARP_H */
