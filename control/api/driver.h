// What a data plane plugs into the generic Dataplane gRPC service
// (control/api/server.h). The service owns the transaction logic that both
// data planes share: gathering the Apply stream, building the new tables
// aside, check(), digest, generation bookkeeping and persistence. A driver
// only installs finished tables and reads its own live state.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/tables.h"
#include "control/api/dataplane.pb.h"
#include "lb/flow_hash.h"

namespace stratus::api {

// The generated API messages (package stratus.dataplane.v1).
namespace pb = ::stratus::dataplane::v1;

// A connection-table entry as a driver reports it.
struct FlowEntry {
  std::uint32_t service_id = 0;
  std::uint32_t backend_id = 0;
  std::uint32_t cpu = 0;
  std::uint64_t age_ms = 0;
};

class DataplaneDriver {
 public:
  virtual ~DataplaneDriver() = default;

  // Makes `next` live. `prev` is what is live now (empty Tables before the
  // first install). `next` has passed stratus::check(). All or nothing: if
  // this throws, `prev` must still be fully in effect. Called from one
  // thread at a time.
  virtual void install(const Tables &prev, const Tables &next) = 0;

  // The keys of the routes and services that a delta transaction upserted
  // or deleted (some may be unchanged in the end, and a key may be in both
  // tables, in one, or in neither).
  struct TouchedKeys {
    std::vector<std::pair<std::uint32_t, IpPrefix>> routes;  // (vrf, prefix)
    std::vector<std::uint32_t> services;                     // ids
  };
  // install() for a transaction that left the node, next hops and VRFs
  // alone and touched only `touched`: every route and service of `next`
  // outside it is as in `prev`. A driver that writes deltas can start from
  // the keys instead of comparing the tables; by default, install().
  virtual void install_delta(const Tables &prev, const Tables &next, const TouchedKeys &touched) {
    (void)touched;
    install(prev, next);
  }

  // Ports as the device sees them (name, MAC, link, attach mode).
  virtual std::vector<pb::PortState> ports() = 0;

  // Counters summed over CPUs/workers. Names (service, backend, tenant) are
  // filled in by the service from the live tables.
  virtual void counters(pb::CountersReply *out) = 0;

  // The live connection-table entry for a (reduced) flow key, if any: lets
  // Explain say whether an existing flow decides the backend.
  virtual std::optional<FlowEntry> lookup_flow(const stratus_flow_key &key) = 0;

  // Streams connection-table entries to `sink` until it returns false.
  virtual void dump_flows(const pb::FlowsRequest &req,
                          const std::function<bool(const pb::Flow &)> &sink) = 0;

  virtual std::uint64_t flow_count() = 0;
};

}  // namespace stratus::api
