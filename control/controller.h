// The heart of stratusd: desired state = configuration + runtime state
// (operator overrides, health) -> tables per node -> one NodeSession per node
// that pushes them (control/session.h).
//
// A reload loads and validates the file; an invalid configuration is rejected
// with its diagnostics and nothing changes. A valid one is compiled per node
// (config/compile.h, with the node's previous tables so that ids stay put),
// the runtime state is applied on the compiled tables (control/runtime.h), and
// each node whose tables changed gets them as its new desired state, which its
// session turns into a delta. Overrides, health and operator queries all go
// through here; every method is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/compile.h"
#include "config/model.h"
#include "config/tables.h"
#include "config/validate.h"
#include "control/client.h"
#include "control/health.h"
#include "control/metrics.h"
#include "control/runtime.h"
#include "control/session.h"

namespace stratus::control {

struct ControllerOptions {
  std::string config_path;  // what load("...") and reload read
  ClientFactory client_factory;
  SessionOptions session;
  // On the first load, the tables each reachable node holds are read
  // (ReadTables) and used as the previous tables of the compile, so that a
  // restarted stratusd keeps the ids the nodes use (connection-table entries
  // and counters are keyed by them). 0: don't.
  std::chrono::milliseconds seed_timeout{2000};
  // Where operator overrides (drain, undrain, weight) are kept, so that a
  // restarted stratusd applies them again (written atomically after every
  // change, read at construction). Empty: they live as long as the process.
  std::string runtime_file;
};

struct ReloadResult {
  bool ok = false;
  bool changed = false;  // the desired state of at least one node changed
  std::string source;
  std::string trigger;              // start, sighup, file, api
  std::vector<std::string> errors;  // FILE:LINE:COL: FIELD: message
  std::vector<std::string> warnings;
  std::uint64_t generation = 0;
  std::chrono::system_clock::time_point when{};
};

enum class BackendAction { kDrain, kUndrain, kWeight, kReset };

class Controller {
 public:
  Controller(ControllerOptions options, Metrics *metrics);
  ~Controller();  // stops every session
  Controller(const Controller &) = delete;
  Controller &operator=(const Controller &) = delete;

  // Health transitions update the desired state; reloads update the
  // monitor's targets. Call before the first load; may be null.
  void attach_health(HealthMonitor *monitor);

  // Loads options.config_path (start, SIGHUP, file change, API Reload).
  ReloadResult reload(const std::string &trigger);
  // Loads YAML text (tests, and a future etcd source).
  ReloadResult reload_text(const std::string &text, const std::string &name,
                           const std::string &trigger);

  // A health transition of one backend (HealthMonitor's callback).
  void set_health(const BackendKey &key, bool up);

  // An operator override. Returns "" on success, else why not (unknown
  // service or backend, weight out of range).
  std::string set_backend(const std::string &service, const std::string &backend,
                          BackendAction action, std::uint32_t weight = 0);

  // Read-only views (snapshots).
  std::shared_ptr<const config::Config> config() const;
  std::map<std::string, std::shared_ptr<const Tables>> tables() const;  // effective, per node
  RuntimeState runtime() const;
  std::vector<SessionStatus> sessions() const;
  std::shared_ptr<NodeSession> session(const std::string &node) const;
  std::map<BackendKey, HealthStatus> health() const;
  std::uint64_t generation() const;
  ReloadResult last_reload() const;
  bool config_valid() const;
  const std::string &config_path() const { return options_.config_path; }

  // Waits until every node holds the current desired state (tests, and the
  // initial sync log). False on timeout.
  bool wait_in_sync(std::chrono::milliseconds timeout) const;

 private:
  // The tables of every node of `config` that answers within seed_timeout.
  config::NodeTables read_node_tables(const config::Config &config) const;
  ReloadResult apply_load(config::LoadResult loaded, const std::string &source,
                          const std::string &trigger);
  // Applies runtime_ to base_, hands changed tables to the sessions. mu_ held.
  bool recompute_locked();
  void reconcile_sessions_locked();
  void publish_backend_metrics_locked();
  // Writes runtime_.overrides to options_.runtime_file. mu_ held.
  void save_overrides_locked();

  const ControllerOptions options_;
  Metrics *const metrics_;
  HealthMonitor *health_ = nullptr;

  std::mutex reload_mu_;  // one reload at a time (compiles outside mu_)

  mutable std::mutex mu_;
  std::shared_ptr<const config::Config> config_;
  // Compiled from config_, per node. Written only by apply_load() under
  // reload_mu_ and mu_, so a reload may read it holding reload_mu_ alone.
  config::NodeTables base_;  // compiled, before the runtime state
  std::map<std::string, std::shared_ptr<const Tables>> effective_;
  std::map<std::string, std::uint64_t> digests_;
  RuntimeState runtime_;
  std::map<std::string, std::shared_ptr<NodeSession>> sessions_;
  std::uint64_t generation_ = 0;
  ReloadResult last_reload_;
  bool valid_ = false;
  std::map<BackendKey, bool> published_backends_;  // for forgetting metric series
};

}  // namespace stratus::control
