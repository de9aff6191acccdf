/* The BPF maps of the XDP data plane (BTF-style definitions). Layouts of
 * keys and values are in stratus_maps.h, shared with the C++ loader, which
 * pins every map here under the instance's bpffs directory so that tables,
 * counters and connection state survive an agent restart.
 */
#ifndef STRATUS_XDP_BPF_MAPS_H
#define STRATUS_XDP_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "lb/flow_hash.h"
#include "xdp/bpf/stratus_maps.h"

/* [0] -> the node table. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct stratus_node_cfg);
} node_cfg SEC(".maps");

/* ingress ifindex below STRATUS_PORT_SLOTS -> port (role, VRF, MAC,
 * counter index); in_use 0: not a port. Every frame looks up its ingress
 * port: an ARRAY lookup, which the verifier inlines, costs a fraction of
 * a hash lookup. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STRATUS_PORT_SLOTS);
  __type(key, __u32);
  __type(value, struct stratus_port);
} port_slots SEC(".maps");

/* ingress ifindex (STRATUS_PORT_SLOTS and above) -> port. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, STRATUS_MAX_PORTS);
  __type(key, __u32);
  __type(value, struct stratus_port);
} ports SEC(".maps");

/* port index -> ifindex, for bpf_redirect_map toward another port. */
struct {
  __uint(type, BPF_MAP_TYPE_DEVMAP);
  __uint(max_entries, STRATUS_MAX_PORTS);
  __type(key, __u32);
  __type(value, __u32);
} tx_ports SEC(".maps");

/* VNI (host order) -> VRF id. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, STRATUS_MAX_VRFS);
  __type(key, __u32);
  __type(value, __u32);
} vnis SEC(".maps");

/* (VRF, tenant gateway address) -> 1: answered by ARP on tenant ports. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, STRATUS_MAX_GATEWAYS);
  __type(key, struct stratus_gw_key);
  __type(value, __u32);
} gateways SEC(".maps");

/* (VRF, prefix) -> route (a remote one with its resolved underlay next
 * hop); longest prefix match within the VRF. */
struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, STRATUS_MAX_ROUTES);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct stratus_route_key);
  __type(value, struct stratus_route);
} routes SEC(".maps");

/* (VRF, VIP, protocol, port) -> service. Looked up only for a VIP with
 * several port services (struct stratus_vip carries the others). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, STRATUS_MAX_SERVICE_KEYS);
  __type(key, struct stratus_service_key);
  __type(value, struct stratus_service);
} services SEC(".maps");

/* (VRF, VIP, protocol) -> its services (struct stratus_vip). */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, STRATUS_MAX_SERVICE_KEYS);
  __type(key, struct stratus_vip_key);
  __type(value, struct stratus_vip);
} vips SEC(".maps");

/* global backend id -> state, encapsulation and underlay next hop. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STRATUS_MAX_BACKENDS);
  __type(key, __u32);
  __type(value, struct stratus_backend);
} backends SEC(".maps");

/* service id -> its Maglev table (inner: slot -> global backend id). The
 * loader builds a new inner map for a changed service and swaps it in with
 * one update, so a packet sees the whole old table or the whole new one.
 * BPF_F_INNER_MAP lets inner tables differ in size (M is per service);
 * BPF_F_MMAPABLE lets the agent fill a table with one memcpy. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, STRATUS_MAX_SERVICES);
  __type(key, __u32);
  __array(
      values, struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
        __uint(max_entries, 1);
        __type(key, __u32);
        __type(value, __u32);
      });
} maglev SEC(".maps");

/* CPU -> that CPU's IPv4 connection table: an inner ARRAY of
 * struct stratus_conn_set (set-associative, stratus_maps.h), with at least
 * node flows.max_entries ways. Per-CPU tables: a flow stays on one CPU
 * (RSS), only that CPU writes its table (no lock), each CPU gets exactly
 * its capacity, the dump can name the owning CPU, and the loader can
 * resize the tables by swapping inner maps (BPF_F_INNER_MAP: sizes may
 * differ). Not an LRU_HASH: its global LRU eviction (bpf_lru_pop_free) and
 * the walk of a cold hash bucket on a miss cost a new flow about 300 ns;
 * a set costs one or two cache lines. The loader creates the inner maps;
 * max_entries is set to the number of CPUs before load. (IPv6 flows, when
 * the program forwards them, get tables of their own with the wide key.) */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
  __uint(max_entries, STRATUS_MAX_CPUS);
  __type(key, __u32);
  __array(
      values, struct {
        __uint(type, BPF_MAP_TYPE_ARRAY);
        __uint(map_flags, BPF_F_INNER_MAP);
        __uint(max_entries, 1);
        /* Sizes rather than __type(): clang 14 emits these structs as BTF
         * forward declarations when they are reached only through the inner
         * map, and libbpf then fails with "conns.inner: can't determine key
         * size for type". */
        __uint(key_size, sizeof(__u32));
        __uint(value_size, sizeof(struct stratus_conn_set));
      });
} conns4 SEC(".maps");

/* CPU -> the set mask of that CPU's conns4 table (sets - 1; sets is a
 * power of two). The loader writes it around a swap so that the mask never
 * exceeds the table: a larger table is put before its mask, a smaller one
 * after (an index past the table finds no set: the packet is forwarded
 * without an entry). */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, STRATUS_MAX_CPUS);
  __type(key, __u32);
  __type(value, __u32);
} conn_masks SEC(".maps");

/* Counters, per CPU; the loader sums them. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STRATUS_MAX_PORTS);
  __type(key, __u32);
  __type(value, struct stratus_port_stats);
} port_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STRATUS_MAX_VRFS);
  __type(key, __u32);
  __type(value, stratus_vrf_stats);
} vrf_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STRATUS_MAX_SERVICES);
  __type(key, __u32);
  __type(value, struct stratus_lb_stats);
} service_stats SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STRATUS_MAX_BACKENDS);
  __type(key, __u32);
  __type(value, struct stratus_lb_stats);
} backend_stats SEC(".maps");

/* enum stratus_drop_reason -> packets. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STRATUS_MAX_DROP_REASONS);
  __type(key, __u32);
  __type(value, __u64);
} drop_stats SEC(".maps");

/* enum stratus_misc_counter -> count. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, STRATUS_MISC__COUNT);
  __type(key, __u32);
  __type(value, __u64);
} misc_stats SEC(".maps");

#endif /* STRATUS_XDP_BPF_MAPS_H */
