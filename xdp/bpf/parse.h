/* The parse cursor: a position in the packet and its end. Each parser checks
 * that its whole header lies before the end before reading it, advances the
 * cursor past it, and returns the next protocol (or a negative value when
 * the header is truncated or invalid).
 */
#ifndef STRATUS_XDP_BPF_PARSE_H
#define STRATUS_XDP_BPF_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define STRATUS_PARSE_TRUNCATED (-1)
#define STRATUS_PARSE_INVALID (-2)

#define STRATUS_IP_MF 0x2000
#define STRATUS_IP_DF 0x4000
#define STRATUS_IP_OFFSET 0x1fff

/* `end` is the end of the frame, which the verifier needs for every bounds
 * check; `limit` is where the current protocol's data ends (the end of the
 * IP packet once an IPv4 header has been parsed: Ethernet padding after it
 * is not payload). Every parser checks against both. */
struct stratus_cursor {
  void *pos;
  void *end;
  void *limit;
};

static __always_inline void stratus_cursor_init(struct stratus_cursor *c, struct xdp_md *ctx) {
  c->pos = (void *)(long)ctx->data;
  c->end = (void *)(long)ctx->data_end;
  c->limit = c->end;
}

#define STRATUS_FITS(c, ptr) ((void *)(ptr) <= (c)->end && (void *)(ptr) <= (c)->limit)

struct vxlanhdr_stratus {
  __be32 flags; /* 0x08000000: I flag; the rest reserved */
  __be32 vni;   /* VNI << 8 */
};

#define STRATUS_VXLAN_I_FLAG 0x08000000

/* ICMPv4 (<linux/icmp.h> drags in libc headers that do not build for the
 * BPF target). */
struct stratus_icmphdr {
  __u8 type;
  __u8 code;
  __sum16 checksum;
  __be32 rest;
};

#define STRATUS_ICMP_DEST_UNREACH 3
#define STRATUS_ICMP_TIME_EXCEEDED 11
#define STRATUS_ICMP_PARAMETERPROB 12

/* ARP for IPv4 over Ethernet. (<linux/if_arp.h> drags in libc headers that
 * do not build for the BPF target.) */
#define STRATUS_ARPHRD_ETHER 1
#define STRATUS_ARPOP_REQUEST 1
#define STRATUS_ARPOP_REPLY 2

struct stratus_arphdr {
  __be16 ar_hrd;
  __be16 ar_pro;
  __u8 ar_hln;
  __u8 ar_pln;
  __be16 ar_op;
};

struct stratus_arp_eth_ipv4 {
  struct stratus_arphdr hdr;
  __u8 sha[ETH_ALEN];
  __be32 spa;
  __u8 tha[ETH_ALEN];
  __be32 tpa;
} __attribute__((packed));

/* Returns the EtherType (network order). VLAN tags are not parsed: a tagged
 * frame reports ETH_P_8021Q and goes to the host. */
static __always_inline int stratus_parse_eth(struct stratus_cursor *c, struct ethhdr **eth) {
  struct ethhdr *h = c->pos;
  if (!STRATUS_FITS(c, h + 1))
    return STRATUS_PARSE_TRUNCATED;
  c->pos = h + 1;
  *eth = h;
  return h->h_proto;
}

/* Checks version, IHL and total length in the order of
 * docs/packet-behaviour.md §2.3 (the frame may carry padding after the IP
 * packet, not less); returns the IP protocol, leaves the cursor at the L4
 * header (after any options) and limits it to the IP packet. */
static __always_inline int stratus_parse_ipv4(struct stratus_cursor *c, struct iphdr **ip) {
  struct iphdr *h = c->pos;
  if (!STRATUS_FITS(c, h + 1))
    return STRATUS_PARSE_TRUNCATED;
  if (h->version != 4 || h->ihl < 5)
    return STRATUS_PARSE_INVALID;
  __u32 hlen = h->ihl * 4;
  if (!STRATUS_FITS(c, (void *)h + hlen))
    return STRATUS_PARSE_TRUNCATED;
  __u32 tot = bpf_ntohs(h->tot_len);
  if (tot < hlen || !STRATUS_FITS(c, (void *)h + tot))
    return STRATUS_PARSE_INVALID;
  c->pos = (void *)h + hlen;
  c->limit = (void *)h + tot;
  *ip = h;
  return h->protocol;
}

static __always_inline int stratus_ipv4_is_fragment(const struct iphdr *ip) {
  return (ip->frag_off & bpf_htons(STRATUS_IP_MF | STRATUS_IP_OFFSET)) != 0;
}

static __always_inline int stratus_parse_udp(struct stratus_cursor *c, struct udphdr **udp) {
  struct udphdr *h = c->pos;
  if (!STRATUS_FITS(c, h + 1))
    return STRATUS_PARSE_TRUNCATED;
  c->pos = h + 1;
  *udp = h;
  return 0;
}

static __always_inline int stratus_parse_tcp(struct stratus_cursor *c, struct tcphdr **tcp) {
  struct tcphdr *h = c->pos;
  if (!STRATUS_FITS(c, h + 1))
    return STRATUS_PARSE_TRUNCATED;
  c->pos = h + 1;
  *tcp = h;
  return 0;
}

static __always_inline int stratus_parse_icmp(struct stratus_cursor *c,
                                              struct stratus_icmphdr **icmp) {
  struct stratus_icmphdr *h = c->pos;
  if (!STRATUS_FITS(c, h + 1))
    return STRATUS_PARSE_TRUNCATED;
  c->pos = h + 1;
  *icmp = h;
  return h->type;
}

/* Returns the VNI (host order), or a negative value when the header is
 * truncated or the I flag is clear; reserved bits are ignored (RFC 7348). */
static __always_inline long stratus_parse_vxlan(struct stratus_cursor *c) {
  struct vxlanhdr_stratus *h = c->pos;
  if (!STRATUS_FITS(c, h + 1))
    return STRATUS_PARSE_TRUNCATED;
  if (!(h->flags & bpf_htonl(STRATUS_VXLAN_I_FLAG)))
    return STRATUS_PARSE_INVALID;
  c->pos = h + 1;
  return bpf_ntohl(h->vni) >> 8;
}

/* Returns the ARP opcode (host order) of an Ethernet/IPv4 ARP packet, or a
 * negative value for anything else. */
static __always_inline int stratus_parse_arp(struct stratus_cursor *c,
                                             struct stratus_arp_eth_ipv4 **arp) {
  struct stratus_arp_eth_ipv4 *h = c->pos;
  if (!STRATUS_FITS(c, h + 1))
    return STRATUS_PARSE_TRUNCATED;
  if (h->hdr.ar_hrd != bpf_htons(STRATUS_ARPHRD_ETHER) || h->hdr.ar_pro != bpf_htons(ETH_P_IP) ||
      h->hdr.ar_hln != ETH_ALEN || h->hdr.ar_pln != 4)
    return STRATUS_PARSE_INVALID;
  c->pos = h + 1;
  *arp = h;
  return bpf_ntohs(h->hdr.ar_op);
}

#endif /* STRATUS_XDP_BPF_PARSE_H */
