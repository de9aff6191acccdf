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

/* ports: ifindex -> port. `index` selects the port's counters and its
 * tx_ports devmap slot. */
struct stratus_port {
  __u32 index;
  __u32 vrf;  /* tenant ports */
  __u32 role; /* enum stratus_port_role */
  __u8 mac[6];
  __u8 pad[2];
};

/* nexthops key: a remote underlay address; all zero = the default. */
struct stratus_addr_key {
  __be32 addr[4];
};

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
  __u32 kind;      /* enum stratus_route_kind */
  __u32 port;      /* LOCAL: egress port index */
  __u32 vni;       /* REMOTE: VNI on the wire */
  __be32 vtep[4];  /* REMOTE: outer destination */
  __u8 dst_mac[6]; /* REMOTE: inner destination MAC; LOCAL: destination MAC */
  __u8 pad[2];
};

/* services key: (vrf, VIP, protocol, port); port 0 = any port. */
struct stratus_service_key {
  __u32 vrf;
  __be32 vip[4];
  __be16 port;
  __u8 proto;
  __u8 pad;
};

/* vips: (vrf, VIP, protocol) -> number of services on it, whatever their
 * port: fragments to a VIP are dropped, and only VIP traffic of the
 * underlay enters the VRF pipeline (docs/packet-behaviour.md §3.3, §4.1). */
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

/* backends: global backend id -> how to reach it. */
struct stratus_backend {
  __u32 state; /* enum stratus_backend_state */
  __u32 encap; /* enum stratus_encap */
  __u32 vni;   /* VXLAN */
  __be32 tunnel_dst[4];
  __u8 mac[6]; /* VXLAN: inner destination MAC */
  __u8 pad[2];
};

/* A connection-table entry (key: the reduced struct stratus_flow_key). */
struct stratus_conn {
  __u32 service;
  __u32 backend;
  __u64 last_seen_ns; /* bpf_ktime_get_ns(), CLOCK_MONOTONIC */
};

struct stratus_port_stats {
  __u64 rx_packets;
  __u64 rx_bytes;
  __u64 tx_packets;
  __u64 tx_bytes;
};

/* Per VRF: rx = decapsulated or received on a tenant port; tx =
 * encapsulated or delivered. Inner frame bytes. */
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
static_assert(sizeof(struct stratus_addr_key) == 16);
static_assert(sizeof(struct stratus_nexthop) == 16);
static_assert(sizeof(struct stratus_gw_key) == 20);
static_assert(sizeof(struct stratus_route_key) == 24);
static_assert(offsetof(struct stratus_route_key, addr) == 8);
static_assert(sizeof(struct stratus_route) == 36);
static_assert(offsetof(struct stratus_route, dst_mac) == 28);
static_assert(sizeof(struct stratus_service_key) == 24);
static_assert(offsetof(struct stratus_service_key, port) == 20);
static_assert(sizeof(struct stratus_service) == 16);
static_assert(sizeof(struct stratus_vip_key) == 24);
static_assert(sizeof(struct stratus_backend) == 36);
static_assert(sizeof(struct stratus_conn) == 16);
static_assert(sizeof(struct stratus_port_stats) == 32);
static_assert(sizeof(struct stratus_lb_stats) == 32);
#endif

#endif /* STRATUS_XDP_BPF_STRATUS_MAPS_H */
