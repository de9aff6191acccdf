// Test harness for the DPDK pipeline: EAL without hugepages or devices, a
// mempool, and a Pipeline over a snapshot of given tables, fed with frames
// and returning what it would send (verdict, port name, bytes).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/tables.h"
#include "dataplane/counters.h"
#include "dataplane/flow_table.h"
#include "dataplane/pipeline.h"
#include "dataplane/snapshot.h"
#include "tests/fixtures/fixture.h"

struct rte_mempool;

namespace stratus::dpdk::testing {

// Initialises the EAL once for the process (--no-huge --no-shconf --no-pci
// -l 0). On failure returns false with the reason.
bool init_eal(std::string *why);
rte_mempool *test_pool();

// packets.json: $STRATUS_FIXTURES (set by meson), else the built-in path.
std::string fixtures_path();
// The fixture file, loaded once (throws std::runtime_error if malformed).
const fixtures::Fixtures &fixture_file();
// The packet step `step` of the named case (throws if there is none).
const fixtures::PacketStep &fixture_packet(const std::string &name, std::size_t step = 0);

// Resolves node-table port names to devices numbered in node-table order.
PortResolver index_resolver(const Tables &t, const std::vector<std::string> &absent = {});

// Clock ticks per second used by the harness (timeouts in milliseconds).
inline constexpr std::uint64_t kTicksPerSecond = 1000;

struct Output {
  Verdict verdict;
  std::string port;                 // forward: the node port's name
  std::vector<std::uint8_t> bytes;  // forward: the frame as sent
  std::string drop_reason;          // drop: label
};

class Harness {
 public:
  explicit Harness(std::uint32_t flow_capacity = 4096);
  ~Harness();

  // Builds and installs a snapshot of `t`; ports are present devices numbered
  // in node-table order unless named in `absent`.
  void install(const Tables &t, const std::vector<std::string> &absent = {});
  Output send(const std::string &in_port, const std::vector<std::uint8_t> &frame,
              std::uint64_t now = 0);
  // One burst (up to Pipeline::kBurst frames) in a single process() call.
  std::vector<Output> send_burst(const std::string &in_port,
                                 const std::vector<std::vector<std::uint8_t>> &frames,
                                 std::uint64_t now = 0);

  const FibSnapshot &snapshot() const { return *snap_; }
  WorkerCounters &counters() { return *counters_; }
  FlowTable &flows() { return flows_; }
  // What every process() call so far returned: the bytes received.
  std::uint64_t received_bytes() const { return received_bytes_; }

 private:
  std::unique_ptr<WorkerCounters> counters_;
  FlowTable flows_;
  Pipeline pipeline_;
  std::unique_ptr<FibSnapshot> snap_;
  std::uint64_t received_bytes_ = 0;
};

}  // namespace stratus::dpdk::testing
