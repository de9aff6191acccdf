// The data-plane tables of SPEC.md §2, as C++ values: what the control
// daemon compiles from the desired state (config/compile.h), what travels in
// the Dataplane API (control/api/convert.h), and what both data planes
// install. Pure data plus the checks and the digest that every side computes
// the same way.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <compare>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stratus {

// An IPv4 or IPv6 address in 16 bytes. IPv4 sits in bytes 0..3 (network
// order) with the rest zero, the same layout as lb/flow_hash.h's key words.
struct IpAddress {
  enum class Family : std::uint8_t { kNone = 0, kV4 = 4, kV6 = 6 };

  Family family = Family::kNone;
  std::array<std::uint8_t, 16> bytes{};

  static std::optional<IpAddress> parse(std::string_view text);
  static IpAddress v4(std::uint32_t host_order);
  std::string str() const;  // "" for kNone
  bool is_v4() const { return family == Family::kV4; }
  bool is_v6() const { return family == Family::kV6; }
  bool empty() const { return family == Family::kNone; }
  // The IPv4 address in network byte order, as read from the packet.
  std::uint32_t v4_be() const;
  std::uint32_t v4_host() const;
  int bit_width() const { return is_v4() ? 32 : is_v6() ? 128 : 0; }

  // By family, then the bytes in network order (what a defaulted <=> does),
  // written as two 64-bit compares: the diffs, digests and sorts of 100k
  // routes compare addresses millions of times.
  friend bool operator==(const IpAddress &a, const IpAddress &b) {
    return a.family == b.family && a.word(0) == b.word(0) && a.word(1) == b.word(1);
  }
  friend std::strong_ordering operator<=>(const IpAddress &a, const IpAddress &b) {
    if (a.family != b.family)
      return a.family <=> b.family;
    if (a.word(0) != b.word(0))
      return a.word(0) <=> b.word(0);
    return a.word(1) <=> b.word(1);
  }

 private:
  // Bytes 8i..8i+7 as a number whose order is the bytes' order.
  std::uint64_t word(int i) const {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + 8 * i, 8);
    if constexpr (std::endian::native == std::endian::little)
      w = __builtin_bswap64(w);
    return w;
  }
};

// A prefix; host bits are always zero once parsed (parse() rejects "10.0.0.1/8"
// so that a typo is not silently widened; canonical() clears them).
struct IpPrefix {
  IpAddress addr;
  std::uint8_t len = 0;

  static std::optional<IpPrefix> parse(std::string_view text);
  std::string str() const;
  bool contains(const IpAddress &a) const;
  bool overlaps(const IpPrefix &other) const;
  IpPrefix canonical() const;

  auto operator<=>(const IpPrefix &) const = default;
};

struct MacAddress {
  std::array<std::uint8_t, 6> bytes{};

  static std::optional<MacAddress> parse(std::string_view text);
  std::string str() const;
  bool is_zero() const { return bytes == std::array<std::uint8_t, 6>{}; }

  friend bool operator==(const MacAddress &a, const MacAddress &b) {
    return std::memcmp(a.bytes.data(), b.bytes.data(), 6) == 0;
  }
  friend std::strong_ordering operator<=>(const MacAddress &a, const MacAddress &b) {
    return std::memcmp(a.bytes.data(), b.bytes.data(), 6) <=> 0;
  }
};

enum class DataplaneKind : std::uint8_t { kXdp, kDpdk };
enum class PortRole : std::uint8_t { kUnderlay, kTenant };
enum class RouteKind : std::uint8_t { kRemote, kLocal, kBlackhole };
enum class Encap : std::uint8_t { kVxlan, kIpip };
enum class BackendState : std::uint8_t { kActive, kDraining, kDown };
enum class ForwardingMode : std::uint8_t { kDsr };

std::string_view to_string(DataplaneKind);
std::string_view to_string(PortRole);
std::string_view to_string(RouteKind);
std::string_view to_string(Encap);
std::string_view to_string(BackendState);
std::string_view to_string(ForwardingMode);

// VRF 0 is the underlay (the host network); tenants have ids from 1.
inline constexpr std::uint32_t kUnderlayVrf = 0;
inline constexpr std::uint32_t kMaxVni = (1u << 24) - 1;
inline constexpr std::uint32_t kDefaultMaglevSize = 65537;
inline constexpr std::uint16_t kDefaultVxlanPort = 4789;

// Capacities that data planes size their tables by. Ids (VRF, service,
// backend) are dense and below these bounds, so per-id counters are arrays.
inline constexpr std::uint32_t kMaxVrfs = 4096;
inline constexpr std::uint32_t kMaxServices = 4096;
inline constexpr std::uint32_t kMaxBackends = 262144;
inline constexpr std::uint32_t kMaxBackendsPerService = 4096;
inline constexpr std::uint32_t kMaxMaglevSize = 1048573;  // a prime just under 2^20
inline constexpr std::uint32_t kMaxPorts = 64;

// Per-node connection-table settings (SPEC §4.2).
struct FlowTableConfig {
  std::uint32_t max_entries = 65536;  // per CPU (XDP) or per worker (DPDK)
  std::uint32_t tcp_timeout_s = 300;
  std::uint32_t udp_timeout_s = 30;

  auto operator<=>(const FlowTableConfig &) const = default;
};

// A port of the node, named as the data plane knows it (an interface name for
// XDP, a DPDK port name or vdev for DPDK). Tenant ports are bound to one VRF.
struct Port {
  std::string name;
  PortRole role = PortRole::kUnderlay;
  MacAddress mac;         // zero: use the device's own address
  std::uint32_t vrf = 0;  // tenant ports only

  auto operator<=>(const Port &) const = default;
};

// Table 1: the node itself.
struct NodeTable {
  std::string name;
  DataplaneKind kind = DataplaneKind::kXdp;
  std::vector<IpAddress>
      vteps;  // local VTEP addresses (VXLAN is decapsulated when outer dst is one)
  std::uint16_t vxlan_port = kDefaultVxlanPort;
  std::uint32_t underlay_mtu = 1500;
  MacAddress gateway_mac;       // inner source MAC of routed packets; ARP answers
  std::uint32_t hash_seed = 0;  // lb/flow_hash.h seed, the same on every node
  FlowTableConfig flows;
  std::vector<Port> ports;

  auto operator<=>(const NodeTable &) const = default;
};

// Table 2: how to reach a remote underlay address. `remote` empty is the
// default next hop.
struct NextHop {
  IpAddress remote;
  std::string port;  // egress port name (a NodeTable port)
  MacAddress dst_mac;
  MacAddress src_mac;  // zero: the egress port's MAC

  auto operator<=>(const NextHop &) const = default;
};

// Table 3: a tenant's VRF.
struct Vrf {
  std::uint32_t id = 0;   // dense, >= 1
  std::uint32_t vni = 0;  // 24 bit
  std::string tenant;
  std::vector<IpAddress> gateways;  // tenant gateway addresses answered by ARP

  auto operator<=>(const Vrf &) const = default;
};

// Table 4: a route in a VRF.
struct Route {
  std::uint32_t vrf = 0;
  IpPrefix prefix;
  RouteKind kind = RouteKind::kBlackhole;
  IpAddress vtep;             // kRemote: the VTEP to encapsulate toward
  std::uint32_t vni_out = 0;  // kRemote: VNI on the wire (may differ from the VRF's: translation)
  std::string port;           // kLocal: tenant port to deliver on
  MacAddress dst_mac;         // kRemote: inner destination MAC; kLocal: destination MAC

  auto operator<=>(const Route &) const = default;
};

// Table 6: a backend of a service, with the encapsulation that reaches it.
struct Backend {
  std::uint32_t id = 0;  // dense, global across services; stable across pushes
  std::string name;
  IpAddress addr;
  std::uint32_t vrf = 0;  // 0: outside the overlay
  std::uint32_t weight = 1;
  BackendState state = BackendState::kActive;
  Encap encap = Encap::kVxlan;
  IpAddress tunnel_dst;      // kVxlan: the VTEP hosting it; kIpip: its underlay address
  std::uint32_t vni = 0;     // kVxlan: the backend's VNI
  MacAddress inner_dst_mac;  // kVxlan: the backend's MAC

  auto operator<=>(const Backend &) const = default;
};

// A service's Maglev table: slot -> index into the service's backends.
// Immutable and shared: copies of a Tables share one table per service, and
// two tables that share their slots compare equal without reading them. A
// change to one service therefore copies, compares and hashes that service's
// table only, wherever Tables are copied (compile, runtime overrides, the
// data plane's spare tables) or compared (diffs, digests, driver deltas).
// The slots are hashed once, when the table is made (see hash()).
class MaglevTable {
 public:
  MaglevTable() = default;
  MaglevTable(std::vector<std::uint32_t> slots);  // NOLINT(google-explicit-constructor)
  MaglevTable(std::initializer_list<std::uint32_t> slots)
      : MaglevTable(std::vector<std::uint32_t>(slots)) {}

  std::size_t size() const { return p_ ? p_->slots.size() : 0; }
  bool empty() const { return size() == 0; }
  std::uint32_t operator[](std::size_t slot) const { return p_->slots[slot]; }
  const std::uint32_t *data() const { return p_ ? p_->slots.data() : nullptr; }
  const std::uint32_t *begin() const { return data(); }
  const std::uint32_t *end() const { return data() + size(); }
  std::span<const std::uint32_t> span() const { return {data(), size()}; }
  void clear() { p_.reset(); }

  // A 64-bit hash of the slots (what digest() folds in for the table).
  std::uint64_t hash() const;
  // The largest backend index in the table (0 when empty): check() needs no
  // walk over the slots.
  std::uint32_t max_slot() const { return p_ ? p_->max_slot : 0; }
  // Whether both hold the very same slots object (then they are equal).
  bool shares(const MaglevTable &o) const { return p_ == o.p_; }

  friend bool operator==(const MaglevTable &a, const MaglevTable &b) {
    if (a.p_ == b.p_)
      return true;
    if (a.size() != b.size() || a.hash() != b.hash())
      return false;
    return std::equal(a.begin(), a.end(), b.begin());
  }
  friend std::strong_ordering operator<=>(const MaglevTable &a, const MaglevTable &b) {
    if (a.p_ == b.p_)
      return std::strong_ordering::equal;
    return std::lexicographical_compare_three_way(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  struct Slots {
    std::vector<std::uint32_t> slots;
    std::uint64_t hash = 0;
    std::uint32_t max_slot = 0;
  };
  std::shared_ptr<const Slots> p_;  // null: no slots
};

// Tables 5 and 7: a service (VIP), its backends and its Maglev table.
struct Service {
  std::uint32_t id = 0;  // dense, >= 0; stable across pushes
  std::string name;
  std::uint32_t vrf = kUnderlayVrf;
  IpAddress vip;
  std::uint8_t proto = 6;  // IPPROTO_TCP / IPPROTO_UDP
  std::uint16_t port = 0;  // 0: any port
  std::uint32_t maglev_size = kDefaultMaglevSize;
  std::uint32_t hash_flags = 0x1f;  // STRATUS_HASH_* (lb/flow_hash.h)
  ForwardingMode mode = ForwardingMode::kDsr;
  std::vector<Backend> backends;
  // slot -> index into `backends`; maglev_size entries, or empty when no
  // backend can take new flows (every packet of a new flow is then dropped
  // with reason no_backend).
  MaglevTable maglev;

  auto operator<=>(const Service &) const = default;
};

// Everything one data-plane node holds.
struct Tables {
  NodeTable node;
  std::vector<NextHop> nexthops;
  std::vector<Vrf> vrfs;
  std::vector<Route> routes;
  std::vector<Service> services;

  auto operator<=>(const Tables &) const = default;
};

// Sorts every table by its key (next hops by remote, VRFs by id, routes by
// (vrf, prefix), services by id; backends keep their order because Maglev
// entries index them), so that equal contents compare and digest equal.
void canonicalize(Tables &t);

// The canonical order of each table, as canonicalize() sorts it.
bool nexthop_less(const NextHop &a, const NextHop &b);
bool vrf_less(const Vrf &a, const Vrf &b);
bool route_less(const Route &a, const Route &b);
bool service_less(const Service &a, const Service &b);

// The keys that routes and services are sorted by (route_less, service_less).
inline std::pair<std::uint32_t, IpPrefix> route_key_of(const Route &r) {
  return {r.vrf, r.prefix};
}
inline std::uint32_t service_key_of(const Service &s) {
  return s.id;
}

// The entry of a canonical table (strictly sorted by `key_of`) whose key is
// `key`, or nullptr: a binary search.
template <typename T, typename Key, typename KeyOf>
const T *find_canonical(const std::vector<T> &table, const Key &key, KeyOf key_of) {
  auto it = std::lower_bound(table.begin(), table.end(), key,
                             [&](const T &x, const Key &k) { return key_of(x) < k; });
  return it != table.end() && key_of(*it) == key ? &*it : nullptr;
}

// Walks two tables strictly sorted by `less` in step, in key order:
// removed(a) for an entry only in `from`, added(b) for one only in `to`,
// changed(a, b) for one in both whose contents differ. What every diff of
// canonical tables is built on (operations, digest updates, driver deltas).
// false, having called nothing, when either table is not strictly sorted.
template <typename T, typename Less, typename Removed, typename Added, typename Changed>
bool merge_walk(const std::vector<T> &from, const std::vector<T> &to, Less less, Removed removed,
                Added added, Changed changed) {
  auto strictly_sorted = [&](const std::vector<T> &v) {
    return std::adjacent_find(v.begin(), v.end(),
                              [&](const T &a, const T &b) { return !less(a, b); }) == v.end();
  };
  if (!strictly_sorted(from) || !strictly_sorted(to))
    return false;
  std::size_t i = 0, j = 0;
  while (i < from.size() || j < to.size()) {
    if (j == to.size() || (i < from.size() && less(from[i], to[j]))) {
      removed(from[i++]);
    } else if (i == from.size() || less(to[j], from[i])) {
      added(to[j++]);
    } else {
      if (!(from[i] == to[j]))
        changed(from[i], to[j]);
      ++i;
      ++j;
    }
  }
  return true;
}

// Referential and range checks that a data plane runs before it applies
// anything: every error, each as "routes[3] (vrf 2, 10.0.0.0/8): unknown port \"x\"".
// Empty when the tables are consistent.
std::vector<std::string> check(const Tables &t);

// check() for tables that passed check() and then had only the routes and
// services at these indexes replaced or added (the node, next hops and VRFs
// unchanged; deleting a route or a service cannot break the others): true
// when check(t) is empty, at a cost in the changed entries plus one pass over
// the services' keys and backend ids. false means "run check(t)" (for its
// messages), not necessarily that something is wrong.
bool check_changed(const Tables &t, const std::vector<std::size_t> &routes,
                   const std::vector<std::size_t> &services);

// A 64-bit digest of the tables' contents, whatever the order of each table;
// the control daemon and every data plane compute it alike and compare after
// each push. It is the sum (mod 2^64) of one entry_digest() per entry (the
// node table, each next hop, VRF, route and service with its backends and
// Maglev table), so a side that replaces k entries updates it in O(k):
// digest - entry_digest(old) + entry_digest(new).
std::uint64_t digest(const Tables &t);
std::uint64_t entry_digest(const NodeTable &n);
std::uint64_t entry_digest(const NextHop &h);
std::uint64_t entry_digest(const Vrf &v);
std::uint64_t entry_digest(const Route &r);
std::uint64_t entry_digest(const Service &s);
// digest(to) from digest(from) (`from_digest`): only the entries that differ
// are hashed (a merge walk when both are canonical, else digest(to)), so a
// small change costs a comparison of the tables rather than a hash of all
// of them.
std::uint64_t digest_update(const Tables &from, std::uint64_t from_digest, const Tables &to);
std::string digest_hex(std::uint64_t d);

// Connection tables, on either data plane, may take half of the memory
// free on the host at most. Why tables of `bytes_each` for each of `count`
// units (`unit`: "CPU", "worker") cannot be made with `available` bytes
// free, ending with `remedy`; empty when they can.
std::string conn_memory_problem(std::uint64_t bytes_each, int count, const std::string &unit,
                                std::uint64_t available, const std::string &remedy);
// MemAvailable from /proc/meminfo, in bytes; 0 when unknown.
std::uint64_t mem_available();

}  // namespace stratus
