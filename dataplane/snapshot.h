// FibSnapshot: the tables of SPEC.md §2 compiled for the fast path, immutable
// once built. Workers read one snapshot per loop iteration; the driver builds
// the next one aside and publishes it with one pointer swap (rcu.h).
//
// Everything that can be resolved at build time is: a route or backend
// carries its egress port and a ready outer-header template (next hop, MACs,
// VTEP source), so the fast path never looks up next hops and only fills in
// lengths, checksum and the UDP source port.
#pragma once

#include <array>
#include <cstring>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/tables.h"
#include "dataplane/dpdk.h"
#include "lb/drop_reason.h"
#include "lb/flow_hash.h"

namespace stratus::dpdk {

inline constexpr std::uint16_t kNoDev = 0xffff;
inline constexpr std::uint16_t kNoPort = 0xffff;
inline constexpr std::uint8_t kNoDrop = 0xff;

// What the driver knows about a named DPDK port.
struct DeviceInfo {
  std::uint16_t dev = kNoDev;
  MacAddress mac;
};
// Resolves a node-table port name to a device; nullopt when absent.
using PortResolver = std::function<std::optional<DeviceInfo>(const std::string &)>;

struct PortEntry {
  std::string name;
  PortRole role = PortRole::kUnderlay;
  std::uint32_t vrf = 0;
  std::array<std::uint8_t, 6> mac{};  // the node table's, or the device's when zero
  std::uint16_t dev = kNoDev;         // kNoDev: not present on this node
};

enum class EncapKind : std::uint8_t { kNone, kVxlan, kIpip };

inline constexpr std::uint32_t kVxlanHeaderLen = 14 + 20 + 8 + 8;
inline constexpr std::uint32_t kIpipHeaderLen = 14 + 20;

// A ready outer header toward one tunnel endpoint.
struct EncapTemplate {
  EncapKind kind = EncapKind::kNone;
  std::uint8_t drop = kNoDrop;       // STRATUS_DROP_* when unreachable (no next hop, port down)
  std::uint16_t out_port = kNoPort;  // index into FibSnapshot::ports
  std::uint32_t ip_sum =
      0;  // one's-complement sum of the outer IPv4 header; TOS, length, checksum zero
  alignas(8) std::array<std::uint8_t, kVxlanHeaderLen> hdr{};
};

struct RouteAction {
  RouteKind kind = RouteKind::kBlackhole;
  std::uint8_t drop = kNoDrop;       // kLocal: PORT_DOWN when the port is absent
  std::uint16_t out_port = kNoPort;  // kLocal
  std::array<std::uint8_t, 6> dst_mac{};
  EncapTemplate encap;  // kRemote
};

// A VRF's IPv4 longest-prefix match, shared between snapshots while the
// VRF's list of prefixes is unchanged. The next hop is an index into the
// VRF's route actions, which are rebuilt with every snapshot.
//
// Two forms. rte_lpm's first level is 2^24 entries, 64 MiB of EAL memory
// per VRF however few its routes: a gateway with a few hundred tenants
// would need tens of GiB of hugepages. So a VRF of at most kSmallRoutes
// prefixes of at most kSmallLengths distinct lengths (a tenant's subnets,
// a default route, a few host routes) is a hash table per prefix length
// instead, longest first: a few KiB, a probe or two per length present.
// Larger VRFs get an rte_lpm (one or two loads per lookup).
class Lpm {
 public:
  static constexpr std::size_t kSmallRoutes = 256;
  static constexpr std::size_t kSmallLengths = 6;
  enum class Form : std::uint8_t { kAuto, kPerLength, kRteLpm };

  explicit Lpm(const std::vector<IpPrefix> &prefixes, Form form = Form::kAuto);
  ~Lpm();
  Lpm(const Lpm &) = delete;
  Lpm &operator=(const Lpm &) = delete;
  const std::vector<IpPrefix> &prefixes() const { return prefixes_; }
  // The rte_lpm, or nullptr for the per-length form.
  rte_lpm *get() const { return lpm_; }

  // The index of the longest prefix containing `addr` (host order), like
  // rte_lpm_lookup(); a prefix listed twice maps to its last index. Left to
  // the compiler to inline: forced into the burst loop, it changed that
  // loop's code enough to cost the load balancer 40 cycles per packet at
  // 1M flows (pipeline_bench, 102 -> 142).
  bool lookup(std::uint32_t addr, std::uint32_t *nh) const {
    if (lpm_ != nullptr) {
      if (rte_lpm_lookup(lpm_, addr, nh) == 0)
        return true;
      *nh = default_nh_;  // rte_lpm takes no /0
      return default_nh_ != kEmpty;
    }
    for (const Level &l : levels_) {
      const std::uint32_t key = addr & l.mask;
      const Slot *slots = slots_.data() + l.first;
      for (std::uint32_t i = slot_of(key, l.shift);; i = (i + 1) & l.slot_mask) {
        if (slots[i].nh == kEmpty)
          break;
        if (slots[i].key == key) {
          *nh = slots[i].nh;
          return true;
        }
      }
    }
    return false;
  }

 private:
  static constexpr std::uint32_t kEmpty = ~0u;
  struct Slot {
    std::uint32_t key = 0;  // the prefix's address, masked
    std::uint32_t nh = kEmpty;
  };
  struct Level {
    std::uint32_t mask;       // of the prefix length
    std::uint32_t first;      // its slots in slots_
    std::uint32_t slot_mask;  // slots - 1 (a power of two, at least twice the prefixes)
    std::uint32_t shift;      // 64 - log2(slots)
  };
  static std::uint32_t slot_of(std::uint32_t key, std::uint32_t shift) {
    return static_cast<std::uint32_t>((key * 0x9e3779b97f4a7c15ull) >> shift);
  }
  void build_levels();
  void build_rte_lpm();

  std::vector<IpPrefix> prefixes_;
  rte_lpm *lpm_ = nullptr;
  std::uint32_t default_nh_ = kEmpty;  // with lpm_: the /0, which rte_lpm refuses
  std::vector<Level> levels_;          // longest prefix first
  std::vector<Slot> slots_;
};

struct VrfEntry {
  bool present = false;
  std::uint32_t vni = 0;
  std::vector<std::uint32_t> gateways_be;  // answered by ARP on tenant ports
  std::shared_ptr<const Lpm> lpm;          // null: no IPv4 route
  std::vector<RouteAction> actions;        // indexed by the LPM next hop
};

struct ServiceEntry {
  std::uint32_t id = 0;
  std::uint32_t hash_flags = STRATUS_HASH_DEFAULT;
  std::uint32_t maglev_size = 0;
  // slot -> global backend id; empty when no backend takes new flows.
  // Shared with the previous snapshot when the service did not change.
  std::shared_ptr<const std::vector<std::uint32_t>> maglev;
};

struct BackendEntry {
  bool present = false;
  BackendState state = BackendState::kDown;
  std::uint32_t service_id = 0;
  std::array<std::uint8_t, 6> inner_dst_mac{};
  EncapTemplate encap;
};

// An immutable open-addressing map from a 64-bit key to a small value,
// built once: one multiply picks the slot, and a miss (the common case: most
// packets are not for a VIP) usually costs one probe of one cache line.
template <typename V>
class U64Map {
 public:
  void build(const std::vector<std::pair<std::uint64_t, V>> &items);
  [[gnu::always_inline]] inline const V *find(std::uint64_t key) const;

 private:
  struct Slot {
    std::uint64_t key = 0;
    bool used = false;
    V value{};
  };
  std::uint32_t slot_of(std::uint64_t key) const {
    return static_cast<std::uint32_t>((key * 0x9e3779b97f4a7c15ull) >> shift_);
  }
  // Before build(): two empty slots (any key's slot_of is 0 or 1), so that
  // find() needs no emptiness check.
  std::vector<Slot> slots_ = std::vector<Slot>(2);
  std::uint32_t mask_ = 1;
  std::uint32_t shift_ = 63;
};

// The key of an IPv4 address in a VRF (VIPs).
inline std::uint64_t vip_key(std::uint32_t vrf, std::uint32_t addr_be) {
  return std::uint64_t{vrf} << 32 | addr_be;
}

// One service of a VIP address: the fast path finds the address with one
// probe, then scans its few (proto, port) pairs.
struct VipService {
  std::uint8_t proto = 0;
  std::uint16_t port_be = 0;  // 0: any port
  std::uint32_t service = 0;  // index into FibSnapshot::service_list
};
struct VipRef {
  std::uint32_t first = 0;  // into FibSnapshot::vip_services
  std::uint32_t count = 0;
};

// A one-hash Bloom filter over the VIP keys: most packets are for no VIP,
// and a clear bit says so with one multiply and one load, where the map
// would go on to its slot (a variable shift, a load, often a key compare
// and a second slot). 4096 bits: under 10% false positives up to ~400 VIP
// addresses, and a false positive only costs the map's probe.
class VipFilter {
 public:
  void add(std::uint64_t key) {
    const std::uint32_t b = bit(key);
    words_[b / 64] |= std::uint64_t{1} << (b % 64);
  }
  [[gnu::always_inline]] bool may_contain(std::uint64_t key) const {
    const std::uint32_t b = bit(key);
    return (words_[b / 64] >> (b % 64) & 1) != 0;
  }

 private:
  static constexpr std::uint32_t kBits = 4096;
  // The top bits of the key times another odd constant than U64Map's: the
  // bit is not a function of the map slot, so keys that collide in the map
  // mostly do not collide here.
  static std::uint32_t bit(std::uint64_t key) {
    return static_cast<std::uint32_t>((key * 0xc2b2ae3d27d4eb4full) >> 52);
  }
  static_assert(kBits == 1u << 12);
  std::array<std::uint64_t, kBits / 64> words_{};
};

struct FibSnapshot {
  // Node.
  std::string node_name;
  std::vector<std::uint32_t> vteps_be;
  std::uint32_t vtep_src_be = 0;  // outer source of encapsulated packets
  std::uint16_t vxlan_port_be = 0;
  std::uint32_t underlay_mtu = 1500;
  std::array<std::uint8_t, 6> gateway_mac{};
  std::uint32_t hash_seed = 0;
  std::uint32_t flow_limit = 0;
  std::uint64_t tcp_timeout = 0;  // in the caller's clock ticks
  std::uint64_t udp_timeout = 0;

  std::vector<PortEntry> ports;                        // node-table order
  std::array<std::uint16_t, kMaxPorts> port_by_dev{};  // dev id -> index, kNoPort
  std::uint16_t host_egress = kNoPort;  // first present underlay port: the host's traffic

  U64Map<std::uint32_t> vni_to_vrf;  // VNI -> VRF id
  std::vector<VrfEntry> vrfs;        // indexed by VRF id
  U64Map<VipRef> vips;               // vip_key(vrf, address) -> its services
  VipFilter vip_filter;              // the keys of `vips`
  std::vector<VipService> vip_services;
  std::vector<ServiceEntry> service_list;
  std::vector<BackendEntry> backends;  // indexed by backend id

  // The services of an IPv4 address in a VRF, null when it is no VIP.
  [[gnu::always_inline]] const VipRef *find_vip(std::uint32_t vrf_id, std::uint32_t addr_be) const {
    const std::uint64_t key = vip_key(vrf_id, addr_be);
    return vip_filter.may_contain(key) ? vips.find(key) : nullptr;
  }
  const VrfEntry *vrf(std::uint32_t id) const {
    return id < vrfs.size() && vrfs[id].present ? &vrfs[id] : nullptr;
  }
  const BackendEntry *backend(std::uint32_t id) const {
    return id < backends.size() && backends[id].present ? &backends[id] : nullptr;
  }
  std::uint16_t port_index(std::uint16_t dev) const {
    return dev < port_by_dev.size() ? port_by_dev[dev] : kNoPort;
  }
};

// Builds a snapshot of `t` (which has passed stratus::check()). `prev`, if
// given, lends unchanged LPMs and Maglev tables. `ticks_per_s` converts the
// flow timeouts to the workers' clock. Throws std::runtime_error with the
// reason when a table cannot be built (e.g. no memory for an LPM).
std::unique_ptr<FibSnapshot> build_snapshot(const Tables &t, const PortResolver &resolve,
                                            const FibSnapshot *prev, std::uint64_t ticks_per_s);

// Fills the per-packet fields of an outer header of kind K (kVxlan or
// kIpip) in place: `hdr` points at the copied template, `ip_sum` is the
// template's EncapTemplate::ip_sum, `inner_len` is what follows the
// header, `tos` the inner packet's (copied to the outer header).
template <EncapKind K>
inline void finish_encap(std::uint32_t ip_sum, std::uint8_t *hdr, std::uint32_t inner_len,
                         std::uint8_t tos, std::uint16_t udp_sport);

// ---------------------------------------------------------------- inline

// Inline and in 16-bit stores: it runs once per encapsulated packet.
// __builtin_bswap16 rather than rte_cpu_to_be_16, whose x86 form is an asm
// volatile statement that the compiler may neither merge nor move.
template <EncapKind K>
inline void finish_encap(std::uint32_t ip_sum, std::uint8_t *hdr, std::uint32_t inner_len,
                         std::uint8_t tos, std::uint16_t udp_sport) {
  static_assert(K == EncapKind::kVxlan || K == EncapKind::kIpip);
  auto put = [](std::uint8_t *p, std::uint32_t host16) {
    const std::uint16_t be = __builtin_bswap16(static_cast<std::uint16_t>(host16));
    std::memcpy(p, &be, 2);
  };
  std::uint8_t *ip = hdr + 14;
  const std::uint32_t ip_len = K == EncapKind::kVxlan ? 20 + 8 + 8 + inner_len : 20 + inner_len;
  ip[1] = tos;
  put(ip + 2, ip_len);
  std::uint32_t s = ip_sum + tos + ip_len;
  s = (s & 0xffff) + (s >> 16);
  s = (s & 0xffff) + (s >> 16);
  put(ip + 10, ~s);
  if constexpr (K == EncapKind::kVxlan) {
    put(ip + 20, udp_sport);
    put(ip + 24, ip_len - 20);
  }
}

template <typename V>
void U64Map<V>::build(const std::vector<std::pair<std::uint64_t, V>> &items) {
  std::uint32_t n = 8;
  std::uint32_t bits = 3;
  while (n < items.size() * 2) {
    n <<= 1;
    ++bits;
  }
  slots_.assign(n, Slot{});
  mask_ = n - 1;
  shift_ = 64 - bits;
  for (const auto &[k, v] : items) {
    std::uint32_t s = slot_of(k);
    while (slots_[s].used && slots_[s].key != k)
      s = (s + 1) & mask_;
    slots_[s].used = true;
    slots_[s].key = k;
    slots_[s].value = v;
  }
}

template <typename V>
const V *U64Map<V>::find(std::uint64_t key) const {
  for (std::uint32_t s = slot_of(key);; s = (s + 1) & mask_) {
    const Slot &slot = slots_[s];
    if (!slot.used)
      return nullptr;
    if (slot.key == key)
      return &slot.value;
  }
}

}  // namespace stratus::dpdk
