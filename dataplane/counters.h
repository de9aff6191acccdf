// Per-worker counters (SPEC.md §6). Each worker owns one WorkerCounters and
// is its only writer; the driver sums all workers when asked. A Counter is a
// relaxed atomic that the writer bumps with a plain load+store (no locked
// instruction on the fast path) so that concurrent readers are well defined.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "config/tables.h"
#include "lb/drop_reason.h"

namespace stratus::dpdk {

class Counter {
 public:
  [[gnu::always_inline]] void add(std::uint64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  [[gnu::always_inline]] void inc() { add(1); }
  void set(std::uint64_t n) { v_.store(n, std::memory_order_relaxed); }
  std::uint64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

struct PacketsBytes {
  Counter packets;
  Counter bytes;
  [[gnu::always_inline]] void add(std::uint32_t len) {
    packets.inc();
    bytes.add(len);
  }
};

struct ServiceCounter {
  PacketsBytes fwd;
  Counter new_flows;
};

// Packets and bytes of one PacketsBytes array gathered over a burst: the
// packets of a burst mostly share their index (one tunnel, one tenant
// port, one VRF), so the worker's counters are written once per run of
// equal indices rather than once per packet. A local of the burst loop, so
// that it lives in registers; flush() before the burst ends.
class Tally {
 public:
  explicit Tally(PacketsBytes *array) : array_(array) {}
  [[gnu::always_inline]] void add(std::uint32_t index, std::uint32_t len) {
    if (index != index_) {
      flush();
      index_ = index;
    }
    ++packets_;
    bytes_ += len;
  }
  [[gnu::always_inline]] void flush() {
    if (packets_ != 0) {
      array_[index_].packets.add(packets_);
      array_[index_].bytes.add(bytes_);
      packets_ = 0;
      bytes_ = 0;
    }
  }

 private:
  PacketsBytes *array_;
  std::uint32_t index_ = 0;
  std::uint32_t packets_ = 0;
  std::uint64_t bytes_ = 0;
};

// Indexed by DPDK port id (ports), VRF id, service id, backend id and drop
// reason: all dense and bounded by config/tables.h.
struct alignas(64) WorkerCounters {
  PacketsBytes port_rx[kMaxPorts];
  PacketsBytes port_tx[kMaxPorts];
  PacketsBytes vrf_rx[kMaxVrfs];
  PacketsBytes vrf_tx[kMaxVrfs];
  ServiceCounter services[kMaxServices];
  ServiceCounter backends[kMaxBackends];
  Counter drops[kDropReasonCount];
  Counter flow_entries;
  Counter flow_hits;
  Counter flow_misses;
  Counter passed_to_host;
  Counter arp_replies;

  [[gnu::always_inline]] void drop(stratus_drop_reason r) { drops[r].inc(); }
};

// WorkerCounters is large (per-backend arrays): always on the heap.
inline std::unique_ptr<WorkerCounters> make_worker_counters() {
  return std::make_unique<WorkerCounters>();
}

}  // namespace stratus::dpdk
