// stratus-xdp: the XDP data-plane agent. Loads the BPF program (reusing the
// instance's pinned maps, so a restart keeps tables and connections),
// attaches it to the given interfaces, re-installs the last applied tables,
// serves the Dataplane gRPC API and /metrics, and on SIGINT/SIGTERM leaves
// the program forwarding (or removes it and its pins with --detach).
#include <getopt.h>
#include <signal.h>

#include <prometheus/exposer.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "control/api/server.h"
#include "xdp/xdp_driver.h"

namespace {

struct Flags {
  std::string instance = "default";
  std::vector<std::string> interfaces;
  std::string api;
  std::string metrics;
  std::string bpffs = "/sys/fs/bpf/stratus";
  std::string state_dir;
  bool generic = false;
  bool detach = false;
};

void usage(std::ostream &out) {
  out << "usage: stratus-xdp [options]\n"
         "  --instance NAME        instance name (default \"default\")\n"
         "  --interfaces a,b,c     interfaces to attach to (also --interface, repeatable)\n"
         "  --api ENDPOINT         gRPC endpoint: unix:/run/stratus/NAME.sock or host:port\n"
         "                         (default unix:/run/stratus/NAME.sock)\n"
         "  --metrics ADDR:PORT    Prometheus /metrics listener (default: none)\n"
         "  --bpffs DIR            pin root; maps go to DIR/NAME (default /sys/fs/bpf/stratus)\n"
         "  --state-dir DIR        where the last applied tables are kept\n"
         "                         (default /run/stratus/NAME)\n"
         "  --generic              force generic (SKB) XDP\n"
         "  --detach               on exit, detach the program and remove the pins\n";
}

std::vector<std::string> split(const std::string &s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty())
      out.push_back(item);
  }
  return out;
}

Flags parse(int argc, char **argv) {
  enum {
    kInstance = 1,
    kInterfaces,
    kInterface,
    kApi,
    kMetrics,
    kBpffs,
    kStateDir,
    kGeneric,
    kDetach,
    kHelp
  };
  static const option options[] = {
      {"instance", required_argument, nullptr, kInstance},
      {"interfaces", required_argument, nullptr, kInterfaces},
      {"interface", required_argument, nullptr, kInterface},
      {"api", required_argument, nullptr, kApi},
      {"metrics", required_argument, nullptr, kMetrics},
      {"bpffs", required_argument, nullptr, kBpffs},
      {"state-dir", required_argument, nullptr, kStateDir},
      {"generic", no_argument, nullptr, kGeneric},
      {"detach", no_argument, nullptr, kDetach},
      {"help", no_argument, nullptr, kHelp},
      {nullptr, 0, nullptr, 0},
  };
  Flags f;
  int c;
  while ((c = getopt_long(argc, argv, "", options, nullptr)) != -1) {
    switch (c) {
      case kInstance:
        f.instance = optarg;
        break;
      case kInterfaces:
        for (auto &i : split(optarg))
          f.interfaces.push_back(i);
        break;
      case kInterface:
        f.interfaces.push_back(optarg);
        break;
      case kApi:
        f.api = optarg;
        break;
      case kMetrics:
        f.metrics = optarg;
        break;
      case kBpffs:
        f.bpffs = optarg;
        break;
      case kStateDir:
        f.state_dir = optarg;
        break;
      case kGeneric:
        f.generic = true;
        break;
      case kDetach:
        f.detach = true;
        break;
      case kHelp:
        usage(std::cout);
        std::exit(0);
      default:
        usage(std::cerr);
        std::exit(2);
    }
  }
  if (optind < argc) {
    std::cerr << "stratus-xdp: unexpected argument \"" << argv[optind] << "\"\n";
    usage(std::cerr);
    std::exit(2);
  }
  if (f.instance.empty() || f.instance.find('/') != std::string::npos) {
    std::cerr << "stratus-xdp: --instance must be a non-empty name without '/'\n";
    std::exit(2);
  }
  if (f.api.empty())
    f.api = "unix:/run/stratus/" + f.instance + ".sock";
  if (f.state_dir.empty())
    f.state_dir = "/run/stratus/" + f.instance;
  return f;
}

}  // namespace

int main(int argc, char **argv) {
  Flags flags = parse(argc, argv);

  // Signals are taken synchronously by the main thread (sigwait) once the
  // servers run; block them before any thread starts so none inherits them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  try {
    std::filesystem::create_directories(flags.state_dir);
    if (flags.api.rfind("unix:", 0) == 0) {
      std::filesystem::path sock = flags.api.substr(5);
      if (sock.has_parent_path())
        std::filesystem::create_directories(sock.parent_path());
    }

    stratus::xdp::XdpOptions options;
    options.instance = flags.instance;
    options.interfaces = flags.interfaces;
    options.bpffs_root = flags.bpffs;
    options.force_generic = flags.generic;
    options.detach_on_exit = flags.detach;
    stratus::xdp::XdpDriver driver(options);

    stratus::api::ServiceOptions so;
    so.node_name = flags.instance;
    so.kind = stratus::DataplaneKind::kXdp;
    so.state_file = flags.state_dir + "/tables.pb";
    stratus::api::DataplaneService service(driver, so);
    if (!service.restore()) {
      std::clog << "stratus-xdp: warning: could not restore the last tables from " << so.state_file
                << "; waiting for a full sync\n";
    } else {
      std::clog << "stratus-xdp: generation " << service.generation() << " live\n";
    }

    auto server = stratus::api::serve(service, flags.api);
    std::clog << "stratus-xdp: API on " << flags.api << "\n";

    // The exposer holds collectables by weak_ptr: `metrics` keeps ours alive.
    std::shared_ptr<prometheus::Collectable> metrics = stratus::api::dataplane_metrics(service);
    std::unique_ptr<prometheus::Exposer> exposer;
    if (!flags.metrics.empty()) {
      exposer = std::make_unique<prometheus::Exposer>(flags.metrics);
      exposer->RegisterCollectable(metrics);
      std::clog << "stratus-xdp: metrics on http://" << flags.metrics << "/metrics\n";
    }

    int sig = 0;
    sigwait(&signals, &sig);
    std::clog << "stratus-xdp: " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", shutting down"
              << (flags.detach ? " and detaching" : "; the program keeps forwarding") << "\n";
    exposer.reset();
    server->Shutdown();
    server->Wait();
    if (flags.api.rfind("unix:", 0) == 0) {
      std::error_code ec;
      std::filesystem::remove(flags.api.substr(5), ec);
    }
  } catch (const std::exception &e) {
    std::cerr << "stratus-xdp: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
