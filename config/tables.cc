#include "config/tables.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "lb/prime.h"

namespace stratus {

// ---------------------------------------------------------------- addresses

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress a;
  if (s.find(':') == std::string::npos) {
    in_addr v4{};
    if (inet_pton(AF_INET, s.c_str(), &v4) != 1)
      return std::nullopt;
    a.family = Family::kV4;
    std::memcpy(a.bytes.data(), &v4, 4);
    return a;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) != 1)
    return std::nullopt;
  a.family = Family::kV6;
  std::memcpy(a.bytes.data(), &v6, 16);
  return a;
}

IpAddress IpAddress::v4(std::uint32_t host_order) {
  IpAddress a;
  a.family = Family::kV4;
  std::uint32_t be = htonl(host_order);
  std::memcpy(a.bytes.data(), &be, 4);
  return a;
}

std::uint32_t IpAddress::v4_be() const {
  std::uint32_t be;
  std::memcpy(&be, bytes.data(), 4);
  return be;
}

std::uint32_t IpAddress::v4_host() const {
  return ntohl(v4_be());
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (is_v4()) {
    inet_ntop(AF_INET, bytes.data(), buf, sizeof buf);
  } else if (is_v6()) {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto slash = text.find('/');
  auto addr = IpAddress::parse(text.substr(0, slash));
  if (!addr)
    return std::nullopt;
  IpPrefix p;
  p.addr = *addr;
  if (slash == std::string_view::npos) {
    p.len = static_cast<std::uint8_t>(addr->bit_width());
    return p;
  }
  std::string_view len = text.substr(slash + 1);
  if (len.empty() || len.size() > 3)
    return std::nullopt;
  int n = 0;
  for (char c : len) {
    if (c < '0' || c > '9')
      return std::nullopt;
    n = n * 10 + (c - '0');
  }
  if (n > addr->bit_width())
    return std::nullopt;
  p.len = static_cast<std::uint8_t>(n);
  if (p.canonical() != p)
    return std::nullopt;  // host bits set
  return p;
}

std::string IpPrefix::str() const {
  return addr.str() + "/" + std::to_string(len);
}

IpPrefix IpPrefix::canonical() const {
  IpPrefix p = *this;
  int width = addr.bit_width();
  for (int bit = len; bit < width; ++bit) {
    p.addr.bytes[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return p;
}

bool IpPrefix::contains(const IpAddress &a) const {
  if (a.family != addr.family)
    return false;
  IpPrefix probe{a, len};
  return probe.canonical().addr == addr;
}

bool IpPrefix::overlaps(const IpPrefix &other) const {
  if (addr.family != other.addr.family)
    return false;
  return len <= other.len ? contains(other.addr) : other.contains(addr);
}

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
  MacAddress m;
  if (text.size() != 17)
    return std::nullopt;
  for (int i = 0; i < 6; ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9')
        return c - '0';
      if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
      if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
      return -1;
    };
    int hi = hex(text[i * 3]), lo = hex(text[i * 3 + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    if (i < 5 && text[i * 3 + 2] != ':')
      return std::nullopt;
    m.bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return m;
}

std::string MacAddress::str() const {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                bytes[3], bytes[4], bytes[5]);
  return buf;
}

// ---------------------------------------------------------------- enum names

std::string_view to_string(DataplaneKind k) {
  return k == DataplaneKind::kXdp ? "xdp" : "dpdk";
}
std::string_view to_string(PortRole r) {
  return r == PortRole::kUnderlay ? "underlay" : "tenant";
}
std::string_view to_string(RouteKind k) {
  switch (k) {
    case RouteKind::kRemote:
      return "remote";
    case RouteKind::kLocal:
      return "local";
    case RouteKind::kBlackhole:
      return "blackhole";
  }
  return "?";
}
std::string_view to_string(Encap e) {
  return e == Encap::kVxlan ? "vxlan" : "ipip";
}
std::string_view to_string(BackendState s) {
  switch (s) {
    case BackendState::kActive:
      return "active";
    case BackendState::kDraining:
      return "draining";
    case BackendState::kDown:
      return "down";
  }
  return "?";
}
std::string_view to_string(ForwardingMode) {
  return "dsr";
}

// ---------------------------------------------------------------- canonical form

namespace {

// The canonical order of each table (by key).
bool port_less(const Port &a, const Port &b) {
  return a.name < b.name;
}
bool nexthop_less(const NextHop &a, const NextHop &b) {
  return a.remote < b.remote;
}
bool vrf_less(const Vrf &a, const Vrf &b) {
  return a.id < b.id;
}
bool route_less(const Route &a, const Route &b) {
  return std::tie(a.vrf, a.prefix) < std::tie(b.vrf, b.prefix);
}
bool service_less(const Service &a, const Service &b) {
  return a.id < b.id;
}

bool is_canonical(const Tables &t) {
  return std::is_sorted(t.node.ports.begin(), t.node.ports.end(), port_less) &&
         std::is_sorted(t.nexthops.begin(), t.nexthops.end(), nexthop_less) &&
         std::is_sorted(t.vrfs.begin(), t.vrfs.end(), vrf_less) &&
         std::is_sorted(t.routes.begin(), t.routes.end(), route_less) &&
         std::is_sorted(t.services.begin(), t.services.end(), service_less);
}

}  // namespace

void canonicalize(Tables &t) {
  std::sort(t.node.ports.begin(), t.node.ports.end(), port_less);
  std::sort(t.nexthops.begin(), t.nexthops.end(), nexthop_less);
  std::sort(t.vrfs.begin(), t.vrfs.end(), vrf_less);
  std::sort(t.routes.begin(), t.routes.end(), route_less);
  std::sort(t.services.begin(), t.services.end(), service_less);
}

// ---------------------------------------------------------------- checks

namespace {

class Errors {
 public:
  template <typename... Args>
  void add(const std::string &where, Args &&...parts) {
    std::string msg = where + ": ";
    ((msg += parts), ...);
    list_.push_back(std::move(msg));
  }
  std::vector<std::string> take() { return std::move(list_); }

 private:
  std::vector<std::string> list_;
};

std::string quoted(const std::string &s) {
  return "\"" + s + "\"";
}

}  // namespace

std::vector<std::string> check(const Tables &t) {
  Errors err;
  const NodeTable &n = t.node;

  if (n.name.empty())
    err.add("node", "name is empty");
  if (n.vteps.empty())
    err.add("node", "no VTEP address");
  for (std::size_t i = 0; i < n.vteps.size(); ++i) {
    if (n.vteps[i].empty())
      err.add("node.vteps[" + std::to_string(i) + "]", "empty address");
  }
  if (n.vxlan_port == 0)
    err.add("node.vxlan_port", "must not be 0");
  if (n.underlay_mtu < 576 || n.underlay_mtu > 9216) {
    err.add("node.underlay_mtu", std::to_string(n.underlay_mtu), " is outside 576..9216");
  }
  if (n.flows.max_entries == 0)
    err.add("node.flows.max_entries", "must be positive");
  if (n.ports.size() > kMaxPorts)
    err.add("node.ports", "more than ", std::to_string(kMaxPorts));

  std::set<std::uint32_t> vrf_ids;
  std::set<std::uint32_t> vnis;
  for (std::size_t i = 0; i < t.vrfs.size(); ++i) {
    const Vrf &v = t.vrfs[i];
    std::string where = "vrfs[" + std::to_string(i) + "] (" + v.tenant + ")";
    if (v.id == kUnderlayVrf || v.id >= kMaxVrfs) {
      err.add(where, "id ", std::to_string(v.id), " outside 1..", std::to_string(kMaxVrfs - 1));
    }
    if (!vrf_ids.insert(v.id).second)
      err.add(where, "duplicate id ", std::to_string(v.id));
    if (v.vni > kMaxVni)
      err.add(where, "VNI ", std::to_string(v.vni), " exceeds 24 bits");
    if (!vnis.insert(v.vni).second)
      err.add(where, "duplicate VNI ", std::to_string(v.vni));
  }

  std::map<std::string, const Port *> ports;
  for (std::size_t i = 0; i < n.ports.size(); ++i) {
    const Port &p = n.ports[i];
    std::string where = "node.ports[" + std::to_string(i) + "]";
    if (p.name.empty())
      err.add(where, "name is empty");
    if (!ports.emplace(p.name, &p).second)
      err.add(where, "duplicate port ", quoted(p.name));
    if (p.role == PortRole::kTenant && !vrf_ids.count(p.vrf)) {
      err.add(where, "tenant port ", quoted(p.name), " bound to unknown VRF ",
              std::to_string(p.vrf));
    }
  }

  std::set<IpAddress> remotes;
  for (std::size_t i = 0; i < t.nexthops.size(); ++i) {
    const NextHop &h = t.nexthops[i];
    std::string where = "nexthops[" + std::to_string(i) + "] (" +
                        (h.remote.empty() ? std::string("default") : h.remote.str()) + ")";
    if (!remotes.insert(h.remote).second)
      err.add(where, "duplicate next hop");
    auto p = ports.find(h.port);
    if (p == ports.end()) {
      err.add(where, "unknown port ", quoted(h.port));
    } else if (p->second->role != PortRole::kUnderlay) {
      err.add(where, "port ", quoted(h.port), " is not an underlay port");
    }
    if (h.dst_mac.is_zero())
      err.add(where, "destination MAC is zero");
  }

  std::set<std::pair<std::uint32_t, IpPrefix>> route_keys;
  for (std::size_t i = 0; i < t.routes.size(); ++i) {
    const Route &r = t.routes[i];
    std::string where = "routes[" + std::to_string(i) + "] (vrf " + std::to_string(r.vrf) + ", " +
                        r.prefix.str() + ")";
    if (!vrf_ids.count(r.vrf))
      err.add(where, "unknown VRF ", std::to_string(r.vrf));
    if (r.prefix.addr.empty())
      err.add(where, "prefix has no address");
    if (r.prefix.canonical() != r.prefix)
      err.add(where, "prefix has host bits set");
    if (r.prefix.len > r.prefix.addr.bit_width())
      err.add(where, "prefix length too long");
    if (!route_keys.insert({r.vrf, r.prefix}).second)
      err.add(where, "duplicate route");
    switch (r.kind) {
      case RouteKind::kRemote:
        if (r.vtep.empty())
          err.add(where, "remote route without a VTEP");
        if (r.vni_out > kMaxVni)
          err.add(where, "vni_out exceeds 24 bits");
        if (r.dst_mac.is_zero())
          err.add(where, "remote route without an inner destination MAC");
        break;
      case RouteKind::kLocal: {
        auto p = ports.find(r.port);
        if (p == ports.end()) {
          err.add(where, "unknown port ", quoted(r.port));
        } else if (p->second->role != PortRole::kTenant || p->second->vrf != r.vrf) {
          err.add(where, "port ", quoted(r.port), " is not a tenant port of this VRF");
        }
        if (r.dst_mac.is_zero())
          err.add(where, "local route without a destination MAC");
        break;
      }
      case RouteKind::kBlackhole:
        break;
    }
  }

  std::set<std::uint32_t> service_ids;
  std::set<std::uint32_t> backend_ids;
  std::set<std::tuple<std::uint32_t, IpAddress, std::uint8_t, std::uint16_t>> service_keys;
  for (std::size_t i = 0; i < t.services.size(); ++i) {
    const Service &s = t.services[i];
    std::string where = "services[" + std::to_string(i) + "] (" + s.name + ")";
    if (s.id >= kMaxServices)
      err.add(where, "id ", std::to_string(s.id), " too large");
    if (!service_ids.insert(s.id).second)
      err.add(where, "duplicate id ", std::to_string(s.id));
    if (s.vrf != kUnderlayVrf && !vrf_ids.count(s.vrf)) {
      err.add(where, "unknown VRF ", std::to_string(s.vrf));
    }
    if (s.vip.empty())
      err.add(where, "no VIP");
    if (s.proto != 6 && s.proto != 17)
      err.add(where, "protocol ", std::to_string(s.proto), " is not TCP or UDP");
    if (!service_keys.insert({s.vrf, s.vip, s.proto, s.port}).second) {
      err.add(where, "duplicate VIP ", s.vip.str(), ":", std::to_string(s.port));
    }
    if (!lb::is_prime(s.maglev_size) || s.maglev_size > kMaxMaglevSize) {
      err.add(where, "Maglev size ", std::to_string(s.maglev_size), " is not a prime up to ",
              std::to_string(kMaxMaglevSize));
    }
    if (s.backends.size() > kMaxBackendsPerService)
      err.add(where, "too many backends");
    if (s.hash_flags & ~0x1fu)
      err.add(where, "unknown hash flags");
    for (std::size_t j = 0; j < s.backends.size(); ++j) {
      const Backend &b = s.backends[j];
      std::string bwhere = where + ".backends[" + std::to_string(j) + "] (" + b.name + ")";
      if (b.id >= kMaxBackends)
        err.add(bwhere, "id ", std::to_string(b.id), " too large");
      if (!backend_ids.insert(b.id).second)
        err.add(bwhere, "duplicate id ", std::to_string(b.id));
      if (b.vrf != kUnderlayVrf && !vrf_ids.count(b.vrf)) {
        err.add(bwhere, "unknown VRF ", std::to_string(b.vrf));
      }
      if (b.addr.empty())
        err.add(bwhere, "no address");
      if (b.tunnel_dst.empty())
        err.add(bwhere, "no tunnel destination");
      if (b.encap == Encap::kVxlan && b.vni > kMaxVni)
        err.add(bwhere, "VNI exceeds 24 bits");
      if (b.encap == Encap::kVxlan && b.inner_dst_mac.is_zero()) {
        err.add(bwhere, "VXLAN backend without an inner destination MAC");
      }
    }
    if (!s.maglev.empty()) {
      if (s.maglev.size() != s.maglev_size) {
        err.add(where, "Maglev table has ", std::to_string(s.maglev.size()), " slots, expected ",
                std::to_string(s.maglev_size));
      }
      for (std::uint32_t slot : s.maglev) {
        if (slot >= s.backends.size()) {
          err.add(where, "Maglev slot refers to backend ", std::to_string(slot), " of ",
                  std::to_string(s.backends.size()));
          break;
        }
      }
    }
  }
  return err.take();
}

// ---------------------------------------------------------------- digest

namespace {

// Word-at-a-time mixing; a digest for equality checks between processes,
// not a cryptographic hash.
class Digest {
 public:
  void u64(std::uint64_t v) {
    h_ ^= v + 0x9e3779b97f4a7c15ull + (h_ << 6) + (h_ >> 2);
    h_ *= 0xff51afd7ed558ccdull;
    h_ ^= h_ >> 32;
  }
  void str(const std::string &s) {
    u64(s.size());
    for (char c : s)
      u64(static_cast<unsigned char>(c));
  }
  void ip(const IpAddress &a) {
    u64(static_cast<std::uint64_t>(a.family));
    std::uint64_t w[2];
    std::memcpy(w, a.bytes.data(), 16);
    u64(w[0]);
    u64(w[1]);
  }
  void mac(const MacAddress &m) {
    std::uint64_t w = 0;
    std::memcpy(&w, m.bytes.data(), 6);
    u64(w);
  }
  std::uint64_t value() const { return h_; }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace

std::uint64_t digest(const Tables &input) {
  // Tables on the apply path are already canonical: digest them in place
  // rather than copying every Maglev table to sort a copy.
  if (!is_canonical(input)) {
    Tables copy = input;
    canonicalize(copy);
    return digest(copy);
  }
  const Tables &t = input;
  Digest d;
  const NodeTable &n = t.node;
  d.str(n.name);
  d.u64(static_cast<std::uint64_t>(n.kind));
  d.u64(n.vteps.size());
  for (const auto &v : n.vteps)
    d.ip(v);
  d.u64(n.vxlan_port);
  d.u64(n.underlay_mtu);
  d.mac(n.gateway_mac);
  d.u64(n.hash_seed);
  d.u64(n.flows.max_entries);
  d.u64(n.flows.tcp_timeout_s);
  d.u64(n.flows.udp_timeout_s);
  d.u64(n.ports.size());
  for (const auto &p : n.ports) {
    d.str(p.name);
    d.u64(static_cast<std::uint64_t>(p.role));
    d.mac(p.mac);
    d.u64(p.vrf);
  }
  d.u64(t.nexthops.size());
  for (const auto &h : t.nexthops) {
    d.ip(h.remote);
    d.str(h.port);
    d.mac(h.dst_mac);
    d.mac(h.src_mac);
  }
  d.u64(t.vrfs.size());
  for (const auto &v : t.vrfs) {
    d.u64(v.id);
    d.u64(v.vni);
    d.str(v.tenant);
    d.u64(v.gateways.size());
    for (const auto &g : v.gateways)
      d.ip(g);
  }
  d.u64(t.routes.size());
  for (const auto &r : t.routes) {
    d.u64(r.vrf);
    d.ip(r.prefix.addr);
    d.u64(r.prefix.len);
    d.u64(static_cast<std::uint64_t>(r.kind));
    d.ip(r.vtep);
    d.u64(r.vni_out);
    d.str(r.port);
    d.mac(r.dst_mac);
  }
  d.u64(t.services.size());
  for (const auto &s : t.services) {
    d.u64(s.id);
    d.str(s.name);
    d.u64(s.vrf);
    d.ip(s.vip);
    d.u64(s.proto);
    d.u64(s.port);
    d.u64(s.maglev_size);
    d.u64(s.hash_flags);
    d.u64(static_cast<std::uint64_t>(s.mode));
    d.u64(s.backends.size());
    for (const auto &b : s.backends) {
      d.u64(b.id);
      d.str(b.name);
      d.ip(b.addr);
      d.u64(b.vrf);
      d.u64(b.weight);
      d.u64(static_cast<std::uint64_t>(b.state));
      d.u64(static_cast<std::uint64_t>(b.encap));
      d.ip(b.tunnel_dst);
      d.u64(b.vni);
      d.mac(b.inner_dst_mac);
    }
    d.u64(s.maglev.size());
    // Two slots per step: the Maglev tables dominate the digest's cost.
    std::size_t i = 0;
    for (; i + 1 < s.maglev.size(); i += 2) {
      d.u64(static_cast<std::uint64_t>(s.maglev[i]) << 32 | s.maglev[i + 1]);
    }
    if (i < s.maglev.size())
      d.u64(s.maglev[i]);
  }
  return d.value();
}

std::string digest_hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace stratus
