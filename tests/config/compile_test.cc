// The compiler, by named cases: a configuration in, one node's tables out.
// Routes resolved to remote / peering / local / blackhole, backends to their
// encapsulation, VNI translation across regions, Maglev tables from backend
// state and weight, and ids that stay put across edits.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/compile.h"
#include "config/format.h"
#include "config/validate.h"

namespace stratus::config {
namespace {

// Region a: gw-a (with a tenant port for red); region b: gw-b. Tenant red is
// VNI 100 in region a and 200 in region b; blue is 101 / 201.
constexpr const char *kTopology = R"(
nodes:
  - name: gw-a
    region: a
    kind: xdp
    api: unix:/run/gw-a.sock
    vteps: [192.0.2.1]
    ports:
      - {name: eth0, role: underlay, mac: "02:00:00:0a:00:01"}
      - {name: tap-red, role: tenant, tenant: red}
    nexthops:
      - {remote: 192.0.2.11, port: eth0, mac: "02:00:00:a1:00:01"}
      - {remote: default, port: eth0, mac: "02:00:00:fe:00:01", src_mac: "02:00:00:0a:00:02"}
  - name: gw-b
    region: b
    kind: dpdk
    api: 127.0.0.1:50052
    vteps: [198.51.100.1]
    gateway_mac: "02:00:00:00:0b:01"
    vxlan_port: 8472
    underlay_mtu: 9000
    ports:
      - {name: eth0, role: underlay}
tenants:
  - name: red
    vni: 100
    region_vnis: {b: 200}
    subnets: [10.1.0.0/16, 10.2.0.0/16]
    gateways: [10.1.0.1]
    routes:
      - {prefix: 10.1.0.11/32, region: a, remote: {vtep: 192.0.2.11, mac: "02:00:01:00:00:0b"}}
      - {prefix: 10.2.0.0/16, peering: a-to-b}
      - {prefix: 10.1.9.0/24, local: {node: gw-a, port: tap-red, mac: "02:00:01:00:09:01"}}
      - {prefix: 10.66.0.0/16, blackhole: true}
      - {prefix: 10.2.0.11/32, region: b, remote: {vtep: 198.51.100.11, mac: "02:00:01:00:00:0c"}}
  - name: blue
    vni: 101
    region_vnis: {b: 201}
    subnets: [10.1.0.0/16]
peerings:
  - name: a-to-b
    region: a
    remote_vtep: 198.51.100.1
    remote_mac: "02:00:00:00:0b:01"
    vni_map: [{tenant: red, vni: 200}, {tenant: blue, vni: 201}]
services:
  - name: web
    vip: 203.0.113.10
    port: 80
    maglev_size: 1009
    hash: [src_ip, dst_ip]
    backends:
      - {name: web-a, address: 10.1.0.21, tenant: red, region: a, vtep: 192.0.2.11, mac: "02:00:01:00:00:15"}
      - {name: web-b, address: 10.2.0.21, tenant: red, region: b, vtep: 198.51.100.11, mac: "02:00:01:00:00:16", weight: 3}
      - {name: web-ext, address: 192.0.2.80, state: draining}
      - {name: web-old, address: 192.0.2.81, state: down}
  - name: dns
    vip: 10.1.0.53
    tenant: blue
    protocol: udp
    port: 53
    regions: [b]
    backends:
      - {name: dns-1, address: 10.1.0.54, tenant: blue, vtep: 198.51.100.11, mac: "02:00:02:00:00:35"}
)";

Config load(const std::string &yaml) {
  LoadResult r = load_config_string(yaml, "topology.yaml");
  EXPECT_TRUE(r.ok()) << format_diagnostics(r.errors);
  return r.config.value_or(Config{});
}

const Route *find_route(const Tables &t, const std::string &tenant, const std::string &prefix) {
  std::uint32_t vrf = 0;
  for (const auto &v : t.vrfs) {
    if (v.tenant == tenant)
      vrf = v.id;
  }
  for (const auto &r : t.routes) {
    if (r.vrf == vrf && r.prefix.str() == prefix)
      return &r;
  }
  return nullptr;
}

const Service *find_service(const Tables &t, const std::string &name) {
  for (const auto &s : t.services) {
    if (s.name == name)
      return &s;
  }
  return nullptr;
}

const Backend *find_backend(const Service &s, const std::string &name) {
  for (const auto &b : s.backends) {
    if (b.name == name)
      return &b;
  }
  return nullptr;
}

IpAddress ip(const char *text) {
  return *IpAddress::parse(text);
}
MacAddress mac(const char *text) {
  return *MacAddress::parse(text);
}

class Compile : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = load(kTopology);
    gw_a_ = compile(config_, "gw-a", nullptr);
    gw_b_ = compile(config_, "gw-b", nullptr);
  }
  Config config_;
  Tables gw_a_, gw_b_;
};

TEST_F(Compile, TablesPassCheck) {
  EXPECT_EQ(check(gw_a_), std::vector<std::string>{});
  EXPECT_EQ(check(gw_b_), std::vector<std::string>{});
}

TEST_F(Compile, NodeTableCarriesPortsNextHopsAndSettings) {
  const NodeTable &n = gw_a_.node;
  EXPECT_EQ(n.name, "gw-a");
  EXPECT_EQ(n.kind, DataplaneKind::kXdp);
  EXPECT_EQ(n.vteps, std::vector<IpAddress>{ip("192.0.2.1")});
  EXPECT_EQ(n.vxlan_port, 4789);
  EXPECT_EQ(n.underlay_mtu, 1500u);
  EXPECT_EQ(n.hash_seed, kDefaultHashSeed);
  EXPECT_EQ(n.flows, FlowTableConfig{});
  ASSERT_EQ(n.ports.size(), 2u);
  EXPECT_EQ(n.ports[0].name, "eth0");  // canonical: by name
  EXPECT_EQ(n.ports[0].mac, mac("02:00:00:0a:00:01"));
  EXPECT_EQ(n.ports[1].name, "tap-red");
  EXPECT_EQ(n.ports[1].role, PortRole::kTenant);
  EXPECT_EQ(n.ports[1].vrf, 1u);
  ASSERT_EQ(gw_a_.nexthops.size(), 2u);
  EXPECT_TRUE(gw_a_.nexthops[0].remote.empty());  // default sorts first
  EXPECT_EQ(gw_a_.nexthops[0].src_mac, mac("02:00:00:0a:00:02"));
  EXPECT_EQ(gw_a_.nexthops[1].remote, ip("192.0.2.11"));
  EXPECT_EQ(gw_a_.nexthops[1].dst_mac, mac("02:00:00:a1:00:01"));
  EXPECT_TRUE(gw_a_.nexthops[1].src_mac.is_zero());

  EXPECT_EQ(gw_b_.node.kind, DataplaneKind::kDpdk);
  EXPECT_EQ(gw_b_.node.vxlan_port, 8472);
  EXPECT_EQ(gw_b_.node.underlay_mtu, 9000u);
  EXPECT_EQ(gw_b_.node.gateway_mac, mac("02:00:00:00:0b:01"));
}

TEST_F(Compile, GatewayMacIsDerivedFromTheNodeNameWhenAbsent) {
  MacAddress m = gw_a_.node.gateway_mac;
  EXPECT_EQ(m, derived_gateway_mac("gw-a"));
  EXPECT_EQ(m.bytes[0], 0x02);  // locally administered, unicast
  EXPECT_NE(m, derived_gateway_mac("gw-b"));
  EXPECT_FALSE(m.is_zero());
}

TEST_F(Compile, EveryTenantIsAVrfWithItsRegionsVni) {
  ASSERT_EQ(gw_a_.vrfs.size(), 2u);
  EXPECT_EQ(gw_a_.vrfs[0].tenant, "red");
  EXPECT_EQ(gw_a_.vrfs[0].id, 1u);
  EXPECT_EQ(gw_a_.vrfs[0].vni, 100u);
  EXPECT_EQ(gw_a_.vrfs[0].gateways, std::vector<IpAddress>{ip("10.1.0.1")});
  EXPECT_EQ(gw_a_.vrfs[1].tenant, "blue");
  EXPECT_EQ(gw_a_.vrfs[1].id, 2u);
  EXPECT_EQ(gw_a_.vrfs[1].vni, 101u);
  ASSERT_EQ(gw_b_.vrfs.size(), 2u);
  EXPECT_EQ(gw_b_.vrfs[0].vni, 200u);
  EXPECT_EQ(gw_b_.vrfs[1].vni, 201u);
}

TEST_F(Compile, RemoteRouteEncapsulatesTowardTheHostWithTheLocalVni) {
  const Route *r = find_route(gw_a_, "red", "10.1.0.11/32");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, RouteKind::kRemote);
  EXPECT_EQ(r->vtep, ip("192.0.2.11"));
  EXPECT_EQ(r->vni_out, 100u);
  EXPECT_EQ(r->dst_mac, mac("02:00:01:00:00:0b"));
}

TEST_F(Compile, PeeringRouteTranslatesTheVni) {
  const Route *r = find_route(gw_a_, "red", "10.2.0.0/16");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, RouteKind::kRemote);
  EXPECT_EQ(r->vtep, ip("198.51.100.1"));           // the peering's remote_vtep
  EXPECT_EQ(r->vni_out, 200u);                      // red's VNI in region b, not 100
  EXPECT_EQ(r->dst_mac, mac("02:00:00:00:0b:01"));  // gw-b's gateway MAC
}

TEST_F(Compile, LocalRouteDeliversOnTheTenantPort) {
  const Route *r = find_route(gw_a_, "red", "10.1.9.0/24");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, RouteKind::kLocal);
  EXPECT_EQ(r->port, "tap-red");
  EXPECT_EQ(r->dst_mac, mac("02:00:01:00:09:01"));
}

TEST_F(Compile, BlackholeRouteIsInstalledEverywhere) {
  for (const Tables *t : {&gw_a_, &gw_b_}) {
    const Route *r = find_route(*t, "red", "10.66.0.0/16");
    ASSERT_NE(r, nullptr) << t->node.name;
    EXPECT_EQ(r->kind, RouteKind::kBlackhole);
  }
}

TEST_F(Compile, RoutesAreScopedByRegionPeeringAndNode) {
  // region b's host route, the region-a peering and gw-a's local route are
  // not on gw-b; region a's host route is not on gw-a's peer.
  EXPECT_EQ(find_route(gw_a_, "red", "10.2.0.11/32"), nullptr);
  EXPECT_NE(find_route(gw_b_, "red", "10.2.0.11/32"), nullptr);
  EXPECT_EQ(find_route(gw_b_, "red", "10.1.0.11/32"), nullptr);
  EXPECT_EQ(find_route(gw_b_, "red", "10.2.0.0/16"), nullptr);
  EXPECT_EQ(find_route(gw_b_, "red", "10.1.9.0/24"), nullptr);
  EXPECT_EQ(gw_a_.routes.size(), 4u);
  EXPECT_EQ(gw_b_.routes.size(), 2u);
}

TEST_F(Compile, TenantBackendIsVxlanIntoItsRegionsVni) {
  const Service *web = find_service(gw_a_, "web");
  ASSERT_NE(web, nullptr);
  const Backend *a = find_backend(*web, "web-a");
  const Backend *b = find_backend(*web, "web-b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->encap, Encap::kVxlan);
  EXPECT_EQ(a->tunnel_dst, ip("192.0.2.11"));
  EXPECT_EQ(a->vni, 100u);
  EXPECT_EQ(a->vrf, 1u);
  EXPECT_EQ(a->inner_dst_mac, mac("02:00:01:00:00:15"));
  // Region b's backend, seen from region a: region b's VNI of red.
  EXPECT_EQ(b->encap, Encap::kVxlan);
  EXPECT_EQ(b->tunnel_dst, ip("198.51.100.11"));
  EXPECT_EQ(b->vni, 200u);
  EXPECT_EQ(b->weight, 3u);
}

TEST_F(Compile, UnderlayBackendIsIpipToItsAddress) {
  const Service *web = find_service(gw_a_, "web");
  ASSERT_NE(web, nullptr);
  const Backend *ext = find_backend(*web, "web-ext");
  ASSERT_NE(ext, nullptr);
  EXPECT_EQ(ext->encap, Encap::kIpip);
  EXPECT_EQ(ext->tunnel_dst, ip("192.0.2.80"));
  EXPECT_EQ(ext->vrf, kUnderlayVrf);
  EXPECT_EQ(ext->state, BackendState::kDraining);
  EXPECT_EQ(find_backend(*web, "web-old")->state, BackendState::kDown);
}

TEST_F(Compile, ServiceKeyAndSettings) {
  const Service *web = find_service(gw_a_, "web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->vrf, kUnderlayVrf);
  EXPECT_EQ(web->vip, ip("203.0.113.10"));
  EXPECT_EQ(web->proto, 6);
  EXPECT_EQ(web->port, 80);
  EXPECT_EQ(web->maglev_size, 1009u);
  EXPECT_EQ(web->hash_flags, 0x3u);  // src_ip | dst_ip
  const Service *dns = find_service(gw_b_, "dns");
  ASSERT_NE(dns, nullptr);
  EXPECT_EQ(dns->vrf, 2u);  // blue
  EXPECT_EQ(dns->proto, 17);
  EXPECT_EQ(dns->maglev_size, kDefaultMaglevSize);
  EXPECT_EQ(dns->hash_flags, 0x1fu);
}

TEST_F(Compile, ServiceRegionsLimitWhereItIsInstalled) {
  EXPECT_EQ(find_service(gw_a_, "dns"), nullptr);
  EXPECT_NE(find_service(gw_b_, "dns"), nullptr);
}

TEST_F(Compile, MaglevGivesSlotsOnlyToActiveBackendsByWeight) {
  const Service *web = find_service(gw_a_, "web");
  ASSERT_NE(web, nullptr);
  ASSERT_EQ(web->maglev.size(), 1009u);
  std::map<std::string, int> slots;
  for (std::uint32_t i : web->maglev)
    slots[web->backends.at(i).name]++;
  EXPECT_EQ(slots.count("web-ext"), 0u);  // draining: keeps flows, no new ones
  EXPECT_EQ(slots.count("web-old"), 0u);  // down
  // Weights 1 and 3 share the table about 1:3.
  EXPECT_NEAR(slots["web-a"], 1009 / 4, 2);
  EXPECT_NEAR(slots["web-b"], 1009 * 3 / 4, 2);
}

TEST(CompileMaglev, NoActiveBackendGivesAnEmptyTable) {
  Config c = load(
      "nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: [192.0.2.1]}]\n"
      "services:\n"
      "  - name: web\n"
      "    vip: 203.0.113.10\n"
      "    backends: [{name: b1, address: 192.0.2.51, state: down},\n"
      "               {name: b2, address: 192.0.2.52, weight: 0}]\n");
  Tables t = compile(c, "gw", nullptr);
  ASSERT_EQ(t.services.size(), 1u);
  EXPECT_TRUE(t.services[0].maglev.empty());
  EXPECT_EQ(t.services[0].backends.size(), 2u);
  EXPECT_EQ(check(t), std::vector<std::string>{});
}

TEST(CompileMaglev, ReusedTablesEqualRebuiltOnes) {
  // compile() takes a service's Maglev table from the previous tables when
  // its inputs (M, backend names and weights, index by index) are the same.
  // Whatever it reuses, the result must equal a compile from nothing.
  auto config = [](const char *web_b2, const char *api_m) {
    return load(std::string("nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', "
                            "vteps: [192.0.2.1]}]\n"
                            "services:\n"
                            "  - name: web\n"
                            "    vip: 203.0.113.10\n"
                            "    maglev_size: 1009\n"
                            "    backends: [{name: b1, address: 192.0.2.51},\n"
                            "               {name: b2, address: 192.0.2.52") +
                web_b2 +
                "}]\n"
                "  - name: api\n"
                "    vip: 203.0.113.11\n"
                "    maglev_size: " +
                api_m +
                "\n"
                "    backends: [{name: a1, address: 192.0.2.61}, {name: a2, address: "
                "192.0.2.62}]\n");
  };
  Tables v1 = compile(config("", "1009"), "gw", nullptr);
  const std::vector<std::pair<const char *, const char *>> edits = {
      {", weight: 3", "1009"},        // web's inputs change, api's do not
      {", state: draining", "1009"},  // b2 takes no slots
      {", state: draining", "1013"},  // api's M changes
      {"", "1013"},                   // back to all active
  };
  Tables prev = v1;
  for (const auto &[b2, m] : edits) {
    Config c = config(b2, m);
    Tables incremental = compile(c, "gw", &prev);
    EXPECT_EQ(incremental, compile(c, "gw", nullptr)) << b2 << " M " << m;
    prev = incremental;
  }
  // A previous table that cannot be right for the inputs is not reused.
  Tables bad = v1;
  const MaglevTable &m = bad.services[0].maglev;
  bad.services[0].maglev = std::vector<std::uint32_t>(m.begin(), m.end() - 1);
  EXPECT_EQ(compile(config("", "1009"), "gw", &bad), v1);
}

TEST_F(Compile, IdsAreDense) {
  // VRFs from 1, services from 0, backends from 0 across services.
  std::vector<std::uint32_t> backend_ids;
  for (const auto &s : gw_b_.services) {
    for (const auto &b : s.backends)
      backend_ids.push_back(b.id);
  }
  std::sort(backend_ids.begin(), backend_ids.end());
  EXPECT_EQ(backend_ids, (std::vector<std::uint32_t>{0, 1, 2, 3, 4}));
  ASSERT_EQ(gw_b_.services.size(), 2u);
  EXPECT_EQ(gw_b_.services[0].id, 0u);
  EXPECT_EQ(gw_b_.services[1].id, 1u);
}

TEST_F(Compile, IsPureAndDeterministic) {
  EXPECT_EQ(compile(config_, "gw-a", nullptr), gw_a_);
  EXPECT_EQ(digest(compile(config_, "gw-a", nullptr)), digest(gw_a_));
  EXPECT_NE(digest(gw_a_), digest(gw_b_));
}

TEST_F(Compile, UnknownNodeThrows) {
  EXPECT_THROW(compile(config_, "gw-z", nullptr), std::invalid_argument);
}

TEST_F(Compile, DanglingReferencesInAnUnvalidatedConfigThrow) {
  // A config edited in code without validate(): a precondition failure with
  // a message, never a crash.
  Config edited = config_;
  edited.services[0].backends[0].tenant.value = "green";
  EXPECT_THROW(compile(edited, "gw-a", nullptr), std::invalid_argument);
  edited = config_;
  edited.tenants[0].routes[1].peering.value = "nowhere";
  EXPECT_THROW(compile(edited, "gw-a", nullptr), std::invalid_argument);
  edited = config_;
  edited.peerings[0].vni_map.clear();
  EXPECT_THROW(compile(edited, "gw-a", nullptr), std::invalid_argument);
  EXPECT_THROW(compile_all(edited, {}), std::invalid_argument) << "rethrown from its thread";
  EXPECT_FALSE(validate(edited).errors.empty());
}

TEST_F(Compile, CompileAllCompilesEveryNodeWithItsOwnPrevious) {
  auto all = compile_all(config_, {{"gw-a", std::make_shared<const Tables>(gw_a_)}});
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(*all.at("gw-a"), gw_a_);
  EXPECT_EQ(*all.at("gw-b"), gw_b_);
}

// ---------------------------------------------------------------- id stability

// A minimal config with the given tenants and services (each service "name"
// with backends "name-1".."name-N" on the underlay).
std::string config_with(const std::vector<std::string> &tenants,
                        const std::vector<std::pair<std::string, int>> &services) {
  std::string y = "nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: [192.0.2.1]}]\n";
  y += "tenants:\n";
  int vni = 1;
  for (const auto &t : tenants)
    y += "  - {name: " + t + ", vni: " + std::to_string(vni++) + "}\n";
  y += "services:\n";
  int addr = 1;
  for (const auto &[name, backends] : services) {
    y += "  - name: " + name + "\n    vip: 203.0.113." + std::to_string(addr++) +
         "\n    maglev_size: 101\n    backends:\n";
    for (int i = 1; i <= backends; ++i) {
      y += "      - {name: " + name + "-" + std::to_string(i) + ", address: 198.51.100." +
           std::to_string(addr++) + "}\n";
    }
  }
  return y;
}

std::map<std::string, std::uint32_t> vrf_ids(const Tables &t) {
  std::map<std::string, std::uint32_t> out;
  for (const auto &v : t.vrfs)
    out[v.tenant] = v.id;
  return out;
}
std::map<std::string, std::uint32_t> service_ids(const Tables &t) {
  std::map<std::string, std::uint32_t> out;
  for (const auto &s : t.services)
    out[s.name] = s.id;
  return out;
}
std::map<std::string, std::uint32_t> backend_ids(const Tables &t) {
  std::map<std::string, std::uint32_t> out;
  for (const auto &s : t.services) {
    for (const auto &b : s.backends)
      out[b.name] = b.id;
  }
  return out;
}

TEST(IdStability, RemovingATenantKeepsTheOthersAndANewOneTakesTheFreeId) {
  Tables v1 = compile(load(config_with({"red", "green", "blue"}, {})), "gw", nullptr);
  EXPECT_EQ(vrf_ids(v1),
            (std::map<std::string, std::uint32_t>{{"red", 1}, {"green", 2}, {"blue", 3}}));
  Tables v2 = compile(load(config_with({"red", "blue"}, {})), "gw", &v1);
  EXPECT_EQ(vrf_ids(v2), (std::map<std::string, std::uint32_t>{{"red", 1}, {"blue", 3}}));
  EXPECT_EQ(check(v2), std::vector<std::string>{});
  Tables v3 = compile(load(config_with({"pink", "red", "blue", "teal"}, {})), "gw", &v2);
  EXPECT_EQ(vrf_ids(v3), (std::map<std::string, std::uint32_t>{
                             {"red", 1}, {"pink", 2}, {"blue", 3}, {"teal", 4}}));
}

TEST(IdStability, RenamingAServiceKeepsTheOthers) {
  Tables v1 = compile(load(config_with({}, {{"a", 1}, {"web", 1}, {"c", 1}})), "gw", nullptr);
  EXPECT_EQ(service_ids(v1),
            (std::map<std::string, std::uint32_t>{{"a", 0}, {"web", 1}, {"c", 2}}));
  // Reordered and renamed: "a" and "c" keep theirs, "www" is new and takes
  // the lowest free id.
  Tables v2 = compile(load(config_with({}, {{"c", 1}, {"www", 1}, {"a", 1}})), "gw", &v1);
  EXPECT_EQ(service_ids(v2),
            (std::map<std::string, std::uint32_t>{{"a", 0}, {"www", 1}, {"c", 2}}));
  EXPECT_EQ(check(v2), std::vector<std::string>{});
}

TEST(IdStability, RemovingAndAddingBackendsKeepsTheOthers) {
  Tables v1 = compile(load(config_with({}, {{"web", 3}, {"api", 1}})), "gw", nullptr);
  EXPECT_EQ(backend_ids(v1), (std::map<std::string, std::uint32_t>{
                                 {"web-1", 0}, {"web-2", 1}, {"web-3", 2}, {"api-1", 3}}));
  // web-2 removed (web has 1 and 3 left: rename by rebuilding the list).
  std::string y = config_with({}, {{"web", 3}, {"api", 1}});
  y.erase(y.find("      - {name: web-2"),
          y.find("      - {name: web-3") - y.find("      - {name: web-2"));
  Tables v2 = compile(load(y), "gw", &v1);
  EXPECT_EQ(backend_ids(v2),
            (std::map<std::string, std::uint32_t>{{"web-1", 0}, {"web-3", 2}, {"api-1", 3}}));
  // Added back under new names: web-4 and api-2 take 1, then 4.
  Tables v3 = compile(load(config_with({}, {{"web", 4}, {"api", 2}})), "gw", &v2);
  auto ids = backend_ids(v3);
  EXPECT_EQ(ids["web-1"], 0u);
  EXPECT_EQ(ids["web-3"], 2u);
  EXPECT_EQ(ids["api-1"], 3u);
  EXPECT_EQ(ids["web-2"], 1u);
  EXPECT_EQ(ids["web-4"], 4u);
  EXPECT_EQ(ids["api-2"], 5u);
  EXPECT_EQ(check(v3), std::vector<std::string>{});
}

TEST(IdStability, BackendIdsFollowTheServiceNotTheBackendName) {
  // Two services may both have a backend "b1": two backends, two ids.
  Config c = load(
      "nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: [192.0.2.1]}]\n"
      "services:\n"
      "  - {name: s1, vip: 203.0.113.1, backends: [{name: b1, address: 198.51.100.1}]}\n"
      "  - {name: s2, vip: 203.0.113.2, backends: [{name: b1, address: 198.51.100.1}]}\n");
  Tables t = compile(c, "gw", nullptr);
  ASSERT_EQ(t.services.size(), 2u);
  EXPECT_NE(t.services[0].backends[0].id, t.services[1].backends[0].id);
  EXPECT_EQ(check(t), std::vector<std::string>{});
}

// ---------------------------------------------------------------- health checks

TEST(HealthCheck, BackendOverrideMergesWithTheServiceCheck) {
  Config c = load(
      "nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: [192.0.2.1]}]\n"
      "services:\n"
      "  - name: web\n"
      "    vip: 203.0.113.10\n"
      "    port: 8080\n"
      "    health_check: {type: http, path: /healthz, interval_ms: 1000, timeout_ms: 500}\n"
      "    backends:\n"
      "      - {name: b1, address: 198.51.100.1}\n"
      "      - {name: b2, address: 198.51.100.2, health_check: {port: 9000, fall: 5}}\n");
  const ServiceSpec &s = c.services.at(0);
  auto h1 = s.health_check_for(s.backends[0]);
  auto h2 = s.health_check_for(s.backends[1]);
  ASSERT_TRUE(h1 && h2);
  EXPECT_EQ(h1->type, HealthCheckType::kHttp);
  EXPECT_EQ(h1->port, 8080);  // the service port by default
  EXPECT_EQ(h1->path, "/healthz");
  EXPECT_EQ(h1->interval_ms, 1000u);
  EXPECT_EQ(h1->fall, 3u);
  EXPECT_EQ(h2->type, HealthCheckType::kHttp);
  EXPECT_EQ(h2->port, 9000);
  EXPECT_EQ(h2->timeout_ms, 500u);
  EXPECT_EQ(h2->fall, 5u);
  EXPECT_EQ(h2->rise, 2u);
}

TEST(HealthCheck, NoCheckWhenNeitherServiceNorBackendHasOne) {
  Config c = load(
      "nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: [192.0.2.1]}]\n"
      "services: [{name: web, vip: 203.0.113.10, backends: [{name: b1, address: "
      "198.51.100.1}]}]\n");
  EXPECT_FALSE(c.services[0].health_check_for(c.services[0].backends[0]).has_value());
}

// ---------------------------------------------------------------- format

TEST_F(Compile, FormatSummarisesWithoutListingMaglevSlots) {
  std::string text = format_tables(gw_a_);
  EXPECT_NE(text.find("node gw-a (xdp)"), std::string::npos) << text;
  EXPECT_NE(text.find("digest " + digest_hex(digest(gw_a_))), std::string::npos);
  EXPECT_NE(text.find("10.2.0.0/16"), std::string::npos);
  EXPECT_NE(text.find("vtep 198.51.100.1"), std::string::npos);
  EXPECT_NE(text.find("blackhole"), std::string::npos);
  EXPECT_NE(text.find("port tap-red"), std::string::npos);
  EXPECT_NE(text.find("maglev: 1009 slots, held by 2 of 4 backends"), std::string::npos) << text;
  EXPECT_LT(std::count(text.begin(), text.end(), '\n'), 60);
}

}  // namespace
}  // namespace stratus::config
