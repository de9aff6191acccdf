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

// Per-VRF LPM (rte_lpm, IPv4), shared between snapshots while the VRF's list
// of prefixes is unchanged. The LPM's next hop is an index into the VRF's
// route actions, which are rebuilt with every snapshot.
class Lpm {
 public:
  explicit Lpm(const std::vector<IpPrefix> &prefixes);
  ~Lpm();
  Lpm(const Lpm &) = delete;
  Lpm &operator=(const Lpm &) = delete;
  const std::vector<IpPrefix> &prefixes() const { return prefixes_; }
  rte_lpm *get() const { return lpm_; }

 private:
  std::vector<IpPrefix> prefixes_;
  rte_lpm *lpm_ = nullptr;
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

// An immutable open-addressing map from a flow-key-shaped key to a value,
// built once. Hashed with CRC32-C (one instruction per 8 bytes), not the
// flow hash: this hash is private to the snapshot.
template <typename V>
class KeyMap {
 public:
  void build(const std::vector<std::pair<stratus_flow_key, V>> &items);
  const V *find(const stratus_flow_key &key) const;

 private:
  struct Slot {
    bool used = false;
    stratus_flow_key key{};
    V value{};
  };
  std::vector<Slot> slots_;
  std::uint32_t mask_ = 0;
};

// Key of a service: (vrf, vip, proto, port); port 0 = any port.
stratus_flow_key service_key(std::uint32_t vrf, const std::uint32_t *vip_words, std::uint8_t proto,
                             std::uint16_t port_be);

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

  KeyMap<std::uint32_t> vni_to_vrf;  // key: vrf field = VNI
  std::vector<VrfEntry> vrfs;        // indexed by VRF id
  KeyMap<std::uint32_t> services;    // service_key -> index into service_list
  KeyMap<std::uint8_t> vip_protos;   // (vrf, vip, proto, port 0) of every VIP: fragments
  KeyMap<std::uint8_t> vip_addrs;    // (vrf, vip) of every VIP, proto and port 0
  std::vector<ServiceEntry> service_list;
  std::vector<BackendEntry> backends;  // indexed by backend id

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

// Fills the per-packet fields of an outer header in place: `hdr` points at
// the copied template, `inner_len` is what follows it, `tos` the inner
// packet's (copied to the outer header).
void finish_encap(const EncapTemplate &tpl, std::uint8_t *hdr, std::uint32_t inner_len,
                  std::uint8_t tos, std::uint16_t udp_sport);

// ---------------------------------------------------------------- inline

// Mixes the words a table key uses (first address word, VRF, ports, proto):
// three CRC32-C instructions. Keys that differ elsewhere only share a slot
// chain; equality decides.
inline std::uint32_t key_map_hash(const stratus_flow_key &k) {
  std::uint32_t ports;
  std::memcpy(&ports, &k.sport, sizeof ports);
  std::uint32_t h =
      rte_hash_crc_8byte(std::uint64_t{k.dst[0]} | std::uint64_t{k.vrf} << 32, k.src[0]);
  h = rte_hash_crc_4byte(ports, h);
  return rte_hash_crc_4byte(k.proto, h);
}

template <typename V>
void KeyMap<V>::build(const std::vector<std::pair<stratus_flow_key, V>> &items) {
  std::uint32_t n = 8;
  while (n < items.size() * 2)
    n <<= 1;
  slots_.assign(n, Slot{});
  mask_ = n - 1;
  for (const auto &[k, v] : items) {
    std::uint32_t s = key_map_hash(k) & mask_;
    while (slots_[s].used && std::memcmp(&slots_[s].key, &k, sizeof k) != 0)
      s = (s + 1) & mask_;
    slots_[s].used = true;
    slots_[s].key = k;
    slots_[s].value = v;
  }
}

template <typename V>
const V *KeyMap<V>::find(const stratus_flow_key &key) const {
  if (slots_.empty())
    return nullptr;
  for (std::uint32_t s = key_map_hash(key) & mask_;; s = (s + 1) & mask_) {
    const Slot &slot = slots_[s];
    if (!slot.used)
      return nullptr;
    if (std::memcmp(&slot.key, &key, sizeof key) == 0)
      return &slot.value;
  }
}

}  // namespace stratus::dpdk
