#include "dataplane/snapshot.h"

#include <atomic>
#include <algorithm>
#include <bit>
#include <map>
#include <stdexcept>

#include "dataplane/dpdk.h"

namespace stratus::dpdk {

namespace {

std::atomic<std::uint64_t> lpm_serial{0};

std::uint32_t sum16(const std::uint8_t *p, std::size_t len) {
  std::uint32_t s = 0;
  for (std::size_t i = 0; i + 1 < len; i += 2)
    s += static_cast<std::uint32_t>(p[i] << 8 | p[i + 1]);
  return s;
}

void put16(std::uint8_t *p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}

std::string where(const std::string &what, const std::string &name) {
  return what + " \"" + name + "\"";
}

struct Builder {
  const Tables &t;
  const PortResolver &resolve;
  FibSnapshot &s;

  std::optional<std::uint16_t> port_by_name(const std::string &name) const {
    for (std::size_t i = 0; i < s.ports.size(); ++i) {
      if (s.ports[i].name == name)
        return static_cast<std::uint16_t>(i);
    }
    return std::nullopt;
  }

  const NextHop *nexthop_for(const IpAddress &remote) const {
    const NextHop *dflt = nullptr;
    for (const NextHop &nh : t.nexthops) {
      if (nh.remote == remote)
        return &nh;
      if (nh.remote.empty())
        dflt = &nh;
    }
    return dflt;
  }

  // Outer header toward `dst`: VXLAN with `vni`, or IPIP.
  EncapTemplate encap_to(Encap kind, const IpAddress &dst, std::uint32_t vni) const {
    EncapTemplate e;
    e.kind = kind == Encap::kVxlan ? EncapKind::kVxlan : EncapKind::kIpip;
    const NextHop *nh = dst.is_v4() ? nexthop_for(dst) : nullptr;
    if (nh == nullptr) {
      e.drop = STRATUS_DROP_NO_NEXTHOP;
      return e;
    }
    auto port = port_by_name(nh->port);
    if (!port || s.ports[*port].dev == kNoDev) {
      e.drop = STRATUS_DROP_PORT_DOWN;
      return e;
    }
    e.out_port = *port;
    std::uint8_t *h = e.hdr.data();
    std::memcpy(h, nh->dst_mac.bytes.data(), 6);
    const auto &src = nh->src_mac.is_zero() ? s.ports[*port].mac : nh->src_mac.bytes;
    std::memcpy(h + 6, src.data(), 6);
    put16(h + 12, RTE_ETHER_TYPE_IPV4);
    std::uint8_t *ip = h + 14;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, 0);       // total length: per packet
    put16(ip + 4, 0);       // id
    put16(ip + 6, 0x4000);  // DF
    ip[8] = 64;
    ip[9] = e.kind == EncapKind::kVxlan ? IPPROTO_UDP : IPPROTO_IPIP;
    put16(ip + 10, 0);  // checksum: per packet
    std::memcpy(ip + 12, &s.vtep_src_be, 4);
    std::uint32_t dst_be = dst.v4_be();
    std::memcpy(ip + 16, &dst_be, 4);
    e.ip_sum = sum16(ip, 20);
    if (e.kind == EncapKind::kVxlan) {
      std::uint8_t *udp = ip + 20;
      std::memcpy(udp + 2, &s.vxlan_port_be, 2);
      std::uint8_t *vx = udp + 8;
      vx[0] = 0x08;  // I flag
      vx[4] = static_cast<std::uint8_t>(vni >> 16);
      vx[5] = static_cast<std::uint8_t>(vni >> 8);
      vx[6] = static_cast<std::uint8_t>(vni);
    }
    return e;
  }
};

}  // namespace

Lpm::Lpm(const std::vector<IpPrefix> &prefixes, Form form) : prefixes_(prefixes) {
  if (form == Form::kAuto) {
    std::uint64_t lengths = 0;  // bit l: some prefix is /l, l < 64
    for (const auto &p : prefixes)
      lengths |= std::uint64_t{1} << p.len;
    form = prefixes.size() <= kSmallRoutes &&
                   static_cast<std::size_t>(std::popcount(lengths)) <= kSmallLengths
               ? Form::kPerLength
               : Form::kRteLpm;
  }
  if (form == Form::kPerLength)
    build_levels();
  else
    build_rte_lpm();
}

void Lpm::build_levels() {
  std::uint32_t count[33] = {};
  for (const auto &p : prefixes_)
    ++count[p.len];
  std::uint32_t level_of[33] = {};  // by prefix length, where count[len] != 0
  for (int len = 32; len >= 0; --len) {
    if (count[len] == 0)
      continue;
    const std::uint32_t slots = std::bit_ceil(std::max<std::uint32_t>(2, 2 * count[len]));
    Level l;
    l.mask = len == 0 ? 0 : ~std::uint32_t{0} << (32 - len);
    l.first = static_cast<std::uint32_t>(slots_.size());
    l.slot_mask = slots - 1;
    l.shift = 64 - static_cast<std::uint32_t>(std::countr_zero(slots));
    level_of[len] = static_cast<std::uint32_t>(levels_.size());
    levels_.push_back(l);
    slots_.resize(slots_.size() + slots);
  }
  for (std::size_t i = 0; i < prefixes_.size(); ++i) {
    const IpPrefix &p = prefixes_[i];
    const Level &l = levels_[level_of[p.len]];
    const std::uint32_t key = p.addr.v4_host() & l.mask;
    Slot *slots = slots_.data() + l.first;
    std::uint32_t s = slot_of(key, l.shift);
    while (slots[s].nh != kEmpty && slots[s].key != key)
      s = (s + 1) & l.slot_mask;
    slots[s] = Slot{key, static_cast<std::uint32_t>(i)};  // a repeated prefix: the last wins
  }
}

void Lpm::build_rte_lpm() {
  std::uint32_t long_prefixes = 0;
  for (const auto &p : prefixes_)
    long_prefixes += p.len > 24 ? 1 : 0;
  rte_lpm_config cfg{};
  cfg.max_rules = static_cast<std::uint32_t>(prefixes_.size()) + 16;
  cfg.number_tbl8s = std::min<std::uint32_t>(1u << 16, 64 + long_prefixes);
  std::string name = "stratus_lpm_" + std::to_string(lpm_serial.fetch_add(1));
  lpm_ = rte_lpm_create(name.c_str(), SOCKET_ID_ANY, &cfg);
  if (lpm_ == nullptr) {
    // Out of EAL memory is the usual cause: say what the table needs.
    const std::uint64_t mib = (sizeof(rte_lpm_tbl_entry) << 24 >> 20) +
                              ((std::uint64_t{cfg.number_tbl8s} * 256 * sizeof(rte_lpm_tbl_entry) +
                                std::uint64_t{cfg.max_rules} * 8) >>
                               20);
    throw std::runtime_error("cannot create the rte_lpm of " + std::to_string(prefixes_.size()) +
                             " routes (~" + std::to_string(mib) +
                             " MiB of DPDK memory: each VRF's first level alone is 64 MiB; "
                             "reserve more hugepages, or raise -m under --no-huge): " +
                             rte_strerror(rte_errno));
  }
  for (std::size_t i = 0; i < prefixes_.size(); ++i) {
    if (prefixes_[i].len == 0) {
      default_nh_ = static_cast<std::uint32_t>(i);
      continue;
    }
    int rc = rte_lpm_add(lpm_, prefixes_[i].addr.v4_host(), prefixes_[i].len,
                         static_cast<std::uint32_t>(i));
    if (rc != 0) {
      rte_lpm_free(lpm_);
      lpm_ = nullptr;
      throw std::runtime_error("cannot add route " + prefixes_[i].str() +
                               " to LPM: " + rte_strerror(-rc));
    }
  }
}

Lpm::~Lpm() {
  if (lpm_ != nullptr)
    rte_lpm_free(lpm_);
}

std::unique_ptr<FibSnapshot> build_snapshot(const Tables &t, const PortResolver &resolve,
                                            const FibSnapshot *prev, std::uint64_t ticks_per_s) {
  // Ids index per-worker counter arrays: check() bounds them, and the fast
  // path relies on it, so a table that slipped past is refused here too.
  auto bound = [](std::uint32_t id, std::uint32_t max, const std::string &what) {
    if (id >= max) {
      throw std::runtime_error(what + " id " + std::to_string(id) + " beyond " +
                               std::to_string(max - 1));
    }
  };
  for (const Vrf &v : t.vrfs)
    bound(v.id, kMaxVrfs, "VRF");
  for (const Port &p : t.node.ports)
    bound(p.vrf, kMaxVrfs, "port " + p.name + ": VRF");
  for (const Service &svc : t.services) {
    bound(svc.id, kMaxServices, "service");
    for (const Backend &be : svc.backends)
      bound(be.id, kMaxBackends, "backend");
  }

  auto snap = std::make_unique<FibSnapshot>();
  FibSnapshot &s = *snap;
  const NodeTable &node = t.node;
  s.node_name = node.name;
  for (const IpAddress &v : node.vteps) {
    if (v.is_v4())
      s.vteps_be.push_back(v.v4_be());
  }
  s.vtep_src_be = s.vteps_be.empty() ? 0 : s.vteps_be.front();
  s.vxlan_port_be = rte_cpu_to_be_16(node.vxlan_port);
  s.underlay_mtu = node.underlay_mtu;
  s.gateway_mac = node.gateway_mac.bytes;
  s.hash_seed = node.hash_seed;
  s.flow_limit = node.flows.max_entries;
  s.tcp_timeout = std::uint64_t{node.flows.tcp_timeout_s} * ticks_per_s;
  s.udp_timeout = std::uint64_t{node.flows.udp_timeout_s} * ticks_per_s;

  s.port_by_dev.fill(kNoPort);
  if (node.ports.size() >= kNoPort)
    throw std::runtime_error("too many ports");
  for (const Port &p : node.ports) {
    PortEntry e;
    e.name = p.name;
    e.role = p.role;
    e.vrf = p.role == PortRole::kTenant ? p.vrf : kUnderlayVrf;
    e.mac = p.mac.bytes;
    if (auto dev = resolve(p.name)) {
      e.dev = dev->dev;
      if (p.mac.is_zero())
        e.mac = dev->mac.bytes;
      if (e.dev < s.port_by_dev.size()) {
        if (s.port_by_dev[e.dev] != kNoPort) {
          throw std::runtime_error(where("port", p.name) + ": device already used by another port");
        }
        s.port_by_dev[e.dev] = static_cast<std::uint16_t>(s.ports.size());
      }
    }
    if (e.role == PortRole::kUnderlay && e.dev != kNoDev && s.host_egress == kNoPort) {
      s.host_egress = static_cast<std::uint16_t>(s.ports.size());
    }
    s.ports.push_back(std::move(e));
  }
  Builder b{t, resolve, s};

  // VRFs and their routes.
  std::uint32_t max_vrf = 0;
  for (const Vrf &v : t.vrfs)
    max_vrf = std::max(max_vrf, v.id);
  s.vrfs.resize(max_vrf + 1);
  std::vector<std::pair<std::uint64_t, std::uint32_t>> vnis;
  for (const Vrf &v : t.vrfs) {
    VrfEntry &e = s.vrfs[v.id];
    e.present = true;
    e.vni = v.vni;
    for (const IpAddress &g : v.gateways) {
      if (g.is_v4())
        e.gateways_be.push_back(g.v4_be());
    }
    vnis.emplace_back(v.vni, v.id);
  }
  s.vni_to_vrf.build(vnis);

  std::map<std::uint32_t, std::vector<const Route *>> by_vrf;
  for (const Route &r : t.routes) {
    if (r.prefix.addr.is_v4() && r.vrf < s.vrfs.size() && s.vrfs[r.vrf].present) {
      by_vrf[r.vrf].push_back(&r);
    }
  }
  for (auto &[vrf, routes] : by_vrf) {
    VrfEntry &e = s.vrfs[vrf];
    std::vector<IpPrefix> prefixes;
    prefixes.reserve(routes.size());
    for (const Route *r : routes)
      prefixes.push_back(r->prefix);
    if (prev != nullptr && vrf < prev->vrfs.size() && prev->vrfs[vrf].lpm &&
        prev->vrfs[vrf].lpm->prefixes() == prefixes) {
      e.lpm = prev->vrfs[vrf].lpm;
    } else {
      try {
        e.lpm = std::make_shared<const Lpm>(prefixes);
      } catch (const std::runtime_error &err) {
        throw std::runtime_error("VRF " + std::to_string(vrf) + " (VNI " + std::to_string(e.vni) +
                                 "): " + err.what());
      }
    }
    e.actions.reserve(routes.size());
    for (const Route *r : routes) {
      RouteAction a;
      a.kind = r->kind;
      a.dst_mac = r->dst_mac.bytes;
      if (r->kind == RouteKind::kRemote) {
        a.encap = b.encap_to(Encap::kVxlan, r->vtep, r->vni_out);
      } else if (r->kind == RouteKind::kLocal) {
        auto port = b.port_by_name(r->port);
        if (!port || s.ports[*port].dev == kNoDev) {
          a.drop = STRATUS_DROP_PORT_DOWN;
        } else {
          a.out_port = *port;
        }
      }
      e.actions.push_back(a);
    }
  }

  // Services, backends, Maglev tables.
  std::uint32_t max_backend = 0;
  bool any_backend = false;
  for (const Service &svc : t.services) {
    for (const Backend &be : svc.backends) {
      max_backend = std::max(max_backend, be.id);
      any_backend = true;
    }
  }
  if (any_backend)
    s.backends.resize(max_backend + 1);
  // (vrf, VIP address) -> the services on it.
  std::map<std::uint64_t, std::vector<VipService>> by_vip;
  for (const Service &svc : t.services) {
    if (!svc.vip.is_v4())
      continue;
    ServiceEntry e;
    e.id = svc.id;
    e.hash_flags = svc.hash_flags;
    e.maglev_size = svc.maglev.empty() ? 0 : static_cast<std::uint32_t>(svc.maglev.size());
    const ServiceEntry *old = nullptr;
    if (prev != nullptr) {
      for (const ServiceEntry &pe : prev->service_list) {
        if (pe.id == svc.id)
          old = &pe;
      }
    }
    auto table = std::make_shared<std::vector<std::uint32_t>>();
    table->reserve(svc.maglev.size());
    for (std::uint32_t idx : svc.maglev) {
      if (idx >= svc.backends.size()) {
        throw std::runtime_error(where("service", svc.name) + ": Maglev entry " +
                                 std::to_string(idx) + " beyond its backends");
      }
      table->push_back(svc.backends[idx].id);
    }
    // Keep the previous vector when it is the same table: no copy stays alive twice.
    if (old != nullptr && old->maglev && *old->maglev == *table) {
      e.maglev = old->maglev;
    } else {
      e.maglev = std::move(table);
    }
    for (const Backend &be : svc.backends) {
      BackendEntry &bk = s.backends[be.id];
      bk.present = true;
      bk.state = be.state;
      bk.service_id = svc.id;
      bk.inner_dst_mac = be.inner_dst_mac.bytes;
      bk.encap = b.encap_to(be.encap, be.tunnel_dst, be.vni);
    }
    by_vip[vip_key(svc.vrf, svc.vip.v4_be())].push_back(
        {svc.proto, rte_cpu_to_be_16(svc.port), static_cast<std::uint32_t>(s.service_list.size())});
    s.service_list.push_back(std::move(e));
  }
  std::vector<std::pair<std::uint64_t, VipRef>> vips;
  for (const auto &[key, list] : by_vip) {
    vips.emplace_back(key, VipRef{static_cast<std::uint32_t>(s.vip_services.size()),
                                  static_cast<std::uint32_t>(list.size())});
    s.vip_services.insert(s.vip_services.end(), list.begin(), list.end());
  }
  s.vips.build(vips);
  for (const auto &v : vips)
    s.vip_filter.add(v.first);
  return snap;
}

}  // namespace stratus::dpdk
