// stratusd's control logic against in-process data planes: full sync on
// connect, deltas, retries, re-sync after a data-plane restart, rejected
// configurations, health-driven and operator-driven backend changes, and
// isolation between nodes. The data planes are the generic Dataplane
// service (control/api/server.h) over a recording driver, served on unix
// sockets in a temp dir; health runs on a fake prober and a fake clock.
#include <gtest/gtest.h>

#include "config/compile.h"
#include "control/api/convert.h"
#include "control/api/explain.h"
#include "control/controller.h"
#include "control/log.h"
#include "control/operator_service.h"
#include "control/runtime.h"
#include "lb/maglev.h"
#include "tests/control/control_harness.h"

namespace stratus::control {
namespace {

using namespace std::chrono_literals;
using testing::ConfigParams;
using testing::eventually;
using testing::FakeClock;
using testing::FakeNode;
using testing::FakeProber;
using testing::HangingClient;
using testing::make_config;
using testing::TempDir;

SessionOptions fast_sessions() {
  SessionOptions o;
  o.backoff_initial = 10ms;
  o.backoff_max = 100ms;
  o.poll_interval = 50ms;
  return o;
}

// The position of a backend in the node's copy of a service, and its slots.
struct BackendView {
  const Backend *backend = nullptr;
  std::size_t slots = 0;
};
BackendView find_backend(const Tables &t, const std::string &service, const std::string &name) {
  for (const auto &s : t.services) {
    if (s.name != service)
      continue;
    for (std::size_t i = 0; i < s.backends.size(); ++i) {
      if (s.backends[i].name != name)
        continue;
      BackendView v{&s.backends[i], 0};
      for (auto slot : s.maglev)
        v.slots += slot == i;
      return v;
    }
  }
  return {};
}

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_enabled(std::getenv("STRATUS_TEST_LOG") != nullptr);
    a_ = std::make_unique<FakeNode>("gw-a", dir_.path() + "/a.sock");
    b_ = std::make_unique<FakeNode>("gw-b", dir_.path() + "/b.sock");
    params_.nodes = {{"gw-a", a_->endpoint()}, {"gw-b", b_->endpoint()}};
  }
  void TearDown() override {
    controller_.reset();
    set_log_enabled(true);
  }

  Controller &controller(ClientFactory factory = grpc_client_factory(),
                         const std::string &runtime_file = "") {
    ControllerOptions o;
    o.client_factory = std::move(factory);
    o.session = fast_sessions();
    o.seed_timeout = 300ms;
    o.runtime_file = runtime_file;
    controller_ = std::make_unique<Controller>(o, &metrics_);
    return *controller_;
  }
  ReloadResult load(const ConfigParams &p) {
    return controller_->reload_text(make_config(p), "test.yaml", "test");
  }
  SessionStatus status(const std::string &node) { return controller_->session(node)->status(); }
  // The node's live tables equal what the controller wants for it.
  bool node_matches(FakeNode &node, const std::string &name) {
    auto want = controller_->tables().at(name);
    return node.service().table_digest() == digest(*want) && *node.service().tables() == *want;
  }

  TempDir dir_;
  Metrics metrics_;
  std::unique_ptr<FakeNode> a_, b_;
  ConfigParams params_;
  std::unique_ptr<Controller> controller_;
};

TEST_F(ControlTest, FullSyncOnConnect) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  for (auto [node, name] : {std::pair{a_.get(), "gw-a"}, std::pair{b_.get(), "gw-b"}}) {
    EXPECT_TRUE(node_matches(*node, name)) << name;
    SessionStatus s = status(name);
    EXPECT_EQ(s.full_syncs, 1u) << name;
    EXPECT_EQ(s.deltas, 0u) << name;
    EXPECT_EQ(s.state, SyncState::kInSync) << name;
    EXPECT_EQ(s.node_generation, controller_->generation()) << name;
    EXPECT_EQ(node->service().generation(), controller_->generation()) << name;
    EXPECT_EQ(node->driver().installs, 1) << name;
  }
}

TEST_F(ControlTest, RouteChangePushesOneOperation) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  std::uint64_t before = controller_->generation();

  ConfigParams changed = params_;
  changed.route0_vtep = "192.0.2.12";
  ReloadResult r = load(changed);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.generation, before + 1);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  for (auto [node, name] : {std::pair{a_.get(), "gw-a"}, std::pair{b_.get(), "gw-b"}}) {
    SessionStatus s = status(name);
    EXPECT_EQ(s.full_syncs, 1u) << name;
    EXPECT_EQ(s.deltas, 1u) << name;
    EXPECT_EQ(s.last_push_ops, 1u) << name << ": one route upsert";
    EXPECT_TRUE(node_matches(*node, name)) << name;
  }
  const Route *route = api::lookup_route(*a_->service().tables(), 1, *IpAddress::parse("10.1.0.1"));
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->vtep.str(), "192.0.2.12");

  // The same configuration again changes nothing and pushes nothing.
  r = load(changed);
  EXPECT_TRUE(r.ok);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(r.generation, before + 1);
}

TEST_F(ControlTest, RetriesWhileNodeIsDownAndSyncsWhenItComesUp) {
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(eventually([&] { return status("gw-a").failures >= 3; })) << "gw-a was not retried";
  EXPECT_EQ(status("gw-a").state, SyncState::kFailed);
  EXPECT_FALSE(status("gw-a").last_error.empty());
  // gw-b is not held up by gw-a.
  ASSERT_TRUE(controller_->session("gw-b")->wait_in_sync(20s));

  a_->start();
  ASSERT_TRUE(controller_->session("gw-a")->wait_in_sync(20s));
  EXPECT_TRUE(node_matches(*a_, "gw-a"));
  EXPECT_EQ(status("gw-a").full_syncs, 1u);
  EXPECT_TRUE(status("gw-a").last_error.empty());
}

TEST_F(ControlTest, DataPlaneRestartTriggersFullResync) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  std::string first_instance = status("gw-a").instance_id;

  a_->start();  // a new process: empty tables, generation 0, new instance id
  EXPECT_EQ(a_->service().generation(), 0u);
  ASSERT_TRUE(eventually([&] {
    SessionStatus s = status("gw-a");
    return s.full_syncs == 2 && s.state == SyncState::kInSync;
  })) << "no full re-sync after the restart";
  EXPECT_NE(status("gw-a").instance_id, first_instance);
  EXPECT_TRUE(node_matches(*a_, "gw-a"));
  EXPECT_EQ(status("gw-b").full_syncs, 1u) << "gw-b did not restart";
}

TEST_F(ControlTest, ForeignChangeOnTheNodeTriggersFullResync) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  // Someone else pushes to gw-a (same instance, new generation and digest).
  Tables other = *a_->service().tables();
  other.routes.pop_back();
  pb::TxnHeader h;
  h.set_generation(a_->service().generation() + 1);
  h.set_full(true);
  pb::ApplyReply reply;
  ASSERT_TRUE(a_->service().apply(api::chunk(h, api::full_sync_ops(other)), &reply).ok());
  ASSERT_TRUE(
      eventually([&] { return status("gw-a").full_syncs == 2 && node_matches(*a_, "gw-a"); }));
}

TEST_F(ControlTest, RestartedDaemonKeepsTheIdsTheNodesUse) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ConfigParams fewer = params_;
  fewer.skip_backend = 2;  // web-3 keeps id 2, a fresh compile would give it 1
  ASSERT_TRUE(load(fewer).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  std::uint32_t id = find_backend(*a_->service().tables(), "web", "web-3").backend->id;
  Tables fresh = config::compile(*controller_->config(), "gw-a", nullptr);
  ASSERT_NE(find_backend(fresh, "web", "web-3").backend->id, id) << "the test needs a gap";

  controller();  // stratusd restarts
  ASSERT_TRUE(load(fewer).ok);
  EXPECT_EQ(find_backend(*controller_->tables().at("gw-a"), "web", "web-3").backend->id, id);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  EXPECT_TRUE(node_matches(*a_, "gw-a"));
}

TEST_F(ControlTest, InvalidConfigIsRejectedAndTheRunningStateKept) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  std::uint64_t generation = controller_->generation();
  std::uint64_t digest_a = a_->service().table_digest();

  ConfigParams bad = params_;
  bad.route0_vtep = "192.0.2.99";     // valid change...
  bad.extra_backend_tenant = "bleu";  // ...in a file with an error
  ReloadResult r = load(bad);
  EXPECT_FALSE(r.ok);
  ASSERT_FALSE(r.errors.empty());
  EXPECT_NE(r.errors[0].find("test.yaml:"), std::string::npos) << r.errors[0];
  EXPECT_NE(r.errors[0].find("services[0].backends[3].tenant"), std::string::npos) << r.errors[0];
  EXPECT_NE(r.errors[0].find("bleu"), std::string::npos) << r.errors[0];
  EXPECT_EQ(controller_->generation(), generation);
  EXPECT_FALSE(controller_->config_valid());
  EXPECT_FALSE(controller_->last_reload().ok);

  // Nothing was pushed: give the sessions a chance to (wrongly) push.
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(a_->service().table_digest(), digest_a);
  EXPECT_EQ(status("gw-a").deltas, 0u);

  // The API reports it.
  OperatorService api(*controller_);
  op::StatusReply st;
  ASSERT_TRUE(api.Status(nullptr, nullptr, &st).ok());
  EXPECT_FALSE(st.config_valid());
  EXPECT_FALSE(st.last_reload().ok());
  ASSERT_EQ(st.last_reload().errors_size(), static_cast<int>(r.errors.size()));
  EXPECT_EQ(st.last_reload().errors(0), r.errors[0]);
  EXPECT_EQ(st.generation(), generation);
  std::string text = metrics_.text();
  EXPECT_NE(text.find("stratus_config_valid 0"), std::string::npos);
  EXPECT_NE(text.find("stratus_config_reloads_total{result=\"failure\"} 1"), std::string::npos);

  // Fixing the file applies it.
  bad.extra_backend_tenant.clear();
  r = load(bad);
  EXPECT_TRUE(r.ok);
  EXPECT_TRUE(controller_->config_valid());
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  EXPECT_TRUE(node_matches(*a_, "gw-a"));
}

TEST_F(ControlTest, DeadNodeDoesNotBlockAnotherNode) {
  b_->start();
  std::atomic<int> hanging{0};
  auto factory = [&, grpc = grpc_client_factory()](
                     const std::string &endpoint) -> std::unique_ptr<DataplaneClient> {
    if (endpoint == "unix:/hang.sock") {
      ++hanging;
      return std::make_unique<HangingClient>();
    }
    return grpc(endpoint);
  };
  params_.nodes[0].second = "unix:/hang.sock";
  controller(factory);
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->session("gw-b")->wait_in_sync(20s));
  EXPECT_TRUE(node_matches(*b_, "gw-b"));
  EXPECT_GE(hanging.load(), 1);
  EXPECT_NE(status("gw-a").state, SyncState::kInSync);

  // A change still reaches gw-b while gw-a hangs.
  ConfigParams changed = params_;
  changed.route0_vtep = "192.0.2.12";
  ASSERT_TRUE(load(changed).ok);
  ASSERT_TRUE(controller_->session("gw-b")->wait_in_sync(20s));
  EXPECT_EQ(status("gw-b").deltas, 1u);
  // Destroying the controller cancels the hanging call (no deadlock).
  controller_.reset();
}

TEST_F(ControlTest, DrainKeepsTheBackendAsDrainingWithoutMaglevSlots) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  BackendView before = find_backend(*a_->service().tables(), "web", "web-2");
  ASSERT_NE(before.backend, nullptr);
  EXPECT_GT(before.slots, 0u);

  EXPECT_EQ(controller_->set_backend("web", "web-2", BackendAction::kDrain), "");
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  auto tables = a_->service().tables();
  BackendView drained = find_backend(*tables, "web", "web-2");
  ASSERT_NE(drained.backend, nullptr) << "a draining backend stays in the tables";
  EXPECT_EQ(drained.backend->state, BackendState::kDraining);
  EXPECT_EQ(drained.slots, 0u);
  EXPECT_EQ(status("gw-a").last_push_ops, 1u) << "only the web service is pushed";
  // The slots of the other backends did not move (Maglev minimal disruption).
  const Service &web = *std::find_if(tables->services.begin(), tables->services.end(),
                                     [](const Service &s) { return s.name == "web"; });
  EXPECT_EQ(
      find_backend(*tables, "web", "web-1").slots + find_backend(*tables, "web", "web-3").slots,
      web.maglev.size());

  EXPECT_EQ(controller_->set_backend("web", "web-2", BackendAction::kUndrain), "");
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  BackendView back = find_backend(*a_->service().tables(), "web", "web-2");
  EXPECT_EQ(back.backend->state, BackendState::kActive);
  EXPECT_EQ(back.slots, before.slots) << "the same slots as before the drain";

  EXPECT_EQ(controller_->set_backend("web", "web-2", BackendAction::kWeight, 3), "");
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  BackendView heavy = find_backend(*a_->service().tables(), "web", "web-2");
  EXPECT_EQ(heavy.backend->weight, 3u);
  // Weights 1:3:1 of M = 307: web-2 holds 3/5 of the slots, within one.
  EXPECT_NEAR(static_cast<double>(heavy.slots), 307.0 * 3 / 5, 1.0);

  EXPECT_NE(controller_->set_backend("web", "nope", BackendAction::kDrain), "");
  EXPECT_NE(controller_->set_backend("nope", "web-1", BackendAction::kDrain), "");
  EXPECT_NE(controller_->set_backend("web", "web-1", BackendAction::kWeight, 2000000), "");
}

TEST_F(ControlTest, OverridesSurviveReload) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_EQ(controller_->set_backend("api", "api-1", BackendAction::kDrain), "");
  ConfigParams changed = params_;
  changed.route0_vtep = "192.0.2.12";
  ASSERT_TRUE(load(changed).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  EXPECT_EQ(find_backend(*a_->service().tables(), "api", "api-1").backend->state,
            BackendState::kDraining);
}

TEST_F(ControlTest, OverridesSurviveADaemonRestartWithARuntimeFile) {
  a_->start();
  b_->start();
  const std::string file = dir_.path() + "/overrides";
  controller(grpc_client_factory(), file);
  ASSERT_TRUE(load(params_).ok);
  ASSERT_EQ(controller_->set_backend("api", "api-1", BackendAction::kDrain), "");
  ASSERT_EQ(controller_->set_backend("web", "web-2", BackendAction::kWeight, 7), "");
  ASSERT_TRUE(controller_->wait_in_sync(20s));

  controller(grpc_client_factory(), file);  // stratusd restarts
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  EXPECT_EQ(find_backend(*a_->service().tables(), "api", "api-1").backend->state,
            BackendState::kDraining);
  EXPECT_EQ(find_backend(*a_->service().tables(), "web", "web-2").backend->weight, 7u);

  // Undone overrides are gone after the next restart too; without the file
  // nothing is restored.
  ASSERT_EQ(controller_->set_backend("api", "api-1", BackendAction::kReset), "");
  controller(grpc_client_factory(), file);
  ASSERT_TRUE(load(params_).ok);
  EXPECT_EQ(controller_->runtime().overrides.size(), 1u);
  controller();
  ASSERT_TRUE(load(params_).ok);
  EXPECT_TRUE(controller_->runtime().overrides.empty());
}

TEST(RuntimeOverrides, TextRoundTripsAndRejectsGarbage) {
  std::map<BackendKey, BackendOverride> o;
  o[{"web", "web-1"}] = {true, std::nullopt};
  o[{"web", "web-2"}] = {false, 0u};
  o[{"api", "api-1"}] = {std::nullopt, 1000000u};
  EXPECT_EQ(parse_overrides(overrides_text(o)), o);
  EXPECT_EQ(parse_overrides(""), (std::map<BackendKey, BackendOverride>{}));
  EXPECT_EQ(parse_overrides("web web-1 drain=2 weight=-\n"), std::nullopt);
  EXPECT_EQ(parse_overrides("web web-1 drain=1\n"), std::nullopt);
  EXPECT_EQ(parse_overrides("web web-1 drain=1 weight=x\n"), std::nullopt);
  EXPECT_EQ(parse_overrides("web web-1 drain=1 weight=1 extra\n"), std::nullopt);
}

// Two services of three underlay backends each, Maglev tables as compiled.
std::shared_ptr<const Tables> two_services() {
  auto t = std::make_shared<Tables>();
  for (std::uint32_t s = 0; s < 2; ++s) {
    Service svc;
    svc.id = s;
    svc.name = s == 0 ? "web" : "dns";
    svc.vip = IpAddress::v4(0x0a000064u + s);
    svc.maglev_size = 13;
    std::vector<lb::MaglevBackend> weights;
    for (std::uint32_t b = 0; b < 3; ++b) {
      Backend be;
      be.id = s * 3 + b;
      be.name = svc.name + "-" + std::to_string(b);
      be.addr = IpAddress::v4(0xc0000200u + s * 3 + b);
      be.encap = Encap::kIpip;
      be.tunnel_dst = be.addr;
      weights.push_back({be.name, be.weight});
      svc.backends.push_back(be);
    }
    svc.maglev = lb::maglev_table(weights, svc.maglev_size);
    t->services.push_back(svc);
  }
  return t;
}

TEST(ApplyRuntime, HandsOnTheCompiledTablesWhenNothingApplies) {
  auto base = two_services();
  EXPECT_EQ(apply_runtime(base, RuntimeState{}, nullptr), base) << "no runtime state";
  RuntimeState elsewhere;
  elsewhere.down.insert({"other", "other-0"});
  elsewhere.overrides[{"gone", "gone-1"}].drain = true;
  EXPECT_EQ(apply_runtime(base, elsewhere, nullptr), base) << "state of other services only";
  RuntimeState same;
  same.overrides[{"web", "web-1"}].weight = 1;     // the configured weight
  same.overrides[{"web", "web-2"}].drain = false;  // already active
  EXPECT_EQ(apply_runtime(base, same, nullptr), base) << "overrides equal to the config";
}

TEST(ApplyRuntime, CopiesOnChangeAndRebuildsOnlyTheChangedService) {
  auto base = two_services();
  const Tables before = *base;
  RuntimeState rt;
  rt.down.insert({"web", "web-1"});
  auto eff = apply_runtime(base, rt, nullptr);
  ASSERT_NE(eff, base);
  EXPECT_EQ(*base, before) << "the compiled tables are not edited";
  ASSERT_EQ(eff->services.size(), 2u);
  EXPECT_EQ(eff->services[0].backends[1].state, BackendState::kDown);
  EXPECT_EQ(eff->services[0].backends[0].state, BackendState::kActive);
  EXPECT_NE(eff->services[0].maglev, base->services[0].maglev);
  for (std::uint32_t slot : eff->services[0].maglev)
    EXPECT_NE(slot, 1u) << "a down backend holds no slot";
  EXPECT_TRUE(eff->services[1].maglev.shares(base->services[1].maglev)) << "dns untouched";
  EXPECT_EQ(eff->services[1], base->services[1]);

  // Recomputed against the last effective tables: the same table object.
  auto again = apply_runtime(base, rt, eff.get());
  EXPECT_TRUE(again->services[0].maglev.shares(eff->services[0].maglev));
  EXPECT_EQ(digest(*again), digest(*eff));

  // The backend recovers: the compiled tables come back as they are.
  EXPECT_EQ(apply_runtime(base, RuntimeState{}, again.get()), base);
}

TEST_F(ControlTest, HealthFailureTakesTheBackendDownAndRecoveryBringsItBack) {
  a_->start();
  b_->start();
  FakeClock clock;
  FakeProber prober;
  controller();
  HealthMonitor monitor(
      prober, clock, &metrics_,
      [&](const BackendKey &k, bool up, const std::string &) { controller_->set_health(k, up); });
  controller_->attach_health(&monitor);
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  std::size_t slots_before = find_backend(*a_->service().tables(), "web", "web-1").slots;

  prober.set("10.0.1.1:80", false);
  for (int i = 0; i < 3; ++i) {
    monitor.tick();
    clock.advance(1000ms);
  }
  EXPECT_EQ(controller_->runtime().down.count({"web", "web-1"}), 1u);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  for (auto [node, name] : {std::pair{a_.get(), "gw-a"}, std::pair{b_.get(), "gw-b"}}) {
    BackendView v = find_backend(*node->service().tables(), "web", "web-1");
    ASSERT_NE(v.backend, nullptr) << name;
    EXPECT_EQ(v.backend->state, BackendState::kDown) << name;
    EXPECT_EQ(v.slots, 0u) << name;
    EXPECT_EQ(status(name).last_push_ops, 1u) << name << ": only the web service";
  }

  prober.set("10.0.1.1:80", true);
  monitor.tick();  // one success: rise is 2, still down
  clock.advance(1000ms);
  EXPECT_EQ(controller_->runtime().down.count({"web", "web-1"}), 1u);
  monitor.tick();
  EXPECT_EQ(controller_->runtime().down.count({"web", "web-1"}), 0u);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  BackendView v = find_backend(*a_->service().tables(), "web", "web-1");
  EXPECT_EQ(v.backend->state, BackendState::kActive);
  EXPECT_EQ(v.slots, slots_before);

  std::string text = metrics_.text();
  EXPECT_NE(
      text.find(
          "stratus_health_transitions_total{backend=\"web-1\",service=\"web\",to=\"down\"} 1"),
      std::string::npos)
      << text;
  controller_->attach_health(nullptr);
}

TEST_F(ControlTest, ExplainIsAnsweredByEveryNode) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  OperatorService api(*controller_);
  op::ExplainRequest req;
  req.set_tenant("acme");
  req.set_src("10.0.5.5");
  req.set_dst("10.0.0.100");
  req.set_protocol("tcp");
  req.set_sport(40000);
  req.set_dport(80);
  op::ExplainReply reply;
  ASSERT_TRUE(api.Explain(nullptr, &req, &reply).ok());
  ASSERT_EQ(reply.nodes_size(), 2);
  for (const auto &n : reply.nodes()) {
    EXPECT_TRUE(n.ok()) << n.node() << ": " << n.error();
    EXPECT_EQ(n.path(), "service") << n.node();
    EXPECT_EQ(n.service(), "web");
    EXPECT_FALSE(n.backend().empty());
    EXPECT_EQ(n.generation(), controller_->generation());
  }
  // Every node picks the same backend for the same flow.
  EXPECT_EQ(reply.nodes(0).backend(), reply.nodes(1).backend());

  req.set_tenant("nope");
  EXPECT_EQ(api.Explain(nullptr, &req, &reply).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ControlTest, OperatorViews) {
  a_->start();
  b_->start();
  controller();
  ASSERT_TRUE(load(params_).ok);
  ASSERT_TRUE(controller_->wait_in_sync(20s));
  OperatorService api(*controller_);

  op::NodesReply nodes;
  ASSERT_TRUE(api.Nodes(nullptr, nullptr, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 2);
  EXPECT_EQ(nodes.nodes(0).state(), "in_sync");
  EXPECT_EQ(nodes.nodes(0).digest(), nodes.nodes(0).expected_digest());

  op::RoutesRequest rr;
  rr.set_tenant("acme");
  rr.set_node("gw-a");
  op::RoutesReply routes;
  ASSERT_TRUE(api.Routes(nullptr, &rr, &routes).ok());
  EXPECT_EQ(routes.routes_size(), params_.routes);

  op::BackendsRequest br;
  br.set_service("web");
  op::BackendsReply backends;
  ASSERT_TRUE(api.Backends(nullptr, &br, &backends).ok());
  ASSERT_EQ(backends.backends_size(), 3);
  std::uint32_t slots = 0;
  for (const auto &b : backends.backends())
    slots += b.slots();
  EXPECT_EQ(slots, backends.maglev_size());

  op::SetBackendRequest sb;
  sb.set_service("web");
  sb.set_backend("web-3");
  sb.set_action(op::SetBackendRequest::ACTION_DRAIN);
  op::SetBackendReply sbr;
  ASSERT_TRUE(api.SetBackend(nullptr, &sb, &sbr).ok());
  EXPECT_EQ(sbr.backend().state(), "draining");
  EXPECT_EQ(sbr.backend().override(), "drain");
  EXPECT_EQ(sbr.backend().slots(), 0u);
  sb.set_backend("zzz");
  EXPECT_EQ(api.SetBackend(nullptr, &sb, &sbr).error_code(), grpc::StatusCode::NOT_FOUND);

  op::FlowsRequest fr;
  fr.set_node("gw-a");
  op::FlowsReply flows;
  ASSERT_TRUE(api.Flows(nullptr, &fr, &flows).ok());
  EXPECT_EQ(flows.flows_size(), 1);

  op::ValidateRequest vr;
  vr.set_content("nodes: [");
  op::ValidateReply vrep;
  ASSERT_TRUE(api.Validate(nullptr, &vr, &vrep).ok());
  EXPECT_FALSE(vrep.ok());
  EXPECT_FALSE(vrep.errors().empty());
}

}  // namespace
}  // namespace stratus::control
