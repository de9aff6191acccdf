// Publication of FibSnapshots to workers: one atomic pointer swap, the old
// snapshot freed after a QSBR grace period (DPDK lib/rcu). Workers report a
// quiescent state once per loop iteration, after which they hold no pointer
// into any snapshot; a worker that sleeps or stops goes offline so that it
// never holds up a grace period.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "dataplane/snapshot.h"

struct rte_rcu_qsbr;

namespace stratus::dpdk {

class SnapshotPublisher {
 public:
  // `max_readers`: reader ids are 0..max_readers-1 (one per worker).
  explicit SnapshotPublisher(std::uint32_t max_readers);
  ~SnapshotPublisher();
  SnapshotPublisher(const SnapshotPublisher &) = delete;
  SnapshotPublisher &operator=(const SnapshotPublisher &) = delete;

  // Reader side (workers).
  void register_reader(std::uint32_t id);
  void unregister_reader(std::uint32_t id);
  void online(std::uint32_t id);
  void offline(std::uint32_t id);
  void quiescent(std::uint32_t id);
  const FibSnapshot *current() const { return live_.load(std::memory_order_acquire); }

  // Writer side (one thread at a time): makes `next` live, waits for every
  // online reader to pass a quiescent state, then frees the previous
  // snapshot. Returns after the old one is gone.
  void publish(std::unique_ptr<FibSnapshot> next);

  // Snapshots freed so far (tests check when that happens).
  std::uint64_t freed() const { return freed_.load(std::memory_order_relaxed); }

 private:
  rte_rcu_qsbr *qs_ = nullptr;
  std::atomic<FibSnapshot *> live_{nullptr};
  std::atomic<std::uint64_t> freed_{0};
};

}  // namespace stratus::dpdk
