// stratusd: the Stratus control daemon (SPEC.md §1, §5, §6). Loads the
// desired state, compiles it into tables per data-plane node, keeps every
// node in sync, probes backend health, serves the operator API (stratusctl)
// and /metrics. Runs in the foreground and logs one line per event.
//
//   stratusd --config /etc/stratus/stratus.yaml [--socket PATH] [--listen HOST:PORT]
//            [--metrics HOST:PORT|off] [--watch-ms N] [--no-health] [--check]
//            [--overrides FILE]
//
// Reload: SIGHUP, a change of the file (mtime polling, debounced), or
// `stratusctl reload`. An invalid file is rejected and the running state kept.
#include <prometheus/exposer.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstring>
#include <iostream>
#include <string>

#include "control/controller.h"
#include "control/health.h"
#include "control/log.h"
#include "control/metrics.h"
#include "control/operator_service.h"

namespace {

using namespace stratus::control;

struct Args {
  std::string config;
  std::string socket = "/run/stratus/stratusd.sock";
  unsigned socket_mode = 0600;
  std::string listen;
  std::string metrics = "127.0.0.1:9100";
  int watch_ms = 1000;
  bool health = true;
  bool check = false;
  std::string overrides;
};

int usage(int status) {
  (status ? std::cerr : std::cout)
      << "usage: stratusd --config FILE [options]\n"
         "  --config FILE        desired state (YAML, docs/config.md)\n"
         "  --socket PATH        operator API unix socket (default /run/stratus/stratusd.sock)\n"
         "  --socket-mode MODE   its permissions, octal (default 0600)\n"
         "  --listen HOST:PORT   also serve the operator API on TCP (no authentication)\n"
         "  --metrics HOST:PORT  /metrics address (default 127.0.0.1:9100; off: none)\n"
         "  --watch-ms N         poll the file for changes every N ms (default 1000; 0: off)\n"
         "  --no-health          do not run health checks\n"
         "  --overrides FILE     keep operator overrides (drain, weight) across restarts\n"
         "  --check              validate the file and exit (0 valid, 1 invalid)\n";
  return status;
}

bool parse_args(int argc, char **argv, Args &a, int &status) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc) {
        std::cerr << "stratusd: " << arg << " needs a value\n";
        return false;
      }
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--config" || arg == "-c") {
      if (!value(a.config))
        return status = 2, false;
    } else if (arg == "--socket") {
      if (!value(a.socket))
        return status = 2, false;
    } else if (arg == "--overrides") {
      if (!value(a.overrides))
        return status = 2, false;
    } else if (arg == "--socket-mode") {
      if (!value(v))
        return status = 2, false;
      try {
        a.socket_mode = static_cast<unsigned>(std::stoul(v, nullptr, 8)) & 0777;
      } catch (const std::exception &) {
        std::cerr << "stratusd: bad --socket-mode " << v << "\n";
        return status = 2, false;
      }
    } else if (arg == "--listen") {
      if (!value(a.listen))
        return status = 2, false;
    } else if (arg == "--metrics") {
      if (!value(a.metrics))
        return status = 2, false;
      if (a.metrics == "off")
        a.metrics.clear();
    } else if (arg == "--watch-ms") {
      if (!value(v))
        return status = 2, false;
      try {
        a.watch_ms = std::stoi(v);
      } catch (const std::exception &) {
        std::cerr << "stratusd: bad --watch-ms " << v << "\n";
        return status = 2, false;
      }
    } else if (arg == "--no-health") {
      a.health = false;
    } else if (arg == "--check") {
      a.check = true;
    } else if (arg == "-h" || arg == "--help") {
      status = usage(0);
      return false;
    } else if (!arg.empty() && arg[0] != '-' && a.config.empty()) {
      a.config = arg;
    } else {
      std::cerr << "stratusd: unknown argument " << arg << "\n";
      status = usage(2);
      return false;
    }
  }
  if (a.config.empty()) {
    std::cerr << "stratusd: --config FILE is required\n";
    status = usage(2);
    return false;
  }
  return true;
}

// What identifies a version of the file for change detection.
struct FileStamp {
  bool exists = false;
  timespec mtime{};
  off_t size = 0;
  ino_t inode = 0;
  bool operator==(const FileStamp &o) const {
    return exists == o.exists && mtime.tv_sec == o.mtime.tv_sec &&
           mtime.tv_nsec == o.mtime.tv_nsec && size == o.size && inode == o.inode;
  }
};

FileStamp stamp(const std::string &path) {
  struct stat st {};
  FileStamp s;
  if (::stat(path.c_str(), &st) != 0)
    return s;
  s.exists = true;
  s.mtime = st.st_mtim;
  s.size = st.st_size;
  s.inode = st.st_ino;
  return s;
}

}  // namespace

int main(int argc, char **argv) {
  Args args;
  int status = 0;
  if (!parse_args(argc, argv, args, status))
    return status;

  if (args.check) {
    auto r = stratus::config::load_config(args.config);
    std::cerr << stratus::config::format_diagnostics(r.warnings)
              << stratus::config::format_diagnostics(r.errors);
    if (!r.ok())
      return 1;
    std::cout << args.config << ": valid\n";
    return 0;
  }

  // Signals are taken synchronously by the main loop; every thread started
  // below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGHUP);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Metrics metrics;
  std::unique_ptr<prometheus::Exposer> exposer;
  if (!args.metrics.empty()) {
    try {
      exposer = std::make_unique<prometheus::Exposer>(args.metrics);
      exposer->RegisterCollectable(metrics.registry());
    } catch (const std::exception &e) {
      std::cerr << "stratusd: cannot serve /metrics on " << args.metrics << ": " << e.what()
                << "\n";
      return 1;
    }
  }

  ControllerOptions options;
  options.config_path = args.config;
  options.client_factory = grpc_client_factory();
  options.runtime_file = args.overrides;
  Controller controller(options, &metrics);

  SteadyClock clock;
  std::unique_ptr<SocketProber> prober;
  std::unique_ptr<HealthMonitor> monitor;
  if (args.health) {
    prober = std::make_unique<SocketProber>();
    monitor = std::make_unique<HealthMonitor>(
        *prober, clock, &metrics,
        [&controller](const BackendKey &key, bool up, const std::string &) {
          controller.set_health(key, up);
        });
    controller.attach_health(monitor.get());
  }

  log() << "stratusd " << STRATUS_VERSION << " starting: config " << args.config
        << ", operator API unix:" << args.socket
        << (args.listen.empty() ? "" : " and " + args.listen)
        << (args.metrics.empty() ? "" : ", metrics http://" + args.metrics + "/metrics");
  FileStamp seen = stamp(args.config);
  ReloadResult first = controller.reload("start");
  if (!first.ok) {
    log() << "invalid configuration at start-up; exiting";
    return 1;
  }

  OperatorService service(controller);
  std::unique_ptr<grpc::Server> server;
  try {
    server = serve_operator(service, args.socket, args.socket_mode, args.listen);
  } catch (const std::exception &e) {
    log() << "operator API: " << e.what();
    return 1;
  }
  if (monitor)
    monitor->start();

  // Main loop: signals, and the file's stamp polled every watch_ms; a change
  // is applied once the file has been stable for one more period (an editor
  // writing in several steps triggers one reload).
  auto period = std::chrono::milliseconds(args.watch_ms > 0 ? args.watch_ms : 1000);
  FileStamp changing;  // a new stamp seen once, applied when seen again
  bool is_changing = false;
  for (;;) {
    timespec ts{static_cast<time_t>(period.count() / 1000),
                static_cast<long>((period.count() % 1000) * 1000000)};
    int sig = ::sigtimedwait(&signals, nullptr, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      log() << "received " << ::strsignal(sig) << "; shutting down";
      break;
    }
    if (sig == SIGHUP) {
      log() << "received SIGHUP; reloading " << args.config;
      seen = stamp(args.config);
      is_changing = false;
      controller.reload("sighup");
      continue;
    }
    if (args.watch_ms <= 0)
      continue;
    FileStamp now = stamp(args.config);
    if (now == seen) {
      is_changing = false;
      continue;
    }
    if (!is_changing || !(changing == now)) {
      changing = now;  // wait one more period for it to settle
      is_changing = true;
      continue;
    }
    seen = now;
    is_changing = false;
    if (!now.exists) {
      log() << "config " << args.config << " disappeared; keeping the running state";
      continue;
    }
    log() << "config " << args.config << " changed; reloading";
    controller.reload("file");
  }

  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (monitor)
    monitor->stop();
  prober.reset();  // joins the probe thread: no more results
  controller.attach_health(nullptr);
  ::unlink(args.socket.c_str());
  log() << "stopped";
  return 0;
}
