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

// Decrements the TTL (> 1) and recomputes the whole header checksum
// (options included) rather than updating it, so that a packet arriving
// with a wrong checksum leaves with a right one. The header is read once as
// 32-bit words and word 2 (TTL, protocol, checksum) is written back whole:
// byte stores followed by a wider load of the same bytes would stall store
// forwarding. The one's-complement sum does not depend on byte order
// (RFC 1071), so words are summed as read on this little-endian host and
// the folded sum is stored as computed.
[[gnu::always_inline]] inline void ipv4_decrement_ttl(std::uint8_t *ip, std::uint32_t hlen) {
  std::uint32_t w2 = rd32_raw(ip + 8);
  w2 = (w2 & 0x0000ff00u) | ((w2 & 0xffu) - 1);  // TTL - 1, protocol, checksum 0
  std::uint64_t s = w2;
  s += rd32_raw(ip);
  s += rd32_raw(ip + 4);
  s += rd32_raw(ip + 12);
  s += rd32_raw(ip + 16);
  for (std::uint32_t i = 20; i < hlen; i += 4)  // options
    s += rd32_raw(ip + i);
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffffffff) + (s >> 32);
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  w2 |= static_cast<std::uint32_t>(static_cast<std::uint16_t>(~s)) << 16;
  std::memcpy(ip + 8, &w2, 4);
}

[[gnu::always_inline]] inline bool contains(const std::vector<std::uint32_t> &v, std::uint32_t x) {
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
  // Source and destination port as they lie on the wire, read and written
  // as one word (a word load of two 16-bit stores would stall store
  // forwarding).
  std::uint32_t ports = 0;
  std::uint16_t dport() const { return static_cast<std::uint16_t>(ports >> 16); }
};

// An Ethernet frame carrying IPv4 inside the mbuf's data: at `off` (past
// the outer headers of a VXLAN packet) and `len` bytes long.
struct Pipeline::Frame {
  std::uint32_t off = 0;
  std::uint32_t len = 0;
  Ip4 ip;
};

// A packet between the stages of a burst.
struct Pipeline::Pkt {
  enum class Stage : std::uint8_t { kDone, kBalance, kRoute };
  Stage stage = Stage::kDone;
  bool record = false;           // kBalance: false for an ICMP error (reads, never writes)
  bool cache_sport = false;      // kBalance: the key is the whole inner tuple
  bool sport_from_hash = false;  // kBalance: ... in VRF 0, so its hash is the port's
  std::uint16_t sport = 0;       // the VXLAN source port when already known, else 0
  std::uint32_t vrf = 0;
  std::uint32_t hash = 0;  // kBalance: flow hash of key (stage 2)
  const ServiceEntry *svc = nullptr;
  const VrfEntry *vrf_entry = nullptr;  // kRoute: FibSnapshot::vrf(vrf)
  const RouteAction *action = nullptr;  // kRoute, after the LPM stage: null = no route
  FlowKey4 packed;  // kBalance: the flow key, reduced by the service's hash flags, packed
  Frame f;
};

// What the packets of one burst share while it is processed: counters
// gathered for the burst, and the last VNI mapped (the packets of a burst
// mostly come through one tunnel). The snapshot does not change within a
// burst.
struct Pipeline::Burst {
  Burst(WorkerCounters &c, std::uint32_t vrf, const VrfEntry *entry)
      : rx(c.vrf_rx), tx(c.vrf_tx), port_vrf(vrf), port_vrf_entry(entry) {}
  Tally rx;                 // vrf_rx
  Tally tx;                 // vrf_tx
  std::uint32_t vni = ~0u;  // no VNI is wider than 24 bits
  std::uint32_t vni_vrf = 0;
  const VrfEntry *vni_vrf_entry = nullptr;
  std::uint32_t port_vrf;  // the VRF of a tenant port
  const VrfEntry *port_vrf_entry;
};

Pipeline::Pipeline(FlowTable &flows, WorkerCounters &counters)
    : flows_(flows), counters_(counters), scratch_(std::make_unique<Pkt[]>(kBurst)) {}

Pipeline::~Pipeline() = default;

namespace {

// Parses the IPv4 header at `p` with `avail` bytes behind it.
[[gnu::always_inline]] inline std::uint8_t parse_ipv4(std::uint8_t *p, std::uint32_t avail,
                                                      auto &ip) {
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
[[gnu::always_inline]] inline std::uint8_t parse_l4(auto &ip) {
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
    ip.ports = rd32_raw(l4);
  }
  return kNoDrop;
}

// Whether a VIP address has a service for `proto`, on any port.
[[gnu::always_inline]] inline bool vip_has_proto(const FibSnapshot &snap, const VipRef &vip,
                                                 std::uint8_t proto) {
  for (std::uint32_t i = vip.first; i < vip.first + vip.count; ++i) {
    if (snap.vip_services[i].proto == proto)
      return true;
  }
  return false;
}

// The service of (proto, dport) on a VIP address, else of (proto, any port).
[[gnu::always_inline]] inline const ServiceEntry *find_service(const FibSnapshot &snap,
                                                               const VipRef &vip,
                                                               std::uint8_t proto,
                                                               std::uint16_t dport_be) {
  const VipService *any = nullptr;
  for (std::uint32_t i = vip.first; i < vip.first + vip.count; ++i) {
    const VipService &vs = snap.vip_services[i];
    if (vs.proto != proto)
      continue;
    if (vs.port_be == dport_be)
      return &snap.service_list[vs.service];
    if (vs.port_be == 0)
      any = &vs;
  }
  return any != nullptr ? &snap.service_list[any->service] : nullptr;
}

// The inner 5-tuple that picks the VXLAN source port (lb/flow_hash.h).
// Writes an IPv4 flow key in whole 32-bit words: field stores (16-bit
// ports, 8-bit protocol) followed by the hash's word loads, or by a copy of
// the key, would stall store forwarding.
[[gnu::always_inline]] inline void set_flow_key_v4(stratus_flow_key *k, std::uint32_t src,
                                                   std::uint32_t dst, std::uint32_t vrf,
                                                   std::uint32_t ports, std::uint8_t proto) {
  auto *out = reinterpret_cast<std::uint8_t *>(k);
  auto word = [out](std::uint32_t i, std::uint32_t v) { std::memcpy(out + 4 * i, &v, 4); };
  word(0, src);
  word(1, 0);
  word(2, 0);
  word(3, 0);
  word(4, dst);
  word(5, 0);
  word(6, 0);
  word(7, 0);
  word(8, vrf);
  word(9, ports);  // sport, dport
  word(10, proto);
}

inline std::uint16_t vxlan_sport(const auto &ip, std::uint32_t seed) {
  stratus_flow_key k;
  set_flow_key_v4(&k, ip.src, ip.dst, 0, ip.ports, ip.proto);
  return stratus_vxlan_sport(&k, seed);
}

}  // namespace

std::uint64_t Pipeline::process(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf **pkts,
                                std::uint16_t n, std::uint64_t now, Verdict *out) {
  if (in_port >= snap.ports.size()) {
    std::uint64_t bytes = 0;
    for (std::uint16_t i = 0; i < n; ++i) {
      bytes += rte_pktmbuf_pkt_len(pkts[i]);
      out[i] = Verdict{Action::kPass, 0, kNoPort};
    }
    return bytes;
  }
  if (snap.ports[in_port].role == PortRole::kTenant)
    return run<PortRole::kTenant>(snap, in_port, pkts, n, now, out);
  return run<PortRole::kUnderlay>(snap, in_port, pkts, n, now, out);
}

// The burst goes through stages so that the memory each packet needs is on
// its way while the others are worked on: (0) prefetch every mbuf and
// frame; (1) parse and classify each packet and, in the same pass, look a
// routed packet up in the LPM (prefetching the route's action) and queue
// the flow hashes it needs, hashing them kLanes at a time and prefetching
// the connection table's index slot of each load-balanced flow; (2)
// prefetch the entry each index slot names; (3) finish each packet in
// order. Packets only share state (the connection table) in stage 3, which
// keeps the burst's order, so the result is the same as finishing packets
// one by one.
template <PortRole R>
std::uint64_t Pipeline::run(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf **pkts,
                            std::uint16_t n, std::uint64_t now, Verdict *out) {
  Pkt *ps = scratch_.get();
  const std::uint32_t port_vrf = snap.ports[in_port].vrf;
  Burst b(counters_, port_vrf, snap.vrf(port_vrf));
  // The packets come from a NIC's DMA, not from this core's caches: every
  // mbuf's first line (data_off, lengths) on its way, then every frame's
  // headers, so that the whole burst's misses overlap (with a few packets
  // ahead only, a packet from the LLC still waited; worker_bench). A tenant
  // port's frame has its Ethernet and IPv4 headers and its ports in one
  // line; a VXLAN packet's inner IPv4 header is in the second.
  for (std::uint16_t i = 0; i < n; ++i)
    rte_prefetch0(pkts[i]);
  auto prefetch_frame = [](const rte_mbuf *m) {
    const auto *d = rte_pktmbuf_mtod(m, const std::uint8_t *);
    rte_prefetch0(d);
    if constexpr (R == PortRole::kUnderlay)
      rte_prefetch0(d + RTE_CACHE_LINE_SIZE);
  };
  for (std::uint16_t i = 0; i < n; ++i)
    prefetch_frame(pkts[i]);
  // A group of kLanes flows is hashed as soon as it is complete, so the
  // connection table's index lines of the first groups are on their way
  // while the rest of the burst is parsed.
  bool balanced = false;
  std::uint16_t lane_pkt[kLanes];
  unsigned lanes = 0;
  auto hash_lanes = [&] {
    lanes_.compute(snap.hash_seed);
    for (unsigned l = 0; l < lanes; ++l) {
      Pkt &p = ps[lane_pkt[l]];
      if (p.stage == Pkt::Stage::kBalance) {
        p.hash = lanes_.hash[l];
        if (p.sport_from_hash)
          p.sport = stratus_vxlan_sport_from_hash(p.hash);
        flows_.prefetch_index(p.hash);
      } else {
        p.sport = stratus_vxlan_sport_from_hash(lanes_.hash[l]);
      }
    }
    lanes = 0;
  };
  std::uint64_t rx_bytes = 0;
  std::uint16_t i = 0;
  for (; i < n; ++i) {
    rx_bytes += rte_pktmbuf_pkt_len(pkts[i]);
    Pkt &p = ps[i];
    p.stage = Pkt::Stage::kDone;
    out[i] = handle<R>(snap, in_port, pkts[i], p, b);
    if (p.stage == Pkt::Stage::kBalance) {
      const FlowKey4 &k = p.packed;
      lanes_.set(lanes, static_cast<std::uint32_t>(k.addrs),
                 static_cast<std::uint32_t>(k.addrs >> 32),
                 static_cast<std::uint32_t>(k.rest) & 0xffffff,
                 static_cast<std::uint32_t>(k.rest >> 32), static_cast<std::uint8_t>(k.rest >> 24));
      lane_pkt[lanes++] = i;
      balanced = true;
    } else if (p.stage == Pkt::Stage::kRoute) {
      const VrfEntry *v = p.vrf_entry;
      std::uint32_t nh = 0;
      p.action = nullptr;
      p.sport = 0;
      if (v != nullptr && v->lpm != nullptr && v->lpm->lookup(rte_be_to_cpu_32(p.f.ip.dst), &nh)) {
        p.action = &v->actions[nh];
        rte_prefetch0(p.action);
        // The VXLAN source port of a remote route: the inner tuple with
        // VRF 0 (stratus_vxlan_sport). Hashed for every route, as reading
        // the action's kind now would wait for the line just prefetched.
        lanes_.set(lanes, p.f.ip.src, p.f.ip.dst, 0, p.f.ip.ports, p.f.ip.proto);
        lane_pkt[lanes++] = i;
      }
    }
    if (lanes == kLanes)
      hash_lanes();
  }
  if (lanes != 0)
    hash_lanes();
  if (balanced) {
    for (i = 0; i < n; ++i) {
      if (ps[i].stage == Pkt::Stage::kBalance)
        flows_.prefetch_entry(ps[i].hash);
    }
  }

  for (i = 0; i < n; ++i) {
    Pkt &p = ps[i];
    if (p.stage == Pkt::Stage::kBalance)
      out[i] = balance(snap, pkts[i], p, now, b);
    else if (p.stage == Pkt::Stage::kRoute)
      out[i] = route(snap, pkts[i], p, b);
  }
  b.rx.flush();
  b.tx.flush();
  if (balanced)
    counters_.flow_entries.set(flows_.size());
  return rx_bytes;
}

void Pipeline::maintain(const FibSnapshot &snap, std::uint64_t now) {
  if (snap.flow_limit != flows_.limit())
    flows_.set_limit(snap.flow_limit);
  flows_.expire(now, 8);
  counters_.flow_entries.set(flows_.size());
}

template <PortRole R>
[[gnu::always_inline]] inline Verdict Pipeline::handle(const FibSnapshot &snap,
                                                       std::uint16_t in_port, rte_mbuf *m, Pkt &p,
                                                       Burst &b) {
  if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
    return drop(STRATUS_DROP_MALFORMED_ETHERNET);
  }
  std::uint8_t *d = rte_pktmbuf_mtod(m, std::uint8_t *);
  std::uint32_t len = rte_pktmbuf_data_len(m);
  if (len < kEthLen)
    return drop(STRATUS_DROP_MALFORMED_ETHERNET);
  std::uint16_t ether_type = rd16(d + 12);
  if (ether_type == kEtherArp)
    return arp(snap, in_port, m);
  if (ether_type != kEtherIpv4) {
    if constexpr (R == PortRole::kUnderlay)
      return Verdict{Action::kPass, 0, kNoPort};
    return drop(STRATUS_DROP_UNSUPPORTED_INNER);
  }

  Frame &f = p.f;
  f.off = 0;
  f.ip.ports = 0;  // parse_ipv4 sets the other fields
  if (std::uint8_t r = parse_ipv4(d + kEthLen, len - kEthLen, f.ip); r != kNoDrop) {
    return drop(static_cast<stratus_drop_reason>(r));
  }
  // Ethernet padding ends at the IPv4 total length; forwarded frames lose it.
  f.len = kEthLen + f.ip.total;
  if constexpr (R == PortRole::kUnderlay) {
    if (f.ip.proto == IPPROTO_UDP && !f.ip.fragment && contains(snap.vteps_be, f.ip.dst)) {
      if (f.ip.total - f.ip.hlen < 8)
        return drop(STRATUS_DROP_MALFORMED_L4);
      if (rd16_raw(f.ip.hdr + f.ip.hlen + 2) == snap.vxlan_port_be) {
        return decap(snap, m, p, b);
      }
    }
    // Plain underlay traffic: only the addresses of underlay VIPs (any
    // protocol, any port) are ours; the rest belongs to the host.
    const VipRef *vip = snap.find_vip(kUnderlayVrf, f.ip.dst);
    if (vip == nullptr)
      return Verdict{Action::kPass, 0, kNoPort};
    return overlay(snap, p, kUnderlayVrf, nullptr, vip);
  } else {
    b.rx.add(b.port_vrf, f.len);
    return overlay(snap, p, b.port_vrf, b.port_vrf_entry, snap.find_vip(b.port_vrf, f.ip.dst));
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

// p.f holds the outer packet; it becomes the inner one.
[[gnu::always_inline]] inline Verdict Pipeline::decap(const FibSnapshot &snap, rte_mbuf *m, Pkt &p,
                                                      Burst &b) {
  std::uint8_t *udp = p.f.ip.hdr + p.f.ip.hlen;
  std::uint32_t avail = p.f.ip.total - p.f.ip.hlen;
  if (avail < 16)
    return drop(STRATUS_DROP_MALFORMED_VXLAN);
  const std::uint8_t *vx = udp + 8;
  if ((vx[0] & 0x08) == 0)
    return drop(STRATUS_DROP_MALFORMED_VXLAN);
  // Bytes 4..6 of the header, read as one word with the reserved byte 7.
  std::uint32_t vni = rte_be_to_cpu_32(rd32_raw(vx + 4)) >> 8;
  if (vni != b.vni) {
    const std::uint32_t *vrf = snap.vni_to_vrf.find(vni);
    if (vrf == nullptr)
      return drop(STRATUS_DROP_UNKNOWN_VNI);
    b.vni = vni;
    b.vni_vrf = *vrf;
    b.vni_vrf_entry = snap.vrf(*vrf);
  }
  const std::uint32_t vrf = b.vni_vrf;

  std::uint8_t *base = rte_pktmbuf_mtod(m, std::uint8_t *);
  std::uint8_t *inner = udp + 16;
  Frame &f = p.f;
  f.off = static_cast<std::uint32_t>(inner - base);
  f.ip.ports = 0;  // parse_ipv4 sets the other fields
  std::uint32_t inner_len = avail - 16;
  if (inner_len < kEthLen)
    return drop(STRATUS_DROP_MALFORMED_ETHERNET);
  if (rd16(inner + 12) != kEtherIpv4)
    return drop(STRATUS_DROP_UNSUPPORTED_INNER);
  if (std::uint8_t r = parse_ipv4(inner + kEthLen, inner_len - kEthLen, f.ip); r != kNoDrop) {
    return drop(static_cast<stratus_drop_reason>(r));
  }
  f.len = kEthLen + f.ip.total;
  b.rx.add(vrf, f.len);
  return overlay(snap, p, vrf, b.vni_vrf_entry, snap.find_vip(vrf, f.ip.dst));
}

[[gnu::always_inline]] inline Verdict Pipeline::overlay(const FibSnapshot &snap, Pkt &p,
                                                        std::uint32_t vrf, const VrfEntry *entry,
                                                        const VipRef *vip) {
  Ip4 &ip = p.f.ip;
  if (std::uint8_t r = parse_l4(ip); r != kNoDrop)
    return drop(static_cast<stratus_drop_reason>(r));

  if (vip != nullptr) {
    if (ip.proto == IPPROTO_TCP || ip.proto == IPPROTO_UDP) {
      if (ip.fragment) {
        if (vip_has_proto(snap, *vip, ip.proto))
          return drop(STRATUS_DROP_LB_FRAGMENT);
      } else if (const ServiceEntry *svc = find_service(snap, *vip, ip.proto, ip.dport())) {
        if (ip.hlen > 20)
          return drop(STRATUS_DROP_LB_IP_OPTIONS);
        return defer_balance(p, *svc, ip.src, ip.dst, vrf, ip.ports, ip.proto, true);
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
          const ServiceEntry *svc = find_service(snap, *vip, eproto, rd16_raw(emb + ehl));
          if (svc != nullptr) {
            if (ip.hlen > 20)
              return drop(STRATUS_DROP_LB_IP_OPTIONS);
            // The flow is the embedded packet's, seen from the client.
            // Client-side ports: the embedded packet's destination and source.
            const std::uint32_t ports = static_cast<std::uint32_t>(rd16_raw(emb + ehl + 2)) |
                                        static_cast<std::uint32_t>(rd16_raw(emb + ehl)) << 16;
            return defer_balance(p, *svc, rd32_raw(emb + 16), ip.dst, vrf, ports, eproto, false);
          }
        }
      }
    }
  }
  // Not a VIP. The underlay has no routes of ours: the host decides.
  if (vrf == kUnderlayVrf)
    return Verdict{Action::kPass, 0, kNoPort};
  p.stage = Pkt::Stage::kRoute;
  p.vrf = vrf;
  p.vrf_entry = entry;
  return Verdict{};
}

[[gnu::always_inline]] inline Verdict Pipeline::defer_balance(Pkt &p, const ServiceEntry &svc,
                                                              std::uint32_t src, std::uint32_t dst,
                                                              std::uint32_t vrf,
                                                              std::uint32_t ports,
                                                              std::uint8_t proto, bool record) {
  p.stage = Pkt::Stage::kBalance;
  p.svc = &svc;
  p.record = record;
  p.vrf = vrf;
  if ((svc.hash_flags & STRATUS_HASH_DEFAULT) != STRATUS_HASH_DEFAULT) {
    stratus_flow_key key;
    set_flow_key_v4(&key, src, dst, vrf, ports, proto);
    stratus_flow_key_reduce(&key, svc.hash_flags);
    pack_flow_key(key, &p.packed);  // IPv4 and VRF ids < kMaxVrfs: always fits
  } else {
    p.packed = FlowKey4{src | std::uint64_t{dst} << 32,
                        (vrf | std::uint32_t{proto} << 24) | std::uint64_t{ports} << 32};
  }
  // The VXLAN source port hashes the packet's whole tuple with VRF 0. A
  // packet's own, unreduced key is that tuple: in VRF 0 its flow hash is
  // the port's hash; in a tenant VRF the entry keeps the port once known.
  p.sport = 0;
  const bool whole = record && (svc.hash_flags & STRATUS_HASH_DEFAULT) == STRATUS_HASH_DEFAULT;
  p.cache_sport = whole && vrf != 0;
  p.sport_from_hash = whole && vrf == 0;
  return Verdict{};
}

[[gnu::always_inline]] inline Verdict Pipeline::balance(const FibSnapshot &snap, rte_mbuf *m,
                                                        Pkt &p, std::uint64_t now, Burst &b) {
  const ServiceEntry &svc = *p.svc;
  Frame &f = p.f;
  const bool record = p.record;
  const BackendEntry *be = nullptr;
  std::uint32_t backend_id = 0;
  bool new_flow = false;
  // An ICMP error (record == false) reads the flow's entry but never
  // creates, refreshes or rewrites it.
  FlowEntry *e = record ? flows_.lookup(p.packed, p.hash, now) : nullptr;
  const FlowEntry *seen = record ? e : flows_.peek(p.packed, p.hash, now);
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
    backend_id = (*svc.maglev)[p.hash % svc.maglev_size];
    be = snap.backend(backend_id);
    if (be == nullptr)
      return drop(STRATUS_DROP_NO_BACKEND);
    if (e != nullptr) {
      e->service_id = svc.id;
      e->backend_id = backend_id;
      e->vxlan_sport = 0;
    } else if (record) {
      e = &flows_.insert(p.packed, p.hash, svc.id, backend_id, now,
                         f.ip.proto == IPPROTO_TCP ? snap.tcp_timeout : snap.udp_timeout);
    }
    new_flow = record;
  }

  if (be->encap.drop != kNoDrop)
    return drop(static_cast<stratus_drop_reason>(be->encap.drop));
  std::uint16_t sport = p.sport;
  if (be->encap.kind == EncapKind::kVxlan) {
    // Direct server return: the inner packet is untouched, only its MACs
    // now lead to the backend.
    std::uint8_t *eth = rte_pktmbuf_mtod_offset(m, std::uint8_t *, f.off);
    std::memcpy(eth, be->inner_dst_mac.data(), 6);
    std::memcpy(eth + 6, snap.gateway_mac.data(), 6);
    if (p.cache_sport && e != nullptr) {
      if (e->vxlan_sport == 0)
        e->vxlan_sport = vxlan_sport(f.ip, snap.hash_seed);
      sport = e->vxlan_sport;
    }
  }
  Verdict v = encapsulate(snap, m, f, be->encap, sport);
  // A forwarded packet of the flow (not an ICMP error about it, as on XDP)
  // counts like a routed one in its VRF, and per service and backend.
  if (v.action == Action::kForward && p.record) {
    ServiceCounter &sc = counters_.services[svc.id];
    ServiceCounter &bc = counters_.backends[backend_id];
    sc.fwd.add(f.len);
    bc.fwd.add(f.len);
    if (new_flow) {
      sc.new_flows.inc();
      bc.new_flows.inc();
    }
    b.tx.add(p.vrf, f.len);
  }
  return v;
}

[[gnu::always_inline]] inline Verdict Pipeline::route(const FibSnapshot &snap, rte_mbuf *m, Pkt &p,
                                                      Burst &b) {
  if (p.action == nullptr)
    return drop(STRATUS_DROP_NO_ROUTE);
  const RouteAction &a = *p.action;
  Frame &f = p.f;
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
  ipv4_decrement_ttl(ip, f.ip.hlen);
  std::uint8_t *eth = rte_pktmbuf_mtod_offset(m, std::uint8_t *, f.off);
  std::memcpy(eth, a.dst_mac.data(), 6);
  std::memcpy(eth + 6, snap.gateway_mac.data(), 6);

  if (a.kind == RouteKind::kLocal) {
    std::uint32_t tail = rte_pktmbuf_data_len(m) - f.off - f.len;
    if (tail != 0)
      rte_pktmbuf_trim(m, static_cast<std::uint16_t>(tail));
    if (f.off != 0)
      rte_pktmbuf_adj(m, static_cast<std::uint16_t>(f.off));
    b.tx.add(p.vrf, f.len);
    return Verdict{Action::kForward, 0, a.out_port};
  }
  Verdict out = encapsulate(snap, m, f, a.encap, p.sport);
  if (out.action == Action::kForward)
    b.tx.add(p.vrf, f.len);
  return out;
}

template <EncapKind K>
[[gnu::always_inline]] inline Verdict Pipeline::encapsulate_as(const FibSnapshot &snap, rte_mbuf *m,
                                                               const Frame &f,
                                                               const EncapTemplate &tpl,
                                                               std::uint16_t sport) {
  constexpr bool kVxlan = K == EncapKind::kVxlan;
  // VXLAN carries the whole inner frame, IPIP only its IP packet.
  constexpr std::uint32_t hdr_len = kVxlan ? kVxlanHeaderLen : kIpipHeaderLen;
  const std::uint32_t inner_off = kVxlan ? f.off : f.off + kEthLen;
  const std::uint32_t inner_len = kVxlan ? f.len : f.ip.total;
  if (hdr_len - kEthLen + inner_len > snap.underlay_mtu)
    return drop(STRATUS_DROP_MTU_EXCEEDED);
  if (kVxlan && sport == 0)
    sport = vxlan_sport(f.ip, snap.hash_seed);

  // What the header is made of, read before it is written: the compiler
  // must assume that byte stores into the packet may change any of it.
  const std::uint16_t out_port = tpl.out_port;
  const std::uint32_t ip_sum = tpl.ip_sum;
  const std::uint8_t tos = f.ip.hdr[1];
  // The new frame is [outer header][inner]: cut the tail, move the start.
  // The mbuf is one segment (handle() linearised it), so this is what
  // trim + adj + prepend would do, without their checks one by one.
  const std::uint32_t data_off = m->data_off;
  if (data_off + inner_off < hdr_len)
    return drop(STRATUS_DROP_TX_FAILED);  // no headroom for the outer header
  m->data_off = static_cast<std::uint16_t>(data_off + inner_off - hdr_len);
  m->data_len = static_cast<std::uint16_t>(hdr_len + inner_len);
  m->pkt_len = hdr_len + inner_len;
  auto *hdr = rte_pktmbuf_mtod(m, std::uint8_t *);
  // A constant size: a copy of a run-time length costs a `rep movs`.
  std::memcpy(hdr, tpl.hdr.data(), hdr_len);
  finish_encap<K>(ip_sum, hdr, inner_len, tos, sport);
  return Verdict{Action::kForward, 0, out_port};
}

[[gnu::always_inline]] inline Verdict Pipeline::encapsulate(const FibSnapshot &snap, rte_mbuf *m,
                                                            const Frame &f,
                                                            const EncapTemplate &tpl,
                                                            std::uint16_t sport) {
  // Every template the snapshot builds is VXLAN or IPIP.
  if (tpl.kind == EncapKind::kVxlan)
    return encapsulate_as<EncapKind::kVxlan>(snap, m, f, tpl, sport);
  return encapsulate_as<EncapKind::kIpip>(snap, m, f, tpl, sport);
}

}  // namespace stratus::dpdk
