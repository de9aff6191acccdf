// Backend selection on the load-balancer path (SPEC.md §4.1-4.2), as pure
// code shared by the C++ data plane and explain, so that the two cannot
// disagree: build the flow key from a packet's fields under the service's
// hash flags, then keep the connection-table choice or ask Maglev.
//
// The Maglev table is built (lb/maglev.h) from the backends that take new
// flows only (draining and down backends get weight 0), so a Maglev pick is
// never re-checked here; only a connection-table hit is.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <type_traits>

#include "lb/flow_hash.h"

namespace stratus::lb {

// A 5-tuple as a person or a parser reads it. Addresses use the layout of
// stratus::IpAddress::bytes (IPv4 in bytes 0..3, network order, rest zero),
// which is also the key's; ports are in host byte order.
struct FlowTuple {
  std::uint32_t vrf = 0;
  std::array<std::uint8_t, 16> src{};
  std::array<std::uint8_t, 16> dst{};
  std::uint8_t proto = 0;
  std::uint16_t sport = 0;  // 0 when not TCP/UDP
  std::uint16_t dport = 0;
};

// The flow key of SPEC §4.1, reduced by the service's STRATUS_HASH_* flags:
// the key both for the connection table and for stratus_flow_hash().
inline stratus_flow_key make_flow_key(const FlowTuple &t, std::uint32_t hash_flags) {
  stratus_flow_key key{};
  std::memcpy(key.src, t.src.data(), sizeof key.src);
  std::memcpy(key.dst, t.dst.data(), sizeof key.dst);
  key.vrf = t.vrf;
  // Ports go in as on the wire (big-endian) whatever the host's order.
  const std::uint8_t sport[2] = {static_cast<std::uint8_t>(t.sport >> 8),
                                 static_cast<std::uint8_t>(t.sport)};
  const std::uint8_t dport[2] = {static_cast<std::uint8_t>(t.dport >> 8),
                                 static_cast<std::uint8_t>(t.dport)};
  std::memcpy(&key.sport, sport, 2);
  std::memcpy(&key.dport, dport, 2);
  key.proto = t.proto;
  stratus_flow_key_reduce(&key, hash_flags);
  return key;
}

constexpr std::uint32_t maglev_slot(std::uint32_t flow_hash, std::uint32_t m) {
  return flow_hash % m;
}

// Any backend-state enum with kActive, kDraining and kDown: in practice
// stratus::BackendState (config/tables.h), which lb/ must not depend on.
template <typename S>
concept BackendStateEnum = std::is_enum_v<S> && requires {
  S::kActive;
  S::kDraining;
  S::kDown;
};

// Whether a backend keeps the flows the connection table gave it.
template <BackendStateEnum S>
constexpr bool keeps_flows(S state) {
  return state == S::kActive || state == S::kDraining;
}

inline constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

enum class SelectReason : std::uint8_t {
  kKept,        // connection-table hit on an active or draining backend
  kNew,         // connection-table miss: the Maglev choice
  kReselected,  // hit on a down backend: the Maglev choice replaces it
  kNoBackend,   // would ask Maglev, but the table is empty: drop (no_backend)
};

struct Selection {
  std::uint32_t backend = kNone;  // index into the service's backends; kNone: none
  std::uint32_t slot = kNone;     // the Maglev slot consulted; kNone: none
  SelectReason reason = SelectReason::kNoBackend;

  // Whether the caller writes (or overwrites) the connection-table entry.
  constexpr bool record() const {
    return reason == SelectReason::kNew || reason == SelectReason::kReselected;
  }
};

namespace detail {
constexpr Selection from_maglev(std::span<const std::uint32_t> maglev, std::uint32_t flow_hash,
                                SelectReason reason) {
  if (maglev.empty())
    return {kNone, kNone, SelectReason::kNoBackend};
  std::uint32_t slot = maglev_slot(flow_hash, static_cast<std::uint32_t>(maglev.size()));
  return {maglev[slot], slot, reason};
}
}  // namespace detail

// No connection-table entry for the (reduced) flow key.
constexpr Selection select_on_miss(std::span<const std::uint32_t> maglev, std::uint32_t flow_hash) {
  return detail::from_maglev(maglev, flow_hash, SelectReason::kNew);
}

// A connection-table entry names `backend`, whose state is now `state` (pass
// kDown for a backend that no longer exists).
template <BackendStateEnum S>
constexpr Selection select_on_hit(std::uint32_t backend, S state,
                                  std::span<const std::uint32_t> maglev, std::uint32_t flow_hash) {
  if (keeps_flows(state))
    return {backend, kNone, SelectReason::kKept};
  return detail::from_maglev(maglev, flow_hash, SelectReason::kReselected);
}

}  // namespace stratus::lb
