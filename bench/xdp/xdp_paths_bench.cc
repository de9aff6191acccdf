// Per-packet cost of each XDP data-plane path under BPF_PROG_TEST_RUN, beside
// two baselines measured in the same run through the same front program:
// MAC swap + XDP_TX (the cheapest forward) and XDP_DROP.
//
// Every repetition starts from the original frame (bench_front in
// xdp_bench.bpf.c restores it, then tail-calls the program under test), and
// the data plane's own counters must show that every repetition of every
// run took the intended path (the verdict, the egress port or drop reason
// of the fixture case); otherwise the benchmark fails rather than report a
// figure for the wrong path. Frames and tables come from the shared packet
// fixtures (tests/fixtures/packets.json).
//
//   xdp_paths_bench [--repeat N] [--runs R]     (default 1000000 x 5)
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "tests/fixtures/fixture.h"
#include "tests/xdp/test_netns.h"
#include "xdp/xdp_driver.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include "bench/xdp/xdp_bench.skel.h"
#pragma GCC diagnostic pop

namespace {

namespace fx = stratus::fixtures;
namespace pb = stratus::api::pb;

struct Path {
  std::string label;
  std::string fixture;  // case whose first packet step is the frame
  enum Kind { kStratus, kBaselineTx, kBaselineDrop } kind = kStratus;
};

const std::vector<Path> kPaths = {
    {"baseline: MAC swap + XDP_TX", "overlay_remote_tcp", Path::kBaselineTx},
    {"baseline: XDP_DROP", "overlay_remote_tcp", Path::kBaselineDrop},
    {"VXLAN decap, route, VXLAN encap (TX)", "overlay_remote_tcp"},
    {"VXLAN decap, route local (redirect)", "overlay_local_delivery"},
    {"tenant port, route, VXLAN encap (redirect)", "tenant_port_route_remote"},
    {"LB underlay VIP, conn hit, VXLAN", "lb_underlay_vxlan_backend"},
    {"LB underlay VIP, conn hit, IPIP", "lb_underlay_ipip_backend"},
    {"LB tenant VIP via VXLAN decap", "lb_tenant_vrf_via_vxlan"},
    {"ARP reply on tenant port", "tenant_port_arp_gateway"},
    {"pass to host", "pass_underlay_not_for_node"},
    {"drop no_route (after decap)", "overlay_no_route"},
};

struct Counts {
  std::map<std::string, std::uint64_t> drops, tx;
  std::uint64_t passed = 0, service = 0;
};

Counts counts(stratus::xdp::XdpDriver &d) {
  pb::CountersReply r;
  d.counters(&r);
  Counts c;
  for (const auto &x : r.drops())
    c.drops[x.reason()] = x.packets();
  for (const auto &p : r.ports())
    c.tx[p.port()] = p.tx().packets();
  for (const auto &s : r.services())
    c.service += s.fwd().packets();
  c.passed = r.passed_to_host();
  return c;
}

std::uint64_t runs_counter(const stratus_bench *b, int ncpus) {
  std::vector<std::uint64_t> v(static_cast<std::size_t>(ncpus));
  __u32 zero = 0;
  bpf_map_lookup_elem(bpf_map__fd(b->maps.runs), &zero, v.data());
  std::uint64_t sum = 0;
  for (auto x : v)
    sum += x;
  return sum;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char **argv) {
  std::uint32_t repeat = 1000000, nruns = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--repeat")
      repeat = static_cast<std::uint32_t>(std::stoul(argv[i + 1]));
    if (a == "--runs")
      nruns = static_cast<std::uint32_t>(std::stoul(argv[i + 1]));
  }
  if (::geteuid() != 0) {
    std::cout << "SKIP: needs root (BPF programs, network namespaces)\n";
    return 77;
  }
  fx::Fixtures fixtures;
  try {
    const char *env = std::getenv("STRATUS_FIXTURES");
    fixtures = fx::load(env ? env : fx::default_path());
  } catch (const std::exception &e) {
    std::cerr << "xdp_paths_bench: " << e.what() << "\n";
    return 1;
  }
  auto find = [&](const std::string &name) -> const fx::Case & {
    for (const auto &c : fixtures.cases) {
      if (c.name == name)
        return c;
    }
    throw std::runtime_error("no fixture case " + name);
  };

  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(0, &cpus);
  sched_setaffinity(0, sizeof cpus, &cpus);

  std::map<std::string, stratus::MacAddress> ports;
  for (const auto &[name, t] : fixtures.tables) {
    for (const auto &p : t.node.ports)
      ports[p.name] = p.mac;
  }
  stratus::xdp::test_support::TestNetns netns("stratus-xdp-bench-");
  netns.remove_stale();
  std::string why;
  if (!netns.enter(ports, &why)) {
    std::cout << "SKIP: " << why << "\n";
    return 77;
  }

  int failures = 0;
  try {
    stratus_bench *bench = stratus_bench::open_and_load();
    if (!bench)
      throw std::runtime_error("loading xdp_bench.bpf.o failed");
    int ncpus = libbpf_num_possible_cpus();

    std::printf("XDP data-plane paths, BPF_PROG_TEST_RUN, %u repetitions x %u runs, CPU 0\n",
                repeat, nruns);
    std::printf("%-44s %10s %10s %10s %12s %8s\n", "path", "ns/pkt", "min", "max", "above XDP_TX",
                "ratio");
    double tx_baseline = 0;
    for (const Path &path : kPaths) {
      const fx::Case &c = find(path.fixture);
      const auto &step = std::get<fx::PacketStep>(c.steps.at(0));
      stratus::xdp::XdpOptions o;
      o.bpffs_root.clear();
      stratus::xdp::XdpDriver driver(o);  // fresh maps per path
      driver.install(stratus::Tables{}, fixtures.tables.at(c.tables));

      struct {
        __u32 len;
        __u8 bytes[2048];
      } f{};
      f.len = static_cast<__u32>(step.input.size());
      std::memcpy(f.bytes, step.input.data(), step.input.size());
      __u32 zero = 0;
      bpf_map_update_elem(bpf_map__fd(bench->maps.frame), &zero, &f, BPF_ANY);
      int target = path.kind == Path::kStratus      ? driver.program_fd()
                   : path.kind == Path::kBaselineTx ? bpf_program__fd(bench->progs.bench_tx)
                                                    : bpf_program__fd(bench->progs.bench_drop);
      bpf_map_update_elem(bpf_map__fd(bench->maps.target), &zero, &target, BPF_ANY);

      std::uint32_t want_action = path.kind == Path::kBaselineTx       ? XDP_TX
                                  : path.kind == Path::kBaselineDrop   ? XDP_DROP
                                  : step.verdict == fx::Verdict::kDrop ? XDP_DROP
                                  : step.verdict == fx::Verdict::kPass ? XDP_PASS
                                  : step.out_port == step.in_port      ? XDP_TX
                                                                       : XDP_REDIRECT;

      std::vector<double> ns;
      std::string problem;
      for (std::uint32_t run = 0; run < nruns && problem.empty(); ++run) {
        Counts before = counts(driver);
        std::uint64_t runs_before = runs_counter(bench, ncpus);
        std::vector<std::uint8_t> out(step.input.size() + 256);
        xdp_md ctx{};
        ctx.data_end = f.len;
        ctx.ingress_ifindex = if_nametoindex(step.in_port.c_str());
        LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = step.input.data(), .data_out = out.data(),
                    .data_size_in = f.len, .data_size_out = static_cast<__u32>(out.size()),
                    .ctx_in = &ctx, .ctx_size_in = sizeof ctx, .repeat = static_cast<int>(repeat));
        if (bpf_prog_test_run_opts(bpf_program__fd(bench->progs.bench_front), &opts) != 0) {
          problem = std::string("test_run failed: ") + std::strerror(errno);
          break;
        }
        Counts after = counts(driver);
        std::uint64_t done = runs_counter(bench, ncpus) - runs_before;
        out.resize(opts.data_size_out);
        if (done != repeat)
          problem = "front ran " + std::to_string(done) + " times";
        if (opts.retval != want_action)
          problem = "last action " + std::to_string(opts.retval);
        if (path.kind == Path::kStratus) {
          if (step.verdict == fx::Verdict::kForward) {
            if (after.tx[step.out_port] - before.tx[step.out_port] != repeat) {
              problem = "tx on " + step.out_port + " is not one per repetition";
            }
            if (out != step.output)
              problem = "output bytes differ from the fixture";
          } else if (step.verdict == fx::Verdict::kDrop) {
            if (after.drops[step.drop_reason] - before.drops[step.drop_reason] != repeat) {
              problem = step.drop_reason + " drops are not one per repetition";
            }
          } else if (after.passed - before.passed != repeat) {
            problem = "passes are not one per repetition";
          }
        }
        ns.push_back(static_cast<double>(opts.duration));
      }
      if (!problem.empty()) {
        std::printf("%-44s FAILED: %s\n", path.label.c_str(), problem.c_str());
        ++failures;
        continue;
      }
      double med = median(ns);
      if (path.kind == Path::kBaselineTx)
        tx_baseline = med;
      double lo = *std::min_element(ns.begin(), ns.end());
      double hi = *std::max_element(ns.begin(), ns.end());
      std::printf("%-44s %10.1f %10.1f %10.1f %+12.1f %7.2fx\n", path.label.c_str(), med, lo, hi,
                  med - tx_baseline, tx_baseline > 0 ? med / tx_baseline : 0.0);
    }
    std::printf(
        "ns/pkt: median of the runs' test_run durations (front program included in "
        "every row); every repetition's path checked with the data plane's counters\n");
    stratus_bench::destroy(bench);
  } catch (const std::exception &e) {
    std::cerr << "xdp_paths_bench: " << e.what() << "\n";
    return 1;
  }
  return failures ? 1 : 0;
}
