// Packet rate of stratus-dpdk's real worker loop (dataplane/worker.cc:
// rte_eth_rx_burst, the pipeline, counters, buffered TX, rte_eth_tx_burst,
// the RCU quiescent state) per path, beside a minimal worker measured in
// the same run on the same ports: rx burst, one rte_lpm lookup and a MAC
// rewrite per packet, tx burst (what l3fwd does, prefetching ahead as it
// does).
//
// Where pipeline_bench times the pipeline alone on packets its own core has
// just written (hot in L1), here the packets come as a NIC delivers them:
// written by another agent, not in the worker's caches. The worker runs on
// lcore 1 and polls net_ring ethdevs; a feeder on lcore 0 plays the NIC.
// For each batch of 4096 packets it rewrites every mbuf with the row's
// next frame and flow (as a NIC's DMA rewrites a receive buffer) and moves
// those lines to the last-level cache (CLDEMOTE, where DDIO leaves them),
// untimed; then it puts the whole batch on the RX ring at once and times
// until the worker has sent all but its last burst. Its own writing is
// thus outside the timed span, and the worker is never short of packets.
// The same mbufs circulate, so nothing is allocated or freed.
//
// A run's figure is its median batch, each row keeps its fastest of
// --reps runs; the rate ratio is baseline cycles / row cycles. Tables,
// frames and the report are shared with pipeline_bench (bench_common.h);
// the clock is the TSC. The last lines restate the targets from
// this run; nothing is asserted. Needs lcores 0 and 1 (SKIP otherwise).
//
//   worker_bench [--seconds S] [--reps N] [--only SUBSTRING] [--json PATH]
#include <rte_eth_ring.h>
#include <rte_launch.h>
#include <rte_ring.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/dataplane/bench_common.h"
#include "dataplane/dpdk.h"
#include "dataplane/ports.h"
#include "dataplane/rcu.h"
#include "dataplane/snapshot.h"
#include "dataplane/worker.h"

namespace {

using namespace stratus;
using namespace stratus::dpdk;
using namespace stratus::dpdk::bench;

constexpr unsigned kBatch = 4096;  // packets per round: 128 bursts, ~1 MiB of lines
constexpr unsigned kRingSize = 8192;
constexpr unsigned kWorkerLcore = 1;

using Row = BenchRow;

struct RingPort {
  std::string name;  // the node table's
  std::uint16_t dev = 0;
  rte_ring *rx = nullptr;
};

// The NIC's side: the rings of every port, the shared TX ring and the mbufs.
struct Nic {
  std::vector<RingPort> ports;
  rte_ring *tx = nullptr;  // every port transmits here
  rte_mempool *pool = nullptr;

  const RingPort &port(const std::string &name) const {
    for (const RingPort &p : ports) {
      if (p.name == name)
        return p;
    }
    std::fprintf(stderr, "no port %s\n", name.c_str());
    std::exit(1);
  }
};

// The feeder's state for one row: which frame and flow the next packet of
// each pattern position gets.
class Feeder {
 public:
  explicit Feeder(const Row &r) : row_(r), flow_(r.slots.size()) {
    for (std::size_t i = 0; i < flow_.size(); ++i)
      flow_[i] = static_cast<std::uint32_t>((std::uint64_t{r.slots[i].flows} * i) / flow_.size());
  }

  void fill(rte_mbuf *m) {
    const Slot &s = row_.slots[pos_];
    const std::vector<std::uint8_t> &f = row_.frames[s.frame];
    const auto len = static_cast<std::uint16_t>(f.size());
    m->data_off = RTE_PKTMBUF_HEADROOM;
    m->data_len = len;
    m->pkt_len = len;
    m->nb_segs = 1;
    auto *d = rte_pktmbuf_mtod(m, std::uint8_t *);
    std::memcpy(d, f.data(), len);
    std::uint32_t src;
    std::memcpy(&src, f.data() + s.src_off, 4);
    src ^= rte_cpu_to_be_32(flow_[pos_]);
    std::memcpy(d + s.src_off, &src, 4);
    if (++flow_[pos_] == s.flows)
      flow_[pos_] = 0;
    if (++pos_ == row_.slots.size())
      pos_ = 0;
  }

 private:
  const Row &row_;
  std::vector<std::uint32_t> flow_;
  std::size_t pos_ = 0;
};

// The minimal worker: l3fwd's loop with one route lookup per packet.
struct MinimalWorker {
  const FibSnapshot *snap = nullptr;
  std::uint16_t in_dev = 0;
  std::atomic<bool> stop{false};

  static int run(void *arg) {
    auto &w = *static_cast<MinimalWorker *>(arg);
    const FibSnapshot &snap = *w.snap;
    const VrfEntry *vrf = snap.vrf(1);
    constexpr unsigned kAhead = 4;
    rte_mbuf *pkts[Pipeline::kBurst];
    while (!w.stop.load(std::memory_order_relaxed)) {
      const std::uint16_t n = rte_eth_rx_burst(w.in_dev, 0, pkts, Pipeline::kBurst);
      if (n == 0)
        continue;
      for (std::uint16_t i = 0; i < n && i < kAhead; ++i)
        rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
      std::uint16_t out_dev = w.in_dev;
      for (std::uint16_t i = 0; i < n; ++i) {
        if (i + kAhead < n)
          rte_prefetch0(rte_pktmbuf_mtod(pkts[i + kAhead], void *));
        const std::uint16_t out =
            baseline_forward(snap, *vrf, rte_pktmbuf_mtod(pkts[i], std::uint8_t *));
        out_dev = snap.ports[out].dev;  // the row's packets share one route
      }
      const std::uint16_t sent = rte_eth_tx_burst(out_dev, 0, pkts, n);
      if (sent < n)
        rte_pktmbuf_free_bulk(pkts + sent, n - sent);
    }
    return 0;
  }
};

// Moves a line from this core's caches to the shared last level, where a
// NIC with DDIO writes its packets. A hint; a no-op (a NOP encoding) on CPUs
// without CLDEMOTE.
inline void demote(const void *p) {
  asm volatile("cldemote %0" : : "m"(*static_cast<const char *>(p)));
}

// The lines a NIC writes for a packet: the mbuf's first line (the PMD fills
// it from the descriptor) and the frame.
inline void demote_packet(rte_mbuf *m) {
  demote(m);
  const auto *d = rte_pktmbuf_mtod(m, const std::uint8_t *);
  const auto first = reinterpret_cast<std::uintptr_t>(d) & ~std::uintptr_t{63};
  for (std::uintptr_t l = first; l < reinterpret_cast<std::uintptr_t>(d) + m->data_len; l += 64)
    demote(reinterpret_cast<const void *>(l));
}

struct RunResult {
  double cycles = 0;
  std::uint64_t lost = 0;
};

// One batch round the loop: the feeder writes every packet of `batch` (the
// NIC's DMA, untimed), then puts them all on the RX ring at once and times
// until the worker has sent all but its last burst (which may wait in a TX
// buffer for the drain timer). Returns the cycles per packet of that span;
// `batch` then holds the packets back (fewer where the worker dropped some:
// `lost`, refilled from the pool).
double round_trip(const Nic &nic, rte_ring *rx, Feeder &feeder, std::vector<rte_mbuf *> &batch,
                  std::uint64_t *lost) {
  const auto n = static_cast<unsigned>(batch.size());
  for (rte_mbuf *m : batch) {
    feeder.fill(m);
    demote_packet(m);
  }
  auto **objs = reinterpret_cast<void **>(batch.data());
  const std::uint64_t hz = rte_get_tsc_hz();
  const std::uint64_t t0 = rte_rdtsc();
  rte_ring_sp_enqueue_bulk(rx, objs, n, nullptr);
  unsigned got = 0;
  std::uint64_t t1 = 0, last_progress = t0;
  // Up to 10 ms without a packet back: the rest were dropped.
  while (got < n) {
    const unsigned k = rte_ring_sc_dequeue_burst(nic.tx, objs + got, n - got, nullptr);
    const std::uint64_t now = rte_rdtsc();
    if (k != 0) {
      got += k;
      last_progress = now;
      if (t1 == 0 && got + Pipeline::kBurst >= n)
        t1 = now;
    } else if (now - last_progress > hz / 100) {
      break;
    }
  }
  const unsigned timed = got;
  if (got < n) {
    *lost += n - got;
    if (rte_pktmbuf_alloc_bulk(nic.pool, batch.data() + got, n - got) != 0) {
      std::fprintf(stderr, "no mbufs\n");
      std::exit(1);
    }
    if (t1 == 0)
      t1 = last_progress;
  }
  return timed == 0 ? 0 : static_cast<double>(t1 - t0) / timed;
}

// Runs batches of the row until `seconds` have passed after the warm-up;
// the figure is the median batch.
RunResult feed(const Nic &nic, const Row &r, double seconds) {
  const RingPort &in = nic.port(r.in_port);
  Feeder feeder(r);
  std::vector<rte_mbuf *> batch(kBatch);
  if (rte_pktmbuf_alloc_bulk(nic.pool, batch.data(), kBatch) != 0) {
    std::fprintf(stderr, "no mbufs\n");
    std::exit(1);
  }
  RunResult res;
  const std::uint64_t hz = rte_get_tsc_hz();
  // Warm-up: every flow of the row once, and at least 50 ms.
  {
    std::uint64_t done = 0;
    const std::uint64_t until = rte_rdtsc() + hz / 20;
    while (done < r.warm || rte_rdtsc() < until) {
      round_trip(nic, in.rx, feeder, batch, &res.lost);
      done += kBatch;
    }
  }
  const auto budget = static_cast<std::uint64_t>(seconds * static_cast<double>(hz));
  std::vector<double> figures;
  const std::uint64_t start = rte_rdtsc();
  while (rte_rdtsc() - start < budget)
    figures.push_back(round_trip(nic, in.rx, feeder, batch, &res.lost));
  rte_pktmbuf_free_bulk(batch.data(), kBatch);
  std::nth_element(figures.begin(), figures.begin() + figures.size() / 2, figures.end());
  res.cycles = figures[figures.size() / 2];
  return res;
}

// Frees every mbuf left on the rings; returns how many there were.
unsigned drain(const Nic &nic) {
  unsigned n = 0;
  void *objs[Pipeline::kBurst];
  std::vector<rte_ring *> rings{nic.tx};
  for (const RingPort &p : nic.ports)
    rings.push_back(p.rx);
  for (rte_ring *ring : rings) {
    while (unsigned k = rte_ring_sc_dequeue_burst(ring, objs, Pipeline::kBurst, nullptr)) {
      rte_pktmbuf_free_bulk(reinterpret_cast<rte_mbuf **>(objs), k);
      n += k;
    }
  }
  return n;
}

}  // namespace

int main(int argc, char **argv) {
  const Options opt = parse_options(argc, argv);
  const double seconds = opt.seconds;
  const char *eal[] = {"worker_bench",  "--no-huge", "--no-shconf", "--no-pci",    "-l",
                       "0,1",           "-m",        "2048",        "--log-level", "*:warning",
                       "--no-telemetry"};
  if (rte_eal_init(static_cast<int>(std::size(eal)), const_cast<char **>(eal)) < 0) {
    std::printf("SKIP: EAL cannot initialise on lcores 0 and 1: %s\n", rte_strerror(rte_errno));
    return 77;
  }
  Nic nic;
  nic.pool = make_pool("worker_bench", 2 * kBatch + 1024);
  nic.tx = rte_ring_create("bench_tx", kRingSize, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
  Tables tables = make_tables();
  for (const Port &p : tables.node.ports) {
    RingPort rp;
    rp.name = p.name;
    rp.rx = rte_ring_create(("bench_rx_" + p.name).c_str(), kRingSize, SOCKET_ID_ANY,
                            RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (nic.tx == nullptr || rp.rx == nullptr) {
      std::fprintf(stderr, "cannot create rings: %s\n", rte_strerror(rte_errno));
      return 1;
    }
    const int dev = rte_eth_from_rings(p.name.c_str(), &rp.rx, 1, &nic.tx, 1, SOCKET_ID_ANY);
    if (dev < 0) {
      std::fprintf(stderr, "cannot create the ring port %s: %s\n", p.name.c_str(),
                   rte_strerror(rte_errno));
      return 1;
    }
    rp.dev = static_cast<std::uint16_t>(dev);
    nic.ports.push_back(rp);
  }
  PortConfig cfg;
  cfg.rx_desc = cfg.tx_desc = 1024;
  auto ports = std::make_unique<Ports>(cfg, nic.pool);
  PortResolver resolve = [&](const std::string &name) -> std::optional<DeviceInfo> {
    for (const RingPort &p : nic.ports) {
      if (p.name == name)
        return DeviceInfo{p.dev, {}};
    }
    return std::nullopt;
  };
  const std::uint64_t hz = rte_get_tsc_hz();
  auto publisher = std::make_unique<SnapshotPublisher>(1);
  publisher->publish(build_snapshot(tables, resolve, nullptr, hz));
  const FibSnapshot *snap = publisher->current();

  const Frames fr;
  std::vector<Row> rows;
  auto add = [&](std::string name, std::string port, std::vector<std::vector<std::uint8_t>> frames,
                 std::vector<Slot> slots, std::uint32_t flows, bool baseline = false) {
    rows.push_back(make_row(std::move(name), std::move(port), std::move(frames), std::move(slots),
                            flows, baseline));
  };
  const std::uint32_t k1 = 1000, m1 = 1000000;
  add("baseline: rx, lpm+mac, tx", "t0", {fr.tenant}, same(0, k1, kSrcOff), k1, true);
  add("overlay: vxlan decap+route+encap 1k", "ul0", {vxlan_of(fr.tenant)},
      same(0, k1, kInnerSrcOff), k1);
  add("overlay: vxlan decap+route+encap 1M", "ul0", {vxlan_of(fr.tenant)},
      same(0, m1, kInnerSrcOff), m1);
  add("overlay, 100-route tenant (per-length) 1k", "ul0", {vxlan_of(fr.tenant, 200)},
      same(0, k1, kInnerSrcOff), k1);
  add("tenant -> remote (encap) 1k", "t0", {fr.tenant}, same(0, k1, kSrcOff), k1);
  add("LB established, VRF-0 VIP 1k", "ul0", {fr.lb}, same(0, k1, kSrcOff), k1);
  add("LB established, VRF-0 VIP 1M", "ul0", {fr.lb}, same(0, m1, kSrcOff), m1);
  add("LB established, tenant VIP 1k", "ul0", {fr.tenant_lb}, same(0, k1, kInnerSrcOff), k1);
  add("LB established, tenant VIP 1M", "ul0", {fr.tenant_lb}, same(0, m1, kInnerSrcOff), m1);
  {
    add("LB new flow (64k table full)", "ul0", {fr.lb}, same(0, 1u << 24, kSrcOff), 1u << 24);
    rows.back().flow_capacity = 65536;
    rows.back().warm = 65536;
  }
  if (!opt.only.empty()) {
    std::erase_if(rows, [&](const Row &r) {
      return !r.baseline && r.name.find(opt.only) == std::string::npos;
    });
  }

  WorkerOptions worker_options;
  worker_options.idle_sleep_us = 0;  // a production worker busy-polls
  for (int rep = 0; rep < opt.reps; ++rep) {
    for (Row &r : rows) {
      RunResult res;
      if (r.baseline) {
        MinimalWorker w;
        w.snap = snap;
        w.in_dev = nic.port(r.in_port).dev;
        rte_eal_remote_launch(MinimalWorker::run, &w, kWorkerLcore);
        res = feed(nic, r, seconds);
        w.stop.store(true, std::memory_order_relaxed);
        rte_eal_wait_lcore(kWorkerLcore);
      } else {
        WorkerOptions o = worker_options;
        o.flow_capacity = r.flow_capacity;
        Worker w(0, *publisher, o, {RxQueue{nic.port(r.in_port).dev, 0}}, ports->tx_slots_for(0));
        rte_eal_remote_launch([](void *arg) { return static_cast<Worker *>(arg)->run(); }, &w,
                              kWorkerLcore);
        res = feed(nic, r, seconds);
        w.stop();
        rte_eal_wait_lcore(kWorkerLcore);
      }
      drain(nic);  // what came back after its round gave up on it
      r.failed += res.lost;
      if (rep == 0 || res.cycles < r.best_cycles) {
        r.best_cycles = res.cycles;
      }
    }
  }

  std::printf(
      "DPDK worker loop on lcore %u, packets from a feeder on lcore 0 over net_ring, %u routes, "
      "batches of %u packets, TSC %.2f GHz, %.2f s x %d runs per row (fastest kept), load average "
      "%s\n",
      kWorkerLcore, kRoutes, kBatch, static_cast<double>(hz) / 1e9, seconds, opt.reps,
      load_average().c_str());
  report(rows, hz, opt.json_path);
  ports->close();
  ports.reset();
  publisher.reset();  // the snapshot's LPMs live in EAL memory
  rte_eal_cleanup();
  return 0;
}
