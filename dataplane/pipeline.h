// The burst pipeline of the DPDK data plane: SPEC.md §3-§4 on a burst of
// mbufs received on one port. It decides a verdict per packet (forward on a
// node port, pass to the host, or drop with a reason) and rewrites forwarded
// packets in place; it never transmits or frees. Workers, tests and
// benchmarks run this same class: workers hand the verdicts to their TX
// buffers, tests compare them with the packet fixtures.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/counters.h"
#include "dataplane/flow_hash_lanes.h"
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

  // Both belong to the calling worker alone.
  Pipeline(FlowTable &flows, WorkerCounters &counters);
  ~Pipeline();
  Pipeline(const Pipeline &) = delete;
  Pipeline &operator=(const Pipeline &) = delete;

  // Processes `n` (<= kBurst) packets received on `in_port` (an index into
  // snap.ports, or kNoPort for a port the tables do not name: everything is
  // then passed to the host). `now` is in the ticks of the snapshot's flow
  // timeouts. Writes one verdict per packet. Returns the bytes received
  // (the packets' lengths before any change), summed where each mbuf is
  // read anyway.
  std::uint64_t process(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf **pkts,
                        std::uint16_t n, std::uint64_t now, Verdict *out);

  // Per-burst housekeeping: expires a few idle flows, applies the snapshot's
  // flow limit.
  void maintain(const FibSnapshot &snap, std::uint64_t now);

 private:
  struct Ip4;
  struct Frame;
  struct Pkt;
  struct Burst;

  template <PortRole R>
  std::uint64_t run(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf **pkts,
                    std::uint16_t n, std::uint64_t now, Verdict *out);
  // Stage 1 of a packet: parse and classify. Either decides the verdict, or
  // leaves the packet for the load balancer or the route stage (p.stage).
  template <PortRole R>
  Verdict handle(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf *m, Pkt &p, Burst &b);
  Verdict arp(const FibSnapshot &snap, std::uint16_t in_port, rte_mbuf *m);
  Verdict decap(const FibSnapshot &snap, rte_mbuf *m, Pkt &p, Burst &b);
  // `entry`: snap.vrf(vrf), looked up once per burst by the callers.
  Verdict overlay(const FibSnapshot &snap, Pkt &p, std::uint32_t vrf, const VrfEntry *entry,
                  const VipRef *vip);
  // Leaves the packet for the load balancer with the flow (src, dst, vrf,
  // ports, proto), all as on the wire; record: false for an ICMP error.
  Verdict defer_balance(Pkt &p, const ServiceEntry &svc, std::uint32_t src, std::uint32_t dst,
                        std::uint32_t vrf, std::uint32_t ports, std::uint8_t proto, bool record);
  // Last stage: the connection table, Maglev, the route; in packet order.
  Verdict balance(const FibSnapshot &snap, rte_mbuf *m, Pkt &p, std::uint64_t now, Burst &b);
  Verdict route(const FibSnapshot &snap, rte_mbuf *m, Pkt &p, Burst &b);
  Verdict encapsulate(const FibSnapshot &snap, rte_mbuf *m, const Frame &f,
                      const EncapTemplate &tpl, std::uint16_t sport);
  template <EncapKind K>
  Verdict encapsulate_as(const FibSnapshot &snap, rte_mbuf *m, const Frame &f,
                         const EncapTemplate &tpl, std::uint16_t sport);
  Verdict drop(stratus_drop_reason r) {
    counters_.drop(r);
    return Verdict{Action::kDrop, static_cast<std::uint8_t>(r), kNoPort};
  }

  FlowTable &flows_;
  WorkerCounters &counters_;
  static constexpr unsigned kLanes = 8;
  FlowHashLanesV4<kLanes> lanes_;
  std::unique_ptr<Pkt[]> scratch_;  // kBurst: what a packet carries between stages
};

}  // namespace stratus::dpdk
