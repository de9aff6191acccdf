// The runtime part of the desired state, applied on top of the tables
// compiled from the configuration: operator overrides (drain, undrain,
// weight per backend, from stratusctl) and health (backends whose probes
// failed). Applied on the compiled tables rather than on the config model so
// that a health flap or a drain rebuilds the Maglev table of one service
// (through lb/maglev.h, with the compiler's rule: only active backends take
// slots, with their weight) instead of recompiling every node.
//
// Precedence: a backend the configuration marks down stays down; else a
// backend whose health check failed is down; else an operator drain makes an
// active backend draining (undrain of a backend the configuration marks
// draining makes it active); an operator weight replaces the configured one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "config/tables.h"

namespace stratus::control {

using BackendKey = std::pair<std::string, std::string>;  // (service, backend) names

struct BackendOverride {
  std::optional<bool> drain;  // true: draining; false: active even if configured draining
  std::optional<std::uint32_t> weight;

  bool empty() const { return !drain && !weight; }
  auto operator<=>(const BackendOverride &) const = default;
};

struct RuntimeState {
  std::map<BackendKey, BackendOverride> overrides;
  std::set<BackendKey> down;  // failed health checks
};

// The effective state and weight of one backend given its compiled values.
BackendState effective_state(const BackendKey &key, BackendState configured,
                             const RuntimeState &rt);
std::uint32_t effective_weight(const BackendKey &key, std::uint32_t configured,
                               const RuntimeState &rt);

// Operator overrides as text, to keep them across a restart of stratusd: one
// line per backend, "SERVICE BACKEND drain=1|0|- weight=N|-" (names cannot
// hold spaces). parse_overrides() returns nullopt for text it did not write.
std::string overrides_text(const std::map<BackendKey, BackendOverride> &overrides);
std::optional<std::map<BackendKey, BackendOverride>> parse_overrides(const std::string &text);

// `base` with the runtime state applied. A service whose backends change gets
// its Maglev table rebuilt, unless `previous` (the last effective tables of
// the same node) already holds the same service with the same backends, whose
// table is then reused. The result stays canonical. It is `base` itself, not
// a copy, when the runtime state changes nothing in it (the common case: no
// override, no failed health check, or none on this node's services); only
// the services the runtime state names are looked at.
std::shared_ptr<const Tables> apply_runtime(const std::shared_ptr<const Tables> &base,
                                            const RuntimeState &rt, const Tables *previous);

}  // namespace stratus::control
