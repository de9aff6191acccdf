// Cost of the DPDK pipeline per path on one core, with in-memory packets,
// beside a baseline measured in the same run: the minimal forwarder (take a
// burst, one rte_lpm lookup per packet, rewrite the MACs, hand it back),
// i.e. what l3fwd does per packet. Both sides pay the same per-packet frame
// copy that stands in for RX, so the ratio is the pipeline's own cost.
//
// Tables: 100k routes in the tenant VRF, 16 remote VTEPs, one underlay VIP
// with 16 VXLAN backends (Maglev M = 65537); flows cycle over 1k or 1M
// distinct source ports/addresses.
//
//   pipeline_bench [--seconds S] [--json PATH]   (default 0.5 s per path)
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "dataplane/dpdk.h"
#include "dataplane/pipeline.h"
#include "dataplane/snapshot.h"

namespace {

using namespace stratus;
using namespace stratus::dpdk;

constexpr std::uint32_t kRoutes = 100000;

MacAddress mac(std::uint8_t last) {
  MacAddress m;
  m.bytes = {0x02, 0, 0, 0, 0, last};
  return m;
}

Tables make_tables() {
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
  // 100k /24 routes over 10.0.0.0/8 and 11.0.0.0/8, to 16 VTEPs; one local.
  for (std::uint32_t i = 0; i < kRoutes; ++i) {
    Route r;
    r.vrf = 1;
    r.prefix.addr = IpAddress::v4((10u << 24) + (i << 8));
    r.prefix.len = 24;
    r.kind = RouteKind::kRemote;
    r.vtep = IpAddress::v4((192u << 24) + (2u << 8) + 100 + (i % 16));
    r.vni_out = 100;
    r.dst_mac = mac(0x10);
    t.routes.push_back(r);
  }
  Route local;
  local.vrf = 1;
  local.prefix = *IpPrefix::parse("172.16.0.0/16");
  local.kind = RouteKind::kLocal;
  local.port = "t1";
  local.dst_mac = mac(0x20);
  t.routes.push_back(local);
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
  for (std::uint32_t i = 0; i < s.maglev_size; ++i)
    s.maglev.push_back(i % 16);
  t.services.push_back(s);
  return t;
}

// ---------------------------------------------------------------- frames

void put16(std::uint8_t *p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v >> 8);
  p[1] = static_cast<std::uint8_t>(v);
}
void put32(std::uint8_t *p, std::uint32_t v) {
  put16(p, static_cast<std::uint16_t>(v >> 16));
  put16(p + 2, static_cast<std::uint16_t>(v));
}
void ip_checksum(std::uint8_t *ip) {
  put16(ip + 10, 0);
  std::uint32_t s = 0;
  for (int i = 0; i < 20; i += 2)
    s += static_cast<std::uint32_t>(ip[i] << 8 | ip[i + 1]);
  while (s >> 16)
    s = (s & 0xffff) + (s >> 16);
  put16(ip + 10, static_cast<std::uint16_t>(~s));
}

// Ethernet + IPv4 + TCP with 26 bytes of payload (100-byte frame).
std::vector<std::uint8_t> tcp_frame(std::uint32_t src, std::uint32_t dst, std::uint16_t dport) {
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

std::vector<std::uint8_t> vxlan_of(const std::vector<std::uint8_t> &inner) {
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
  ip[32] = 0;
  ip[33] = 0;
  ip[34] = 100;
  std::memcpy(f.data() + 50, inner.data(), inner.size());
  return f;
}

// ---------------------------------------------------------------- runs

struct Path {
  std::string name;
  std::vector<std::uint8_t> frame;
  std::string in_port;
  std::uint32_t flows;     // distinct flows the run cycles through
  std::size_t flow_field;  // offset of the 32-bit source address varied per flow
};

struct Result {
  double cycles_per_packet;
  double mpps;
};

rte_mempool *g_pool;

// Refills a burst from the frame: the per-packet cost both sides pay.
inline void refill(rte_mbuf **pkts, const Path &p, std::uint32_t &flow) {
  for (std::uint16_t i = 0; i < Pipeline::kBurst; ++i) {
    rte_mbuf *m = pkts[i];
    m->data_off = RTE_PKTMBUF_HEADROOM;
    auto len = static_cast<std::uint16_t>(p.frame.size());
    m->data_len = len;
    m->pkt_len = len;
    auto *d = rte_pktmbuf_mtod(m, std::uint8_t *);
    std::memcpy(d, p.frame.data(), len);
    // Vary the source address (and so the flow); 1M flows over 2^20 values.
    std::uint32_t src;
    std::memcpy(&src, d + p.flow_field, 4);
    src ^= rte_cpu_to_be_32(flow);
    std::memcpy(d + p.flow_field, &src, 4);
    if (++flow == p.flows)
      flow = 0;
  }
}

template <typename Fn>
Result measure(const Path &p, double seconds, Fn &&per_burst) {
  rte_mbuf *pkts[Pipeline::kBurst];
  if (rte_pktmbuf_alloc_bulk(g_pool, pkts, Pipeline::kBurst) != 0) {
    std::fprintf(stderr, "no mbufs\n");
    std::exit(1);
  }
  std::uint32_t flow = 0;
  // Warm-up: touch every flow once (fills the connection table).
  for (std::uint32_t i = 0; i < p.flows / Pipeline::kBurst + 1000; ++i) {
    refill(pkts, p, flow);
    per_burst(pkts);
  }
  const std::uint64_t hz = rte_get_tsc_hz();
  const auto budget = static_cast<std::uint64_t>(seconds * static_cast<double>(hz));
  std::uint64_t bursts = 0;
  const std::uint64_t start = rte_rdtsc_precise();
  std::uint64_t now = start;
  while (now - start < budget) {
    for (int k = 0; k < 64; ++k) {
      refill(pkts, p, flow);
      per_burst(pkts);
    }
    bursts += 64;
    now = rte_rdtsc();
  }
  rte_pktmbuf_free_bulk(pkts, Pipeline::kBurst);
  double packets = static_cast<double>(bursts * Pipeline::kBurst);
  double cycles = static_cast<double>(now - start);
  return {cycles / packets, packets / (cycles / static_cast<double>(hz)) / 1e6};
}

}  // namespace

int main(int argc, char **argv) {
  double seconds = 0.5;
  std::string json_path;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--seconds")
      seconds = std::atof(argv[i + 1]);
    if (std::string(argv[i]) == "--json")
      json_path = argv[i + 1];
  }
  std::string json = "[";
  const char *eal[] = {
      "pipeline_bench", "--no-huge",   "--no-shconf", "--no-pci",      "-l", "0", "-m",
      "2048",           "--log-level", "*:warning",   "--no-telemetry"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char **>(eal)) < 0) {
    std::printf("SKIP: EAL cannot initialise: %s\n", rte_strerror(rte_errno));
    return 77;
  }
  g_pool = rte_pktmbuf_pool_create("bench", 1024, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  Tables tables = make_tables();
  PortResolver resolve = [&](const std::string &name) -> std::optional<DeviceInfo> {
    for (std::size_t i = 0; i < tables.node.ports.size(); ++i) {
      if (tables.node.ports[i].name == name)
        return DeviceInfo{static_cast<std::uint16_t>(i), {}};
    }
    return std::nullopt;
  };
  const std::uint64_t hz = rte_get_tsc_hz();
  auto snap = build_snapshot(tables, resolve, nullptr, hz);
  auto counters = make_worker_counters();
  FlowTable flows(1u << 21);
  Pipeline pipeline(flows, *counters);
  Verdict verdicts[Pipeline::kBurst];
  const VrfEntry *vrf = snap->vrf(1);

  const std::uint32_t client = (198u << 24) + (51u << 16) + (100u << 8);
  const std::uint32_t vip = (203u << 24) + (113u << 8) + 10;
  auto tenant = tcp_frame((10u << 24) + 5, (10u << 24) + (77u << 8) + 9, 443);
  auto local = tcp_frame((10u << 24) + 5, (172u << 24) + (16u << 16) + 9, 22);
  auto lb = tcp_frame(client, vip, 80);
  const std::size_t src_off = 14 + 12;

  std::vector<Path> paths;
  for (std::uint32_t nflows : {1000u, 1000000u}) {
    std::string suffix = nflows == 1000 ? " 1k flows" : " 1M flows";
    paths.push_back({"baseline: lpm+mac" + suffix, tenant, "t0", nflows, src_off});
    paths.push_back({"tenant -> remote (encap)" + suffix, tenant, "t0", nflows, src_off});
    paths.push_back(
        {"vxlan -> remote (decap+encap)" + suffix, vxlan_of(tenant), "ul0", nflows, 50 + src_off});
    paths.push_back({"tenant -> local" + suffix, local, "t0", nflows, src_off});
    paths.push_back({"underlay VIP -> LB (vxlan)" + suffix, lb, "ul0", nflows, src_off});
  }

  std::printf("DPDK pipeline, one core, %u routes, burst %u, TSC %.2f GHz, %.1f s per path\n",
              kRoutes, Pipeline::kBurst, static_cast<double>(hz) / 1e9, seconds);
  std::printf("%-40s %10s %10s %8s %8s\n", "path", "cyc/pkt", "ns/pkt", "Mpps", "ratio");
  double baseline = 0;
  for (const Path &p : paths) {
    Result r;
    if (p.name.rfind("baseline", 0) == 0) {
      r = measure(p, seconds, [&](rte_mbuf **pkts) {
        for (std::uint16_t i = 0; i < Pipeline::kBurst; ++i) {
          auto *d = rte_pktmbuf_mtod(pkts[i], std::uint8_t *);
          std::uint32_t dst;
          std::memcpy(&dst, d + 14 + 16, 4);
          std::uint32_t nh = 0;
          rte_lpm_lookup(vrf->lpm->get(), rte_be_to_cpu_32(dst), &nh);
          const RouteAction &a = vrf->actions[nh];
          std::memcpy(d, a.dst_mac.data(), 6);
          std::memcpy(d + 6, snap->gateway_mac.data(), 6);
          verdicts[i] = Verdict{Action::kForward, 0, a.out_port};
        }
      });
      baseline = r.cycles_per_packet;
    } else {
      std::uint16_t in = 0;
      for (std::uint16_t i = 0; i < snap->ports.size(); ++i) {
        if (snap->ports[i].name == p.in_port)
          in = i;
      }
      std::uint64_t tick = 0;
      r = measure(p, seconds, [&](rte_mbuf **pkts) {
        pipeline.process(*snap, in, pkts, Pipeline::kBurst, ++tick, verdicts);
        pipeline.maintain(*snap, tick);
      });
      if (verdicts[0].action != Action::kForward) {
        std::printf(
            "%-40s path did not forward (verdict %d reason %s)\n", p.name.c_str(),
            static_cast<int>(verdicts[0].action),
            std::string(drop_reason_label(static_cast<stratus_drop_reason>(verdicts[0].reason)))
                .c_str());
        continue;
      }
    }
    const double ns = r.cycles_per_packet * 1e9 / static_cast<double>(hz);
    std::printf("%-40s %10.1f %10.2f %8.2f %7.2fx\n", p.name.c_str(), r.cycles_per_packet, ns,
                r.mpps, r.cycles_per_packet / baseline);
    char row[256];
    std::snprintf(row, sizeof row,
                  "%s{\"path\": \"%s\", \"flows\": %u, \"cycles_per_packet\": %.1f, "
                  "\"ns_per_packet\": %.2f, \"mpps\": %.2f, \"ratio_to_baseline\": %.2f}",
                  json.size() > 1 ? ", " : "", p.name.c_str(), p.flows, r.cycles_per_packet, ns,
                  r.mpps, r.cycles_per_packet / baseline);
    json += row;
  }
  std::printf("flow table: %u entries after the runs\n", flows.size());
  if (!json_path.empty()) {
    if (std::FILE *f = std::fopen(json_path.c_str(), "w")) {
      std::fprintf(f, "%s]\n", json.c_str());
      std::fclose(f);
    } else {
      std::fprintf(stderr, "cannot write %s\n", json_path.c_str());
    }
  }
  snap.reset();  // its LPMs live in EAL memory
  rte_eal_cleanup();
  return 0;
}
