// The /metrics families of stratusd (SPEC.md §6): configuration generation
// and validity, reloads, per-node sync state, generation, push latency and
// transaction outcomes, health-check results and transitions, and each
// backend's state and weight. Labels are bounded by the configuration (nodes,
// services, backends), never by traffic.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "config/tables.h"

namespace stratus::control {

enum class SyncState : std::uint8_t { kConnecting, kSyncing, kInSync, kFailed };
std::string_view to_string(SyncState s);

class Metrics {
 public:
  Metrics();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  // The text exposition, as an Exposer would serve it.
  std::string text() const;

  void config_loaded(std::uint64_t generation, bool valid);
  void reload(bool ok);
  void config_generation(std::uint64_t generation);

  void node_state(const std::string &node, SyncState state);
  void node_generation(const std::string &node, std::uint64_t generation);
  void push(const std::string &node, bool full, bool ok, double seconds);
  void forget_node(const std::string &node);

  void health_check(const std::string &service, const std::string &backend, bool ok);
  void health_transition(const std::string &service, const std::string &backend, bool up);
  void backend(const std::string &service, const std::string &backend, BackendState state,
               std::uint32_t weight);
  void forget_backend(const std::string &service, const std::string &backend);

 private:
  struct NodeSeries {
    std::map<SyncState, prometheus::Gauge *> state;
    prometheus::Gauge *generation = nullptr;
    prometheus::Histogram *push_full = nullptr;
    prometheus::Histogram *push_delta = nullptr;
    prometheus::Counter *applied = nullptr;
    prometheus::Counter *failed = nullptr;
  };
  struct BackendSeries {
    std::map<BackendState, prometheus::Gauge *> state;
    prometheus::Gauge *weight = nullptr;
    prometheus::Counter *success = nullptr;
    prometheus::Counter *failure = nullptr;
    prometheus::Counter *to_up = nullptr;
    prometheus::Counter *to_down = nullptr;
  };
  NodeSeries &node_series(const std::string &node);  // mu_ held
  BackendSeries &backend_series(const std::string &service, const std::string &backend);

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Gauge> &generation_;
  prometheus::Family<prometheus::Gauge> &valid_;
  prometheus::Family<prometheus::Counter> &reloads_;
  prometheus::Family<prometheus::Gauge> &node_state_;
  prometheus::Family<prometheus::Gauge> &node_generation_;
  prometheus::Family<prometheus::Histogram> &push_duration_;
  prometheus::Family<prometheus::Counter> &transactions_;
  prometheus::Family<prometheus::Counter> &checks_;
  prometheus::Family<prometheus::Counter> &transitions_;
  prometheus::Family<prometheus::Gauge> &backend_state_;
  prometheus::Family<prometheus::Gauge> &backend_weight_;
  prometheus::Gauge &generation_value_;
  prometheus::Gauge &valid_value_;
  prometheus::Counter &reload_ok_;
  prometheus::Counter &reload_failed_;

  std::mutex mu_;
  std::map<std::string, NodeSeries> nodes_;
  std::map<std::pair<std::string, std::string>, BackendSeries> backends_;
};

}  // namespace stratus::control
