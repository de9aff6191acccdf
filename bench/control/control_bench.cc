// stratusd at scale: 1k tenants with 100 routes each (100k routes) and 1k
// services of 100 backends (100k backends) on one node, pushed to an
// in-process data plane (the generic Dataplane service over a recording
// driver, on a unix socket). Times a full sync and a 1% change, split into
// load (parse + validate), compile (+ check, as stratusd does), runtime +
// digest and diff (one walk, as stratusd does), and push (diff or full ops, gRPC stream, build +
// check + digest + install on the data plane).
//
// Baseline, same run: the same transaction applied in memory
// (DataplaneService::apply, no gRPC), so the ratio shows what the wire adds.
//
// With --xdp (built when the XDP data plane is), the same pushes also go to
// a second node: the generic service over the real XDP driver in process
// (private, unpinned maps, no interface attached), so that the BPF map
// writes are in the figure. Needs root and BPF; prints SKIP with the reason
// otherwise.
//
// The 1% change is pushed --changes times (default 5; it alternates between
// the changed and the original file, each a 1% change of the other): the
// figures are per push and the summary gives their median and maximum.
//
//   control_bench [--xdp] [--changes N] [TENANTS ROUTES_PER_TENANT SERVICES BACKENDS_PER_SERVICE M]
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "config/compile.h"
#include "config/validate.h"
#include "config/yaml_tree.h"
#include "control/api/convert.h"
#include "control/log.h"
#include "control/runtime.h"
#include "control/session.h"
#include "tests/control/control_harness.h"
#ifdef STRATUS_BENCH_XDP
#include <unistd.h>

#include "xdp/xdp_driver.h"
#endif

namespace {

using namespace stratus;
using namespace stratus::control;
using Steady = std::chrono::steady_clock;

struct Scale {
  int tenants = 1000;
  int routes = 100;  // per tenant
  int services = 1000;
  int backends = 100;  // per service
  int maglev = 10007;  // >= 100 x backends, prime
};

std::string ip4(unsigned v) {
  return std::to_string(v >> 24 & 255) + "." + std::to_string(v >> 16 & 255) + "." +
         std::to_string(v >> 8 & 255) + "." + std::to_string(v & 255);
}

// change: 1 in 100 routes gets another VTEP, 1 in 100 services another weight.
std::string make_yaml(const Scale &s, const std::string &endpoint, bool change) {
  std::string y;
  y.reserve(64u << 20);
  y += "nodes:\n  - name: gw\n    region: r\n    kind: xdp\n    api: " + endpoint +
       "\n    vteps: [192.0.2.1]\n    ports: [{name: eth0, role: underlay}]\n"
       "    nexthops: [{remote: default, port: eth0, mac: \"02:00:00:00:00:01\"}]\n";
  y += "tenants:\n";
  int n = 0;
  for (int t = 0; t < s.tenants; ++t) {
    y += "  - name: t" + std::to_string(t) + "\n    vni: " + std::to_string(1000 + t) +
         "\n    subnets: [10.0.0.0/8]\n    routes:\n";
    for (int r = 0; r < s.routes; ++r, ++n) {
      bool moved = change && n % 100 == 0;
      y += "      - {prefix: " + ip4((10u << 24) + static_cast<unsigned>(r) * 256) +
           "/24, remote: {vtep: " + (moved ? "192.0.2.99" : "192.0.2.11") +
           ", mac: \"02:00:00:00:00:02\"}}\n";
    }
  }
  y += "services:\n";
  for (int v = 0; v < s.services; ++v) {
    y += "  - name: s" + std::to_string(v) +
         "\n    vip: " + ip4((100u << 24) + static_cast<unsigned>(v)) +
         "\n    protocol: tcp\n    port: 80\n" + "    maglev_size: " + std::to_string(s.maglev) +
         "\n    backends:\n";
    for (int b = 0; b < s.backends; ++b) {
      bool heavier = change && v % 100 == 0 && b == 0;
      y += "      - {name: b" + std::to_string(b) +
           ", address: " + ip4((172u << 24) + static_cast<unsigned>(v * s.backends + b)) +
           (heavier ? ", weight: 2}\n" : "}\n");
    }
  }
  return y;
}

double since(Steady::time_point t) {
  return std::chrono::duration<double, std::milli>(Steady::now() - t).count();
}

struct Step {
  double load_ms, compile_ms, runtime_ms, push_ms, baseline_ms;
  std::size_t ops;
  double yaml_cpp_ms, libyaml_ms;  // floors of the load: the parse alone
  double xdp_push_ms = -1;         // the same push to the XDP node (--xdp)
};

// The second node of --xdp: the XDP driver behind the generic service.
class XdpNode {
 public:
  // Empty: the node runs; else why it cannot.
  std::string start(const std::string &socket_path) {
#ifdef STRATUS_BENCH_XDP
    if (geteuid() != 0)
      return "needs root (BPF maps)";
    try {
      xdp::XdpOptions o;
      o.instance = "control-bench";
      o.bpffs_root = "";  // private maps, gone with the driver
      driver_ = std::make_unique<xdp::XdpDriver>(o);
    } catch (const std::exception &e) {
      return std::string("XDP driver: ") + e.what();
    }
    service_ = std::make_unique<api::DataplaneService>(*driver_, api::ServiceOptions{});
    endpoint_ = "unix:" + socket_path;
    server_ = api::serve(*service_, endpoint_);
    return "";
#else
    (void)socket_path;
    return "built without the XDP data plane";
#endif
  }
  ~XdpNode() {
    if (server_)
      server_->Shutdown(std::chrono::system_clock::now());
  }
  const std::string &endpoint() const {
    return endpoint_;
  }
  api::DataplaneService &service() {
    return *service_;
  }

 private:
#ifdef STRATUS_BENCH_XDP
  std::unique_ptr<xdp::XdpDriver> driver_;
#endif
  std::unique_ptr<api::DataplaneService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string endpoint_;
};

}  // namespace

int main(int argc, char **argv) {
  Scale s;
  bool with_xdp = false;
  int changes = 5;
  for (;;) {
    if (argc > 1 && std::string(argv[1]) == "--xdp") {
      with_xdp = true;
      --argc;
      ++argv;
    } else if (argc > 2 && std::string(argv[1]) == "--changes") {
      changes = std::atoi(argv[2]);
      if (changes < 1) {
        std::fprintf(stderr, "--changes: need a count of at least 1\n");
        return 2;
      }
      argc -= 2;
      argv += 2;
    } else {
      break;
    }
  }
  if (argc == 6) {
    s = {std::atoi(argv[1]), std::atoi(argv[2]), std::atoi(argv[3]), std::atoi(argv[4]),
         std::atoi(argv[5])};
  }
  set_log_enabled(false);
  testing::TempDir dir;
  testing::FakeNode node("gw", dir.path() + "/gw.sock");
  node.start();
  // The baseline data plane: the same service, driven in memory.
  testing::RecordingDriver mem_driver;
  api::DataplaneService mem(mem_driver, {});

  SessionOptions so;
  so.poll_interval = std::chrono::seconds(60);
  so.chunk_bytes = 4 << 20;
  NodeSession session("gw", node.endpoint(), grpc_client_factory(), nullptr, so);
  session.start();
  XdpNode xdp_node;
  std::unique_ptr<NodeSession> xdp_session;
  if (with_xdp) {
    std::string why = xdp_node.start(dir.path() + "/xdp.sock");
    if (!why.empty()) {
      std::printf("SKIP: --xdp: %s\n", why.c_str());
    } else {
      xdp_session = std::make_unique<NodeSession>("gw-xdp", xdp_node.endpoint(),
                                                  grpc_client_factory(), nullptr, so);
      xdp_session->start();
    }
  }

  std::printf(
      "control_bench: %d tenants x %d routes = %d routes, %d services x %d backends "
      "(M = %d)\n",
      s.tenants, s.routes, s.tenants * s.routes, s.services, s.backends, s.maglev);

  config::NodeTables previous;
  std::shared_ptr<const Tables> effective;
  std::uint64_t generation = 0;
  std::uint64_t digest_prev = 0;
  std::vector<Step> steps(1 + static_cast<std::size_t>(changes));
  for (std::size_t i = 0; i < steps.size(); ++i) {
    bool change = i % 2 == 1;
    std::string yaml = make_yaml(s, node.endpoint(), change);
    // Floors of the load, same text: yaml-cpp's YAML::Load (what the loader
    // used before) and the libyaml tree the loader reads now, parse only
    // (for the full sync and the first change).
    auto t0 = Steady::now();
    double yaml_cpp_ms = 0, libyaml_ms = 0;
    if (i < 2) {
      {
        YAML::Node bare = YAML::Load(yaml);
        yaml_cpp_ms = since(t0);
      }
      t0 = Steady::now();
      auto doc = config::YamlDocument::parse_libyaml(yaml);
      libyaml_ms = since(t0);
      if (!doc) {
        std::fprintf(stderr, "libyaml rejects the bench file\n");
        return 1;
      }
    }
    t0 = Steady::now();
    auto loaded = config::load_config_string(yaml, "bench.yaml");
    double load_ms = since(t0);
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s", config::format_diagnostics(loaded.errors).c_str());
      return 1;
    }
    t0 = Steady::now();
    auto compiled = config::compile_all(*loaded.config, previous);
    // stratusd checks what it compiled before it takes the new config.
    if (auto errors = check(*compiled.at("gw")); !errors.empty()) {
      std::fprintf(stderr, "compiled tables fail check(): %s\n", errors.front().c_str());
      return 1;
    }
    double compile_ms = since(t0);
    t0 = Steady::now();
    std::shared_ptr<const Tables> next =
        apply_runtime(compiled.at("gw"), RuntimeState{}, effective.get());
    // As stratusd does: one walk from the previous tables gives the
    // operations and the digest (hashing only what changed).
    std::uint64_t d = 0;
    std::shared_ptr<const std::vector<pb::TxnOp>> delta_ops;
    if (effective) {
      std::uint64_t delta = 0;
      delta_ops =
          std::make_shared<const std::vector<pb::TxnOp>>(api::diff(*effective, *next, &delta));
      d = digest_prev + delta;
    } else {
      d = digest(*next);
    }
    digest_prev = d;
    double runtime_ms = since(t0);

    // Baseline: the same transaction applied in memory, no gRPC.
    std::vector<pb::TxnOp> ops = delta_ops ? *delta_ops : api::full_sync_ops(*next);
    std::size_t nops = ops.size();
    pb::TxnHeader h;
    h.set_generation(generation + 1);
    h.set_base_generation(generation);
    h.set_full(!effective);
    h.set_expect_digest(d);
    auto stream = api::chunk(h, std::move(ops), so.chunk_bytes);
    t0 = Steady::now();
    pb::ApplyReply reply;
    if (!mem.apply(stream, &reply).ok()) {
      std::fprintf(stderr, "in-memory apply failed\n");
      return 1;
    }
    double baseline_ms = since(t0);

    ++generation;
    t0 = Steady::now();
    session.set_desired({next, d, generation, effective, delta_ops});
    if (!session.wait_in_sync(std::chrono::minutes(5))) {
      std::fprintf(stderr, "push did not complete: %s\n", session.status().last_error.c_str());
      return 1;
    }
    double push_ms = since(t0);
    if (node.service().table_digest() != d) {
      std::fprintf(stderr, "digest mismatch after the push\n");
      return 1;
    }
    double xdp_push_ms = -1;
    if (xdp_session) {
      t0 = Steady::now();
      xdp_session->set_desired({next, d, generation, effective, delta_ops});
      if (!xdp_session->wait_in_sync(std::chrono::minutes(5))) {
        std::fprintf(stderr, "push to the XDP node did not complete: %s\n",
                     xdp_session->status().last_error.c_str());
        return 1;
      }
      xdp_push_ms = since(t0);
      if (xdp_node.service().table_digest() != d) {
        std::fprintf(stderr, "digest mismatch on the XDP node\n");
        return 1;
      }
    }
    steps[i] = {load_ms, compile_ms,  runtime_ms, push_ms,    baseline_ms,
                nops,    yaml_cpp_ms, libyaml_ms, xdp_push_ms};
    previous = std::move(compiled);
    effective = next;
  }

  auto row = [](const char *name, const Step &st) {
    double total = st.load_ms + st.compile_ms + st.runtime_ms + st.push_ms;
    std::printf("  %-10s %9zu %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f   %5.2fx\n", name, st.ops,
                st.load_ms, st.compile_ms, st.runtime_ms, st.push_ms, total, st.baseline_ms,
                st.push_ms / st.baseline_ms);
  };
  std::printf("  %-10s %9s %9s %9s %9s %9s %9s %9s   %s\n", "step", "ops", "load ms", "compile",
              "runtime", "push ms", "total ms", "in-mem", "push/in-mem");
  row("full sync", steps[0]);
  for (std::size_t i = 1; i < steps.size(); ++i)
    row("1% change", steps[i]);
  std::printf(
      "  load floors (parse only, same text): yaml-cpp YAML::Load %.1f / %.1f ms, "
      "libyaml tree %.1f / %.1f ms; load / yaml-cpp floor %.2fx / %.2fx\n",
      steps[0].yaml_cpp_ms, steps[1].yaml_cpp_ms, steps[0].libyaml_ms, steps[1].libyaml_ms,
      steps[0].load_ms / steps[0].yaml_cpp_ms, steps[1].load_ms / steps[1].yaml_cpp_ms);
  std::printf(
      "  1%% change / full sync: push %.3fx, compile %.3fx, end to end %.3fx\n",
      steps[1].push_ms / steps[0].push_ms, steps[1].compile_ms / steps[0].compile_ms,
      (steps[1].load_ms + steps[1].compile_ms + steps[1].runtime_ms + steps[1].push_ms) /
          (steps[0].load_ms + steps[0].compile_ms + steps[0].runtime_ms + steps[0].push_ms));
  // The targets, from this run: the change is timed from the new
  // configuration in memory (compile + runtime + push), the full sync from
  // the file's text (load included).
  auto median_max = [&](auto ms) {
    std::vector<double> v;
    for (std::size_t i = 1; i < steps.size(); ++i)
      v.push_back(ms(steps[i]));
    std::sort(v.begin(), v.end());
    return std::make_pair(v[v.size() / 2], v.back());
  };
  auto report = [&](const char *where, double full_push, auto change_push) {
    const Step &f = steps[0];
    double full = f.load_ms + f.compile_ms + f.runtime_ms + full_push;
    auto [med, max] =
        median_max([&](const Step &st) { return st.compile_ms + st.runtime_ms + change_push(st); });
    std::printf(
        "  to %s: full sync %.0f ms (target < 2000: %s); 1%% change median %.1f ms, "
        "max %.1f ms over %zu pushes (target < 100: %s)\n",
        where, full, full < 2000 ? "met" : "MISSED", med, max, steps.size() - 1,
        max < 100   ? "met"
        : med < 100 ? "met by the median"
                    : "MISSED");
  };
  report("the recording data plane", steps[0].push_ms, [](const Step &st) { return st.push_ms; });
  if (xdp_session) {
    auto [med, max] = median_max([](const Step &st) { return st.xdp_push_ms; });
    std::printf(
        "  push to the XDP driver (BPF maps, in process): full sync %.1f ms (%.2fx the "
        "recording driver's), 1%% change median %.1f ms, max %.1f ms\n",
        steps[0].xdp_push_ms, steps[0].xdp_push_ms / steps[0].push_ms, med, max);
    report("stratus-xdp", steps[0].xdp_push_ms, [](const Step &st) { return st.xdp_push_ms; });
    xdp_session->stop();
  }
  double load[3] = {};
  if (getloadavg(load, 3) == 3)
    std::printf("  load average %.2f %.2f %.2f\n", load[0], load[1], load[2]);
  session.stop();
  return 0;
}
