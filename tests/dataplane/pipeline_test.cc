// DPDK-specific pipeline behaviour that the shared fixtures leave out
// (docs/packet-behaviour.md §7): ARP for the VTEP addresses, port_down,
// counters, flow expiry, burst processing, snapshot sharing and the VIP
// filter. Frames come
// from the fixture file where one fits, so no expected byte is derived from
// the code under test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>
#include <variant>

#include "dataplane/dpdk.h"
#include "tests/dataplane/alloc_counter.h"
#include "tests/dataplane/harness.h"
#include "tests/fixtures/fixture.h"

namespace stratus::dpdk::testing {
namespace {

const fixtures::Fixtures &fx() {
  return fixture_file();
}

const fixtures::Case &fixture_case(const std::string &name) {
  for (const auto &c : fx().cases) {
    if (c.name == name)
      return c;
  }
  throw std::runtime_error("no fixture case " + name);
}

const fixtures::PacketStep &packet(const std::string &name) {
  return fixture_packet(name);
}

const Tables &gw() {
  return fx().tables.at("gw");
}

std::vector<std::uint8_t> mac(const MacAddress &m) {
  return {m.bytes.begin(), m.bytes.end()};
}

std::vector<std::uint8_t> bytes_of(std::initializer_list<std::vector<std::uint8_t>> parts) {
  std::vector<std::uint8_t> out;
  for (const auto &p : parts)
    out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<std::uint8_t> ipv4(const char *text) {
  auto a = IpAddress::parse(text);
  return {a->bytes.begin(), a->bytes.begin() + 4};
}

// An ARP request (RFC 826) padded to the 60-byte Ethernet minimum.
std::vector<std::uint8_t> arp_request(const std::vector<std::uint8_t> &sender_mac,
                                      const char *sender_ip, const char *target_ip) {
  auto f = bytes_of({{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
                     sender_mac,
                     {0x08, 0x06},
                     {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01},
                     sender_mac,
                     ipv4(sender_ip),
                     {0, 0, 0, 0, 0, 0},
                     ipv4(target_ip)});
  f.resize(60, 0);
  return f;
}

const Port &port_named(const Tables &t, const std::string &name) {
  for (const auto &p : t.node.ports) {
    if (p.name == name)
      return p;
  }
  throw std::runtime_error("no port " + name);
}

TEST(Pipeline, AnswersArpForEachVtepOnUnderlay) {
  Harness h;
  h.install(gw());
  const std::vector<std::uint8_t> router = {0x02, 0, 0, 0, 0xfe, 0x01};
  auto ul0 = mac(port_named(gw(), "ul0").mac);
  for (const char *vtep : {"192.0.2.1", "192.0.2.2"}) {
    SCOPED_TRACE(vtep);
    Output out = h.send("ul0", arp_request(router, "192.0.2.254", vtep));
    ASSERT_EQ(out.verdict.action, Action::kForward);
    EXPECT_EQ(out.port, "ul0");
    auto want = bytes_of({router,
                          ul0,
                          {0x08, 0x06},
                          {0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02},
                          ul0,
                          ipv4(vtep),
                          router,
                          ipv4("192.0.2.254")});
    EXPECT_EQ(fixtures::hex(out.bytes), fixtures::hex(want));
  }
  EXPECT_EQ(h.counters().arp_replies.get(), 2u);
}

TEST(Pipeline, PassesUnderlayArpForOtherAddresses) {
  Harness h;
  h.install(gw());
  auto req = arp_request({0x02, 0, 0, 0, 0xfe, 0x01}, "192.0.2.254", "192.0.2.3");
  Output out = h.send("ul0", req);
  EXPECT_EQ(out.verdict.action, Action::kPass);
  EXPECT_EQ(out.bytes, req);
  EXPECT_EQ(h.counters().arp_replies.get(), 0u);
}

TEST(Pipeline, AnsweredArpOfTenantGatewayUsesGatewayMac) {
  Harness h;
  h.install(gw());
  auto vm = std::vector<std::uint8_t>{0x02, 0, 0, 0, 0x0a, 0x05};
  Output out = h.send("red0", arp_request(vm, "10.1.0.5", "10.1.0.1"));
  ASSERT_EQ(out.verdict.action, Action::kForward);
  ASSERT_EQ(out.bytes.size(), 42u);
  EXPECT_EQ(std::vector<std::uint8_t>(out.bytes.begin() + 6, out.bytes.begin() + 12),
            mac(gw().node.gateway_mac));
}

TEST(Pipeline, LocalRouteToAbsentPortIsPortDown) {
  Harness h;
  h.install(gw(), /*absent=*/{"red1"});
  Output out = h.send("red0", packet("tenant_port_local_other_port").input);
  ASSERT_EQ(out.verdict.action, Action::kDrop);
  EXPECT_EQ(out.drop_reason, "port_down");
  EXPECT_EQ(h.counters().drops[STRATUS_DROP_PORT_DOWN].get(), 1u);
}

TEST(Pipeline, NextHopOnAbsentPortIsPortDown) {
  Harness h;
  h.install(gw(), /*absent=*/{"ul0"});
  Output out = h.send("red0", packet("tenant_port_route_remote").input);
  ASSERT_EQ(out.verdict.action, Action::kDrop);
  EXPECT_EQ(out.drop_reason, "port_down");
}

TEST(Pipeline, UnknownIngressPortPasses) {
  Harness h;
  h.install(gw());
  const auto &in = packet("overlay_remote_tcp").input;
  Output out = h.send("not-a-port", in);
  EXPECT_EQ(out.verdict.action, Action::kPass);
  EXPECT_EQ(out.bytes, in);
}

TEST(Pipeline, CountsServiceBackendAndFlows) {
  Harness h;
  h.install(gw());
  const auto &c = fixture_case("lb_underlay_multi_packet_flow");
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < c.steps.size(); ++i) {
    const auto &step = std::get<fixtures::PacketStep>(c.steps[i]);
    ASSERT_EQ(h.send(step.in_port, step.input, i).verdict.action, Action::kForward);
    bytes += step.input.size();  // fixture inputs carry no padding
  }
  auto &k = h.counters();
  EXPECT_EQ(k.services[0].fwd.packets.get(), c.steps.size());
  EXPECT_EQ(k.services[0].fwd.bytes.get(), bytes);
  EXPECT_EQ(k.services[0].new_flows.get(), 1u);
  EXPECT_EQ(k.backends[2].fwd.packets.get(), c.steps.size()) << "the case aims at web-vm-b (id 2)";
  EXPECT_EQ(k.backends[2].new_flows.get(), 1u);
  EXPECT_EQ(k.flow_misses.get(), 1u);
  EXPECT_EQ(k.flow_hits.get(), c.steps.size() - 1);
  EXPECT_EQ(k.flow_entries.get(), 1u);
}

TEST(Pipeline, CountsTenantTraffic) {
  Harness h;
  h.install(gw());
  const auto &step = packet("tenant_port_route_remote");
  ASSERT_EQ(h.send(step.in_port, step.input).verdict.action, Action::kForward);
  EXPECT_EQ(h.counters().vrf_rx[1].packets.get(), 1u);
  EXPECT_EQ(h.counters().vrf_tx[1].packets.get(), 1u);
  EXPECT_EQ(h.counters().vrf_tx[1].bytes.get(), step.input.size());
  EXPECT_EQ(h.counters().vrf_rx[2].packets.get(), 0u);
}

// A load-balanced packet counts in its VRF like a routed one (inner frame
// bytes), as on XDP (Counters.LoadBalancedPacketCountsInItsVrf there).
TEST(Pipeline, LoadBalancedPacketCountsInItsVrf) {
  Harness h;
  h.install(gw());
  const auto &step = packet("lb_tenant_port");
  std::uint32_t vrf = 0;
  for (const Port &port : gw().node.ports) {
    if (port.name == step.in_port)
      vrf = port.vrf;
  }
  ASSERT_NE(vrf, 0u) << "the case comes in on a tenant port";
  ASSERT_EQ(h.send(step.in_port, step.input).verdict.action, Action::kForward);
  EXPECT_EQ(h.counters().vrf_rx[vrf].packets.get(), 1u);
  EXPECT_EQ(h.counters().vrf_tx[vrf].packets.get(), 1u);
  EXPECT_EQ(h.counters().vrf_tx[vrf].bytes.get(), step.input.size());
}

TEST(Pipeline, IdleFlowExpiresAndIsChosenAgain) {
  Harness h;
  h.install(gw());
  const auto &step = packet("lb_underlay_vxlan_backend");
  const std::uint64_t tcp_timeout = gw().node.flows.tcp_timeout_s * kTicksPerSecond;
  ASSERT_EQ(h.send("ul0", step.input, 0).verdict.action, Action::kForward);
  ASSERT_EQ(h.send("ul0", step.input, tcp_timeout).verdict.action, Action::kForward);
  EXPECT_EQ(h.counters().services[0].new_flows.get(), 1u) << "within the timeout: same flow";
  ASSERT_EQ(h.send("ul0", step.input, 2 * tcp_timeout + 1).verdict.action, Action::kForward);
  EXPECT_EQ(h.counters().services[0].new_flows.get(), 2u) << "idle too long: a new flow";
}

// A tenant VIP's flow entry keeps the VXLAN source port of its flow: the
// packets after the first (table hits) leave with the fixture's bytes too.
TEST(Pipeline, TenantVipHitsKeepTheFixtureBytes) {
  Harness h;
  h.install(gw());
  const auto &step = packet("lb_tenant_vrf_via_vxlan");
  for (std::uint64_t now = 0; now < 3; ++now) {
    SCOPED_TRACE("packet " + std::to_string(now));
    Output out = h.send(step.in_port, step.input, now);
    ASSERT_EQ(out.verdict.action, Action::kForward);
    EXPECT_EQ(fixtures::hex(out.bytes), fixtures::hex(step.output));
  }
  EXPECT_EQ(h.counters().flow_hits.get(), 2u);
  EXPECT_EQ(h.counters().flow_misses.get(), 1u);
}

// Two packets of one new flow in one burst: the first records the flow,
// the second finds it (stages keep the packets' order).
TEST(Pipeline, NewFlowTwiceInOneBurst) {
  for (const char *name : {"lb_underlay_vxlan_backend", "lb_tenant_vrf_via_vxlan"}) {
    SCOPED_TRACE(name);
    Harness h;
    h.install(gw());
    const auto &step = packet(name);
    auto outs = h.send_burst(step.in_port, {step.input, step.input});
    ASSERT_EQ(outs.size(), 2u);
    for (const Output &out : outs) {
      ASSERT_EQ(out.verdict.action, Action::kForward);
      EXPECT_EQ(fixtures::hex(out.bytes), fixtures::hex(step.output));
    }
    EXPECT_EQ(h.counters().flow_misses.get(), 1u);
    EXPECT_EQ(h.counters().flow_hits.get(), 1u);
    EXPECT_EQ(h.flows().size(), 1u);
  }
}

TEST(Pipeline, FlowLimitFromNodeTable) {
  Tables t = gw();
  t.node.flows.max_entries = 2;
  Harness h(64);
  h.install(t);
  for (const char *name : {"lb_underlay_vxlan_backend", "lb_underlay_ipip_backend",
                           "lb_underlay_multi_packet_flow", "lb_tenant_port"}) {
    const auto &step = packet(name);
    ASSERT_EQ(h.send(step.in_port, step.input, 1).verdict.action, Action::kForward) << name;
    EXPECT_LE(h.flows().size(), 2u);
  }
  EXPECT_EQ(h.flows().size(), 2u);
}

// One burst holding every single-packet case gives each case's own result:
// packets that share a burst (its VRF counters, its stages) behave like
// single packets.
TEST(Pipeline, BurstMatchesSinglePackets) {
  std::vector<const fixtures::PacketStep *> steps;
  for (const auto &c : fx().cases) {
    if (c.tables != "gw" || c.steps.size() != 1)
      continue;
    const auto &s = std::get<fixtures::PacketStep>(c.steps[0]);
    if (s.in_port == "red0")
      steps.push_back(&s);
  }
  ASSERT_GE(steps.size(), 6u);
  if (steps.size() > Pipeline::kBurst)
    steps.resize(Pipeline::kBurst);
  Harness h;
  h.install(gw());
  std::vector<std::vector<std::uint8_t>> frames;
  for (const auto *s : steps)
    frames.push_back(s->input);
  auto outs = h.send_burst("red0", frames);
  ASSERT_EQ(outs.size(), steps.size());
  for (std::size_t i = 0; i < steps.size(); ++i) {
    SCOPED_TRACE("packet " + std::to_string(i));
    EXPECT_EQ(fixtures::verdict_name(steps[i]->verdict),
              outs[i].verdict.action == Action::kForward ? "forward"
              : outs[i].verdict.action == Action::kPass  ? "pass"
                                                         : "drop");
    if (steps[i]->verdict == fixtures::Verdict::kForward) {
      EXPECT_EQ(fixtures::hex(outs[i].bytes), fixtures::hex(steps[i]->output));
    } else if (steps[i]->verdict == fixtures::Verdict::kDrop) {
      EXPECT_EQ(outs[i].drop_reason, steps[i]->drop_reason);
    }
  }
}

// Every underlay packet of the fixtures (tunnels of several VNIs, unknown
// VNIs, VIPs, malformed packets and packets for the host interleaved) in
// bursts, then again in reverse order: each packet gets what it gets when
// sent alone after the same packets, a single-packet case gets its case's
// result, and every counter ends where sending the packets one by one
// leaves it. A burst remembers the last VNI it mapped and gathers VRF
// counters per run of packets; neither may leak from one packet to the
// next. process() returns the bytes received either way.
TEST(Pipeline, UnderlayBurstMatchesSinglePackets) {
  struct Sent {
    const fixtures::PacketStep *step;
    bool alone;  // the whole of a single-packet case
  };
  std::vector<Sent> sent;
  std::set<std::uint32_t> vnis;
  for (const auto &c : fx().cases) {
    if (c.tables != "gw")
      continue;
    for (const auto &step : c.steps) {
      const auto *s = std::get_if<fixtures::PacketStep>(&step);
      if (s == nullptr || s->in_port != "ul0")
        continue;
      sent.push_back({s, c.steps.size() == 1});
      const auto &in = s->input;
      if (in.size() >= 50 && in[23] == IPPROTO_UDP && in[36] == 0x12 && in[37] == 0xb5)
        vnis.insert(std::uint32_t{in[46]} << 16 | std::uint32_t{in[47]} << 8 | in[48]);
    }
  }
  ASSERT_GE(sent.size(), 2u * Pipeline::kBurst);
  ASSERT_GE(vnis.size(), 3u) << "the mix crosses tunnels: known, other and unknown VNIs";
  sent.insert(sent.end(), sent.rbegin(), sent.rend());

  Harness burst;
  burst.install(gw());
  Harness single;
  single.install(gw());
  std::uint64_t sent_bytes = 0;
  for (const Sent &s : sent)
    sent_bytes += s.step->input.size();
  for (std::size_t first = 0; first < sent.size(); first += Pipeline::kBurst) {
    const std::size_t n = std::min<std::size_t>(Pipeline::kBurst, sent.size() - first);
    std::vector<std::vector<std::uint8_t>> frames;
    for (std::size_t i = first; i < first + n; ++i)
      frames.push_back(sent[i].step->input);
    auto outs = burst.send_burst("ul0", frames);
    ASSERT_EQ(outs.size(), n);
    for (std::size_t k = 0; k < n; ++k) {
      const fixtures::PacketStep &step = *sent[first + k].step;
      SCOPED_TRACE("packet " + std::to_string(first + k));
      Output one = single.send("ul0", frames[k]);
      EXPECT_EQ(outs[k].verdict.action, one.verdict.action);
      EXPECT_EQ(outs[k].drop_reason, one.drop_reason);
      EXPECT_EQ(fixtures::hex(outs[k].bytes), fixtures::hex(one.bytes));
      if (!sent[first + k].alone)
        continue;
      EXPECT_EQ(fixtures::verdict_name(step.verdict),
                outs[k].verdict.action == Action::kForward ? "forward"
                : outs[k].verdict.action == Action::kPass  ? "pass"
                                                           : "drop");
      if (step.verdict == fixtures::Verdict::kForward) {
        EXPECT_EQ(fixtures::hex(outs[k].bytes), fixtures::hex(step.output));
      } else if (step.verdict == fixtures::Verdict::kDrop) {
        EXPECT_EQ(outs[k].drop_reason, step.drop_reason);
      }
    }
  }
  const WorkerCounters &a = burst.counters();
  const WorkerCounters &b = single.counters();
  std::uint64_t vrf_packets = 0;
  for (std::uint32_t v = 0; v < kMaxVrfs; ++v) {
    SCOPED_TRACE("VRF " + std::to_string(v));
    EXPECT_EQ(a.vrf_rx[v].packets.get(), b.vrf_rx[v].packets.get());
    EXPECT_EQ(a.vrf_rx[v].bytes.get(), b.vrf_rx[v].bytes.get());
    EXPECT_EQ(a.vrf_tx[v].packets.get(), b.vrf_tx[v].packets.get());
    EXPECT_EQ(a.vrf_tx[v].bytes.get(), b.vrf_tx[v].bytes.get());
    vrf_packets += a.vrf_rx[v].packets.get();
  }
  EXPECT_GT(vrf_packets, 0u) << "some cases reach a tenant VRF";
  for (std::uint32_t r = 0; r < kDropReasonCount; ++r)
    EXPECT_EQ(a.drops[r].get(), b.drops[r].get()) << "drop reason " << r;
  for (std::uint32_t id = 0; id < 64; ++id) {
    EXPECT_EQ(a.services[id].fwd.packets.get(), b.services[id].fwd.packets.get()) << id;
    EXPECT_EQ(a.backends[id].fwd.packets.get(), b.backends[id].fwd.packets.get()) << id;
  }
  EXPECT_EQ(a.flow_hits.get(), b.flow_hits.get());
  EXPECT_EQ(a.flow_misses.get(), b.flow_misses.get());
  // process() returns the bytes as received, whatever became of them.
  EXPECT_EQ(burst.received_bytes(), sent_bytes);
  EXPECT_EQ(single.received_bytes(), sent_bytes);
}

// The fast path never touches the heap: every single-packet fixture case
// through Pipeline::process() with the allocation counter armed.
TEST(Pipeline, ProcessDoesNotAllocate) {
  Tables t = gw();
  PortResolver resolve = index_resolver(t);
  auto snap = build_snapshot(t, resolve, nullptr, kTicksPerSecond);
  auto counters = make_worker_counters();
  FlowTable flows(1024);
  Pipeline pipeline(flows, *counters);
  std::size_t packets = 0;
  std::uint64_t allocations = 0;
  for (const auto &c : fx().cases) {
    if (c.tables != "gw")
      continue;
    for (const auto &step : c.steps) {
      const auto *p = std::get_if<fixtures::PacketStep>(&step);
      if (p == nullptr)
        continue;
      std::uint16_t in = kNoPort;
      for (std::uint16_t i = 0; i < snap->ports.size(); ++i) {
        if (snap->ports[i].name == p->in_port)
          in = i;
      }
      rte_mbuf *m = rte_pktmbuf_alloc(test_pool());
      ASSERT_NE(m, nullptr);
      std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(p->input.size())),
                  p->input.data(), p->input.size());
      Verdict v;
      {
        AllocationCounter counter;
        pipeline.process(*snap, in, &m, 1, packets, &v);
        pipeline.maintain(*snap, packets);
        allocations += counter.count();
      }
      rte_pktmbuf_free(m);
      ++packets;
    }
  }
  EXPECT_GT(packets, 50u);
  EXPECT_EQ(allocations, 0u);
}

// The VIP filter may say yes to a key it was not given, never no to one it
// was: every VIP of the tables is found through it.
TEST(Snapshot, VipFilterKeepsEveryKey) {
  VipFilter filter;
  std::uint64_t x = 0x9e3779b97f4a7c15ull;
  std::vector<std::uint64_t> keys;
  for (int i = 0; i < 2000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    keys.push_back(vip_key(static_cast<std::uint32_t>(x >> 52), static_cast<std::uint32_t>(x)));
    filter.add(keys.back());
  }
  for (std::uint64_t k : keys)
    EXPECT_TRUE(filter.may_contain(k)) << k;

  Tables t = gw();
  auto snap = build_snapshot(t, index_resolver(t), nullptr, kTicksPerSecond);
  ASSERT_FALSE(t.services.empty());
  for (const Service &svc : t.services) {
    if (svc.vip.is_v4()) {
      EXPECT_NE(snap->find_vip(svc.vrf, svc.vip.v4_be()), nullptr) << svc.name;
    }
  }
}

TEST(Snapshot, UnchangedPiecesAreSharedWithThePrevious) {
  Tables t = gw();
  PortResolver resolve = index_resolver(t);
  auto a = build_snapshot(t, resolve, nullptr, kTicksPerSecond);
  t.services[0].backends[1].state = BackendState::kDown;
  t.services[0].maglev = {2, 0, 2, 0, 0, 2, 0};
  auto b = build_snapshot(t, resolve, a.get(), kTicksPerSecond);
  EXPECT_EQ(a->vrfs[1].lpm, b->vrfs[1].lpm) << "same prefixes: LPM reused";
  EXPECT_NE(a->service_list[0].maglev, b->service_list[0].maglev) << "changed table";
  EXPECT_EQ(a->service_list[1].maglev, b->service_list[1].maglev) << "unchanged table shared";
  t.routes.pop_back();
  auto c = build_snapshot(t, resolve, b.get(), kTicksPerSecond);
  EXPECT_NE(b->vrfs[2].lpm, c->vrfs[2].lpm) << "VRF 2 lost a route";
  EXPECT_EQ(b->vrfs[1].lpm, c->vrfs[1].lpm);
}

// Tables with `vrfs` more VRFs, each with `routes` /32 routes, beside gw().
Tables with_vrfs(std::uint32_t vrfs, std::uint32_t routes) {
  Tables t = gw();
  const Vrf model = t.vrfs.front();
  const Route route = t.routes.front();
  std::uint32_t next_id = 0;
  for (const Vrf &v : t.vrfs)
    next_id = std::max(next_id, v.id + 1);
  for (std::uint32_t i = 0; i < vrfs; ++i) {
    Vrf v = model;
    v.id = next_id + i;
    v.vni = 70000 + i;
    v.tenant = "many" + std::to_string(i);
    t.vrfs.push_back(v);
    for (std::uint32_t k = 0; k < routes; ++k) {
      Route r = route;
      r.vrf = v.id;
      r.prefix.addr = IpAddress::v4((10u << 24) + k);
      r.prefix.len = 32;
      t.routes.push_back(r);
    }
  }
  return t;
}

// More large VRFs than the EAL memory holds (the tests run with -m 1024;
// each rte_lpm needs 64 MiB): the build fails naming the VRF and what it
// needs, frees what it had made, and the next build succeeds.
TEST(Snapshot, VrfsBeyondTheEalMemoryFailWithTheReason) {
  Tables big = with_vrfs(20, Lpm::kSmallRoutes + 1);
  PortResolver resolve = index_resolver(big);
  try {
    build_snapshot(big, resolve, nullptr, kTicksPerSecond);
    FAIL() << "20 more rte_lpm VRFs fit in 1 GiB of EAL memory";
  } catch (const std::runtime_error &e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("VRF "), std::string::npos) << what;
    EXPECT_NE(what.find("64 MiB"), std::string::npos) << what;
    EXPECT_NE(what.find("hugepages"), std::string::npos) << what;
  }
  EXPECT_NE(build_snapshot(gw(), resolve, nullptr, kTicksPerSecond), nullptr);
}

// Small VRFs take no rte_lpm: a thousand tenants of a hundred routes fit
// where twenty large VRFs do not, and route as the fixtures expect (the
// fixture cases run on small VRFs, so on the per-length form).
TEST(Snapshot, AThousandSmallVrfsFit) {
  Tables t = with_vrfs(1000, 100);
  PortResolver resolve = index_resolver(t);
  auto snap = build_snapshot(t, resolve, nullptr, kTicksPerSecond);
  ASSERT_NE(snap, nullptr);
  std::uint32_t small = 0;
  for (const VrfEntry &v : snap->vrfs)
    small += v.lpm != nullptr && v.lpm->get() == nullptr;
  EXPECT_GE(small, 1000u);
  std::uint32_t nh = 0;
  const VrfEntry *last = snap->vrf(t.vrfs.back().id);
  ASSERT_NE(last, nullptr);
  ASSERT_TRUE(last->lpm->lookup((10u << 24) + 99, &nh));
  EXPECT_EQ(last->lpm->prefixes()[nh], *IpPrefix::parse("10.0.0.99/32"));
  EXPECT_FALSE(last->lpm->lookup((10u << 24) + 100, &nh));
}

// The per-length form answers every lookup as rte_lpm does: random sets of
// prefixes (every length from /0 to /32, repeated prefixes, host bits set)
// against random addresses and addresses at the edges of each prefix.
TEST(Lpm, PerLengthFormMatchesRteLpm) {
  std::mt19937 rng(20261124);
  for (int round = 0; round < 40; ++round) {
    const std::size_t n = 1 + rng() % Lpm::kSmallRoutes;
    const std::uint32_t lengths = 1 + rng() % 33;  // how many distinct lengths
    std::vector<std::uint8_t> pick;
    for (std::uint32_t i = 0; i < lengths; ++i)
      pick.push_back(static_cast<std::uint8_t>(rng() % 33));
    // A narrow address range so that prefixes nest and overlap.
    const std::uint32_t base = rng() & 0xffff0000u;
    std::vector<IpPrefix> prefixes;
    for (std::size_t i = 0; i < n; ++i) {
      IpPrefix p;
      p.len = pick[rng() % pick.size()];
      p.addr = IpAddress::v4(base | (rng() & 0xffffu));
      if (!prefixes.empty() && rng() % 10 == 0)
        p = prefixes[rng() % prefixes.size()];  // listed twice
      prefixes.push_back(p);
    }
    Lpm small(prefixes, Lpm::Form::kPerLength);
    Lpm large(prefixes, Lpm::Form::kRteLpm);
    ASSERT_EQ(small.get(), nullptr);
    ASSERT_NE(large.get(), nullptr);
    std::vector<std::uint32_t> probes;
    for (const IpPrefix &p : prefixes) {
      const std::uint32_t mask = p.len == 0 ? 0 : ~0u << (32 - p.len);
      const std::uint32_t a = p.addr.v4_host() & mask;
      probes.insert(probes.end(), {a, a | ~mask, a - 1, (a | ~mask) + 1});
    }
    for (int i = 0; i < 200; ++i)
      probes.push_back(rng() % 4 == 0 ? static_cast<std::uint32_t>(rng())
                                      : base | (rng() & 0xffffu));
    for (std::uint32_t a : probes) {
      std::uint32_t nh_small = ~0u, nh_large = ~0u;
      const bool found_small = small.lookup(a, &nh_small);
      const bool found_large = large.lookup(a, &nh_large);
      ASSERT_EQ(found_small, found_large) << "round " << round << " address " << a;
      if (found_large) {
        ASSERT_EQ(nh_small, nh_large) << "round " << round << " address " << a;
      }
    }
  }
}

}  // namespace
}  // namespace stratus::dpdk::testing
