// A poll-mode worker: one per worker lcore. It polls its RX queues, runs the
// pipeline on each burst, buffers TX per port (flushed when a burst fills or
// on a short drain timer; unsent mbufs are freed and counted), reports an
// RCU quiescent state once per loop, serves control requests (flow lookups
// and dumps) between bursts, and backs off when idle.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "dataplane/counters.h"
#include "dataplane/flow_table.h"
#include "dataplane/pipeline.h"
#include "dataplane/ports.h"
#include "dataplane/rcu.h"

struct rte_mbuf;

namespace stratus::dpdk {

struct WorkerOptions {
  std::uint32_t flow_capacity = 65536;  // entries preallocated per worker
  std::uint32_t drain_us = 100;         // longest a buffered packet waits
  // Idle back-off: after `idle_spins` empty polls, rte_pause() per poll;
  // after `idle_sleep_after` empty polls, sleep `idle_sleep_us` per poll
  // (0 disables sleeping: a busy-polling worker).
  std::uint32_t idle_spins = 64;
  std::uint32_t idle_sleep_after = 1024;
  std::uint32_t idle_sleep_us = 200;
  std::uint16_t exception_dev = 0xffff;  // pass verdicts go there; 0xffff: drop not_for_stratus
};

class Worker {
 public:
  // `rx`: the queues it polls; `tx`: its TX queue per dev id (Ports).
  Worker(std::uint32_t id, SnapshotPublisher &publisher, const WorkerOptions &options,
         std::vector<RxQueue> rx, std::vector<TxSlot> tx);
  ~Worker();
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;

  // The lcore loop; returns after stop(). Registers as RCU reader `id`.
  int run();
  void stop() { stop_.store(true, std::memory_order_relaxed); }
  bool running() const { return running_.load(std::memory_order_acquire); }

  std::uint32_t id() const { return id_; }
  const WorkerCounters &counters() const { return *counters_; }

  // Runs `fn` on the worker's own thread between two bursts (or here, when
  // the worker is not running) and waits for it: the only way another
  // thread touches the flow table.
  void call(const std::function<void(const FlowTable &)> &fn);

 private:
  struct TxBuffer;
  void dispatch(const FibSnapshot &snap, rte_mbuf **pkts, const Verdict *v, std::uint16_t n);
  void enqueue(std::uint16_t dev, rte_mbuf *m);
  void flush(std::uint16_t dev);
  void flush_all();
  void serve_request();

  const std::uint32_t id_;
  SnapshotPublisher &publisher_;
  const WorkerOptions options_;
  const std::vector<RxQueue> rx_;
  std::unique_ptr<WorkerCounters> counters_;
  FlowTable flows_;
  Pipeline pipeline_;
  std::vector<TxBuffer> tx_;  // by dev id
  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};

  struct Request {
    const std::function<void(const FlowTable &)> *fn;
    std::atomic<bool> done{false};
  };
  std::mutex call_mu_;  // one request at a time
  std::atomic<Request *> request_{nullptr};
};

}  // namespace stratus::dpdk
