#include "dataplane/worker.h"

#include <chrono>
#include <thread>

#include "dataplane/dpdk.h"

namespace stratus::dpdk {

struct Worker::TxBuffer {
  static constexpr std::uint16_t kSize = Pipeline::kBurst;
  rte_mbuf *pkts[kSize];
  std::uint16_t n = 0;
  TxSlot slot;
};

Worker::Worker(std::uint32_t id, SnapshotPublisher &publisher, const WorkerOptions &options,
               std::vector<RxQueue> rx, std::vector<TxSlot> tx)
    : id_(id),
      publisher_(publisher),
      options_(options),
      rx_(std::move(rx)),
      counters_(make_worker_counters()),
      flows_(options.flow_capacity),
      pipeline_(flows_, *counters_),
      tx_(kMaxPorts) {
  for (std::size_t dev = 0; dev < tx.size() && dev < kMaxPorts; ++dev)
    tx_[dev].slot = tx[dev];
}

Worker::~Worker() = default;

int Worker::run() {
  publisher_.register_reader(id_);
  publisher_.online(id_);
  running_.store(true, std::memory_order_release);
  const std::uint64_t hz = rte_get_tsc_hz();
  const std::uint64_t drain_ticks = hz / 1000000 * options_.drain_us;
  std::uint64_t last_drain = rte_rdtsc();
  std::uint32_t idle = 0;
  rte_mbuf *pkts[Pipeline::kBurst];
  Verdict verdicts[Pipeline::kBurst];

  while (!stop_.load(std::memory_order_relaxed)) {
    const FibSnapshot *snap = publisher_.current();
    const std::uint64_t now = rte_rdtsc();
    std::uint32_t received = 0;
    if (snap != nullptr) {
      for (const RxQueue &q : rx_) {
        std::uint16_t n = rte_eth_rx_burst(q.dev, q.queue, pkts, Pipeline::kBurst);
        if (n == 0)
          continue;
        received += n;
        // The bytes received are summed where the mbufs are read anyway:
        // reading them here, before the pipeline has prefetched them, would
        // wait for every mbuf in turn.
        std::uint64_t bytes = 0;
        if (q.dev == options_.exception_dev) {
          // The host's own traffic leaves through its underlay port
          // unchanged (dispatch counts port_down when there is none).
          for (std::uint16_t i = 0; i < n; ++i) {
            bytes += rte_pktmbuf_pkt_len(pkts[i]);
            verdicts[i] = Verdict{Action::kForward, 0, snap->host_egress};
          }
        } else {
          bytes = pipeline_.process(*snap, snap->port_index(q.dev), pkts, n, now, verdicts);
        }
        PacketsBytes &rx = counters_->port_rx[q.dev];
        rx.packets.add(n);
        rx.bytes.add(bytes);
        dispatch(*snap, pkts, verdicts, n);
      }
      pipeline_.maintain(*snap, now);
    }
    if (now - last_drain >= drain_ticks) {
      flush_all();
      last_drain = now;
    }
    serve_request();
    // No pointer into the snapshot survives this point.
    publisher_.quiescent(id_);

    if (received != 0) {
      idle = 0;
      continue;
    }
    ++idle;
    if (options_.idle_sleep_us != 0 && idle > options_.idle_sleep_after) {
      flush_all();
      publisher_.offline(id_);
      std::this_thread::sleep_for(std::chrono::microseconds(options_.idle_sleep_us));
      publisher_.online(id_);
    } else if (idle > options_.idle_spins) {
      rte_pause();
    }
  }
  flush_all();
  running_.store(false, std::memory_order_release);
  serve_request();  // a caller that raced with the stop must not wait forever
  publisher_.offline(id_);
  publisher_.unregister_reader(id_);
  return 0;
}

void Worker::dispatch(const FibSnapshot &snap, rte_mbuf **pkts, const Verdict *v, std::uint16_t n) {
  for (std::uint16_t i = 0; i < n; ++i) {
    switch (v[i].action) {
      case Action::kForward: {
        std::uint16_t dev = v[i].port < snap.ports.size() ? snap.ports[v[i].port].dev : kNoDev;
        if (dev >= kMaxPorts) {
          counters_->drop(STRATUS_DROP_PORT_DOWN);
          rte_pktmbuf_free(pkts[i]);
        } else {
          enqueue(dev, pkts[i]);
        }
        break;
      }
      case Action::kPass:
        if (options_.exception_dev < kMaxPorts) {
          counters_->passed_to_host.inc();
          enqueue(options_.exception_dev, pkts[i]);
        } else {
          counters_->drop(STRATUS_DROP_NOT_FOR_STRATUS);
          rte_pktmbuf_free(pkts[i]);
        }
        break;
      case Action::kDrop:
        rte_pktmbuf_free(pkts[i]);  // counted by the pipeline
        break;
    }
  }
}

void Worker::enqueue(std::uint16_t dev, rte_mbuf *m) {
  TxBuffer &b = tx_[dev];
  b.pkts[b.n++] = m;
  if (b.n == TxBuffer::kSize)
    flush(dev);
}

void Worker::flush(std::uint16_t dev) {
  TxBuffer &b = tx_[dev];
  if (b.n == 0)
    return;
  // The lengths are read before the PMD owns the mbufs. The counters are
  // written once per burst: adding to one in memory per packet would chain
  // every add through a store and a reload.
  std::uint32_t lens[TxBuffer::kSize];
  for (std::uint16_t i = 0; i < b.n; ++i)
    lens[i] = rte_pktmbuf_pkt_len(b.pkts[i]);
  if (b.slot.lock != nullptr)
    rte_spinlock_lock(b.slot.lock);
  std::uint16_t sent = rte_eth_tx_burst(dev, b.slot.queue, b.pkts, b.n);
  if (b.slot.lock != nullptr)
    rte_spinlock_unlock(b.slot.lock);
  std::uint64_t bytes = 0;
  for (std::uint16_t i = 0; i < sent; ++i)
    bytes += lens[i];
  PacketsBytes &tx = counters_->port_tx[dev];
  tx.packets.add(sent);
  tx.bytes.add(bytes);
  if (sent < b.n) {
    counters_->drops[STRATUS_DROP_TX_FAILED].add(b.n - sent);
    rte_pktmbuf_free_bulk(b.pkts + sent, b.n - sent);
  }
  b.n = 0;
}

void Worker::flush_all() {
  for (std::uint16_t dev = 0; dev < tx_.size(); ++dev)
    flush(dev);
}

void Worker::serve_request() {
  if (request_.load(std::memory_order_relaxed) == nullptr)
    return;
  // exchange, not load+store: the caller may take a request back at once.
  Request *r = request_.exchange(nullptr, std::memory_order_acq_rel);
  if (r == nullptr)
    return;
  (*r->fn)(flows_);
  r->done.store(true, std::memory_order_release);
}

void Worker::call(const std::function<void(const FlowTable &)> &fn) {
  std::lock_guard<std::mutex> lock(call_mu_);
  if (!running()) {
    fn(flows_);
    return;
  }
  Request r;
  r.fn = &fn;
  request_.store(&r, std::memory_order_release);
  while (!r.done.load(std::memory_order_acquire)) {
    if (!running() && request_.load(std::memory_order_acquire) == &r) {
      // The worker stopped before taking the request: take it back.
      Request *expected = &r;
      if (request_.compare_exchange_strong(expected, nullptr)) {
        fn(flows_);
        return;
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
}

}  // namespace stratus::dpdk
