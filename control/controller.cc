#include "control/controller.h"

#include <cstdio>
#include <fstream>
#include <future>
#include <optional>
#include <set>
#include <sstream>

#include "config/compile.h"
#include "control/api/convert.h"
#include "control/log.h"

namespace stratus::control {

Controller::Controller(ControllerOptions options, Metrics *metrics)
    : options_(std::move(options)), metrics_(metrics) {
  if (metrics_)
    metrics_->config_loaded(0, false);
  if (!options_.runtime_file.empty()) {
    std::ifstream f(options_.runtime_file);
    if (f) {
      std::stringstream text;
      text << f.rdbuf();
      if (auto o = parse_overrides(text.str())) {
        runtime_.overrides = std::move(*o);
        log() << "operator overrides: " << runtime_.overrides.size() << " restored from "
              << options_.runtime_file;
      } else {
        log() << "operator overrides: " << options_.runtime_file << " is corrupt; ignored";
      }
    }
  }
}

void Controller::save_overrides_locked() {
  if (options_.runtime_file.empty())
    return;
  std::string tmp = options_.runtime_file + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << overrides_text(runtime_.overrides);
    f.flush();
    if (!f) {
      log() << "operator overrides: cannot write " << tmp;
      return;
    }
  }
  if (std::rename(tmp.c_str(), options_.runtime_file.c_str()) != 0)
    log() << "operator overrides: cannot replace " << options_.runtime_file;
}

Controller::~Controller() {
  std::map<std::string, std::shared_ptr<NodeSession>> sessions;
  {
    std::lock_guard lock(mu_);
    sessions.swap(sessions_);
  }
  for (auto &[name, s] : sessions)
    s->stop();
}

void Controller::attach_health(HealthMonitor *monitor) {
  std::lock_guard lock(mu_);
  health_ = monitor;
}

ReloadResult Controller::reload(const std::string &trigger) {
  std::lock_guard reload_lock(reload_mu_);
  return apply_load(config::load_config(options_.config_path), options_.config_path, trigger);
}

ReloadResult Controller::reload_text(const std::string &text, const std::string &name,
                                     const std::string &trigger) {
  std::lock_guard reload_lock(reload_mu_);
  return apply_load(config::load_config_string(text, name), name, trigger);
}

ReloadResult Controller::apply_load(config::LoadResult loaded, const std::string &source,
                                    const std::string &trigger) {
  ReloadResult r;
  r.source = source;
  r.trigger = trigger;
  r.when = std::chrono::system_clock::now();
  for (const auto &w : loaded.warnings)
    r.warnings.push_back(w.str());

  config::NodeTables base;
  if (loaded.ok()) {
    // Compile outside mu_: queries and health updates go on meanwhile.
    // base_ changes only here, under reload_mu_ (held): read it in place
    // rather than copy every node's tables.
    const config::NodeTables *previous = &base_;
    config::NodeTables seeded;
    if (previous->empty() && options_.seed_timeout.count() > 0) {
      seeded = read_node_tables(*loaded.config);
      previous = &seeded;
    }
    try {
      base = config::compile_all(*loaded.config, *previous);
      for (const auto &[node, t] : base) {
        for (const auto &e : check(*t))
          r.errors.push_back(source + ": node " + node + ": " + e);
      }
    } catch (const std::exception &e) {
      r.errors.push_back(source + ": compile: " + e.what());
    }
  } else {
    for (const auto &e : loaded.errors)
      r.errors.push_back(e.str());
  }

  std::vector<std::shared_ptr<NodeSession>> retired;
  std::vector<std::string> forgotten;  // nodes whose metric series go
  {
    std::lock_guard lock(mu_);
    if (!r.errors.empty()) {
      r.ok = false;
      r.generation = generation_;
      last_reload_ = r;
      valid_ = false;
      if (metrics_)
        metrics_->reload(false);
      log() << "config " << source << " rejected (" << trigger << "): " << r.errors.size()
            << " error" << (r.errors.size() == 1 ? "" : "s") << "; keeping generation "
            << generation_;
      for (const auto &e : r.errors)
        log_line("  " + e);
      return r;
    }
    for (const auto &w : r.warnings)
      log_line("config warning: " + w);

    config_ = std::make_shared<const config::Config>(std::move(*loaded.config));
    base_ = std::move(base);
    for (auto it = effective_.begin(); it != effective_.end();) {
      if (!base_.count(it->first)) {
        digests_.erase(it->first);
        it = effective_.erase(it);
      } else {
        ++it;
      }
    }

    // Overrides of backends that no longer exist are dropped.
    std::set<BackendKey> known;
    for (const auto &s : config_->services) {
      for (const auto &b : s.backends)
        known.insert({*s.name, *b.name});
    }
    std::size_t overrides = runtime_.overrides.size();
    for (auto it = runtime_.overrides.begin(); it != runtime_.overrides.end();) {
      it = known.count(it->first) ? std::next(it) : runtime_.overrides.erase(it);
    }
    if (runtime_.overrides.size() != overrides)
      save_overrides_locked();
    if (health_) {
      health_->set_targets(health_targets(*config_));
      runtime_.down.clear();
      for (const auto &[key, st] : health_->snapshot()) {
        if (!st.up)
          runtime_.down.insert(key);
      }
    } else {
      for (auto it = runtime_.down.begin(); it != runtime_.down.end();) {
        it = known.count(*it) ? std::next(it) : runtime_.down.erase(it);
      }
    }

    // Sessions of removed nodes stop (outside the lock); new nodes get one.
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      const config::NodeSpec *n = config_->find_node(it->first);
      if (!n || n->api->str() != it->second->endpoint()) {
        retired.push_back(it->second);
        if (!n)
          forgotten.push_back(it->first);
        digests_.erase(it->first);  // a new session needs its desired state
        it = sessions_.erase(it);
      } else {
        ++it;
      }
    }
    reconcile_sessions_locked();
    r.changed = recompute_locked();
    r.ok = true;
    r.generation = generation_;
    last_reload_ = r;
    valid_ = true;
    if (metrics_) {
      metrics_->reload(true);
      metrics_->config_generation(generation_);
    }
    log() << "config " << source << " loaded (" << trigger << "): " << config_->nodes.size()
          << " nodes, " << config_->tenants.size() << " tenants, " << config_->services.size()
          << " services; "
          << (r.changed ? "generation " + std::to_string(generation_)
                        : "no change, generation " + std::to_string(generation_));
  }
  // Stopped before their series are removed, so that a session's last
  // update cannot bring them back.
  for (auto &s : retired)
    s->stop();
  if (metrics_) {
    for (const auto &node : forgotten)
      metrics_->forget_node(node);
  }
  return r;
}

config::NodeTables Controller::read_node_tables(const config::Config &config) const {
  struct Read {
    std::string node;
    std::future<std::optional<Tables>> tables;
  };
  std::vector<Read> reads;
  for (const auto &n : config.nodes) {
    std::string endpoint = n.api->str();
    reads.push_back({*n.name, std::async(std::launch::async, [this, endpoint] {
                       std::optional<Tables> out;
                       Tables t;
                       auto client = options_.client_factory(endpoint);
                       if (client->read_tables(&t, options_.seed_timeout).ok())
                         out = std::move(t);
                       return out;
                     })});
  }
  config::NodeTables out;
  for (auto &r : reads) {
    std::optional<Tables> t = r.tables.get();
    if (!t)
      continue;
    log() << "node " << r.node << " holds " << t->vrfs.size() << " VRFs, " << t->routes.size()
          << " routes, " << t->services.size() << " services: their ids are kept";
    out[r.node] = std::make_shared<const Tables>(std::move(*t));
  }
  return out;
}

void Controller::reconcile_sessions_locked() {
  for (const auto &n : config_->nodes) {
    if (sessions_.count(*n.name))
      continue;
    auto s = std::make_shared<NodeSession>(*n.name, n.api->str(), options_.client_factory, metrics_,
                                           options_.session);
    s->start();
    sessions_[*n.name] = s;
  }
}

bool Controller::recompute_locked() {
  std::map<std::string, DesiredTables> changed;
  for (const auto &[node, base] : base_) {
    auto prev = effective_.find(node);
    std::shared_ptr<const Tables> eff =
        apply_runtime(base, runtime_, prev == effective_.end() ? nullptr : prev->second.get());
    auto old = digests_.find(node);
    DesiredTables want{eff, 0, 0, nullptr, nullptr};
    if (prev != effective_.end() && old != digests_.end()) {
      // One walk from the previous effective tables gives both the digest
      // (hashing only what changed) and the operations the node's session
      // sends when the node holds those tables.
      std::uint64_t delta = 0;
      want.ops =
          std::make_shared<const std::vector<pb::TxnOp>>(api::diff(*prev->second, *eff, &delta));
      want.base = prev->second;
      want.digest = old->second + delta;
    } else {
      want.digest = digest(*eff);
    }
    if (old != digests_.end() && old->second == want.digest)
      continue;
    digests_[node] = want.digest;
    effective_[node] = eff;
    changed[node] = std::move(want);
  }
  if (changed.empty())
    return false;
  ++generation_;
  for (auto &[node, want] : changed) {
    auto s = sessions_.find(node);
    want.generation = generation_;
    if (s != sessions_.end())
      s->second->set_desired(std::move(want));
  }
  if (metrics_)
    metrics_->config_generation(generation_);
  publish_backend_metrics_locked();
  return true;
}

void Controller::publish_backend_metrics_locked() {
  if (!metrics_)
    return;
  std::map<BackendKey, bool> seen;
  for (const auto &[node, t] : effective_) {
    for (const auto &s : t->services) {
      for (const auto &b : s.backends) {
        BackendKey key{s.name, b.name};
        if (seen.count(key))
          continue;
        seen[key] = true;
        metrics_->backend(s.name, b.name, b.state, b.weight);
      }
    }
  }
  for (const auto &[key, v] : published_backends_) {
    if (!seen.count(key))
      metrics_->forget_backend(key.first, key.second);
  }
  published_backends_ = std::move(seen);
}

void Controller::set_health(const BackendKey &key, bool up) {
  std::lock_guard lock(mu_);
  if (up) {
    if (!runtime_.down.erase(key))
      return;
  } else {
    if (!runtime_.down.insert(key).second)
      return;
  }
  if (recompute_locked()) {
    log() << "backend " << key.first << "/" << key.second << (up ? " back in" : " out of")
          << " service: generation " << generation_;
  }
}

std::string Controller::set_backend(const std::string &service, const std::string &backend,
                                    BackendAction action, std::uint32_t weight) {
  std::lock_guard lock(mu_);
  if (!config_)
    return "no configuration loaded";
  const config::ServiceSpec *s = config_->find_service(service);
  if (!s)
    return "unknown service \"" + service + "\"";
  const config::BackendSpec *b = nullptr;
  for (const auto &x : s->backends) {
    if (*x.name == backend)
      b = &x;
  }
  if (!b)
    return "service \"" + service + "\" has no backend \"" + backend + "\"";
  BackendKey key{service, backend};
  BackendOverride o = runtime_.overrides[key];
  std::string what;
  switch (action) {
    case BackendAction::kDrain:
      o.drain = true;
      what = "drained";
      break;
    case BackendAction::kUndrain:
      // Undrain a backend the configuration marks draining: active anyway.
      if (*b->state == BackendState::kDraining) {
        o.drain = false;
      } else {
        o.drain.reset();
      }
      what = "undrained";
      break;
    case BackendAction::kWeight:
      if (weight > 1000000)
        return "weight " + std::to_string(weight) + " out of range 0..1000000";
      o.weight = weight;
      what = "weight " + std::to_string(weight);
      break;
    case BackendAction::kReset:
      o = {};
      what = "overrides cleared";
      break;
  }
  if (o.empty()) {
    runtime_.overrides.erase(key);
  } else {
    runtime_.overrides[key] = o;
  }
  save_overrides_locked();
  bool changed = recompute_locked();
  log() << "operator: backend " << service << "/" << backend << " " << what
        << (changed ? "; generation " + std::to_string(generation_) : "; no change");
  return "";
}

std::shared_ptr<const config::Config> Controller::config() const {
  std::lock_guard lock(mu_);
  return config_;
}

std::map<std::string, std::shared_ptr<const Tables>> Controller::tables() const {
  std::lock_guard lock(mu_);
  return effective_;
}

RuntimeState Controller::runtime() const {
  std::lock_guard lock(mu_);
  return runtime_;
}

std::vector<SessionStatus> Controller::sessions() const {
  std::vector<std::shared_ptr<NodeSession>> list;
  {
    std::lock_guard lock(mu_);
    for (const auto &[name, s] : sessions_)
      list.push_back(s);
  }
  std::vector<SessionStatus> out;
  for (const auto &s : list)
    out.push_back(s->status());
  return out;
}

std::shared_ptr<NodeSession> Controller::session(const std::string &node) const {
  std::lock_guard lock(mu_);
  auto it = sessions_.find(node);
  return it == sessions_.end() ? nullptr : it->second;
}

std::map<BackendKey, HealthStatus> Controller::health() const {
  HealthMonitor *h;
  {
    std::lock_guard lock(mu_);
    h = health_;
  }
  return h ? h->snapshot() : std::map<BackendKey, HealthStatus>{};
}

std::uint64_t Controller::generation() const {
  std::lock_guard lock(mu_);
  return generation_;
}

ReloadResult Controller::last_reload() const {
  std::lock_guard lock(mu_);
  return last_reload_;
}

bool Controller::config_valid() const {
  std::lock_guard lock(mu_);
  return valid_;
}

bool Controller::wait_in_sync(std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<std::shared_ptr<NodeSession>> list;
  {
    std::lock_guard lock(mu_);
    for (const auto &[name, s] : sessions_)
      list.push_back(s);
  }
  for (const auto &s : list) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0 || !s->wait_in_sync(left))
      return false;
  }
  return true;
}

}  // namespace stratus::control
