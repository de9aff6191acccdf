/* The drop-reason enum, expanded from lb/drop_reasons.def; included by the
 * BPF programs (C) and by the C++ data plane, control plane and metrics. */
#ifndef STRATUS_LB_DROP_REASON_H
#define STRATUS_LB_DROP_REASON_H

enum stratus_drop_reason {
#define STRATUS_DROP_REASON(name, label, description) STRATUS_DROP_##name,
#include "lb/drop_reasons.def"
#undef STRATUS_DROP_REASON
  STRATUS_DROP__COUNT
};

#ifdef __cplusplus
#include <array>
#include <string_view>

namespace stratus {

inline constexpr std::size_t kDropReasonCount = STRATUS_DROP__COUNT;

// Metric label value of each reason ("no_route"), indexed by the enum.
inline constexpr std::array<std::string_view, kDropReasonCount> kDropReasonLabels = {
#define STRATUS_DROP_REASON(name, label, description) label,
#include "lb/drop_reasons.def"
#undef STRATUS_DROP_REASON
};

// One-line human description of each reason, indexed by the enum.
inline constexpr std::array<std::string_view, kDropReasonCount> kDropReasonDescriptions = {
#define STRATUS_DROP_REASON(name, label, description) description,
#include "lb/drop_reasons.def"
#undef STRATUS_DROP_REASON
};

constexpr std::string_view drop_reason_label(stratus_drop_reason r) {
  return static_cast<std::size_t>(r) < kDropReasonCount ? kDropReasonLabels[r] : "unknown";
}

}  // namespace stratus
#endif

#endif /* STRATUS_LB_DROP_REASON_H */
