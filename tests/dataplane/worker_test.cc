// A poll-mode Worker on real ethdevs (net_ring PMDs named like the node
// table's ports) behind a DpdkDriver: frames pushed into a port's RX ring
// come out of the right TX ring with the fixture's bytes; the driver's
// counters, flow lookup and flow dump see the worker's state; an install
// while the worker runs completes through an RCU grace period.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>
#include <variant>

#include <rte_eth_ring.h>
#include <rte_ring.h>

#include "dataplane/dpdk.h"
#include "dataplane/driver.h"
#include "tests/dataplane/harness.h"
#include "tests/fixtures/fixture.h"

namespace stratus::dpdk::testing {
namespace {

const fixtures::Fixtures &fx() {
  return fixture_file();
}

const fixtures::PacketStep &packet(const std::string &name) {
  return fixture_packet(name);
}

// rte_eth_from_rings("x") makes the ethdev "net_ring_x": the tables under
// test name ports that way.
const std::string kDevPrefix = "net_ring_";
// How long to wait for a frame that must not come (the drop counters are
// what the test checks; this only bounds the wait).
constexpr std::chrono::milliseconds kNothing{200};

Tables ring_tables(Tables t) {
  for (Port &p : t.node.ports)
    p.name = kDevPrefix + p.name;
  for (NextHop &n : t.nexthops)
    n.port = kDevPrefix + n.port;
  for (Route &r : t.routes) {
    if (!r.port.empty())
      r.port = kDevPrefix + r.port;
  }
  return t;
}

const Tables &gw() {
  static const Tables t = ring_tables(fx().tables.at("gw"));
  return t;
}

// One ring pair per port: the test writes `rx`, the worker reads it; the
// worker writes `tx`, the test reads it.
struct RingPort {
  rte_ring *rx = nullptr;
  rte_ring *tx = nullptr;
};

class WorkerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    for (const Port &p : fx().tables.at("gw").node.ports) {
      RingPort r;
      r.rx = rte_ring_create(("rx_" + p.name).c_str(), 256, SOCKET_ID_ANY,
                             RING_F_SP_ENQ | RING_F_SC_DEQ);
      r.tx = rte_ring_create(("tx_" + p.name).c_str(), 256, SOCKET_ID_ANY,
                             RING_F_SP_ENQ | RING_F_SC_DEQ);
      ASSERT_NE(r.rx, nullptr);
      ASSERT_NE(r.tx, nullptr);
      ASSERT_GE(rte_eth_from_rings(p.name.c_str(), &r.rx, 1, &r.tx, 1, SOCKET_ID_ANY), 0)
          << p.name << ": " << rte_strerror(rte_errno);
      rings_[p.name] = r;
    }
    PortConfig cfg;
    cfg.rx_desc = cfg.tx_desc = 256;
    ports_ = new Ports(cfg, test_pool());
    publisher_ = new SnapshotPublisher(1);
    WorkerOptions opt;
    opt.flow_capacity = 1024;
    opt.idle_sleep_us = 50;
    opt.drain_us = 10;
    worker_ = new Worker(0, *publisher_, opt, ports_->rx_queues_for(0), ports_->tx_slots_for(0));
    driver_ = new DpdkDriver(ports_, *publisher_, {worker_}, rte_get_tsc_hz());
    driver_->install({}, gw());
    thread_ = new std::thread([] { worker_->run(); });
    while (!worker_->running())
      std::this_thread::yield();
  }

  static void TearDownTestSuite() {
    worker_->stop();
    thread_->join();
    delete thread_;
    delete driver_;
    delete worker_;
    delete publisher_;
    ports_->close();
    delete ports_;
  }

  // Pushes a frame into `in`'s RX ring and waits for one frame on `out`'s TX
  // ring (empty when none comes within the time limit).
  static std::vector<std::uint8_t> roundtrip(
      const std::string &in, const std::string &out, const std::vector<std::uint8_t> &frame,
      std::chrono::milliseconds wait = std::chrono::seconds(5)) {
    rte_mbuf *m = rte_pktmbuf_alloc(test_pool());
    std::memcpy(rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame.size())), frame.data(),
                frame.size());
    if (rte_ring_enqueue(rings_.at(in).rx, m) != 0) {
      rte_pktmbuf_free(m);
      return {};
    }
    void *got = nullptr;
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (rte_ring_dequeue(rings_.at(out).tx, &got) != 0) {
      if (std::chrono::steady_clock::now() > deadline)
        return {};
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    auto *r = static_cast<rte_mbuf *>(got);
    const auto *p = rte_pktmbuf_mtod(r, const std::uint8_t *);
    std::vector<std::uint8_t> bytes(p, p + rte_pktmbuf_data_len(r));
    rte_pktmbuf_free(r);
    return bytes;
  }

  // Returns once the worker has finished the loop iteration it is in: its
  // counters then include every frame it has sent.
  static void settle() {
    worker_->call([](const FlowTable &) {});
  }

  static std::uint64_t drops(const std::string &reason) {
    settle();
    api::pb::CountersReply c;
    driver_->counters(&c);
    for (const auto &d : c.drops()) {
      if (d.reason() == reason)
        return d.packets();
    }
    return 0;
  }

  static inline std::map<std::string, RingPort> rings_;
  static inline Ports *ports_ = nullptr;
  static inline SnapshotPublisher *publisher_ = nullptr;
  static inline Worker *worker_ = nullptr;
  static inline DpdkDriver *driver_ = nullptr;
  static inline std::thread *thread_ = nullptr;
};

TEST_F(WorkerTest, PortsAreNamedByDevice) {
  for (const Port &p : fx().tables.at("gw").node.ports) {
    EXPECT_NE(ports_->by_name(kDevPrefix + p.name), nullptr) << p.name;
  }
  auto states = driver_->ports();
  EXPECT_EQ(states.size(), ports_->all().size());
}

TEST_F(WorkerTest, ForwardsFixtureFramesThroughRings) {
  for (const char *name : {"overlay_remote_tcp", "overlay_local_delivery",
                           "tenant_port_local_other_port", "tenant_port_arp_gateway"}) {
    SCOPED_TRACE(name);
    const auto &step = packet(name);
    auto out = roundtrip(step.in_port, step.out_port, step.input);
    EXPECT_EQ(fixtures::hex(out), fixtures::hex(step.output));
  }
}

TEST_F(WorkerTest, CountsPortTrafficAndDrops) {
  const auto &step = packet("tenant_port_route_remote");
  api::pb::CountersReply before;
  driver_->counters(&before);
  ASSERT_FALSE(roundtrip(step.in_port, step.out_port, step.input).empty());
  settle();
  api::pb::CountersReply after;
  driver_->counters(&after);
  auto port = [](const api::pb::CountersReply &c, const std::string &name) {
    for (const auto &p : c.ports()) {
      if (p.port() == name)
        return p;
    }
    return api::pb::PortCounters{};
  };
  EXPECT_EQ(port(after, kDevPrefix + "red0").rx().packets() -
                port(before, kDevPrefix + "red0").rx().packets(),
            1u);
  EXPECT_EQ(port(after, kDevPrefix + "red0").rx().bytes() -
                port(before, kDevPrefix + "red0").rx().bytes(),
            step.input.size());
  EXPECT_EQ(port(after, kDevPrefix + "ul0").tx().packets() -
                port(before, kDevPrefix + "ul0").tx().packets(),
            1u);
  EXPECT_EQ(
      port(after, kDevPrefix + "ul0").tx().bytes() - port(before, kDevPrefix + "ul0").tx().bytes(),
      step.output.size());
}

TEST_F(WorkerTest, PassWithoutExceptionPortIsNotForStratus) {
  std::uint64_t before = drops("not_for_stratus");
  const auto &step = packet("pass_ssh_to_vtep");
  EXPECT_TRUE(roundtrip(step.in_port, "ul0", step.input, kNothing).empty()) << "nothing leaves";
  EXPECT_EQ(drops("not_for_stratus") - before, 1u);
}

TEST_F(WorkerTest, DriverSeesWorkerFlows) {
  const auto &step = packet("lb_underlay_vxlan_backend");
  ASSERT_EQ(fixtures::hex(roundtrip(step.in_port, step.out_port, step.input)),
            fixtures::hex(step.output));
  settle();
  std::vector<api::pb::Flow> flows;
  api::pb::FlowsRequest req;
  req.set_filter_service(true);
  req.set_service_id(0);
  driver_->dump_flows(req, [&](const api::pb::Flow &f) {
    flows.push_back(f);
    return true;
  });
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].backend_id(), 0u) << "the case aims at web-vm-a";
  EXPECT_EQ(flows[0].dport(), 80u);
  EXPECT_EQ(flows[0].proto(), 6u);
  EXPECT_GE(driver_->flow_count(), 1u);

  // The same flow, looked up by its key.
  stratus_flow_key key{};
  std::memcpy(key.src, flows[0].src().addr().data(), 4);
  std::memcpy(key.dst, flows[0].dst().addr().data(), 4);
  key.sport = rte_cpu_to_be_16(static_cast<std::uint16_t>(flows[0].sport()));
  key.dport = rte_cpu_to_be_16(80);
  key.proto = 6;
  auto e = driver_->lookup_flow(key);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->backend_id, 0u);
  key.sport = static_cast<std::uint16_t>(key.sport + 1);
  EXPECT_FALSE(driver_->lookup_flow(key).has_value());
}

TEST_F(WorkerTest, InstallWhileRunningSwapsTables) {
  const Tables &t = gw();
  std::uint64_t freed = publisher_->freed();
  // Drop the route the case uses: the same frame now has no route.
  const auto &step = packet("tenant_port_route_remote");
  Tables without = t;
  std::erase_if(without.routes,
                [](const Route &r) { return r.vrf == 1 && r.prefix.str() == "10.1.2.0/24"; });
  driver_->install(t, without);
  EXPECT_EQ(publisher_->freed(), freed + 1) << "old snapshot freed after the grace period";
  std::uint64_t before = drops("no_route");
  EXPECT_TRUE(roundtrip(step.in_port, step.out_port, step.input, kNothing).empty());
  EXPECT_EQ(drops("no_route") - before, 1u);
  driver_->install(without, t);
  EXPECT_EQ(fixtures::hex(roundtrip(step.in_port, step.out_port, step.input)),
            fixtures::hex(step.output));
}

TEST_F(WorkerTest, FailedInstallKeepsLiveTables) {
  Tables bad = gw();
  std::vector<std::uint32_t> slots(bad.services[0].maglev.begin(), bad.services[0].maglev.end());
  slots[0] = 99;  // beyond its backends: cannot be compiled
  bad.services[0].maglev = std::move(slots);
  EXPECT_THROW(driver_->install(gw(), bad), std::runtime_error);
  const auto &step = packet("overlay_remote_tcp");
  EXPECT_EQ(fixtures::hex(roundtrip(step.in_port, step.out_port, step.input)),
            fixtures::hex(step.output));
}

}  // namespace
}  // namespace stratus::dpdk::testing
