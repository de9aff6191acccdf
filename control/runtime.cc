#include "control/runtime.h"

#include <unordered_map>
#include <vector>

#include "lb/maglev.h"

namespace stratus::control {

BackendState effective_state(const BackendKey &key, BackendState configured,
                             const RuntimeState &rt) {
  if (configured == BackendState::kDown)
    return BackendState::kDown;
  if (rt.down.count(key))
    return BackendState::kDown;
  auto it = rt.overrides.find(key);
  if (it != rt.overrides.end() && it->second.drain) {
    return *it->second.drain ? BackendState::kDraining : BackendState::kActive;
  }
  return configured;
}

std::uint32_t effective_weight(const BackendKey &key, std::uint32_t configured,
                               const RuntimeState &rt) {
  auto it = rt.overrides.find(key);
  if (it != rt.overrides.end() && it->second.weight)
    return *it->second.weight;
  return configured;
}

Tables apply_runtime(const Tables &base, const RuntimeState &rt, const Tables *previous) {
  Tables out = base;
  std::unordered_map<std::uint32_t, const Service *> prev_by_id;
  if (previous) {
    for (const auto &s : previous->services)
      prev_by_id[s.id] = &s;
  }
  for (std::size_t i = 0; i < out.services.size(); ++i) {
    Service &svc = out.services[i];
    bool changed = false;
    for (auto &b : svc.backends) {
      BackendKey key{svc.name, b.name};
      BackendState st = effective_state(key, b.state, rt);
      std::uint32_t w = effective_weight(key, b.weight, rt);
      if (st != b.state || w != b.weight)
        changed = true;
      b.state = st;
      b.weight = w;
    }
    if (!changed)
      continue;  // the compiled Maglev table holds
    auto prev = prev_by_id.find(svc.id);
    if (prev != prev_by_id.end() && prev->second->maglev_size == svc.maglev_size &&
        prev->second->backends == svc.backends) {
      svc.maglev = prev->second->maglev;
      continue;
    }
    std::vector<lb::MaglevBackend> weights;
    weights.reserve(svc.backends.size());
    for (const auto &b : svc.backends) {
      weights.push_back({b.name, b.state == BackendState::kActive ? b.weight : 0u});
    }
    svc.maglev = lb::maglev_table(weights, svc.maglev_size);
  }
  return out;
}

}  // namespace stratus::control
