#include "control/runtime.h"

#include <charconv>
#include <set>
#include <string_view>
#include <sstream>
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

std::string overrides_text(const std::map<BackendKey, BackendOverride> &overrides) {
  std::string out;
  for (const auto &[key, o] : overrides) {
    out += key.first + " " + key.second + " drain=" + (o.drain ? (*o.drain ? "1" : "0") : "-") +
           " weight=" + (o.weight ? std::to_string(*o.weight) : "-") + "\n";
  }
  return out;
}

std::optional<std::map<BackendKey, BackendOverride>> parse_overrides(const std::string &text) {
  std::map<BackendKey, BackendOverride> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty())
      continue;
    std::istringstream fields(line);
    std::string service, backend, drain, weight, extra;
    if (!(fields >> service >> backend >> drain >> weight) || (fields >> extra))
      return std::nullopt;
    BackendOverride o;
    if (drain == "drain=1") {
      o.drain = true;
    } else if (drain == "drain=0") {
      o.drain = false;
    } else if (drain != "drain=-") {
      return std::nullopt;
    }
    if (weight.rfind("weight=", 0) != 0)
      return std::nullopt;
    std::string w = weight.substr(7);
    if (w != "-") {
      std::uint32_t v = 0;
      auto [end, ec] = std::from_chars(w.data(), w.data() + w.size(), v);
      if (ec != std::errc() || end != w.data() + w.size() || w.empty())
        return std::nullopt;
      o.weight = v;
    }
    if (!o.empty())
      out[{service, backend}] = o;
  }
  return out;
}

std::shared_ptr<const Tables> apply_runtime(const std::shared_ptr<const Tables> &base,
                                            const RuntimeState &rt, const Tables *previous) {
  // A backend the runtime state does not name keeps its compiled state and
  // weight, so only the services it names can change.
  std::set<std::string_view> named;
  for (const auto &[key, o] : rt.overrides)
    named.insert(key.first);
  for (const auto &key : rt.down)
    named.insert(key.first);
  std::shared_ptr<Tables> out;  // a copy of *base, made at the first change
  std::unordered_map<std::uint32_t, const Service *> prev_by_id;
  for (std::size_t i = 0; !named.empty() && i < base->services.size(); ++i) {
    if (!named.count(base->services[i].name))
      continue;
    std::vector<Backend> backends = base->services[i].backends;
    bool changed = false;
    for (auto &b : backends) {
      BackendKey key{base->services[i].name, b.name};
      BackendState st = effective_state(key, b.state, rt);
      std::uint32_t w = effective_weight(key, b.weight, rt);
      if (st != b.state || w != b.weight)
        changed = true;
      b.state = st;
      b.weight = w;
    }
    if (!changed)
      continue;  // the compiled Maglev table holds
    if (!out) {
      out = std::make_shared<Tables>(*base);
      if (previous) {
        for (const auto &s : previous->services)
          prev_by_id[s.id] = &s;
      }
    }
    Service &svc = out->services[i];
    svc.backends = std::move(backends);
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
  if (!out)
    return base;
  return out;
}

}  // namespace stratus::control
