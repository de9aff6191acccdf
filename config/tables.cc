#include "config/tables.h"

#include <arpa/inet.h>

#include <algorithm>
#include <bit>
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

namespace {

bool port_less(const Port &a, const Port &b) {
  return a.name < b.name;
}

// Sorting an already sorted table still costs n log n comparisons; the
// tables on the apply path are canonical but for the few entries a delta
// added.
template <typename T, typename Less>
void sort_table(std::vector<T> &v, Less less) {
  if (!std::is_sorted(v.begin(), v.end(), less))
    std::sort(v.begin(), v.end(), less);
}

}  // namespace

void canonicalize(Tables &t) {
  sort_table(t.node.ports, port_less);
  sort_table(t.nexthops, nexthop_less);
  sort_table(t.vrfs, vrf_less);
  sort_table(t.routes, route_less);
  sort_table(t.services, service_less);
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

// A set of ids: a bitmap below `bound` (the valid ids), a std::set above it
// (ids that are errors anyway, but still count as known).
class IdSet {
 public:
  explicit IdSet(std::uint32_t bound) : bits_(bound, false) {}
  bool insert(std::uint32_t id) {  // false: already there
    if (id < bits_.size()) {
      if (bits_[id])
        return false;
      bits_[id] = true;
      return true;
    }
    return large_.insert(id).second;
  }
  bool contains(std::uint32_t id) const {
    return id < bits_.size() ? bits_[id] : large_.count(id) > 0;
  }

 private:
  std::vector<bool> bits_;
  std::set<std::uint32_t> large_;
};

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

  IdSet vrf_ids(kMaxVrfs);
  std::set<std::uint32_t> vnis;
  for (std::size_t i = 0; i < t.vrfs.size(); ++i) {
    const Vrf &v = t.vrfs[i];
    // Built only for a message: building it for each of 100k entries is
    // most of what a clean check would cost.
    auto where = [&] { return "vrfs[" + std::to_string(i) + "] (" + v.tenant + ")"; };
    if (v.id == kUnderlayVrf || v.id >= kMaxVrfs) {
      err.add(where(), "id ", std::to_string(v.id), " outside 1..", std::to_string(kMaxVrfs - 1));
    }
    if (!vrf_ids.insert(v.id))
      err.add(where(), "duplicate id ", std::to_string(v.id));
    if (v.vni > kMaxVni)
      err.add(where(), "VNI ", std::to_string(v.vni), " exceeds 24 bits");
    if (!vnis.insert(v.vni).second)
      err.add(where(), "duplicate VNI ", std::to_string(v.vni));
  }

  std::map<std::string, const Port *> ports;
  for (std::size_t i = 0; i < n.ports.size(); ++i) {
    const Port &p = n.ports[i];
    auto where = [&] { return "node.ports[" + std::to_string(i) + "]"; };
    if (p.name.empty())
      err.add(where(), "name is empty");
    if (!ports.emplace(p.name, &p).second)
      err.add(where(), "duplicate port ", quoted(p.name));
    if (p.role == PortRole::kTenant && !vrf_ids.contains(p.vrf)) {
      err.add(where(), "tenant port ", quoted(p.name), " bound to unknown VRF ",
              std::to_string(p.vrf));
    }
  }

  std::set<IpAddress> remotes;
  for (std::size_t i = 0; i < t.nexthops.size(); ++i) {
    const NextHop &h = t.nexthops[i];
    auto where = [&] {
      return "nexthops[" + std::to_string(i) + "] (" +
             (h.remote.empty() ? std::string("default") : h.remote.str()) + ")";
    };
    if (!remotes.insert(h.remote).second)
      err.add(where(), "duplicate next hop");
    auto p = ports.find(h.port);
    if (p == ports.end()) {
      err.add(where(), "unknown port ", quoted(h.port));
    } else if (p->second->role != PortRole::kUnderlay) {
      err.add(where(), "port ", quoted(h.port), " is not an underlay port");
    }
    if (h.dst_mac.is_zero())
      err.add(where(), "destination MAC is zero");
  }

  // Canonical routes are sorted by key: a duplicate is its predecessor's twin.
  bool routes_sorted = std::is_sorted(t.routes.begin(), t.routes.end(), route_less);
  std::set<std::pair<std::uint32_t, IpPrefix>> route_keys;
  for (std::size_t i = 0; i < t.routes.size(); ++i) {
    const Route &r = t.routes[i];
    auto where = [&] {
      return "routes[" + std::to_string(i) + "] (vrf " + std::to_string(r.vrf) + ", " +
             r.prefix.str() + ")";
    };
    if (!vrf_ids.contains(r.vrf))
      err.add(where(), "unknown VRF ", std::to_string(r.vrf));
    if (r.prefix.addr.empty())
      err.add(where(), "prefix has no address");
    if (r.prefix.canonical() != r.prefix)
      err.add(where(), "prefix has host bits set");
    if (r.prefix.len > r.prefix.addr.bit_width())
      err.add(where(), "prefix length too long");
    bool duplicate =
        routes_sorted ? i > 0 && t.routes[i - 1].vrf == r.vrf && t.routes[i - 1].prefix == r.prefix
                      : !route_keys.insert({r.vrf, r.prefix}).second;
    if (duplicate)
      err.add(where(), "duplicate route");
    switch (r.kind) {
      case RouteKind::kRemote:
        if (r.vtep.empty())
          err.add(where(), "remote route without a VTEP");
        if (r.vni_out > kMaxVni)
          err.add(where(), "vni_out exceeds 24 bits");
        if (r.dst_mac.is_zero())
          err.add(where(), "remote route without an inner destination MAC");
        break;
      case RouteKind::kLocal: {
        auto p = ports.find(r.port);
        if (p == ports.end()) {
          err.add(where(), "unknown port ", quoted(r.port));
        } else if (p->second->role != PortRole::kTenant || p->second->vrf != r.vrf) {
          err.add(where(), "port ", quoted(r.port), " is not a tenant port of this VRF");
        }
        if (r.dst_mac.is_zero())
          err.add(where(), "local route without a destination MAC");
        break;
      }
      case RouteKind::kBlackhole:
        break;
    }
  }

  IdSet service_ids(kMaxServices);
  IdSet backend_ids(kMaxBackends);
  std::set<std::tuple<std::uint32_t, IpAddress, std::uint8_t, std::uint16_t>> service_keys;
  for (std::size_t i = 0; i < t.services.size(); ++i) {
    const Service &s = t.services[i];
    auto where = [&] { return "services[" + std::to_string(i) + "] (" + s.name + ")"; };
    if (s.id >= kMaxServices)
      err.add(where(), "id ", std::to_string(s.id), " too large");
    if (!service_ids.insert(s.id))
      err.add(where(), "duplicate id ", std::to_string(s.id));
    if (s.vrf != kUnderlayVrf && !vrf_ids.contains(s.vrf)) {
      err.add(where(), "unknown VRF ", std::to_string(s.vrf));
    }
    if (s.vip.empty())
      err.add(where(), "no VIP");
    if (s.proto != 6 && s.proto != 17)
      err.add(where(), "protocol ", std::to_string(s.proto), " is not TCP or UDP");
    if (!service_keys.insert({s.vrf, s.vip, s.proto, s.port}).second) {
      err.add(where(), "duplicate VIP ", s.vip.str(), ":", std::to_string(s.port));
    }
    if (!lb::is_prime(s.maglev_size) || s.maglev_size > kMaxMaglevSize) {
      err.add(where(), "Maglev size ", std::to_string(s.maglev_size), " is not a prime up to ",
              std::to_string(kMaxMaglevSize));
    }
    if (s.backends.size() > kMaxBackendsPerService)
      err.add(where(), "too many backends");
    if (s.hash_flags & ~0x1fu)
      err.add(where(), "unknown hash flags");
    for (std::size_t j = 0; j < s.backends.size(); ++j) {
      const Backend &b = s.backends[j];
      auto bwhere = [&] {
        return where() + ".backends[" + std::to_string(j) + "] (" + b.name + ")";
      };
      if (b.id >= kMaxBackends)
        err.add(bwhere(), "id ", std::to_string(b.id), " too large");
      if (!backend_ids.insert(b.id))
        err.add(bwhere(), "duplicate id ", std::to_string(b.id));
      if (b.vrf != kUnderlayVrf && !vrf_ids.contains(b.vrf)) {
        err.add(bwhere(), "unknown VRF ", std::to_string(b.vrf));
      }
      if (b.addr.empty())
        err.add(bwhere(), "no address");
      if (b.tunnel_dst.empty())
        err.add(bwhere(), "no tunnel destination");
      if (b.encap == Encap::kVxlan && b.vni > kMaxVni)
        err.add(bwhere(), "VNI exceeds 24 bits");
      if (b.encap == Encap::kVxlan && b.inner_dst_mac.is_zero()) {
        err.add(bwhere(), "VXLAN backend without an inner destination MAC");
      }
    }
    if (!s.maglev.empty()) {
      if (s.maglev.size() != s.maglev_size) {
        err.add(where(), "Maglev table has ", std::to_string(s.maglev.size()), " slots, expected ",
                std::to_string(s.maglev_size));
      }
      // max_slot() spares the walk when every slot is in range; the walk
      // names the first one that is not.
      for (std::size_t slot = 0; s.maglev.max_slot() >= s.backends.size() && slot < s.maglev.size();
           ++slot) {
        if (s.maglev[slot] >= s.backends.size()) {
          err.add(where(), "Maglev slot refers to backend ", std::to_string(s.maglev[slot]), " of ",
                  std::to_string(s.backends.size()));
          break;
        }
      }
    }
  }
  return err.take();
}

bool check_changed(const Tables &t, const std::vector<std::size_t> &routes,
                   const std::vector<std::size_t> &services) {
  // The changed entries with everything they refer to (node, ports, VRFs:
  // small) through check() itself, so the rules live in one place...
  Tables probe;
  probe.node = t.node;
  probe.nexthops = t.nexthops;
  probe.vrfs = t.vrfs;
  for (std::size_t i : routes) {
    if (i >= t.routes.size())
      return false;
    probe.routes.push_back(t.routes[i]);
  }
  for (std::size_t i : services) {
    if (i >= t.services.size())
      return false;
    probe.services.push_back(t.services[i]);
  }
  if (!check(probe).empty())
    return false;
  // ...then what is unique across every service: ids, VIP keys, backend ids.
  std::set<std::uint32_t> service_ids;
  std::set<std::tuple<std::uint32_t, IpAddress, std::uint8_t, std::uint16_t>> keys;
  std::vector<bool> backend_ids(kMaxBackends, false);
  for (const auto &s : t.services) {
    if (!service_ids.insert(s.id).second || !keys.insert({s.vrf, s.vip, s.proto, s.port}).second)
      return false;
    for (const auto &b : s.backends) {
      if (b.id >= kMaxBackends || backend_ids[b.id])
        return false;
      backend_ids[b.id] = true;
    }
  }
  // Route keys are unique by construction (an upsert replaces by key), and
  // an unchanged route depends only on the unchanged node and VRFs.
  return true;
}

// ---------------------------------------------------------------- digest

namespace {

// Word-at-a-time mixing; a digest for equality checks between processes,
// not a cryptographic hash.
class Digest {
 public:
  explicit Digest(std::uint64_t tag) { u64(tag); }
  void u64(std::uint64_t v) {
    h_ ^= v + 0x9e3779b97f4a7c15ull + (h_ << 6) + (h_ >> 2);
    h_ *= 0xff51afd7ed558ccdull;
    h_ ^= h_ >> 32;
  }
  void str(const std::string &s) {
    u64(s.size());
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      u64(w);
    }
    std::uint64_t tail = 0;
    std::memcpy(&tail, s.data() + i, s.size() - i);
    u64(tail);
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
  // A Maglev table: four independent multiply-rotate lanes over 8-byte
  // words (the tables are most of the bytes), folded in at the end.
  void words(const std::vector<std::uint32_t> &v) {
    u64(v.size());
    constexpr std::uint64_t k = 0x9fb21c651e98df25ull;
    std::uint64_t lane[4] = {1, 2, 3, 4};
    const std::uint32_t *p = v.data();
    std::size_t n = v.size(), i = 0;
    for (; i + 8 <= n; i += 8) {
      for (int l = 0; l < 4; ++l) {
        std::uint64_t w;
        std::memcpy(&w, p + i + 2 * l, 8);
        lane[l] = std::rotl((lane[l] ^ w) * k, 29);
      }
    }
    for (int l = 0; l < 4; ++l)
      u64(lane[l]);
    for (; i < n; ++i)
      u64(p[i]);
  }
  // The entry's hash, avalanched so that sums of similar entries do not
  // cancel out.
  std::uint64_t value() const {
    std::uint64_t h = h_;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
  }

 private:
  std::uint64_t h_ = 0xcbf29ce484222325ull;
};

// One tag per table, so that equal bytes in two tables hash apart.
enum : std::uint64_t { kNodeTag = 1, kNextHopTag, kVrfTag, kRouteTag, kServiceTag, kMaglevTag };

std::uint64_t maglev_hash(const std::vector<std::uint32_t> &slots) {
  Digest d(kMaglevTag);
  d.words(slots);
  return d.value();
}

}  // namespace

MaglevTable::MaglevTable(std::vector<std::uint32_t> slots) {
  if (slots.empty())
    return;  // every empty table is the null one
  auto p = std::make_shared<Slots>();
  p->hash = maglev_hash(slots);
  p->max_slot = *std::max_element(slots.begin(), slots.end());
  p->slots = std::move(slots);
  p_ = std::move(p);
}

std::uint64_t MaglevTable::hash() const {
  static const std::uint64_t kEmpty = maglev_hash({});
  return p_ ? p_->hash : kEmpty;
}

std::uint64_t entry_digest(const NodeTable &n) {
  if (!std::is_sorted(n.ports.begin(), n.ports.end(), port_less)) {
    NodeTable copy = n;
    std::sort(copy.ports.begin(), copy.ports.end(), port_less);
    return entry_digest(copy);
  }
  Digest d(kNodeTag);
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
  return d.value();
}

std::uint64_t entry_digest(const NextHop &h) {
  Digest d(kNextHopTag);
  d.ip(h.remote);
  d.str(h.port);
  d.mac(h.dst_mac);
  d.mac(h.src_mac);
  return d.value();
}

std::uint64_t entry_digest(const Vrf &v) {
  Digest d(kVrfTag);
  d.u64(v.id);
  d.u64(v.vni);
  d.str(v.tenant);
  d.u64(v.gateways.size());
  for (const auto &g : v.gateways)
    d.ip(g);
  return d.value();
}

std::uint64_t entry_digest(const Route &r) {
  Digest d(kRouteTag);
  d.u64(r.vrf);
  d.ip(r.prefix.addr);
  d.u64(r.prefix.len);
  d.u64(static_cast<std::uint64_t>(r.kind));
  d.ip(r.vtep);
  d.u64(r.vni_out);
  d.str(r.port);
  d.mac(r.dst_mac);
  return d.value();
}

std::uint64_t entry_digest(const Service &s) {
  Digest d(kServiceTag);
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
  d.u64(s.maglev.hash());
  return d.value();
}

std::uint64_t digest(const Tables &t) {
  // A sum: independent of the order of every table, and updatable entry by
  // entry (see tables.h).
  std::uint64_t sum = entry_digest(t.node);
  for (const auto &h : t.nexthops)
    sum += entry_digest(h);
  for (const auto &v : t.vrfs)
    sum += entry_digest(v);
  for (const auto &r : t.routes)
    sum += entry_digest(r);
  for (const auto &s : t.services)
    sum += entry_digest(s);
  return sum;
}

namespace {

// Adds to `d` what turns the digest of `from` into that of `to`; false when
// a table is not strictly sorted by `less` (no merge walk possible).
template <typename T, typename Less>
bool digest_walk(const std::vector<T> &from, const std::vector<T> &to, Less less,
                 std::uint64_t &d) {
  return merge_walk(
      from, to, less, [&](const T &a) { d -= entry_digest(a); },
      [&](const T &b) { d += entry_digest(b); },
      [&](const T &a, const T &b) { d += entry_digest(b) - entry_digest(a); });
}

}  // namespace

std::uint64_t digest_update(const Tables &from, std::uint64_t from_digest, const Tables &to) {
  std::uint64_t d = from_digest;
  if (!(from.node == to.node))
    d += entry_digest(to.node) - entry_digest(from.node);
  if (!digest_walk(from.nexthops, to.nexthops, nexthop_less, d) ||
      !digest_walk(from.vrfs, to.vrfs, vrf_less, d) ||
      !digest_walk(from.routes, to.routes, route_less, d) ||
      !digest_walk(from.services, to.services, service_less, d)) {
    return digest(to);
  }
  return d;
}

std::string digest_hex(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string conn_memory_problem(std::uint64_t bytes_each, int count, const std::string &unit,
                                std::uint64_t available, const std::string &remedy) {
  const std::uint64_t need = bytes_each * static_cast<std::uint64_t>(count);
  if (need <= available / 2)
    return "";
  auto mib = [](std::uint64_t b) { return std::to_string((b + (1u << 20) - 1) >> 20) + " MiB"; };
  return "connection tables of " + mib(bytes_each) + " per " + unit + " x " +
         std::to_string(count) + " " + unit + (count == 1 ? "" : "s") + " = " + mib(need) +
         " exceed half of the " + mib(available) + " of memory available; " + remedy;
}

std::uint64_t mem_available() {
  std::FILE *f = std::fopen("/proc/meminfo", "r");
  if (!f)
    return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
      break;
  }
  std::fclose(f);
  return static_cast<std::uint64_t>(kib) * 1024;
}

}  // namespace stratus
