#include "dataplane/rcu.h"

#include <stdexcept>
#include <thread>

#include "dataplane/dpdk.h"

namespace stratus::dpdk {

SnapshotPublisher::SnapshotPublisher(std::uint32_t max_readers) {
  std::uint32_t n = max_readers == 0 ? 1 : max_readers;
  std::size_t size = rte_rcu_qsbr_get_memsize(n);
  qs_ = static_cast<rte_rcu_qsbr *>(rte_zmalloc("stratus_qsbr", size, RTE_CACHE_LINE_SIZE));
  if (qs_ == nullptr)
    throw std::runtime_error("cannot allocate the RCU QSBR variable");
  if (rte_rcu_qsbr_init(qs_, n) != 0) {
    rte_free(qs_);
    throw std::runtime_error("cannot initialise the RCU QSBR variable");
  }
}

SnapshotPublisher::~SnapshotPublisher() {
  delete live_.exchange(nullptr);
  rte_free(qs_);
}

void SnapshotPublisher::register_reader(std::uint32_t id) {
  if (rte_rcu_qsbr_thread_register(qs_, id) != 0) {
    throw std::runtime_error("cannot register RCU reader " + std::to_string(id));
  }
}

void SnapshotPublisher::unregister_reader(std::uint32_t id) {
  rte_rcu_qsbr_thread_unregister(qs_, id);
}

void SnapshotPublisher::online(std::uint32_t id) {
  rte_rcu_qsbr_thread_online(qs_, id);
}
void SnapshotPublisher::offline(std::uint32_t id) {
  rte_rcu_qsbr_thread_offline(qs_, id);
}
void SnapshotPublisher::quiescent(std::uint32_t id) {
  rte_rcu_qsbr_quiescent(qs_, id);
}

void SnapshotPublisher::publish(std::unique_ptr<FibSnapshot> next) {
  FibSnapshot *old = live_.exchange(next.release(), std::memory_order_acq_rel);
  if (old == nullptr)
    return;
  std::uint64_t token = rte_rcu_qsbr_start(qs_);
  // Poll rather than spin: a grace period lasts about one worker loop.
  while (rte_rcu_qsbr_check(qs_, token, false) != 1) {
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  delete old;
  freed_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace stratus::dpdk
