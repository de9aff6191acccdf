// The Dataplane API layer shared by both data planes: message translation,
// transaction operations, the generic service's transaction rules, state
// persistence and Explain. Runs against a fake driver.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "control/api/convert.h"
#include "control/api/explain.h"
#include "control/api/server.h"
#include "lb/flow_hash.h"

namespace stratus::api {
namespace {

IpAddress ip(const char *s) {
  return *IpAddress::parse(s);
}
IpPrefix prefix(const char *s) {
  return *IpPrefix::parse(s);
}
MacAddress mac(const char *s) {
  return *MacAddress::parse(s);
}

Tables sample() {
  Tables t;
  t.node.name = "gw-a";
  t.node.vteps = {ip("192.0.2.1")};
  t.node.gateway_mac = mac("02:00:00:00:00:aa");
  t.node.hash_seed = 7;
  t.node.ports = {{"ul0", PortRole::kUnderlay, mac("02:00:00:00:00:01"), 0},
                  {"tn0", PortRole::kTenant, {}, 1}};
  t.nexthops = {{{}, "ul0", mac("02:00:00:00:00:fe"), {}},
                {ip("192.0.2.20"), "ul0", mac("02:00:00:00:00:20"), {}}};
  t.vrfs = {{1, 100, "red", {ip("10.1.0.1")}}, {2, 200, "blue", {ip("10.1.0.1")}}};
  t.routes = {{1, prefix("10.1.2.0/24"), RouteKind::kRemote, ip("192.0.2.20"), 100, "",
               mac("02:00:00:00:01:02")},
              {1, prefix("10.1.0.0/16"), RouteKind::kBlackhole, {}, 0, "", {}},
              {1, prefix("10.1.9.0/24"), RouteKind::kLocal, {}, 0, "tn0", mac("02:00:00:00:09:09")},
              {2, prefix("10.1.2.0/24"), RouteKind::kRemote, ip("192.0.2.30"), 200, "",
               mac("02:00:00:00:02:02")}};
  Service s;
  s.id = 0;
  s.name = "web";
  s.vip = ip("203.0.113.10");
  s.proto = 6;
  s.port = 80;
  s.maglev_size = 7;
  Backend b0{0,
             "b0",
             ip("10.1.2.10"),
             1,
             1,
             BackendState::kActive,
             Encap::kVxlan,
             ip("192.0.2.20"),
             100,
             mac("02:00:00:00:02:10")};
  Backend b1{
      1, "b1", ip("198.51.100.7"), 0, 1, BackendState::kActive, Encap::kIpip, ip("198.51.100.7"),
      0, {}};
  s.backends = {b0, b1};
  s.maglev = {0, 1, 0, 1, 0, 1, 0};
  t.services = {s};
  canonicalize(t);
  return t;
}

// Records what it was asked to install; can be told to fail.
class FakeDriver : public DataplaneDriver {
 public:
  void install(const Tables &, const Tables &next) override {
    if (fail_next) {
      fail_next = false;
      throw std::runtime_error("map update failed");
    }
    installed = next;
    ++installs;
  }
  std::vector<pb::PortState> ports() override { return {}; }
  void counters(pb::CountersReply *out) override {
    auto *s = out->add_services();
    s->set_id(0);
    s->add_backends()->set_id(1);
  }
  std::optional<FlowEntry> lookup_flow(const stratus_flow_key &key) override {
    if (flow && std::memcmp(&flow->first, &key, sizeof key) == 0)
      return flow->second;
    return std::nullopt;
  }
  void dump_flows(const pb::FlowsRequest &,
                  const std::function<bool(const pb::Flow &)> &) override {}
  std::uint64_t flow_count() override {
    ++flow_counts;
    return 7;
  }

  Tables installed;
  int flow_counts = 0;
  int installs = 0;
  bool fail_next = false;
  std::optional<std::pair<stratus_flow_key, FlowEntry>> flow;
};

std::vector<pb::ApplyRequest> txn(std::uint64_t gen, std::uint64_t base, bool full,
                                  std::vector<pb::TxnOp> ops) {
  pb::TxnHeader h;
  h.set_generation(gen);
  h.set_base_generation(base);
  h.set_full(full);
  return chunk(h, std::move(ops));
}

TEST(Convert, RoundTripsEveryTable) {
  Tables t = sample();
  Tables back;
  for (const auto &op : full_sync_ops(t))
    apply_op(op, back);
  canonicalize(back);
  EXPECT_EQ(back, t);
  EXPECT_EQ(digest(back), digest(t));
}

TEST(Convert, DiffAddsWhatItChangesToTheDigest) {
  Tables from = sample();
  Tables to = sample();
  to.node.underlay_mtu += 1;
  to.routes.erase(to.routes.begin());
  to.services[0].backends[0].weight += 1;
  to.vrfs[0].gateways.clear();
  for (bool canonical : {true, false}) {
    SCOPED_TRACE(canonical ? "canonical" : "unsorted (indexed diff)");
    Tables a = from, b = to;
    if (canonical) {
      canonicalize(a);
      canonicalize(b);
    } else {
      std::reverse(a.routes.begin(), a.routes.end());
      std::reverse(b.vrfs.begin(), b.vrfs.end());
    }
    std::uint64_t delta = 0;
    auto ops = diff(a, b, &delta);
    EXPECT_FALSE(ops.empty());
    EXPECT_EQ(digest(a) + delta, digest(b));
    EXPECT_EQ(diff(a, b).size(), ops.size()) << "the same operations with or without the digest";
  }
  std::uint64_t none = 0;
  EXPECT_TRUE(diff(from, from, &none).empty());
  EXPECT_EQ(none, 0u);
}

TEST(Convert, RejectsMalformedAddressWithFieldName) {
  pb::TxnOp op;
  op.mutable_upsert_route()->mutable_prefix()->mutable_addr()->set_addr("12345");
  Tables t;
  try {
    apply_op(op, t);
    FAIL() << "accepted a 5-byte address";
  } catch (const DecodeError &e) {
    EXPECT_STREQ(e.what(), "route.prefix.addr: address must be 4 or 16 bytes, got 5");
  }
}

TEST(Convert, DiffTurnsOneTableSetIntoAnother) {
  Tables a = sample();
  Tables b = a;
  b.routes.erase(b.routes.begin());
  b.routes.push_back({2, prefix("10.9.0.0/16"), RouteKind::kBlackhole, {}, 0, "", {}});
  b.services[0].backends[1].state = BackendState::kDown;
  b.services[0].maglev = {0, 0, 0, 0, 0, 0, 0};
  b.node.underlay_mtu = 9000;
  canonicalize(b);
  auto ops = diff(a, b);
  // node + 1 route delete + 1 route upsert + 1 service upsert
  EXPECT_EQ(ops.size(), 4u);
  EXPECT_TRUE(ops.front().has_delete_route()) << "deletes come first";
  Tables c = a;
  for (const auto &op : ops)
    apply_op(op, c);
  canonicalize(c);
  EXPECT_EQ(c, b);
  EXPECT_TRUE(diff(b, b).empty());
}

TEST(Convert, ChunkSplitsLargeStreams) {
  Tables t = sample();
  for (std::uint32_t i = 0; i < 2000; ++i) {
    t.routes.push_back({2,
                        IpPrefix{IpAddress::v4(0x0a000000u + (i << 8)), 24},
                        RouteKind::kBlackhole,
                        {},
                        0,
                        "",
                        {}});
  }
  pb::TxnHeader h;
  h.set_generation(1);
  auto msgs = chunk(h, full_sync_ops(t), 4096);
  EXPECT_GT(msgs.size(), 5u);
  EXPECT_TRUE(msgs[0].has_header());
  std::size_t ops = 0;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    if (i > 0) {
      EXPECT_FALSE(msgs[i].has_header());
    }
    ops += msgs[i].ops_size();
  }
  EXPECT_EQ(ops, full_sync_ops(t).size());
}

TEST(Service, FullSyncThenDelta) {
  FakeDriver driver;
  DataplaneService svc(driver, {});
  pb::ApplyReply reply;
  ASSERT_TRUE(svc.apply(txn(5, 0, true, full_sync_ops(sample())), &reply).ok());
  EXPECT_EQ(reply.generation(), 5u);
  EXPECT_EQ(reply.digest(), digest(sample()));
  EXPECT_EQ(svc.generation(), 5u);
  EXPECT_EQ(driver.installed, sample());

  Tables next = sample();
  next.routes.pop_back();
  ASSERT_TRUE(svc.apply(txn(6, 5, false, diff(sample(), next)), &reply).ok());
  EXPECT_EQ(svc.generation(), 6u);
  EXPECT_EQ(*svc.tables(), next);
}

// A table set with more of everything than sample(), for the edit paths.
Tables larger() {
  Tables t = sample();
  for (std::uint32_t i = 0; i < 50; ++i) {
    t.routes.push_back({2,
                        IpPrefix{IpAddress::v4(0x0a000000u + (i << 8)), 24},
                        RouteKind::kBlackhole,
                        {},
                        0,
                        "",
                        {}});
  }
  Service dns = t.services[0];
  dns.id = 3;
  dns.name = "dns";
  dns.proto = 17;
  dns.port = 53;
  dns.backends[0].id = 10;
  dns.backends[1].id = 11;
  t.services.push_back(dns);
  canonicalize(t);
  return t;
}

std::string serialized(const std::vector<pb::TxnOp> &ops) {
  std::string out;
  for (const auto &op : ops)
    out += op.SerializeAsString();
  return out;
}

TEST(Convert, EditorDigestDeltaIsTheDigestChange) {
  Tables before = larger();
  Tables after = before;
  after.routes.erase(after.routes.begin() + 3);
  after.routes[7].kind = RouteKind::kBlackhole;
  after.routes.push_back({1, prefix("10.7.0.0/16"), RouteKind::kBlackhole, {}, 0, "", {}});
  after.services[1].backends[0].weight = 5;
  after.node.underlay_mtu = 9000;
  canonicalize(after);
  std::vector<pb::TxnOp> ops = diff(before, after);
  // Within one transaction too: a route deleted then put back, a new route
  // added then deleted.
  pb::TxnOp del, put, add, undo;
  del.mutable_delete_route()->set_vrf(before.routes[0].vrf);
  to_proto(before.routes[0].prefix, del.mutable_delete_route()->mutable_prefix());
  to_proto(before.routes[0], put.mutable_upsert_route());
  Route extra{2, prefix("10.200.0.0/16"), RouteKind::kBlackhole, {}, 0, "", {}};
  to_proto(extra, add.mutable_upsert_route());
  undo.mutable_delete_route()->set_vrf(2);
  to_proto(extra.prefix, undo.mutable_delete_route()->mutable_prefix());
  ops.insert(ops.end(), {del, put, add, undo});

  Tables edited = before;
  TxnEditor editor(edited);
  for (const auto &op : ops)
    editor.apply(op);
  editor.finish();
  EXPECT_EQ(edited, after) << "finish() merges new entries in key order";
  EXPECT_EQ(digest(before) + editor.digest_delta(), digest(after));
}

TEST(Convert, DiffOfUnsortedTablesGivesTheSameOperations) {
  // The merge walk over canonical tables and the indexed path over any order
  // agree, operation for operation.
  Tables a = larger();
  Tables b = a;
  b.routes.erase(b.routes.begin() + 10, b.routes.begin() + 20);
  b.routes[0].vni_out = 300;
  b.services.erase(b.services.begin());
  canonicalize(b);
  Tables ra = a, rb = b;
  std::reverse(ra.routes.begin(), ra.routes.end());
  std::reverse(rb.services.begin(), rb.services.end());
  std::reverse(rb.routes.begin(), rb.routes.end());
  EXPECT_EQ(serialized(diff(ra, rb)), serialized(diff(a, b)));
  EXPECT_EQ(diff(a, b).size(), 12u);  // 10 + 1 deletes, 1 route upsert
}

TEST(Service, DeltaChainMatchesTheTablesItDescribes) {
  // Deltas edit the spare tables (the previous generation, brought up to
  // date by replaying the last delta) or a copy of the live ones: every step
  // must give exactly the tables the sender meant, and their digest.
  FakeDriver driver;
  DataplaneService svc(driver, {});
  pb::ApplyReply reply;
  Tables want = larger();
  ASSERT_TRUE(svc.apply(txn(1, 0, true, full_sync_ops(want)), &reply).ok());
  std::uint64_t gen = 1;
  std::shared_ptr<const Tables> held;  // a reader holding a snapshot
  for (int step = 0; step < 12; ++step) {
    Tables next = want;
    switch (step % 4) {
      case 0:
        next.routes.erase(next.routes.begin() + step);
        break;
      case 1:
        next.routes.push_back({2,
                               IpPrefix{IpAddress::v4(0x0b000000u + (step << 8)), 24},
                               RouteKind::kBlackhole,
                               {},
                               0,
                               "",
                               {}});
        break;
      case 2:
        next.services.back().backends[1].state = BackendState::kDown;
        next.services.back().maglev =
            std::vector<std::uint32_t>(next.services.back().maglev_size, 0);
        next.node.underlay_mtu = 1400 + step;
        break;
      case 3:
        next.services.back().backends[1].state = BackendState::kActive;
        next.services.back().maglev = {0, 1, 0, 1, 0, 1, 0};
        next.vrfs.push_back({static_cast<std::uint32_t>(10 + step),
                             static_cast<std::uint32_t>(1000 + step),
                             "t" + std::to_string(step),
                             {}});
        break;
    }
    canonicalize(next);
    if (step == 5) {
      // A refused delta in the chain: nothing changes, the next one applies.
      Tables bad = next;
      bad.routes.push_back({99, prefix("10.0.0.0/8"), RouteKind::kBlackhole, {}, 0, "", {}});
      canonicalize(bad);
      EXPECT_FALSE(svc.apply(txn(gen + 1, gen, false, diff(want, bad)), &reply).ok());
      EXPECT_EQ(*svc.tables(), want);
    }
    if (step == 8)
      held = svc.tables();
    auto ops = diff(want, next);
    ASSERT_TRUE(svc.apply(txn(gen + 1, gen, false, ops), &reply).ok()) << "step " << step;
    ++gen;
    want = next;
    EXPECT_EQ(*svc.tables(), want) << "step " << step;
    EXPECT_EQ(driver.installed, want) << "step " << step;
    EXPECT_EQ(svc.table_digest(), digest(want)) << "step " << step;
    EXPECT_EQ(reply.digest(), digest(want)) << "step " << step;
  }
  ASSERT_TRUE(held);
  EXPECT_EQ(held->node.underlay_mtu, 1400u + 6) << "a reader's snapshot never changes";
}

TEST(Service, DeltaOnWrongBaseIsRefusedAndChangesNothing) {
  FakeDriver driver;
  DataplaneService svc(driver, {});
  pb::ApplyReply reply;
  ASSERT_TRUE(svc.apply(txn(5, 0, true, full_sync_ops(sample())), &reply).ok());
  Tables next = sample();
  next.routes.pop_back();
  grpc::Status st = svc.apply(txn(7, 4, false, diff(sample(), next)), &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(st.error_message(),
            "delta based on generation 4 but the data plane is at generation 5");
  EXPECT_EQ(svc.generation(), 5u);
  EXPECT_EQ(*svc.tables(), sample());
  EXPECT_EQ(driver.installs, 1);
  EXPECT_EQ(svc.apply_stats().failed, 1u);
}

TEST(Service, InconsistentTablesAreRejectedWithEveryError) {
  FakeDriver driver;
  DataplaneService svc(driver, {});
  Tables bad = sample();
  bad.routes.push_back({9, prefix("10.0.0.0/8"), RouteKind::kBlackhole, {}, 0, "", {}});
  bad.services[0].maglev_size = 8;
  pb::ApplyReply reply;
  grpc::Status st = svc.apply(txn(1, 0, true, full_sync_ops(bad)), &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("unknown VRF 9"), std::string::npos) << st.error_message();
  EXPECT_NE(st.error_message().find("Maglev size 8 is not a prime"), std::string::npos);
  EXPECT_EQ(driver.installs, 0);
  EXPECT_EQ(svc.generation(), 0u);
}

TEST(Service, DriverFailureKeepsTheOldTables) {
  FakeDriver driver;
  DataplaneService svc(driver, {});
  pb::ApplyReply reply;
  ASSERT_TRUE(svc.apply(txn(1, 0, true, full_sync_ops(sample())), &reply).ok());
  driver.fail_next = true;
  Tables next = sample();
  next.routes.clear();
  grpc::Status st = svc.apply(txn(2, 1, false, diff(sample(), next)), &reply);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(svc.generation(), 1u);
  EXPECT_EQ(*svc.tables(), sample());
}

TEST(Service, StateCountsFlowsUnlessAskedNotTo) {
  FakeDriver driver;
  DataplaneService svc(driver, {});
  pb::ApplyReply reply;
  ASSERT_TRUE(svc.apply(txn(1, 0, true, full_sync_ops(sample())), &reply).ok());
  pb::StateRequest req;
  pb::StateReply st;
  ASSERT_TRUE(svc.GetState(nullptr, &req, &st).ok());
  EXPECT_EQ(st.flows(), 7u);
  EXPECT_EQ(driver.flow_counts, 1);
  req.set_skip_flows(true);
  st.Clear();
  ASSERT_TRUE(svc.GetState(nullptr, &req, &st).ok());
  EXPECT_EQ(st.flows(), 0u);
  EXPECT_EQ(driver.flow_counts, 1) << "the connection tables were walked";
  EXPECT_EQ(st.generation(), 1u);
  EXPECT_EQ(st.digest(), digest(sample()));
}

TEST(Service, ExpectedDigestMismatchAborts) {
  FakeDriver driver;
  DataplaneService svc(driver, {});
  auto stream = txn(1, 0, true, full_sync_ops(sample()));
  stream[0].mutable_header()->set_expect_digest(digest(sample()) ^ 1);
  pb::ApplyReply reply;
  EXPECT_EQ(svc.apply(stream, &reply).error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(driver.installs, 0);
}

TEST(Service, RestartRestoresTablesAndGeneration) {
  auto dir =
      std::filesystem::temp_directory_path() / ("stratus-api-test-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::string file = (dir / "state.pb").string();
  {
    FakeDriver driver;
    DataplaneService svc(driver, {"gw-a", DataplaneKind::kXdp, file});
    pb::ApplyReply reply;
    ASSERT_TRUE(svc.apply(txn(9, 0, true, full_sync_ops(sample())), &reply).ok());
  }  // the destructor flushes the persistence thread
  {
    FakeDriver driver;
    DataplaneService svc(driver, {"gw-a", DataplaneKind::kXdp, file});
    EXPECT_TRUE(svc.restore());
    EXPECT_EQ(svc.generation(), 9u);
    EXPECT_EQ(driver.installed, sample());
    EXPECT_EQ(svc.table_digest(), digest(sample()));
  }  // its persistence thread may still write into `dir` until it is gone
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  EXPECT_FALSE(ec) << dir << ": " << ec.message();
}

TEST(Service, CounterNamesComeFromTheTables) {
  FakeDriver driver;
  DataplaneService svc(driver, {});
  pb::ApplyReply reply;
  ASSERT_TRUE(svc.apply(txn(1, 0, true, full_sync_ops(sample())), &reply).ok());
  pb::CountersReply c;
  svc.counters(&c);
  ASSERT_EQ(c.services_size(), 1);
  EXPECT_EQ(c.services(0).name(), "web");
  EXPECT_EQ(c.services(0).backends(0).name(), "b1");
}

pb::ExplainRequest request(std::uint32_t vrf, const char *src, const char *dst, int proto,
                           int sport, int dport) {
  pb::ExplainRequest r;
  r.set_vrf(vrf);
  to_proto(ip(src), r.mutable_src());
  to_proto(ip(dst), r.mutable_dst());
  r.set_proto(proto);
  r.set_sport(sport);
  r.set_dport(dport);
  return r;
}

TEST(Explain, RouteRemoteUsesTheLongestPrefix) {
  auto r = explain(sample(), 3, request(1, "10.1.1.5", "10.1.2.7", 6, 1000, 22), nullptr);
  EXPECT_EQ(r.path(), pb::ExplainReply::PATH_ROUTE);
  EXPECT_EQ(r.route().prefix().len(), 24u);
  EXPECT_EQ(r.vni(), 100u);
  EXPECT_EQ(r.egress_port(), "ul0");
  EXPECT_EQ(r.generation(), 3u);
  EXPECT_GE(r.udp_sport(), 49152u);
}

TEST(Explain, SameAddressesInAnotherTenantGoElsewhere) {
  auto red = explain(sample(), 1, request(1, "10.1.1.5", "10.1.2.7", 6, 1000, 22), nullptr);
  auto blue = explain(sample(), 1, request(2, "10.1.1.5", "10.1.2.7", 6, 1000, 22), nullptr);
  EXPECT_EQ(red.outer_dst().addr(), std::string("\xc0\x00\x02\x14", 4));
  EXPECT_EQ(blue.outer_dst().addr(), std::string("\xc0\x00\x02\x1e", 4));
  EXPECT_EQ(blue.vni(), 200u);
}

TEST(Explain, DropReasons) {
  EXPECT_EQ(
      explain(sample(), 1, request(1, "10.1.1.5", "10.1.3.7", 6, 1, 2), nullptr).drop_reason(),
      "blackhole");
  EXPECT_EQ(
      explain(sample(), 1, request(2, "10.1.1.5", "10.7.3.7", 6, 1, 2), nullptr).drop_reason(),
      "no_route");
  auto req = request(1, "10.1.1.5", "10.1.2.7", 6, 1, 2);
  req.set_ttl(1);
  EXPECT_EQ(explain(sample(), 1, req, nullptr).drop_reason(), "ttl_exceeded");
  Tables empty = sample();
  empty.services[0].maglev.clear();
  EXPECT_EQ(explain(empty, 1, request(0, "198.51.100.1", "203.0.113.10", 6, 40000, 80), nullptr)
                .drop_reason(),
            "no_backend");
}

TEST(Explain, ServicePicksTheMaglevSlotOfTheFlowHash) {
  Tables t = sample();
  auto r = explain(t, 1, request(0, "198.51.100.1", "203.0.113.10", 6, 40000, 80), nullptr);
  ASSERT_EQ(r.path(), pb::ExplainReply::PATH_SERVICE) << r.summary();
  stratus_flow_key k{};
  k.src[0] = ip("198.51.100.1").v4_be();
  k.dst[0] = ip("203.0.113.10").v4_be();
  k.proto = 6;
  k.sport = htons(40000);
  k.dport = htons(80);
  std::uint32_t h = stratus_flow_hash(&k, 7);
  EXPECT_EQ(r.flow_hash(), h);
  EXPECT_EQ(r.slot(), h % 7);
  EXPECT_EQ(r.backend().name(), t.services[0].backends[t.services[0].maglev[h % 7]].name);
  EXPECT_FALSE(r.existing_flow());
}

TEST(Explain, ExistingFlowWinsUnlessItsBackendIsDown) {
  Tables t = sample();
  auto req = request(0, "198.51.100.1", "203.0.113.10", 6, 40000, 80);
  auto fresh = explain(t, 1, req, nullptr);
  std::uint32_t other = fresh.backend().id() == 0 ? 1 : 0;
  FakeDriver driver;
  stratus_flow_key k{};
  k.src[0] = ip("198.51.100.1").v4_be();
  k.dst[0] = ip("203.0.113.10").v4_be();
  k.proto = 6;
  k.sport = htons(40000);
  k.dport = htons(80);
  driver.flow = {{k, FlowEntry{0, other, 0, 5}}};
  auto lookup = [&](const stratus_flow_key &key) { return driver.lookup_flow(key); };
  auto hit = explain(t, 1, req, lookup);
  EXPECT_TRUE(hit.existing_flow());
  EXPECT_EQ(hit.backend().id(), other);
  for (auto &b : t.services[0].backends) {
    if (b.id == other)
      b.state = BackendState::kDown;
  }
  auto down = explain(t, 1, req, lookup);
  EXPECT_FALSE(down.existing_flow());
  EXPECT_EQ(down.backend().id(), fresh.backend().id());
}

}  // namespace
}  // namespace stratus::api
