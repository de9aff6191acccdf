#include "dataplane/pipeline.h"

#include <cstring>

#include "dataplane/dpdk.h"

namespace stratus::dpdk {

namespace {

constexpr std::uint32_t kEthLen = 14;
constexpr std::uint16_t kEtherIpv4 = 0x0800;
constexpr std::uint16_t kEtherArp = 0x0806;

inline std::uint16_t rd16(const std::uint8_t *p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
inline void wr16(std::uint8_t *p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline std::uint32_t rd32_raw(const std::uint8_t *p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint16_t rd16_raw(const std::uint8_t *p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Full IPv4 header checksum (options included).
inline void ipv4_checksum(std::uint8_t *ip, std::uint32_t hlen) {
  wr16(ip + 10, 0);
  std::uint32_t s = 0;
  for (std::uint32_t i = 0; i < hlen; i += 2)
    s += rd16(ip + i);
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  wr16(ip + 10, static_cast<std::uint16_t>(~s));
}

inline bool contains(const std::vector<std::uint32_t> &v, std::uint32_t x) {
  for (std::uint32_t y : v) {
    if (y == x)
      return true;
  }
  return false;
}

}  // namespace

// A parsed IPv4 header. Addresses and ports stay in network byte order.
struct Pipeline::Ip4 {
  std::uint8_t *hdr = nullptr;
  std::uint32_t hlen = 0;
  std::uint32_t total = 0;
  std::uint8_t proto = 0;
  bool fragment = false;  // MF set or offset non-zero: no transport ports
  std::uint32_t src = 0;
  std::uint32_t dst = 0;
  std::uint16_t sport = 0;
  std::uint16_t dport = 0;
};

// An Ethernet frame carrying IPv4 inside the mbuf's data: at `off` (past
// the outer headers of a VXLAN packet) and `len` bytes long.
struct Pipeline::Frame {
  std::uint32_t off = 0;
  std::uint32_t len = 0;
  Ip4 ip;
};

namespace {

// Parses the IPv4 header at `p` with `avail` bytes behind it.
inline std::uint8_t parse_ipv4(std::uint8_t *p, std::uint32_t avail, auto &ip) {
  if (avail < 20)
    return STRATUS_DROP_MALFORMED_IPV4;
  if ((p[0] >> 4) != 4)
    return STRATUS_DROP_MALFORMED_IPV4;
  std::uint32_t hlen = (p[0] & 0x0fu) * 4;
  std::uint32_t total = rd16(p + 2);
  if (hlen < 20 || hlen > avail || total < hlen || total > avail) {
    return STRATUS_DROP_MALFORMED_IPV4;
  }
  ip.hdr = p;
  ip.hlen = hlen;
  ip.total = total;
  ip.proto = p[9];
  ip.fragment = (rd16(p + 6) & 0x3fff) != 0;
  ip.src = rd32_raw(p + 12);
  ip.dst = rd32_raw(p + 16);
  return kNoDrop;
}

// Checks the transport header of an unfragmented packet and reads its ports.
inline std::uint8_t parse_l4(auto &ip) {
  if (ip.fragment)
    return kNoDrop;
  std::uint32_t avail = ip.total - ip.hlen;
  const std::uint8_t *l4 = ip.hdr + ip.hlen;
  switch (ip.proto) {
    case IPPROTO_TCP:
      if (avail < 20)
        return STRATUS_DROP_MALFORMED_L4;
      break;
    case IPPROTO_UDP:
    case IPPROTO_ICMP:
      if (avail < 8)
        return STRATUS_DROP_MALFORMED_L4;
      break;
    default:
      return kNoDrop;
  }
  if (ip.proto != IPPROTO_ICMP) {
    ip.sport = rd16_raw(l4);
    ip.dport = rd16_raw(l4 + 2);
  }
  return kNoDrop;
}

// Whether (vrf, dst, proto) is the address of a service, on any port.
inline bool is_vip(const FibSnapshot &snap, std::uint32_t vrf, std::uint32_t dst_be,
                   std::uint8_t proto) {
  stratus_flow_key k{};
  k.dst[0] = dst_be;
  k.vrf = vrf;
  k.proto = proto;
  return snap.vip_protos.find(k) != nullptr;
}

// The service of (vrf, dst, proto, dport), else of (vrf, dst, proto, any
// port); addresses that are no VIP at all cost one lookup.
inline const std::uint32_t *find_service(const FibSnapshot &snap, std::uint32_t vrf,
                                         std::uint32_t dst_be, std::uint8_t proto,
                                         std::uint16_t dport_be) {
  stratus_flow_key k{};
  k.dst[0] = dst_be;
  k.vrf = vrf;
  if (snap.vip_addrs.find(k) == nullptr)
    return nullptr;
  k.proto = proto;
  k.dport = dport_be;
  if (const std::uint32_t *svc = snap.services.find(k))
    return svc;
  k.dport = 0;
  return snap.services.find(k);
}

// The inner 5-tuple that picks the VXLAN source port (lb/flow_hash.h).
inline std::uint16_t vxlan_sport(const auto &ip, std::uint32_t seed) {
  stratus_flow_key k{};
  k.src[0] = ip.src;
  k.dst[0] = ip.dst;
  k.sport = ip.sport;
  k.dport = ip.dport;
  k.proto = ip.proto;
  return stratus_vxlan_sport(&k, seed);
}

}  // namespace

void Pipeline::process(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf **pkts,
                       std::uint16_t n, std::uint64_t now, Verdict *out) {
  if (in_port >= snap.ports.size()) {
    for (std::uint16_t i = 0; i < n; ++i)
      out[i] = Verdict{Action::kPass, 0, kNoPort};
    return;
  }
  if (snap.ports[in_port].role == PortRole::kTenant) {
    run<PortRole::kTenant>(snap, in_port, pkts, n, now, out);
  } else {
    run<PortRole::kUnderlay>(snap, in_port, pkts, n, now, out);
  }
}

template <PortRole R>
void Pipeline::run(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf **pkts, std::uint16_t n,
                   std::uint64_t now, Verdict *out) {
  for (std::uint16_t i = 0; i < n && i < kPrefetch; ++i) {
    rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
  }
  std::uint16_t i = 0;
  // Four packets per iteration, headers of the packets kPrefetch ahead
  // already on their way to the cache.
  for (; i + 4 <= n; i += 4) {
    for (std::uint16_t j = i + kPrefetch; j < i + kPrefetch + 4 && j < n; ++j) {
      rte_prefetch0(rte_pktmbuf_mtod(pkts[j], void *));
    }
    out[i] = handle<R>(snap, in_port, pkts[i], now);
    out[i + 1] = handle<R>(snap, in_port, pkts[i + 1], now);
    out[i + 2] = handle<R>(snap, in_port, pkts[i + 2], now);
    out[i + 3] = handle<R>(snap, in_port, pkts[i + 3], now);
  }
  for (; i < n; ++i) {
    if (i + kPrefetch < n)
      rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kPrefetch], void *));
    out[i] = handle<R>(snap, in_port, pkts[i], now);
  }
}

void Pipeline::maintain(const FibSnapshot &snap, std::uint64_t now) {
  if (snap.flow_limit != flows_.limit())
    flows_.set_limit(snap.flow_limit);
  flows_.expire(now, 8);
  counters_.flow_entries.set(flows_.size());
}

template <PortRole R>
Verdict Pipeline::handle(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf *m,
                         std::uint64_t now) {
  if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
    return drop(STRATUS_DROP_MALFORMED_ETHERNET);
  }
  std::uint8_t *p = rte_pktmbuf_mtod(m, std::uint8_t *);
  std::uint32_t len = rte_pktmbuf_data_len(m);
  if (len < kEthLen)
    return drop(STRATUS_DROP_MALFORMED_ETHERNET);
  std::uint16_t ether_type = rd16(p + 12);
  if (ether_type == kEtherArp)
    return arp(snap, in_port, m);
  if (ether_type != kEtherIpv4) {
    if constexpr (R == PortRole::kUnderlay)
      return Verdict{Action::kPass, 0, kNoPort};
    return drop(STRATUS_DROP_UNSUPPORTED_INNER);
  }

  Frame f;
  if (std::uint8_t r = parse_ipv4(p + kEthLen, len - kEthLen, f.ip); r != kNoDrop) {
    return drop(static_cast<stratus_drop_reason>(r));
  }
  // Ethernet padding ends at the IPv4 total length; forwarded frames lose it.
  f.len = kEthLen + f.ip.total;
  if constexpr (R == PortRole::kUnderlay) {
    if (f.ip.proto == IPPROTO_UDP && !f.ip.fragment && contains(snap.vteps_be, f.ip.dst)) {
      if (f.ip.total - f.ip.hlen < 8)
        return drop(STRATUS_DROP_MALFORMED_L4);
      if (rd16_raw(f.ip.hdr + f.ip.hlen + 2) == snap.vxlan_port_be) {
        return decap(snap, m, f.ip, now);
      }
    }
    // Plain underlay traffic: only the addresses of underlay VIPs (any
    // protocol, any port) are ours; the rest belongs to the host.
    stratus_flow_key addr{};
    addr.dst[0] = f.ip.dst;
    if (snap.vip_addrs.find(addr) == nullptr)
      return Verdict{Action::kPass, 0, kNoPort};
    return overlay(snap, m, f, kUnderlayVrf, now);
  } else {
    std::uint32_t vrf = snap.ports[in_port].vrf;
    counters_.vrf_rx[vrf].add(f.len);
    return overlay(snap, m, f, vrf, now);
  }
}

Verdict Pipeline::arp(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf *m) {
  std::uint8_t *p = rte_pktmbuf_mtod(m, std::uint8_t *);
  std::uint32_t len = rte_pktmbuf_data_len(m);
  // ARP we do not answer belongs to the host on the underlay; on a tenant
  // port there is no host to give it to.
  const PortEntry &port = snap.ports[in_port];
  auto ignore = [&] {
    return port.role == PortRole::kUnderlay ? Verdict{Action::kPass, 0, kNoPort}
                                            : drop(STRATUS_DROP_ARP_IGNORED);
  };
  if (len < kEthLen + 28)
    return ignore();
  std::uint8_t *a = p + kEthLen;
  if (rd16(a) != 1 || rd16(a + 2) != kEtherIpv4 || a[4] != 6 || a[5] != 4 || rd16(a + 6) != 1) {
    return ignore();
  }
  std::uint32_t target = rd32_raw(a + 24);
  const std::uint8_t *mac;
  if (port.role == PortRole::kUnderlay) {
    if (!contains(snap.vteps_be, target))
      return ignore();
    mac = port.mac.data();
  } else {
    const VrfEntry *v = snap.vrf(port.vrf);
    if (v == nullptr || !contains(v->gateways_be, target))
      return ignore();
    mac = snap.gateway_mac.data();
  }
  // Reply in place: to the asker, from the answered address.
  std::uint8_t sha[6];
  std::uint8_t spa[4];
  std::memcpy(sha, a + 8, 6);
  std::memcpy(spa, a + 14, 4);
  std::memcpy(p, sha, 6);
  std::memcpy(p + 6, mac, 6);
  wr16(a + 6, 2);
  std::memcpy(a + 8, mac, 6);
  std::memcpy(a + 14, &target, 4);
  std::memcpy(a + 18, sha, 6);
  std::memcpy(a + 24, spa, 4);
  // The reply is exactly an Ethernet header and an ARP packet: no padding.
  std::uint32_t extra = rte_pktmbuf_data_len(m) - (kEthLen + 28);
  if (extra != 0)
    rte_pktmbuf_trim(m, static_cast<std::uint16_t>(extra));
  counters_.arp_replies.inc();
  return Verdict{Action::kForward, 0, in_port};
}

Verdict Pipeline::decap(const FibSnapshot &snap, rte_mbuf *m, const Ip4 &outer, std::uint64_t now) {
  std::uint8_t *udp = outer.hdr + outer.hlen;
  std::uint32_t avail = outer.total - outer.hlen;
  if (avail < 16)
    return drop(STRATUS_DROP_MALFORMED_VXLAN);
  const std::uint8_t *vx = udp + 8;
  if ((vx[0] & 0x08) == 0)
    return drop(STRATUS_DROP_MALFORMED_VXLAN);
  stratus_flow_key k{};
  k.vrf = static_cast<std::uint32_t>(vx[4]) << 16 | static_cast<std::uint32_t>(vx[5]) << 8 | vx[6];
  const std::uint32_t *vrf = snap.vni_to_vrf.find(k);
  if (vrf == nullptr)
    return drop(STRATUS_DROP_UNKNOWN_VNI);

  std::uint8_t *base = rte_pktmbuf_mtod(m, std::uint8_t *);
  std::uint8_t *inner = udp + 16;
  Frame f;
  f.off = static_cast<std::uint32_t>(inner - base);
  std::uint32_t inner_len = avail - 16;
  if (inner_len < kEthLen)
    return drop(STRATUS_DROP_MALFORMED_ETHERNET);
  if (rd16(inner + 12) != kEtherIpv4)
    return drop(STRATUS_DROP_UNSUPPORTED_INNER);
  if (std::uint8_t r = parse_ipv4(inner + kEthLen, inner_len - kEthLen, f.ip); r != kNoDrop) {
    return drop(static_cast<stratus_drop_reason>(r));
  }
  f.len = kEthLen + f.ip.total;
  counters_.vrf_rx[*vrf].add(f.len);
  return overlay(snap, m, f, *vrf, now);
}

Verdict Pipeline::overlay(const FibSnapshot &snap, rte_mbuf *m, Frame &f, std::uint32_t vrf,
                          std::uint64_t now) {
  Ip4 &ip = f.ip;
  if (std::uint8_t r = parse_l4(ip); r != kNoDrop)
    return drop(static_cast<stratus_drop_reason>(r));

  if (ip.proto == IPPROTO_TCP || ip.proto == IPPROTO_UDP) {
    if (ip.fragment) {
      if (is_vip(snap, vrf, ip.dst, ip.proto))
        return drop(STRATUS_DROP_LB_FRAGMENT);
    } else {
      if (const std::uint32_t *svc = find_service(snap, vrf, ip.dst, ip.proto, ip.dport)) {
        if (ip.hlen > 20)
          return drop(STRATUS_DROP_LB_IP_OPTIONS);
        stratus_flow_key flow{};
        flow.src[0] = ip.src;
        flow.dst[0] = ip.dst;
        flow.vrf = vrf;
        flow.sport = ip.sport;
        flow.dport = ip.dport;
        flow.proto = ip.proto;
        return balance(snap, m, f, snap.service_list[*svc], flow, true, now);
      }
    }
  } else if (ip.proto == IPPROTO_ICMP && !ip.fragment) {
    // An ICMP error about a VIP flow (SPEC §4.5): the embedded packet left
    // a backend from the VIP; send the error to the backend of that flow.
    const std::uint8_t *icmp = ip.hdr + ip.hlen;
    std::uint32_t avail = ip.total - ip.hlen;
    std::uint8_t type = icmp[0];
    if ((type == 3 || type == 11) && avail >= 8 + 20 + 4) {
      const std::uint8_t *emb = icmp + 8;
      std::uint32_t ehl = (emb[0] & 0x0fu) * 4;
      std::uint8_t eproto = emb[9];
      if ((emb[0] >> 4) == 4 && ehl >= 20 && avail >= 8 + ehl + 8 &&
          (eproto == IPPROTO_TCP || eproto == IPPROTO_UDP) && rd32_raw(emb + 12) == ip.dst) {
        const std::uint32_t *svc = find_service(snap, vrf, ip.dst, eproto, rd16_raw(emb + ehl));
        if (svc != nullptr) {
          if (ip.hlen > 20)
            return drop(STRATUS_DROP_LB_IP_OPTIONS);
          stratus_flow_key flow{};
          flow.src[0] = rd32_raw(emb + 16);
          flow.dst[0] = ip.dst;
          flow.vrf = vrf;
          flow.sport = rd16_raw(emb + ehl + 2);
          flow.dport = rd16_raw(emb + ehl);
          flow.proto = eproto;
          return balance(snap, m, f, snap.service_list[*svc], flow, false, now);
        }
      }
    }
  }
  // Not a VIP. The underlay has no routes of ours: the host decides.
  if (vrf == kUnderlayVrf)
    return Verdict{Action::kPass, 0, kNoPort};
  return route(snap, m, f, vrf);
}

Verdict Pipeline::balance(const FibSnapshot &snap, rte_mbuf *m, Frame &f, const ServiceEntry &svc,
                          const stratus_flow_key &flow, bool record, std::uint64_t now) {
  stratus_flow_key key = flow;
  stratus_flow_key_reduce(&key, svc.hash_flags);
  std::uint32_t hash = stratus_flow_hash(&key, snap.hash_seed);

  const BackendEntry *be = nullptr;
  std::uint32_t backend_id = 0;
  bool new_flow = false;
  // An ICMP error (record == false) reads the flow's entry but never
  // creates, refreshes or rewrites it.
  FlowEntry *e = record ? flows_.lookup(key, hash, now) : nullptr;
  const FlowEntry *seen = record ? e : flows_.peek(key, hash, now);
  if (seen != nullptr && seen->service_id == svc.id) {
    be = snap.backend(seen->backend_id);
    if (be != nullptr && be->state != BackendState::kDown)
      backend_id = seen->backend_id;
    else
      be = nullptr;
  }
  if (be != nullptr) {
    counters_.flow_hits.inc();
  } else {
    counters_.flow_misses.inc();
    if (svc.maglev_size == 0)
      return drop(STRATUS_DROP_NO_BACKEND);
    backend_id = (*svc.maglev)[hash % svc.maglev_size];
    be = snap.backend(backend_id);
    if (be == nullptr)
      return drop(STRATUS_DROP_NO_BACKEND);
    if (e != nullptr) {
      e->service_id = svc.id;
      e->backend_id = backend_id;
    } else if (record) {
      flows_.insert(key, hash, svc.id, backend_id, now,
                    flow.proto == IPPROTO_TCP ? snap.tcp_timeout : snap.udp_timeout);
    }
    new_flow = record;
  }
  counters_.flow_entries.set(flows_.size());

  if (be->encap.drop != kNoDrop)
    return drop(static_cast<stratus_drop_reason>(be->encap.drop));
  if (be->encap.kind == EncapKind::kVxlan) {
    // Direct server return: the inner packet is untouched, only its MACs
    // now lead to the backend.
    std::uint8_t *eth = rte_pktmbuf_mtod_offset(m, std::uint8_t *, f.off);
    std::memcpy(eth, be->inner_dst_mac.data(), 6);
    std::memcpy(eth + 6, snap.gateway_mac.data(), 6);
  }
  Verdict v = encapsulate(snap, m, f, be->encap);
  if (v.action == Action::kForward) {
    ServiceCounter &sc = counters_.services[svc.id];
    ServiceCounter &bc = counters_.backends[backend_id];
    sc.fwd.add(f.len);
    bc.fwd.add(f.len);
    if (new_flow) {
      sc.new_flows.inc();
      bc.new_flows.inc();
    }
  }
  return v;
}

Verdict Pipeline::route(const FibSnapshot &snap, rte_mbuf *m, Frame &f, std::uint32_t vrf) {
  const VrfEntry *v = snap.vrf(vrf);
  std::uint32_t nh = 0;
  if (v == nullptr || !v->lpm ||
      rte_lpm_lookup(v->lpm->get(), rte_be_to_cpu_32(f.ip.dst), &nh) != 0) {
    return drop(STRATUS_DROP_NO_ROUTE);
  }
  const RouteAction &a = v->actions[nh];
  if (a.kind == RouteKind::kBlackhole)
    return drop(STRATUS_DROP_BLACKHOLE);
  std::uint8_t *ip = f.ip.hdr;
  if (ip[8] <= 1)
    return drop(STRATUS_DROP_TTL_EXCEEDED);

  if (a.kind == RouteKind::kLocal) {
    if (a.drop != kNoDrop)
      return drop(static_cast<stratus_drop_reason>(a.drop));
  } else if (a.encap.drop != kNoDrop) {
    return drop(static_cast<stratus_drop_reason>(a.encap.drop));
  }
  ip[8] = static_cast<std::uint8_t>(ip[8] - 1);
  ipv4_checksum(ip, f.ip.hlen);
  std::uint8_t *eth = rte_pktmbuf_mtod_offset(m, std::uint8_t *, f.off);
  std::memcpy(eth, a.dst_mac.data(), 6);
  std::memcpy(eth + 6, snap.gateway_mac.data(), 6);

  if (a.kind == RouteKind::kLocal) {
    std::uint32_t tail = rte_pktmbuf_data_len(m) - f.off - f.len;
    if (tail != 0)
      rte_pktmbuf_trim(m, static_cast<std::uint16_t>(tail));
    if (f.off != 0)
      rte_pktmbuf_adj(m, static_cast<std::uint16_t>(f.off));
    counters_.vrf_tx[vrf].add(f.len);
    return Verdict{Action::kForward, 0, a.out_port};
  }
  Verdict out = encapsulate(snap, m, f, a.encap);
  if (out.action == Action::kForward)
    counters_.vrf_tx[vrf].add(f.len);
  return out;
}

Verdict Pipeline::encapsulate(const FibSnapshot &snap, rte_mbuf *m, const Frame &f,
                              const EncapTemplate &tpl) {
  // VXLAN carries the whole inner frame, IPIP only its IP packet.
  std::uint32_t inner_off = f.off;
  std::uint32_t inner_len = f.len;
  std::uint32_t hdr_len = kVxlanHeaderLen;
  if (tpl.kind == EncapKind::kIpip) {
    inner_off += kEthLen;
    inner_len = f.ip.total;
    hdr_len = kIpipHeaderLen;
  }
  if (hdr_len - kEthLen + inner_len > snap.underlay_mtu)
    return drop(STRATUS_DROP_MTU_EXCEEDED);
  std::uint16_t sport = tpl.kind == EncapKind::kVxlan ? vxlan_sport(f.ip, snap.hash_seed) : 0;

  std::uint32_t tail = rte_pktmbuf_data_len(m) - inner_off - inner_len;
  if (tail != 0)
    rte_pktmbuf_trim(m, static_cast<std::uint16_t>(tail));
  if (inner_off != 0)
    rte_pktmbuf_adj(m, static_cast<std::uint16_t>(inner_off));
  auto *hdr =
      reinterpret_cast<std::uint8_t *>(rte_pktmbuf_prepend(m, static_cast<std::uint16_t>(hdr_len)));
  if (hdr == nullptr)
    return drop(STRATUS_DROP_TX_FAILED);
  std::memcpy(hdr, tpl.hdr.data(), hdr_len);
  finish_encap(tpl, hdr, inner_len, f.ip.hdr[1], sport);
  return Verdict{Action::kForward, 0, tpl.out_port};
}

}  // namespace stratus::dpdk
