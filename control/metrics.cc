#include "control/metrics.h"

#include <prometheus/text_serializer.h>

namespace stratus::control {

std::string_view to_string(SyncState s) {
  switch (s) {
    case SyncState::kConnecting:
      return "connecting";
    case SyncState::kSyncing:
      return "syncing";
    case SyncState::kInSync:
      return "in_sync";
    case SyncState::kFailed:
      return "failed";
  }
  return "unknown";
}

namespace {

const prometheus::Histogram::BucketBoundaries kPushBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

constexpr SyncState kSyncStates[] = {SyncState::kConnecting, SyncState::kSyncing,
                                     SyncState::kInSync, SyncState::kFailed};
constexpr BackendState kBackendStates[] = {BackendState::kActive, BackendState::kDraining,
                                           BackendState::kDown};

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      generation_(prometheus::BuildGauge()
                      .Name("stratus_config_generation")
                      .Help("Generation of the desired state (bumped by every applied change)")
                      .Register(*registry_)),
      valid_(prometheus::BuildGauge()
                 .Name("stratus_config_valid")
                 .Help("1 if the last configuration load or reload was valid, else 0")
                 .Register(*registry_)),
      reloads_(prometheus::BuildCounter()
                   .Name("stratus_config_reloads_total")
                   .Help("Configuration reloads by result")
                   .Register(*registry_)),
      node_state_(prometheus::BuildGauge()
                      .Name("stratus_node_sync_state")
                      .Help("1 for the current sync state of each data-plane node")
                      .Register(*registry_)),
      node_generation_(prometheus::BuildGauge()
                           .Name("stratus_node_generation")
                           .Help("Table generation last acknowledged by each data-plane node")
                           .Register(*registry_)),
      push_duration_(prometheus::BuildHistogram()
                         .Name("stratus_push_duration_seconds")
                         .Help("Duration of table pushes (Apply transactions) per node and kind")
                         .Register(*registry_)),
      transactions_(prometheus::BuildCounter()
                        .Name("stratus_transactions_total")
                        .Help("Apply transactions per node by result")
                        .Register(*registry_)),
      checks_(prometheus::BuildCounter()
                  .Name("stratus_health_checks_total")
                  .Help("Health-check probes per backend by result")
                  .Register(*registry_)),
      transitions_(prometheus::BuildCounter()
                       .Name("stratus_health_transitions_total")
                       .Help("Health transitions per backend by new state")
                       .Register(*registry_)),
      backend_state_(prometheus::BuildGauge()
                         .Name("stratus_backend_state")
                         .Help("1 for the current state of each backend as pushed")
                         .Register(*registry_)),
      backend_weight_(prometheus::BuildGauge()
                          .Name("stratus_backend_weight")
                          .Help("Effective weight of each backend as pushed")
                          .Register(*registry_)),
      generation_value_(generation_.Add({})),
      valid_value_(valid_.Add({})),
      reload_ok_(reloads_.Add({{"result", "success"}})),
      reload_failed_(reloads_.Add({{"result", "failure"}})) {}

std::string Metrics::text() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

void Metrics::config_loaded(std::uint64_t generation, bool valid) {
  generation_value_.Set(static_cast<double>(generation));
  valid_value_.Set(valid ? 1 : 0);
}

void Metrics::reload(bool ok) {
  (ok ? reload_ok_ : reload_failed_).Increment();
  valid_value_.Set(ok ? 1 : 0);
}

void Metrics::config_generation(std::uint64_t generation) {
  generation_value_.Set(static_cast<double>(generation));
}

Metrics::NodeSeries &Metrics::node_series(const std::string &node) {
  auto it = nodes_.find(node);
  if (it != nodes_.end())
    return it->second;
  NodeSeries s;
  for (SyncState st : kSyncStates) {
    s.state[st] = &node_state_.Add({{"node", node}, {"state", std::string(to_string(st))}});
  }
  s.generation = &node_generation_.Add({{"node", node}});
  s.push_full = &push_duration_.Add({{"node", node}, {"kind", "full"}}, kPushBuckets);
  s.push_delta = &push_duration_.Add({{"node", node}, {"kind", "delta"}}, kPushBuckets);
  s.applied = &transactions_.Add({{"node", node}, {"result", "applied"}});
  s.failed = &transactions_.Add({{"node", node}, {"result", "failed"}});
  return nodes_.emplace(node, s).first->second;
}

void Metrics::node_state(const std::string &node, SyncState state) {
  std::lock_guard lock(mu_);
  for (auto &[st, g] : node_series(node).state)
    g->Set(st == state ? 1 : 0);
}

void Metrics::node_generation(const std::string &node, std::uint64_t generation) {
  std::lock_guard lock(mu_);
  node_series(node).generation->Set(static_cast<double>(generation));
}

void Metrics::push(const std::string &node, bool full, bool ok, double seconds) {
  std::lock_guard lock(mu_);
  NodeSeries &s = node_series(node);
  (ok ? s.applied : s.failed)->Increment();
  if (ok)
    (full ? s.push_full : s.push_delta)->Observe(seconds);
}

void Metrics::forget_node(const std::string &node) {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(node);
  if (it == nodes_.end())
    return;
  NodeSeries &s = it->second;
  for (auto &[st, g] : s.state)
    node_state_.Remove(g);
  node_generation_.Remove(s.generation);
  push_duration_.Remove(s.push_full);
  push_duration_.Remove(s.push_delta);
  transactions_.Remove(s.applied);
  transactions_.Remove(s.failed);
  nodes_.erase(it);
}

Metrics::BackendSeries &Metrics::backend_series(const std::string &service,
                                                const std::string &backend) {
  auto key = std::make_pair(service, backend);
  auto it = backends_.find(key);
  if (it != backends_.end())
    return it->second;
  prometheus::Labels l{{"service", service}, {"backend", backend}};
  auto with = [&](const char *k, std::string_view v) {
    prometheus::Labels x = l;
    x[k] = std::string(v);
    return x;
  };
  BackendSeries s;
  for (BackendState st : kBackendStates)
    s.state[st] = &backend_state_.Add(with("state", to_string(st)));
  s.weight = &backend_weight_.Add(l);
  s.success = &checks_.Add(with("result", "success"));
  s.failure = &checks_.Add(with("result", "failure"));
  s.to_up = &transitions_.Add(with("to", "up"));
  s.to_down = &transitions_.Add(with("to", "down"));
  return backends_.emplace(key, s).first->second;
}

void Metrics::health_check(const std::string &service, const std::string &backend, bool ok) {
  std::lock_guard lock(mu_);
  BackendSeries &s = backend_series(service, backend);
  (ok ? s.success : s.failure)->Increment();
}

void Metrics::health_transition(const std::string &service, const std::string &backend, bool up) {
  std::lock_guard lock(mu_);
  BackendSeries &s = backend_series(service, backend);
  (up ? s.to_up : s.to_down)->Increment();
}

void Metrics::backend(const std::string &service, const std::string &backend, BackendState state,
                      std::uint32_t weight) {
  std::lock_guard lock(mu_);
  BackendSeries &s = backend_series(service, backend);
  for (auto &[st, g] : s.state)
    g->Set(st == state ? 1 : 0);
  s.weight->Set(weight);
}

void Metrics::forget_backend(const std::string &service, const std::string &backend) {
  std::lock_guard lock(mu_);
  auto it = backends_.find({service, backend});
  if (it == backends_.end())
    return;
  BackendSeries &s = it->second;
  for (auto &[st, g] : s.state)
    backend_state_.Remove(g);
  backend_weight_.Remove(s.weight);
  checks_.Remove(s.success);
  checks_.Remove(s.failure);
  transitions_.Remove(s.to_up);
  transitions_.Remove(s.to_down);
  backends_.erase(it);
}

}  // namespace stratus::control
