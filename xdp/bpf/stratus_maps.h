/* Map keys, map values and map sizes shared by the BPF programs
 * (xdp/bpf/maps.h declares the maps) and the C++ loader (xdp/xdp_driver.cc
 * fills them). The ONE definition of these layouts: both sides include this
 * file, and the C++ side checks sizes and offsets below.
 *
 * Addresses are 16 bytes everywhere (IPv6-wide keys, SPEC.md §2); an IPv4
 * address sits in word 0 in network byte order, words 1..3 zero, the same
 * layout as lb/flow_hash.h. MACs are raw bytes. Ids (port index, VRF,
 * service, backend) are host order.
 */
#ifndef STRATUS_XDP_BPF_STRATUS_MAPS_H
#define STRATUS_XDP_BPF_STRATUS_MAPS_H

#include <linux/types.h>

/* Map capacities; they must equal config/tables.h's kMax* (checked in C++).
 * Changing one changes the map definition, and a restarted agent then can
 * no longer reuse the pinned map. */
#define STRATUS_MAX_PORTS 64
#define STRATUS_MAX_VRFS 4096
#define STRATUS_MAX_SERVICES 4096
#define STRATUS_MAX_BACKENDS 262144
#define STRATUS_MAX_VTEPS 4
#define STRATUS_MAX_NEXTHOPS 4096
#define STRATUS_MAX_GATEWAYS 16384
#define STRATUS_MAX_ROUTES 262144
#define STRATUS_MAX_SERVICE_KEYS 8192
#define STRATUS_MAX_CPUS 256
/* Ports whose ifindex is below this are found in the port_slots array,
 * the others in the ports hash. */
#define STRATUS_PORT_SLOTS 4096
/* Room for drop reasons appended to lb/drop_reasons.def later without
 * changing the pinned counter map. */
#define STRATUS_MAX_DROP_REASONS 64

enum stratus_port_role {
  STRATUS_PORT_UNDERLAY = 0,
  STRATUS_PORT_TENANT = 1,
};

enum stratus_route_kind {
  STRATUS_ROUTE_REMOTE = 0,
  STRATUS_ROUTE_LOCAL = 1,
  STRATUS_ROUTE_BLACKHOLE = 2,
};

/* 0 marks an unused slot of the backends array, so that a connection entry
 * pointing at a removed backend is treated like one pointing at a down one. */
enum stratus_backend_state {
  STRATUS_BACKEND_UNUSED = 0,
  STRATUS_BACKEND_ACTIVE = 1,
  STRATUS_BACKEND_DRAINING = 2,
  STRATUS_BACKEND_DOWN = 3,
};

enum stratus_encap {
  STRATUS_ENCAP_VXLAN = 0,
  STRATUS_ENCAP_IPIP = 1,
};

/* Indexes of the misc_stats per-CPU array. */
enum stratus_misc_counter {
  STRATUS_MISC_CONN_HIT = 0,
  STRATUS_MISC_CONN_MISS = 1,
  STRATUS_MISC_PASS = 2,
  STRATUS_MISC_ARP_REPLY = 3,
  STRATUS_MISC_CONN_EXPIRED = 4, /* a hit older than its timeout, counted as a miss too */
  STRATUS_MISC_ICMP_TO_BACKEND = 5,
  STRATUS_MISC__COUNT = 16,
};

/* node_cfg[0]: the node table. `configured` is 0 until the first install;
 * the program passes every frame to the host until then. */
struct stratus_node_cfg {
  __be32 vteps[STRATUS_MAX_VTEPS][4]; /* local VTEPs; vteps[0] is the outer source */
  __u32 n_vteps;
  __u32 mtu;       /* underlay MTU: largest outer IPv4 packet */
  __u32 hash_seed; /* lb/flow_hash.h seed */
  __be16 vxlan_port;
  __u8 gateway_mac[6]; /* inner source MAC of routed packets, ARP answers */
  __u32 configured;
  __u32 pad;
  __u64 tcp_timeout_ns;
  __u64 udp_timeout_ns;
};

/* port_slots and ports: ifindex -> port. `index` selects the port's
 * counters and its tx_ports devmap slot. */
struct stratus_port {
  __u32 index;
  __u32 vrf;  /* tenant ports */
  __u32 role; /* enum stratus_port_role */
  __u8 mac[6];
  __u8 in_use; /* 1; 0: an unused port_slots slot */
  __u8 pad;
};

/* The underlay next hop toward a remote address (SPEC.md §2.2), resolved
 * by the loader when it encodes a remote route or a backend: the next hop
 * of that exact address, else the default one. Embedded in the route and
 * the backend so that an encapsulation needs no lookup of its own; a
 * change of the next-hop table rewrites the routes and backends that it
 * changes (install writes what differs). */
struct stratus_nexthop {
  __u32 port; /* egress port index */
  __u8 dst_mac[6];
  __u8 src_mac[6]; /* resolved: never zero */
};

/* gateways: (vrf, tenant gateway address) -> 1; ARP on tenant ports. */
struct stratus_gw_key {
  __u32 vrf;
  __be32 addr[4];
};

/* routes (LPM trie). prefixlen counts the 32 bits of vrf, which is stored
 * big-endian so that the trie matches it whole before the address. */
struct stratus_route_key {
  __u32 prefixlen;
  __be32 vrf;
  __be32 addr[4];
};

struct stratus_route {
  __u32 kind;       /* enum stratus_route_kind */
  __u32 port;       /* LOCAL: egress port index */
  __u32 vni;        /* REMOTE: VNI on the wire */
  __be32 vtep[4];   /* REMOTE: outer destination */
  __u8 dst_mac[6];  /* REMOTE: inner destination MAC; LOCAL: destination MAC */
  __u8 has_nexthop; /* REMOTE: 0 when no next hop reaches vtep (no_nexthop) */
  __u8 pad;
  struct stratus_nexthop nexthop; /* REMOTE: the next hop toward vtep */
};

/* services key: (vrf, VIP, protocol, port); port 0 = any port. */
struct stratus_service_key {
  __u32 vrf;
  __be32 vip[4];
  __be16 port;
  __u8 proto;
  __u8 pad;
};

/* vips: (vrf, VIP, protocol) -> the services on it, whatever their port:
 * fragments to a VIP are dropped, and only VIP traffic of the underlay
 * enters the VRF pipeline (docs/packet-behaviour.md §3.3, §4.1). */
struct stratus_vip_key {
  __u32 vrf;
  __be32 vip[4];
  __u8 proto;
  __u8 pad[3];
};

struct stratus_service {
  __u32 id;
  __u32 maglev_size; /* slots in maglev[id]; 0: no backend takes new flows */
  __u32 hash_flags;  /* STRATUS_HASH_* */
  __u32 pad;
};

/* The value of vips. The service of a packet is found with this one
 * lookup when the VIP has at most one service with a port (besides a
 * port-0 one), which it carries here; only a VIP with several ports needs
 * the `services` map. */
struct stratus_vip {
  __u32 services;      /* services on (vrf, VIP, protocol), any port; >= 1 */
  __u32 port_services; /* of which with a port other than 0 */
  __be16 port;         /* port_services == 1: that service's port */
  __u8 has_any_port;   /* 1: `any_port` is the port-0 service */
  __u8 pad;
  struct stratus_service port_service; /* port_services == 1: that service */
  struct stratus_service any_port;     /* has_any_port: the port-0 service */
};

/* backends: global backend id -> how to reach it. */
struct stratus_backend {
  __u32 state; /* enum stratus_backend_state */
  __u32 encap; /* enum stratus_encap */
  __u32 vni;   /* VXLAN */
  __be32 tunnel_dst[4];
  __u8 mac[6];      /* VXLAN: inner destination MAC */
  __u8 has_nexthop; /* 0 when no next hop reaches tunnel_dst (no_nexthop) */
  __u8 pad;
  struct stratus_nexthop nexthop; /* the next hop toward tunnel_dst */
};

/* The connection-table key of an IPv4 flow: the service's reduced struct
 * stratus_flow_key (lb/flow_hash.h) without the zero words of its
 * IPv6-wide addresses, 16 bytes instead of 44, so that a lookup hashes
 * and compares less and a table entry is smaller. vrf_proto is
 * vrf << 8 | proto (VRF ids are below 2^24). */
struct stratus_conn_key4 {
  __u32 vrf_proto;
  __be32 src;
  __be32 dst;
  __be16 sport;
  __be16 dport;
};

/* A connection-table entry (key: struct stratus_conn_key4). */
struct stratus_conn {
  __u32 backend;
  __u16 service;
  /* The VXLAN source port of the flow (lb/flow_hash.h, of the unreduced
   * tuple), so that a hit computes no hash; 0 when the key is reduced (one
   * entry for flows of several source ports) or was not computed. */
  __u16 vxlan_sport;
  __u64 last_seen_ns; /* CLOCK_MONOTONIC (stratus_now() in xdp/bpf/lb.h) */
};

/* A connection table (xdp/bpf/maps.h conns4) is set-associative: an
 * ARRAY of sets, each set STRATUS_CONN_WAYS ways of (key, entry), 32 bytes
 * a way, so a set is two cache lines. A flow lives in the set of
 * stratus_conn_set_index(); a lookup compares that set's ways only, and a
 * new flow takes an empty or expired way of its set, else the least
 * recently used one (smallest last_seen_ns): LRU within the set, bounded
 * work, no lock (only the owning CPU writes its table). */
#define STRATUS_CONN_WAYS 4

struct stratus_conn_way {
  struct stratus_conn_key4 key; /* key.vrf_proto 0: an empty way */
  struct stratus_conn conn;
};

struct stratus_conn_set {
  struct stratus_conn_way ways[STRATUS_CONN_WAYS];
};

/* The set of `key` in a table of mask + 1 sets (a power of two): a
 * multiply-xorshift of the key's 16 bytes, cheaper than lb/flow_hash.h
 * (which stays the Maglev hash), so that a hit hashes in a few
 * instructions. The same function for the program and the agent. */
static inline __attribute__((always_inline)) __u32 stratus_conn_set_index(
    const struct stratus_conn_key4 *key, __u32 mask) {
  __u64 a = (__u64)key->vrf_proto << 32 | key->src;
  __u64 b = (__u64)key->dst << 32 | (__u32)key->sport << 16 | key->dport;
  __u64 h = (a ^ (b * 0xc2b2ae3d27d4eb4fULL)) * 0x9e3779b97f4a7c15ULL;
  h ^= h >> 29;
  return (__u32)(h >> 32) & mask;
}

struct stratus_port_stats {
  __u64 rx_packets;
  __u64 rx_bytes;
  __u64 tx_packets;
  __u64 tx_bytes;
};

/* Per VRF: rx = entered the VRF pipeline (decapsulated, received on a
 * tenant port; in VRF 0, underlay traffic to a VIP); tx = left it
 * encapsulated or delivered, routed or load-balanced. Inner frame bytes.
 * (Service and backend counters count forwarded packets only.) */
typedef struct stratus_port_stats stratus_vrf_stats;

struct stratus_lb_stats {
  __u64 packets;
  __u64 bytes;
  __u64 new_flows;
  __u64 pad;
};

#ifdef __cplusplus
#include <cstddef>
static_assert(sizeof(struct stratus_node_cfg) == 112);
static_assert(offsetof(struct stratus_node_cfg, vxlan_port) == 76);
static_assert(offsetof(struct stratus_node_cfg, tcp_timeout_ns) == 96);
static_assert(sizeof(struct stratus_port) == 20);
static_assert(sizeof(struct stratus_nexthop) == 16);
static_assert(sizeof(struct stratus_gw_key) == 20);
static_assert(sizeof(struct stratus_route_key) == 24);
static_assert(offsetof(struct stratus_route_key, addr) == 8);
static_assert(sizeof(struct stratus_route) == 52);
static_assert(offsetof(struct stratus_route, dst_mac) == 28);
static_assert(offsetof(struct stratus_route, nexthop) == 36);
static_assert(sizeof(struct stratus_service_key) == 24);
static_assert(offsetof(struct stratus_service_key, port) == 20);
static_assert(sizeof(struct stratus_service) == 16);
static_assert(sizeof(struct stratus_vip_key) == 24);
static_assert(sizeof(struct stratus_vip) == 44);
static_assert(offsetof(struct stratus_vip, port_service) == 12);
static_assert(sizeof(struct stratus_backend) == 52);
static_assert(offsetof(struct stratus_backend, nexthop) == 36);
static_assert(sizeof(struct stratus_conn) == 16);
static_assert(sizeof(struct stratus_conn_key4) == 16);
static_assert(sizeof(struct stratus_conn_way) == 32);
static_assert(sizeof(struct stratus_conn_set) == 32 * STRATUS_CONN_WAYS);
static_assert(STRATUS_MAX_VRFS <= (1 << 24),
              "stratus_conn_key4.vrf_proto holds the VRF in 24 bits");
static_assert(STRATUS_MAX_SERVICES <= 65536, "stratus_conn.service is 16 bits");
static_assert(sizeof(struct stratus_port_stats) == 32);
static_assert(sizeof(struct stratus_lb_stats) == 32);
#endif

#endif /* STRATUS_XDP_BPF_STRATUS_MAPS_H */
