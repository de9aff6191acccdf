/* The load-balancer path (SPEC.md §4, docs/packet-behaviour.md §4.1-§4.5):
 * VIP lookups, the per-CPU connection table with its timeouts, Maglev
 * selection with the shared flow hash, direct-server-return forwarding to
 * the backend, and ICMP errors about a VIP flow sent to the backend that
 * owns the flow.
 */
#ifndef STRATUS_XDP_BPF_LB_H
#define STRATUS_XDP_BPF_LB_H

#include "lb/flow_hash.h"
#include "xdp/bpf/encap.h"

/* The clock of the connection table's last_seen_ns: CLOCK_MONOTONIC as of
 * the last timer tick (bpf_ktime_get_coarse_ns). Timeouts are seconds, so a
 * few milliseconds of resolution do not matter, and reading the tick's
 * time costs no clock-source read: on this project's test host
 * bpf_ktime_get_ns (read_tsc) was about a tenth of an established flow's
 * cost. It may lag CLOCK_MONOTONIC read elsewhere (the agent) by a tick. */
static __always_inline __u64 stratus_now(void) {
  return bpf_ktime_get_coarse_ns();
}

/* The `vips` entry of (vrf, VIP, protocol): present when any service of
 * `vrf` has this VIP and protocol, whatever its port; 0 otherwise. */
static __always_inline const struct stratus_vip *stratus_vip_v4(__u32 vrf, __be32 addr,
                                                                __u8 proto) {
  struct stratus_vip_key key = {.vrf = vrf, .vip = {addr, 0, 0, 0}, .proto = proto};
  return bpf_map_lookup_elem(&vips, &key);
}

/* The service of (vrf, vip, proto, port) on a VIP whose `vips` entry is
 * `v`, copied to `out`: the port's own service, else the VIP's port-0
 * service; 0 when there is none. Only a VIP with several port services
 * costs a `services` lookup. (Copied rather than pointed at: a pointer
 * into either map made the verifier walk the rest of the path once per
 * map and offset.) */
static __always_inline int stratus_service_v4(const struct stratus_vip *v, __u32 vrf, __be32 vip,
                                              __u8 proto, __be16 port,
                                              struct stratus_service *out) {
  if (v->port_services == 1) {
    if (v->port == port) {
      *out = v->port_service;
      return 1;
    }
  } else if (v->port_services > 1 && port != 0) {
    struct stratus_service_key key = {
        .vrf = vrf, .vip = {vip, 0, 0, 0}, .port = port, .proto = proto, .pad = 0};
    const struct stratus_service *svc = bpf_map_lookup_elem(&services, &key);
    if (svc) {
      *out = *svc;
      return 1;
    }
  }
  if (!v->has_any_port)
    return 0;
  *out = v->any_port;
  return 1;
}

static __always_inline int stratus_backend_alive(const struct stratus_backend *be) {
  return be->state == STRATUS_BACKEND_ACTIVE || be->state == STRATUS_BACKEND_DRAINING;
}

/* Maglev: the id of the backend owning the key's slot, or 0 (null) when the
 * service's table is empty. */
static __always_inline __u32 *stratus_maglev_pick(const struct stratus_service *svc, __u32 hash) {
  __u32 size = svc->maglev_size;
  if (size == 0)
    return 0;
  void *table = bpf_map_lookup_elem(&maglev, &svc->id);
  if (!table)
    return 0;
  __u32 slot = hash % size;
  return bpf_map_lookup_elem(table, &slot);
}

/* The connection-table key of a reduced IPv4 flow key. */
static __always_inline void stratus_conn_key4(struct stratus_conn_key4 *ck,
                                              const struct stratus_flow_key *key) {
  ck->vrf_proto = key->vrf << 8 | key->proto;
  ck->src = key->src[0];
  ck->dst = key->dst[0];
  ck->sport = key->sport;
  ck->dport = key->dport;
}

/* This CPU's connection-table set of `key` (xdp/bpf/maps.h conns4), or 0
 * when the CPU has no table (yet). */
static __always_inline struct stratus_conn_set *stratus_conn_set_of(
    const struct stratus_conn_key4 *key) {
  __u32 cpu = bpf_get_smp_processor_id();
  void *ct = bpf_map_lookup_elem(&conns4, &cpu);
  if (!ct)
    return 0;
  __u32 *mask = bpf_map_lookup_elem(&conn_masks, &cpu);
  if (!mask)
    return 0;
  __u32 index = stratus_conn_set_index(key, *mask);
  return bpf_map_lookup_elem(ct, &index);
}

/* The way of `set` holding `key`, live or expired, or 0. */
static __always_inline struct stratus_conn_way *stratus_conn_match(
    struct stratus_conn_set *set, const struct stratus_conn_key4 *key) {
  if (!set)
    return 0;
  const __u64 *k = (const __u64 *)key;
#pragma unroll
  for (int i = 0; i < STRATUS_CONN_WAYS; i++) {
    const __u64 *w = (const __u64 *)&set->ways[i].key;
    if (w[0] == k[0] && w[1] == k[1])
      return &set->ways[i];
  }
  return 0;
}

/* Whether an entry of protocol `proto` last seen at `seen` has expired at
 * `now`. `now` may be a tick behind a last_seen_ns written with a finer
 * clock (by the agent): such an entry is fresh, not 2^64 ns old. */
static __always_inline int stratus_conn_expired(const struct stratus_node_cfg *cfg, __u8 proto,
                                                __u64 seen, __u64 now) {
  __u64 timeout = proto == IPPROTO_UDP ? cfg->udp_timeout_ns : cfg->tcp_timeout_ns;
  return now > seen && now - seen > timeout;
}

/* The entry of way `w` (stratus_conn_match) if it belongs to `svc` and has
 * not expired; 0 otherwise. The caller checks the backend's state. The
 * timeout is the one of `proto`, the packet's protocol (the key's may be
 * reduced away). */
static __always_inline struct stratus_conn *stratus_conn_find(struct stratus_conn_way *w,
                                                              const struct stratus_node_cfg *cfg,
                                                              const struct stratus_service *svc,
                                                              __u8 proto, __u64 now) {
  if (!w || w->conn.service != svc->id)
    return 0;
  if (stratus_conn_expired(cfg, proto, w->conn.last_seen_ns, now)) {
    stratus_count_misc(STRATUS_MISC_CONN_EXPIRED);
    return 0;
  }
  return &w->conn;
}

/* The way of `set` that a new flow takes: the first empty or expired one,
 * else the least recently used (smallest last_seen_ns; the first of
 * equals). An expired way's timeout is the one of its own key's protocol. */
static __always_inline struct stratus_conn_way *stratus_conn_victim(
    struct stratus_conn_set *set, const struct stratus_node_cfg *cfg, __u64 now) {
  struct stratus_conn_way *victim = &set->ways[0];
  __u64 oldest = ~0ULL;
#pragma unroll
  for (int i = 0; i < STRATUS_CONN_WAYS; i++) {
    struct stratus_conn_way *w = &set->ways[i];
    __u32 vp = w->key.vrf_proto;
    __u64 seen = w->conn.last_seen_ns;
    if (vp == 0 || stratus_conn_expired(cfg, (__u8)vp, seen, now))
      return w;
    if (seen < oldest) {
      oldest = seen;
      victim = w;
    }
  }
  return victim;
}

/* The backend of an existing connection entry if it is active or
 * draining, else 0. */
static __always_inline struct stratus_backend *stratus_conn_backend(
    const struct stratus_conn *conn) {
  if (!conn)
    return 0;
  __u32 id = conn->backend;
  struct stratus_backend *be = bpf_map_lookup_elem(&backends, &id);
  if (!be || !stratus_backend_alive(be))
    return 0;
  return be;
}

/* DSR: the IP packet goes to the backend unchanged, VXLAN (inner
 * destination MAC = the backend's) or IPIP. */
static __always_inline int stratus_lb_forward(struct xdp_md *ctx,
                                              const struct stratus_node_cfg *cfg,
                                              const struct stratus_pkt *pkt,
                                              const struct stratus_backend *be) {
  if (stratus_trim(ctx, sizeof(struct ethhdr) + pkt->ip_len))
    return stratus_drop(STRATUS_DROP_TX_FAILED);
  __be32 dst = be->tunnel_dst[0];
  const struct stratus_nexthop *nh = be->has_nexthop ? &be->nexthop : 0;
  if (be->encap == STRATUS_ENCAP_IPIP)
    return stratus_encap_ipip(ctx, cfg, pkt, dst, nh);

  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end)
    return stratus_drop(STRATUS_DROP_MALFORMED_ETHERNET);
  __builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
  __builtin_memcpy(eth->h_source, cfg->gateway_mac, ETH_ALEN);
  eth->h_proto = bpf_htons(ETH_P_IP);
  return stratus_encap_vxlan(ctx, cfg, pkt, dst, be->vni, nh);
}

/* Load balancing for a TCP/UDP non-fragment (§4.4-§4.5);
 * STRATUS_CONTINUE when (vrf, dst, proto, dport) is no service. `vip`:
 * the packet's `vips` entry if the caller already has it, else 0. */
static __always_inline int stratus_lb(struct xdp_md *ctx, const struct stratus_node_cfg *cfg,
                                      struct stratus_pkt *pkt, const struct stratus_vip *vip) {
  const struct stratus_flow_key *t = &pkt->tuple;
  if (t->proto != IPPROTO_TCP && t->proto != IPPROTO_UDP)
    return STRATUS_CONTINUE;
  /* Most traffic in a tenant VRF is routed, not load-balanced: one `vips`
   * lookup rules a service out, and for a VIP it also carries the service
   * (struct stratus_vip). The loader gives every service's (vrf, VIP,
   * protocol) a `vips` entry. */
  if (!vip)
    vip = stratus_vip_v4(pkt->vrf, t->dst[0], t->proto);
  if (!vip)
    return STRATUS_CONTINUE;
  struct stratus_service service;
  if (!stratus_service_v4(vip, pkt->vrf, t->dst[0], t->proto, t->dport, &service))
    return STRATUS_CONTINUE;
  const struct stratus_service *svc = &service;
  if (pkt->options)
    return stratus_drop(STRATUS_DROP_LB_IP_OPTIONS);

  struct stratus_flow_key key = *t;
  key.vrf = pkt->vrf;
  stratus_flow_key_reduce(&key, svc->hash_flags);
  /* With every hash flag the key is the tuple (but for the VRF): one
   * entry per flow, which can keep the flow's VXLAN source port. */
  int whole = svc->hash_flags == STRATUS_HASH_DEFAULT;

  struct stratus_conn_key4 ck;
  stratus_conn_key4(&ck, &key);

  struct stratus_conn_set *set = stratus_conn_set_of(&ck);
  struct stratus_conn_way *way = stratus_conn_match(set, &ck);
  __u64 now = stratus_now();
  __u32 backend_id;
  int new_flow = 0;
  struct stratus_conn *conn = stratus_conn_find(way, cfg, svc, t->proto, now);
  const struct stratus_backend *be = stratus_conn_backend(conn);
  if (be) {
    stratus_count_misc(STRATUS_MISC_CONN_HIT);
    conn->last_seen_ns = now;
    backend_id = conn->backend;
    pkt->vxlan_sport = conn->vxlan_sport;
  } else {
    /* A miss, or a hit on a backend now down: the current Maglev table. */
    stratus_count_misc(STRATUS_MISC_CONN_MISS);
    __u32 hash = stratus_flow_hash(&key, cfg->hash_seed);
    __u32 *picked = stratus_maglev_pick(svc, hash);
    if (!picked)
      return stratus_drop(STRATUS_DROP_NO_BACKEND);
    backend_id = *picked;
    be = bpf_map_lookup_elem(&backends, &backend_id);
    if (!be)
      return stratus_drop(STRATUS_DROP_NO_BACKEND);
    new_flow = 1;
    /* In VRF 0 the whole key is the tuple: its hash is also the VXLAN
     * source-port hash, computed once. */
    if (whole && pkt->vrf == 0)
      pkt->vxlan_sport = stratus_vxlan_sport_from_hash(hash);
    else if (whole && be->encap == STRATUS_ENCAP_VXLAN)
      pkt->vxlan_sport = stratus_vxlan_sport(&pkt->tuple, cfg->hash_seed);
    if (set) {
      /* The key's own way if it has one (expired, another service, a
       * backend down), else the set's victim. */
      if (!way)
        way = stratus_conn_victim(set, cfg, now);
      way->key = ck;
      way->conn.backend = backend_id;
      way->conn.service = (__u16)svc->id;
      way->conn.vxlan_sport = pkt->vxlan_sport;
      way->conn.last_seen_ns = now;
    }
  }

  int rc = stratus_lb_forward(ctx, cfg, pkt, be);
  if (rc != XDP_DROP) {
    /* Forwarded: counted like a routed packet (inner frame bytes), and per
     * service and backend. */
    __u64 len = sizeof(struct ethhdr) + pkt->ip_len;
    stratus_count_lb(&service_stats, svc->id, len, new_flow);
    stratus_count_lb(&backend_stats, backend_id, len, new_flow);
    stratus_count_vrf(pkt->vrf, len, 1);
  }
  return rc;
}

/* §4.3: an ICMP error (destination unreachable, time exceeded) quoting a
 * packet that a backend sent from a VIP goes to the backend that owns the
 * quoted flow; STRATUS_CONTINUE otherwise. `icmp` points into the frame,
 * `c` is the cursor after the ICMP header. */
static __always_inline int stratus_lb_icmp_error(struct xdp_md *ctx,
                                                 const struct stratus_node_cfg *cfg,
                                                 const struct stratus_pkt *pkt,
                                                 const struct stratus_icmphdr *icmp,
                                                 const struct stratus_cursor *c) {
  if (icmp->type != STRATUS_ICMP_DEST_UNREACH && icmp->type != STRATUS_ICMP_TIME_EXCEEDED)
    return STRATUS_CONTINUE;
  struct iphdr *quoted = c->pos;
  if (!STRATUS_FITS(c, quoted + 1))
    return STRATUS_CONTINUE;
  if (quoted->version != 4 || quoted->ihl < 5)
    return STRATUS_CONTINUE;
  __u32 hlen = quoted->ihl * 4;
  __be16 *ports = (void *)quoted + hlen;
  /* 8 bytes after the quoted header; the ports are the first 4. */
  if (!STRATUS_FITS(c, (void *)ports + 8))
    return STRATUS_CONTINUE;
  if (quoted->protocol != IPPROTO_TCP && quoted->protocol != IPPROTO_UDP)
    return STRATUS_CONTINUE;
  if (quoted->saddr != pkt->tuple.dst[0])
    return STRATUS_CONTINUE;
  const struct stratus_vip *vip = stratus_vip_v4(pkt->vrf, pkt->tuple.dst[0], quoted->protocol);
  if (!vip)
    return STRATUS_CONTINUE;
  struct stratus_service service;
  if (!stratus_service_v4(vip, pkt->vrf, pkt->tuple.dst[0], quoted->protocol, ports[0], &service))
    return STRATUS_CONTINUE;
  const struct stratus_service *svc = &service;

  /* The quoted packet went VIP -> client; the flow is client -> VIP. */
  struct stratus_flow_key key = {
      .src = {quoted->daddr, 0, 0, 0},
      .dst = {quoted->saddr, 0, 0, 0},
      .vrf = pkt->vrf,
      .sport = ports[1],
      .dport = ports[0],
      .proto = quoted->protocol,
  };
  if (pkt->options)
    return stratus_drop(STRATUS_DROP_LB_IP_OPTIONS);
  stratus_flow_key_reduce(&key, svc->hash_flags);

  /* Never creates or refreshes an entry. */
  struct stratus_conn_key4 ck;
  stratus_conn_key4(&ck, &key);
  struct stratus_conn_way *way = stratus_conn_match(stratus_conn_set_of(&ck), &ck);
  struct stratus_conn *conn = stratus_conn_find(way, cfg, svc, quoted->protocol, stratus_now());
  const struct stratus_backend *be = stratus_conn_backend(conn);
  if (!be) {
    __u32 *picked = stratus_maglev_pick(svc, stratus_flow_hash(&key, cfg->hash_seed));
    if (!picked)
      return stratus_drop(STRATUS_DROP_NO_BACKEND);
    __u32 backend_id = *picked;
    be = bpf_map_lookup_elem(&backends, &backend_id);
    if (!be)
      return stratus_drop(STRATUS_DROP_NO_BACKEND);
  }
  stratus_count_misc(STRATUS_MISC_ICMP_TO_BACKEND);
  return stratus_lb_forward(ctx, cfg, pkt, be);
}

#endif /* STRATUS_XDP_BPF_LB_H */
