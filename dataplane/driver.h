// DpdkDriver: the stratus-dpdk side of the generic Dataplane service
// (control/api/driver.h). install() compiles the tables into a FibSnapshot
// and publishes it (RCU); reads sum the workers' counters and ask workers
// for their flow tables.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "control/api/driver.h"
#include "dataplane/ports.h"
#include "dataplane/rcu.h"
#include "dataplane/worker.h"

namespace stratus::dpdk {

class DpdkDriver final : public api::DataplaneDriver {
 public:
  // `ports` may be null (no devices: tests). Workers are owned elsewhere and
  // outlive the driver.
  DpdkDriver(const Ports *ports, SnapshotPublisher &publisher, std::vector<Worker *> workers,
             std::uint64_t ticks_per_s);

  void install(const Tables &prev, const Tables &next) override;
  std::vector<api::pb::PortState> ports() override;
  void counters(api::pb::CountersReply *out) override;
  std::optional<api::FlowEntry> lookup_flow(const stratus_flow_key &key) override;
  void dump_flows(const api::pb::FlowsRequest &req,
                  const std::function<bool(const api::pb::Flow &)> &sink) override;
  std::uint64_t flow_count() override;

 private:
  const Ports *ports_;
  SnapshotPublisher &publisher_;
  // Control threads are no RCU readers: they read the live snapshot under
  // this lock, which install() holds until the old one is freed.
  std::mutex snapshot_mu_;
  std::vector<Worker *> workers_;
  std::uint64_t ticks_per_s_;
};

}  // namespace stratus::dpdk
