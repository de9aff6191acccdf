// The burst pipeline of the DPDK data plane: SPEC.md §3-§4 on a burst of
// mbufs received on one port. It decides a verdict per packet (forward on a
// node port, pass to the host, or drop with a reason) and rewrites forwarded
// packets in place; it never transmits or frees. Workers, tests and
// benchmarks run this same class: workers hand the verdicts to their TX
// buffers, tests compare them with the packet fixtures.
#pragma once

#include <cstdint>

#include "dataplane/counters.h"
#include "dataplane/flow_table.h"
#include "dataplane/snapshot.h"

struct rte_mbuf;

namespace stratus::dpdk {

enum class Action : std::uint8_t { kForward, kPass, kDrop };

struct Verdict {
  Action action = Action::kDrop;
  std::uint8_t reason = 0;       // kDrop: stratus_drop_reason
  std::uint16_t port = kNoPort;  // kForward: index into FibSnapshot::ports
};

class Pipeline {
 public:
  static constexpr std::uint16_t kBurst = 32;
  static constexpr std::uint16_t kPrefetch = 4;

  // Both belong to the calling worker alone.
  Pipeline(FlowTable &flows, WorkerCounters &counters) : flows_(flows), counters_(counters) {}

  // Processes `n` (<= kBurst) packets received on `in_port` (an index into
  // snap.ports, or kNoPort for a port the tables do not name: everything is
  // then passed to the host). `now` is in the ticks of the snapshot's flow
  // timeouts. Writes one verdict per packet.
  void process(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf **pkts, std::uint16_t n,
               std::uint64_t now, Verdict *out);

  // Per-burst housekeeping: expires a few idle flows, applies the snapshot's
  // flow limit.
  void maintain(const FibSnapshot &snap, std::uint64_t now);

 private:
  template <PortRole R>
  void run(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf **pkts, std::uint16_t n,
           std::uint64_t now, Verdict *out);
  template <PortRole R>
  Verdict handle(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf *m, std::uint64_t now);

  struct Ip4;
  struct Frame;
  Verdict arp(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf *m);
  Verdict decap(const FibSnapshot &snap, rte_mbuf *m, const Ip4 &outer, std::uint64_t now);
  Verdict overlay(const FibSnapshot &snap, rte_mbuf *m, Frame &f, std::uint32_t vrf,
                  std::uint64_t now);
  Verdict balance(const FibSnapshot &snap, rte_mbuf *m, Frame &f, const ServiceEntry &svc,
                  const stratus_flow_key &flow, bool record, std::uint64_t now);
  Verdict route(const FibSnapshot &snap, rte_mbuf *m, Frame &f, std::uint32_t vrf);
  Verdict encapsulate(const FibSnapshot &snap, rte_mbuf *m, const Frame &f,
                      const EncapTemplate &tpl);
  Verdict drop(stratus_drop_reason r) {
    counters_.drop(r);
    return Verdict{Action::kDrop, static_cast<std::uint8_t>(r), kNoPort};
  }

  FlowTable &flows_;
  WorkerCounters &counters_;
};

}  // namespace stratus::dpdk
