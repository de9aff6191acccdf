// Explain: what a data plane does with a packet, computed from its live
// tables with the same rules as the fast paths (SPEC.md §3-§4,
// docs/packet-behaviour.md). Shared by both data planes so that their
// answers cannot differ.
#pragma once

#include <functional>
#include <optional>

#include "config/tables.h"
#include "control/api/dataplane.pb.h"
#include "control/api/driver.h"

namespace stratus::api {

using FlowLookup = std::function<std::optional<FlowEntry>(const stratus_flow_key &)>;

// Longest-prefix match in one VRF (nullptr: no route).
const Route *lookup_route(const Tables &t, std::uint32_t vrf, const IpAddress &dst);

// The service a packet to (vrf, dst, proto, dport) hits: exact port first,
// then port 0 (nullptr: none).
const Service *match_service(const Tables &t, std::uint32_t vrf, const IpAddress &dst,
                             std::uint8_t proto, std::uint16_t dport);

// The underlay next hop toward `remote`: exact, else the default (nullptr: none).
const NextHop *lookup_nexthop(const Tables &t, const IpAddress &remote);

pb::ExplainReply explain(const Tables &t, std::uint64_t generation, const pb::ExplainRequest &req,
                         const FlowLookup &lookup_flow);

}  // namespace stratus::api
