// What the DPDK benchmarks share: the tables of a gateway (100k tenant
// routes, an underlay and a tenant VIP with 16 VXLAN backends each), the
// frames they send, and an mbuf pool laid out as on hugepages.
//
// Tables: 100k routes in the tenant VRF, 16 remote VTEPs, one underlay VIP
// (VRF 0) and one tenant VIP (VRF 1, reached through VXLAN), each with 16
// VXLAN backends (Maglev M = 65537).
#pragma once

#include <algorithm>
#include <bit>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "config/tables.h"
#include "dataplane/dpdk.h"
#include "dataplane/pipeline.h"
#include "dataplane/snapshot.h"

namespace stratus::dpdk::bench {

constexpr std::uint32_t kRoutes = 100000;

inline MacAddress mac(std::uint8_t last) {
  MacAddress m;
  m.bytes = {0x02, 0, 0, 0, 0, last};
  return m;
}

inline Tables make_tables() {
  Tables t;
  t.node.name = "bench";
  t.node.vteps = {*IpAddress::parse("192.0.2.1")};
  t.node.gateway_mac = mac(1);
  t.node.hash_seed = 0x2545f491;
  t.node.flows.max_entries = 1u << 21;
  t.node.ports = {{"ul0", PortRole::kUnderlay, mac(2), 0},
                  {"t0", PortRole::kTenant, mac(3), 1},
                  {"t1", PortRole::kTenant, mac(4), 1}};
  t.nexthops = {{IpAddress{}, "ul0", mac(0xfe), MacAddress{}}};
  t.vrfs = {{1, 100, "red", {*IpAddress::parse("10.0.0.1")}}};
  // `count` /24 routes of `vrf` from 10.0.0.0 up, to 16 VTEPs, leaving
  // with `vni`.
  auto remote_routes = [&](std::uint32_t vrf, std::uint32_t count, std::uint32_t vni) {
    for (std::uint32_t i = 0; i < count; ++i) {
      Route r;
      r.vrf = vrf;
      r.prefix.addr = IpAddress::v4((10u << 24) + (i << 8));
      r.prefix.len = 24;
      r.kind = RouteKind::kRemote;
      r.vtep = IpAddress::v4((192u << 24) + (2u << 8) + 100 + (i % 16));
      r.vni_out = vni;
      r.dst_mac = mac(0x10);
      t.routes.push_back(r);
    }
  };
  // 100k /24 routes over 10.0.0.0/8 and 11.0.0.0/8; one local.
  remote_routes(1, kRoutes, 100);
  Route local;
  local.vrf = 1;
  local.prefix = *IpPrefix::parse("172.16.0.0/16");
  local.kind = RouteKind::kLocal;
  local.port = "t1";
  local.dst_mac = mac(0x20);
  t.routes.push_back(local);
  // A small tenant (VRF 2, VNI 200): 100 /24 routes over 10.0.0.0/16, a /16
  // and a default route; small VRFs take the per-length form (Lpm).
  t.vrfs.push_back({2, 200, "blue", {*IpAddress::parse("10.0.0.1")}});
  remote_routes(2, 100, 200);
  for (const char *prefix : {"10.0.0.0/16", "0.0.0.0/0"}) {
    Route r;
    r.vrf = 2;
    r.prefix = *IpPrefix::parse(prefix);
    r.kind = RouteKind::kBlackhole;
    t.routes.push_back(r);
  }
  Service s;
  s.id = 0;
  s.name = "web";
  s.vip = *IpAddress::parse("203.0.113.10");
  s.proto = 6;
  s.port = 80;
  s.maglev_size = 65537;
  for (std::uint32_t b = 0; b < 16; ++b) {
    Backend be;
    be.id = b;
    be.name = "b" + std::to_string(b);
    be.addr = IpAddress::v4((10u << 24) + (200u << 16) + b);
    be.vrf = 1;
    be.tunnel_dst = IpAddress::v4((192u << 24) + (2u << 8) + 100 + b);
    be.vni = 100;
    be.inner_dst_mac = mac(static_cast<std::uint8_t>(0x30 + b));
    s.backends.push_back(be);
  }
  std::vector<std::uint32_t> slots(s.maglev_size);
  for (std::uint32_t i = 0; i < s.maglev_size; ++i)
    slots[i] = i % 16;
  s.maglev = std::move(slots);
  t.services.push_back(s);
  // The same service inside the tenant VRF (a VIP of VRF 1, port 443).
  Service ts = s;
  ts.id = 1;
  ts.name = "tenant-web";
  ts.vrf = 1;
  ts.vip = *IpAddress::parse("10.250.0.10");
  ts.port = 443;
  for (std::uint32_t b = 0; b < 16; ++b) {
    ts.backends[b].id = 16 + b;
    ts.backends[b].name = "tb" + std::to_string(b);
  }
  t.services.push_back(ts);
  return t;
}

inline void put16(std::uint8_t *p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
inline void put32(std::uint8_t *p, std::uint32_t v) {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v));
}
inline void ip_checksum(std::uint8_t *ip) {
  put16(ip + 10, 0);
  std::uint32_t s = 0;
  for (int i = 0; i < 20; i += 2)
    s += static_cast<std::uint32_t>(ip[i] << 8 | ip[i + 1]);
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  put16(ip + 10, static_cast<std::uint16_t>(~s));
}

// Ethernet + IPv4 + TCP with 26 bytes of payload (100-byte frame).
inline std::vector<std::uint8_t> tcp_frame(std::uint32_t src, std::uint32_t dst,
                                           std::uint16_t dport) {
  std::vector<std::uint8_t> f(100, 0);
  std::memcpy(f.data(), mac(1).bytes.data(), 6);
  std::memcpy(f.data() + 6, mac(0x99).bytes.data(), 6);
  put16(f.data() + 12, 0x0800);
  std::uint8_t *ip = f.data() + 14;
  ip[0] = 0x45;
  put16(ip + 2, 86);
  ip[8] = 64;
  ip[9] = 6;
  put32(ip + 12, src);
  put32(ip + 16, dst);
  ip_checksum(ip);
  put16(ip + 20, 40000);
  put16(ip + 22, dport);
  ip[32] = 0x50;
  return f;
}

inline std::vector<std::uint8_t> vxlan_of(const std::vector<std::uint8_t> &inner,
                                          std::uint32_t vni = 100) {
  std::vector<std::uint8_t> f(50 + inner.size(), 0);
  std::memcpy(f.data(), mac(2).bytes.data(), 6);
  std::memcpy(f.data() + 6, mac(0xfe).bytes.data(), 6);
  put16(f.data() + 12, 0x0800);
  std::uint8_t *ip = f.data() + 14;
  ip[0] = 0x45;
  put16(ip + 2, static_cast<std::uint16_t>(36 + inner.size()));
  ip[8] = 64;
  ip[9] = 17;
  put32(ip + 12, (192u << 24) + (2u << 8) + 100);
  put32(ip + 16, (192u << 24) + (2u << 8) + 1);
  ip_checksum(ip);
  put16(ip + 20, 50000);
  put16(ip + 22, 4789);
  put16(ip + 24, static_cast<std::uint16_t>(16 + inner.size()));
  ip[28] = 0x08;
  ip[32] = static_cast<std::uint8_t>(vni >> 16);
  ip[33] = static_cast<std::uint8_t>(vni >> 8);
  ip[34] = static_cast<std::uint8_t>(vni);
  std::memcpy(f.data() + 50, inner.data(), inner.size());
  return f;
}

// The mbuf pool, laid out as on hugepages. Under --no-huge the EAL's memory
// is in 4 KiB pages, and a pool whose objects must be IOVA-contiguous (what
// rte_pktmbuf_pool_create asks for) puts each 2.3 KiB mbuf alone in a page:
// every burst's 32 packets then start at the same page offset, share the
// same few L1 sets (32 lines for 12 ways) and miss there on every touch,
// by an amount that shifts with what else lands in those sets. Nothing
// here does DMA, so the objects may cross pages and lie packed, as they do
// on a gateway's hugepages.
inline rte_mempool *make_pool(const char *name, unsigned n) {
  rte_pktmbuf_pool_private priv{};
  priv.mbuf_data_room_size = RTE_MBUF_DEFAULT_BUF_SIZE;
  rte_mempool *mp =
      rte_mempool_create_empty(name, n, sizeof(rte_mbuf) + RTE_MBUF_DEFAULT_BUF_SIZE, 0,
                               sizeof priv, SOCKET_ID_ANY, RTE_MEMPOOL_F_NO_IOVA_CONTIG);
  if (mp == nullptr || rte_mempool_set_ops_byname(mp, rte_mbuf_best_mempool_ops(), nullptr) != 0) {
    std::fprintf(stderr, "cannot create the mbuf pool: %s\n", rte_strerror(rte_errno));
    std::exit(1);
  }
  rte_pktmbuf_pool_init(mp, &priv);
  if (rte_mempool_populate_default(mp) < 0) {
    std::fprintf(stderr, "cannot populate the mbuf pool: %s\n", rte_strerror(rte_errno));
    std::exit(1);
  }
  rte_mempool_obj_iter(mp, rte_pktmbuf_init, nullptr);
  return mp;
}

// Addresses and offsets of the frames above.
constexpr std::uint32_t kClient = (198u << 24) + (51u << 16) + (100u << 8);
constexpr std::uint32_t kVip = (203u << 24) + (113u << 8) + 10;
constexpr std::uint32_t kTenantVip = (10u << 24) + (250u << 16) + 10;
constexpr std::uint32_t kSrcOff = 14 + 12;            // IPv4 source of a plain frame
constexpr std::uint32_t kInnerSrcOff = 50 + kSrcOff;  // ... of the frame inside VXLAN

// The frames of the rows: a tenant packet to a remote /24, one to a local
// /16, a client to the underlay VIP, and a tenant client to the tenant VIP
// through VXLAN.
struct Frames {
  std::vector<std::uint8_t> tenant = tcp_frame((10u << 24) + 5, (10u << 24) + (77u << 8) + 9, 443);
  std::vector<std::uint8_t> local = tcp_frame((10u << 24) + 5, (172u << 24) + (16u << 16) + 9, 22);
  std::vector<std::uint8_t> lb = tcp_frame(kClient, kVip, 80);
  std::vector<std::uint8_t> tenant_lb =
      vxlan_of(tcp_frame((10u << 24) + (9u << 8) + 5, kTenantVip, 443));
};

// One position of a row's burst pattern: a frame whose source address is
// XORed with a flow number that cycles over `flows` values.
struct Slot {
  std::uint32_t frame;    // index into the row's frames
  std::uint32_t flows;    // distinct flows at this position
  std::uint32_t src_off;  // offset of the 32-bit source address varied per flow
};

inline std::vector<Slot> same(std::uint32_t frame, std::uint32_t flows, std::uint32_t src_off) {
  return std::vector<Slot>(Pipeline::kBurst, Slot{frame, flows, src_off});
}

// The baseline's work on one frame, the same in both benches: one rte_lpm
// lookup of the IPv4 destination in `vrf` and the MAC rewrite l3fwd does.
// Returns the route's egress port (an index into snap.ports).
inline std::uint16_t baseline_forward(const FibSnapshot &snap, const VrfEntry &vrf,
                                      std::uint8_t *frame) {
  std::uint32_t dst;
  std::memcpy(&dst, frame + 14 + 16, 4);
  std::uint32_t nh = 0;
  rte_lpm_lookup(vrf.lpm->get(), rte_be_to_cpu_32(dst), &nh);
  const RouteAction &a = vrf.actions[nh];
  std::memcpy(frame, a.dst_mac.data(), 6);
  std::memcpy(frame + 6, snap.gateway_mac.data(), 6);
  return a.out_port;
}

// A row of either bench: what it sends, its connection table, and its
// result once run.
struct BenchRow {
  std::string name;
  std::string in_port;
  std::vector<std::vector<std::uint8_t>> frames;
  std::vector<Slot> slots;          // Pipeline::kBurst of them
  std::uint32_t flows = 0;          // distinct flows (for the report)
  std::uint32_t flow_capacity = 0;  // connection table of the row
  std::uint64_t warm = 0;           // packets sent before timing (table warm-up)
  bool baseline = false;
  double best_cycles = 0;    // the fastest run
  std::uint64_t failed = 0;  // packets not forwarded, over every run
};

// A row of `flows` flows, with room for every one of them (established
// rows only hit) and warmed with each once.
inline BenchRow make_row(std::string name, std::string in_port,
                         std::vector<std::vector<std::uint8_t>> frames, std::vector<Slot> slots,
                         std::uint32_t flows, bool baseline = false) {
  BenchRow r;
  r.name = std::move(name);
  r.in_port = std::move(in_port);
  r.frames = std::move(frames);
  r.slots = std::move(slots);
  r.flows = flows;
  r.flow_capacity = std::max<std::uint32_t>(65536, std::bit_ceil(flows));
  r.warm = flows;
  r.baseline = baseline;
  return r;
}

// The command line both benches take:
//   [--seconds S] [--reps N] [--only SUBSTRING] [--json PATH]
struct Options {
  double seconds = 0.5;  // per run of a row
  int reps = 3;          // runs of each row; the fastest is kept
  std::string only;      // rows whose name contains it (and the baseline)
  std::string json_path;
};

inline Options parse_options(int argc, char **argv) {
  Options o;
  for (int i = 1; i + 1 < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds")
      o.seconds = std::atof(argv[i + 1]);
    else if (a == "--reps")
      o.reps = std::max(1, std::atoi(argv[i + 1]));
    else if (a == "--json")
      o.json_path = argv[i + 1];
    else if (a == "--only")
      o.only = argv[i + 1];
  }
  return o;
}

// Prints the rows (cycles, ns, Mpps and rate against the first, the
// baseline), restates the targets from the rows both benches name
// alike, and writes the rows as JSON to `json_path` when given.
template <typename Row>
void report(const std::vector<Row> &rows, std::uint64_t hz, const std::string &json_path) {
  struct Figure {
    std::string name;
    std::uint32_t flows;
    double cycles;
    std::uint64_t failed;
  };
  std::vector<Figure> figures;
  for (const BenchRow &r : rows)
    figures.push_back({r.name, r.flows, r.best_cycles, r.failed});
  std::printf("%-44s %9s %8s %8s %10s\n", "path", "cyc/pkt", "ns/pkt", "Mpps", "rate/base");
  const double base = figures.front().cycles;
  std::string json = "[";
  for (const Figure &f : figures) {
    const double ns = f.cycles * 1e9 / static_cast<double>(hz);
    const double mpps = static_cast<double>(hz) / f.cycles / 1e6;
    std::printf("%-44s %9.1f %8.2f %8.2f %9.2fx", f.name.c_str(), f.cycles, ns, mpps,
                base / f.cycles);
    if (f.failed != 0)
      std::printf("  (%" PRIu64 " packets not forwarded!)", f.failed);
    std::printf("\n");
    char row[320];
    std::snprintf(row, sizeof row,
                  "%s{\"path\": \"%s\", \"flows\": %u, \"cycles_per_packet\": %.1f, "
                  "\"ns_per_packet\": %.2f, \"mpps\": %.2f, \"rate_vs_baseline\": %.3f}",
                  json.size() > 1 ? ", " : "", f.name.c_str(), f.flows, f.cycles, ns, mpps,
                  base / f.cycles);
    json += row;
  }
  auto cycles = [&](const std::string &name) {
    for (const Figure &f : figures) {
      if (f.name == name)
        return f.cycles;
    }
    return 0.0;
  };
  const double ov = cycles("overlay: vxlan decap+route+encap 1k");
  const double lb1k = cycles("LB established, VRF-0 VIP 1k");
  const double lb1m = cycles("LB established, VRF-0 VIP 1M");
  const double tlb1k = cycles("LB established, tenant VIP 1k");
  const double tlb1m = cycles("LB established, tenant VIP 1M");
  if (ov != 0)
    std::printf("target overlay rate >= 0.5x baseline:        %.2fx\n", base / ov);
  if (lb1k != 0)
    std::printf("target LB established <= 120 cycles/packet:  %.1f (VRF-0), %.1f (tenant)\n", lb1k,
                tlb1k);
  if (lb1k != 0 && lb1m != 0)
    std::printf("target LB rate 1M flows >= 0.7x 1k flows:    %.2fx (VRF-0), %.2fx (tenant)\n",
                lb1k / lb1m, tlb1m != 0 ? tlb1k / tlb1m : 0.0);
  if (!json_path.empty()) {
    if (std::FILE *f = std::fopen(json_path.c_str(), "w")) {
      std::fprintf(f, "%s]\n", json.c_str());
      std::fclose(f);
    } else {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
    }
  }
}

// The load average, to print beside the figures.
inline std::string load_average() {
  double load[3] = {-1, -1, -1};
  if (std::FILE *f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
      load[0] = load[1] = load[2] = -1;
    std::fclose(f);
  }
  char s[64];
  std::snprintf(s, sizeof s, "%.2f %.2f %.2f", load[0], load[1], load[2]);
  return s;
}

}  // namespace stratus::dpdk::bench
