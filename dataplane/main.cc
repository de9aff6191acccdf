// stratus-dpdk: the DPDK data plane. The main lcore serves the Dataplane gRPC
// API and /metrics and never touches packets; every worker lcore runs one
// poll-mode Worker.
//
//   stratus-dpdk --instance gw-b --api unix:/run/stratus/dpdk.sock
//       --metrics 127.0.0.1:9102 [--state-file PATH] [--exception-port NAME]
//       [--flows N] [--drain-us N] [--idle-sleep-us N]
//       -- -l 0-1 --no-huge --vdev net_af_packet0,iface=veth0
#include <prometheus/exposer.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "control/api/server.h"
#include "dataplane/dpdk.h"
#include "dataplane/driver.h"
#include "dataplane/ports.h"
#include "dataplane/rcu.h"
#include "dataplane/worker.h"

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop.store(true);
}

struct Options {
  std::string instance = "stratus-dpdk";
  std::string api = "unix:/run/stratus/dpdk.sock";
  std::string metrics;  // empty: no /metrics
  std::string state_file;
  std::string exception_port;
  std::vector<std::pair<std::string, std::string>> aliases;  // --port ALIAS=DEVICE
  stratus::dpdk::WorkerOptions worker;
  std::vector<std::string> eal;
};

[[noreturn]] void usage(const char *why) {
  std::fprintf(stderr,
               "stratus-dpdk: %s\n"
               "usage: stratus-dpdk --instance NAME --api ENDPOINT [--metrics HOST:PORT]\n"
               "         [--state-file PATH] [--exception-port DEVICE] [--port ALIAS=DEVICE]...\n"
               "         [--flows N]\n"
               "         [--drain-us N] [--idle-sleep-us N (0: busy poll)] -- EAL-ARGS\n",
               why);
  std::exit(2);
}

std::uint32_t number(const char *flag, const char *text) {
  char *end = nullptr;
  unsigned long v = std::strtoul(text, &end, 10);
  if (end == text || *end != '\0' || v > 0xffffffffUL) {
    usage((std::string(flag) + ": not a number: " + text).c_str());
  }
  return static_cast<std::uint32_t>(v);
}

Options parse(int argc, char **argv) {
  Options o;
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (i + 1 >= argc)
      usage(("missing value for " + a).c_str());
    const char *v = argv[++i];
    if (a == "--instance")
      o.instance = v;
    else if (a == "--api")
      o.api = v;
    else if (a == "--metrics")
      o.metrics = v;
    else if (a == "--state-file")
      o.state_file = v;
    else if (a == "--exception-port")
      o.exception_port = v;
    else if (a == "--port") {
      std::string spec = v;
      auto eq = spec.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
        usage(("--port wants ALIAS=DEVICE, got " + spec).c_str());
      o.aliases.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
    } else if (a == "--flows")
      o.worker.flow_capacity = number("--flows", v);
    else if (a == "--drain-us")
      o.worker.drain_us = number("--drain-us", v);
    else if (a == "--idle-sleep-us")
      o.worker.idle_sleep_us = number("--idle-sleep-us", v);
    else
      usage(("unknown flag " + a).c_str());
  }
  o.eal.push_back(argv[0]);
  for (; i < argc; ++i)
    o.eal.push_back(argv[i]);
  if (o.worker.flow_capacity == 0)
    usage("--flows must be > 0");
  return o;
}

int run(Options &o) {
  using namespace stratus::dpdk;
  std::vector<char *> eal_argv;
  for (auto &s : o.eal)
    eal_argv.push_back(s.data());
  if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
    std::fprintf(stderr, "stratus-dpdk: EAL initialisation failed: %s\n", rte_strerror(rte_errno));
    return 1;
  }
  std::vector<unsigned> lcores;
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) lcores.push_back(lcore);
  if (lcores.empty()) {
    std::fprintf(stderr,
                 "stratus-dpdk: no worker lcore: give the EAL at least two (e.g. -l 0-1); "
                 "the main lcore only serves the API\n");
    return 1;
  }
  const auto nworkers = static_cast<std::uint16_t>(lcores.size());
  // Each worker's connection table is made (and touched) at start: refuse
  // tables that would leave the host short of memory rather than be killed
  // for them.
  if (std::uint64_t available = stratus::mem_available(); available > 0) {
    const std::string why =
        stratus::conn_memory_problem(FlowTable::bytes_for(o.worker.flow_capacity), nworkers,
                                     "worker", available, "lower --flows");
    if (!why.empty()) {
      std::fprintf(stderr, "stratus-dpdk: --flows %u: %s\n", o.worker.flow_capacity, why.c_str());
      return 1;
    }
  }
  PortConfig pcfg;
  pcfg.workers = nworkers;
  rte_mempool *pool =
      Ports::create_pool(std::max<std::uint16_t>(1, rte_eth_dev_count_avail()), nworkers, pcfg);
  Ports ports(pcfg, pool);
  for (const auto &[alias, device] : o.aliases) {
    if (!ports.set_alias(device, alias)) {
      std::fprintf(stderr, "stratus-dpdk: --port %s=%s: no such DPDK port, or the name is taken\n",
                   alias.c_str(), device.c_str());
      return 1;
    }
  }
  if (!o.exception_port.empty()) {
    const PortInfo *ex = ports.by_name(o.exception_port);
    if (ex == nullptr) {
      std::fprintf(stderr, "stratus-dpdk: --exception-port %s: no such DPDK port\n",
                   o.exception_port.c_str());
      return 1;
    }
    o.worker.exception_dev = ex->dev;
  }
  for (const PortInfo &p : ports.all()) {
    std::fprintf(stderr, "stratus-dpdk: port %u %s%s%s (%s) rxq=%u txq=%u%s\n", p.dev,
                 p.name.c_str(), p.alias.empty() ? "" : " as ", p.alias.c_str(), p.driver.c_str(),
                 p.rx_queues, p.tx_queues, p.rss ? " rss" : "");
  }

  SnapshotPublisher publisher(nworkers);
  std::vector<std::unique_ptr<Worker>> workers;
  for (std::uint16_t w = 0; w < nworkers; ++w) {
    workers.push_back(std::make_unique<Worker>(w, publisher, o.worker, ports.rx_queues_for(w),
                                               ports.tx_slots_for(w)));
  }
  std::vector<Worker *> raw;
  for (auto &w : workers)
    raw.push_back(w.get());
  DpdkDriver driver(&ports, publisher, raw, rte_get_tsc_hz());
  // Until the first push: no tables, every frame is the host's.
  driver.install({}, {});

  stratus::api::ServiceOptions sopt;
  sopt.node_name = o.instance;
  sopt.kind = stratus::DataplaneKind::kDpdk;
  sopt.state_file = o.state_file;
  stratus::api::DataplaneService service(driver, sopt);
  if (!o.state_file.empty() && !service.restore()) {
    std::fprintf(stderr, "stratus-dpdk: state file %s not restored; starting empty\n",
                 o.state_file.c_str());
  }

  for (std::size_t w = 0; w < workers.size(); ++w) {
    int rc = rte_eal_remote_launch([](void *arg) { return static_cast<Worker *>(arg)->run(); },
                                   workers[w].get(), lcores[w]);
    if (rc != 0) {
      std::fprintf(stderr, "stratus-dpdk: cannot launch worker on lcore %u\n", lcores[w]);
      g_stop = true;
    }
  }

  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<prometheus::Exposer> exposer;
  std::shared_ptr<prometheus::Collectable> metrics;
  int status = 0;
  try {
    server = stratus::api::serve(service, o.api);
    if (!o.metrics.empty()) {
      exposer = std::make_unique<prometheus::Exposer>(o.metrics);
      metrics = stratus::api::dataplane_metrics(service);
      exposer->RegisterCollectable(metrics);
    }
    std::fprintf(stderr, "stratus-dpdk: %s: %zu workers, API %s%s%s\n", o.instance.c_str(),
                 workers.size(), o.api.c_str(), o.metrics.empty() ? "" : ", metrics ",
                 o.metrics.c_str());
    while (!g_stop.load())
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } catch (const std::exception &e) {
    std::fprintf(stderr, "stratus-dpdk: %s\n", e.what());
    status = 1;
  }

  std::fprintf(stderr, "stratus-dpdk: shutting down\n");
  if (server)
    server->Shutdown();
  exposer.reset();
  for (auto &w : workers)
    w->stop();
  rte_eal_mp_wait_lcore();
  ports.close();
  return status;
}

}  // namespace

int main(int argc, char **argv) {
  Options o = parse(argc, argv);
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  int status;
  try {
    status = run(o);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "stratus-dpdk: %s\n", e.what());
    status = 1;
  }
  rte_eal_cleanup();
  return status;
}
