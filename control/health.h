// Backend health checks (SPEC.md §5): TCP connect or HTTP GET probes with an
// interval, a timeout, rise (consecutive successes to go up) and fall
// (consecutive failures to go down). The monitor is pure bookkeeping over two
// injected interfaces, a Prober (the socket prober below in stratusd, a fake
// in tests) and a Clock, so its rise/fall logic is tested without sockets or
// sleeping. A backend starts up (its configured state applies at start-up)
// and goes down after `fall` consecutive failures.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/model.h"
#include "config/tables.h"
#include "control/metrics.h"
#include "control/runtime.h"

namespace stratus::control {

// Where a probe connects.
struct ProbeTarget {
  IpAddress addr;
  std::uint16_t port = 0;

  std::string str() const;  // "10.0.1.10:443", "[2001:db8::1]:80"
  auto operator<=>(const ProbeTarget &) const = default;
};

// The backend's address and the health check's port (the service port when
// the check names none). The one place to change when the configuration
// grows a separate probe address (health_check.address).
ProbeTarget probe_target(const config::ServiceSpec &service, const config::BackendSpec &backend,
                         const config::HealthCheck &check);

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() = 0;
};

class SteadyClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() override { return std::chrono::steady_clock::now(); }
};

// Runs one probe and reports its result through `done`, exactly once, from
// any thread (possibly before probe() returns).
class Prober {
 public:
  using Done = std::function<void(bool ok, const std::string &detail)>;
  virtual ~Prober() = default;
  virtual void probe(const ProbeTarget &target, const config::HealthCheck &check, Done done) = 0;
};

// TCP connect / HTTP/1.0 GET on non-blocking sockets, all probes multiplexed
// on one thread with poll().
class SocketProber final : public Prober {
 public:
  SocketProber();
  ~SocketProber() override;
  void probe(const ProbeTarget &target, const config::HealthCheck &check, Done done) override;

 private:
  struct Probe;
  void run();

  std::mutex mu_;
  std::vector<std::unique_ptr<Probe>> pending_;
  bool stop_ = false;
  int wake_fd_[2] = {-1, -1};
  std::thread thread_;
};

struct HealthTarget {
  BackendKey key;  // (service, backend)
  ProbeTarget target;
  config::HealthCheck check;
};

struct HealthStatus {
  ProbeTarget target;
  config::HealthCheck check;
  bool up = true;
  std::uint32_t successes = 0;  // consecutive
  std::uint32_t failures = 0;   // consecutive
  std::uint64_t probes = 0;
  std::string last_detail;
};

class HealthMonitor {
 public:
  // Called outside the monitor's lock on every up/down transition.
  using OnChange = std::function<void(const BackendKey &key, bool up, const std::string &detail)>;

  HealthMonitor(Prober &prober, Clock &clock, Metrics *metrics, OnChange on_change);
  ~HealthMonitor();  // stop()

  // Replaces the set of checked backends. A backend whose target and check
  // are unchanged keeps its state and counters; others start afresh (up).
  void set_targets(const std::vector<HealthTarget> &targets);

  // Starts the probes that are due (none in flight for that backend).
  // Returns the time of the next due probe (or now + 1 s when idle).
  std::chrono::steady_clock::time_point tick();

  std::map<BackendKey, HealthStatus> snapshot() const;

  // A thread that calls tick() on the monitor's clock.
  void start();
  void stop();

 private:
  struct Entry {
    HealthStatus status;
    std::chrono::steady_clock::time_point due{};
    bool in_flight = false;
    std::uint64_t epoch = 0;  // results of probes of an older target are ignored
  };
  void result(const BackendKey &key, std::uint64_t epoch, bool ok, const std::string &detail);

  Prober &prober_;
  Clock &clock_;
  Metrics *const metrics_;
  const OnChange on_change_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<BackendKey, Entry> entries_;
  std::uint64_t next_epoch_ = 1;
  bool stop_ = false;
  std::thread thread_;
};

// Every backend of `config` that has a health check, as monitor targets.
std::vector<HealthTarget> health_targets(const config::Config &config);

}  // namespace stratus::control
