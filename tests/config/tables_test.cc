// config/tables.h: address parsing and printing, prefix arithmetic, the
// consistency checks (one named case per error message) and the digest.
// Built and registered from tests/lb/meson.build.
#include "config/tables.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

namespace stratus {
namespace {

IpAddress ip(const char *s) {
  auto a = IpAddress::parse(s);
  EXPECT_TRUE(a) << s;
  return a.value_or(IpAddress{});
}

IpPrefix prefix(const char *s) {
  auto p = IpPrefix::parse(s);
  EXPECT_TRUE(p) << s;
  return p.value_or(IpPrefix{});
}

MacAddress mac(const char *s) {
  auto m = MacAddress::parse(s);
  EXPECT_TRUE(m) << s;
  return m.value_or(MacAddress{});
}

// ---------------------------------------------------------------- addresses

TEST(IpAddress, ParsesAndPrintsV4) {
  IpAddress a = ip("192.0.2.1");
  EXPECT_TRUE(a.is_v4());
  EXPECT_EQ(a.str(), "192.0.2.1");
  EXPECT_EQ(a.v4_host(), 0xc0000201u);
  EXPECT_EQ(a.bytes[0], 192);
  EXPECT_EQ(a.bytes[3], 1);
  EXPECT_TRUE(std::all_of(a.bytes.begin() + 4, a.bytes.end(), [](auto b) { return b == 0; }));
  EXPECT_EQ(IpAddress::v4(0xc0000201u), a);
  EXPECT_EQ(a.bit_width(), 32);
}

TEST(IpAddress, ParsesAndPrintsV6) {
  IpAddress a = ip("2001:DB8:0:0::1");
  EXPECT_TRUE(a.is_v6());
  EXPECT_EQ(a.str(), "2001:db8::1");  // canonical text
  EXPECT_EQ(a.bytes[0], 0x20);
  EXPECT_EQ(a.bytes[15], 1);
  EXPECT_EQ(a.bit_width(), 128);
  EXPECT_EQ(ip("::").str(), "::");
  EXPECT_EQ(ip("::ffff:10.0.0.1").str(), "::ffff:10.0.0.1");
}

TEST(IpAddress, RejectsInvalid) {
  for (const char *bad : {"", "1.2.3", "1.2.3.4.5", "256.0.0.1", "1.2.3.4 ", " 1.2.3.4", "a.b.c.d",
                          "1::2::3", "2001:db8::g", "10.0.0.1/8", "::1%eth0"}) {
    EXPECT_FALSE(IpAddress::parse(bad)) << '"' << bad << '"';
  }
}

TEST(IpAddress, EmptyPrintsNothing) {
  IpAddress none;
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.str(), "");
  EXPECT_EQ(none.bit_width(), 0);
}

TEST(IpPrefix, ParsesAndPrints) {
  EXPECT_EQ(prefix("10.0.0.0/8").str(), "10.0.0.0/8");
  EXPECT_EQ(prefix("0.0.0.0/0").str(), "0.0.0.0/0");
  EXPECT_EQ(prefix("2001:db8::/32").str(), "2001:db8::/32");
  EXPECT_EQ(prefix("10.1.2.3").str(), "10.1.2.3/32");  // a bare address is a host route
  EXPECT_EQ(prefix("2001:db8::1").len, 128);
  EXPECT_EQ(prefix("10.1.2.3/32").len, 32);
}

TEST(IpPrefix, RejectsHostBitsAndBadLengths) {
  for (const char *bad :
       {"10.0.0.1/8", "2001:db8::1/64", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/-1",
        "10.0.0.0/8a", "10.0.0.0/0008", "/8", "10.0.0/8", "10.0.0.0/ 8"}) {
    EXPECT_FALSE(IpPrefix::parse(bad)) << '"' << bad << '"';
  }
}

TEST(IpPrefix, CanonicalClearsHostBits) {
  IpPrefix p{ip("10.1.2.3"), 16};
  EXPECT_EQ(p.canonical().str(), "10.1.0.0/16");
  IpPrefix q{ip("2001:db8:ffff::1"), 36};
  EXPECT_EQ(q.canonical().str(), "2001:db8:f000::/36");
}

TEST(IpPrefix, Contains) {
  EXPECT_TRUE(prefix("10.0.0.0/8").contains(ip("10.255.0.1")));
  EXPECT_FALSE(prefix("10.0.0.0/8").contains(ip("11.0.0.1")));
  EXPECT_TRUE(prefix("0.0.0.0/0").contains(ip("203.0.113.9")));
  EXPECT_TRUE(prefix("10.0.0.1/32").contains(ip("10.0.0.1")));
  EXPECT_FALSE(prefix("10.0.0.1/32").contains(ip("10.0.0.2")));
  EXPECT_TRUE(prefix("2001:db8::/32").contains(ip("2001:db8:1::5")));
  EXPECT_FALSE(prefix("2001:db8::/32").contains(ip("2001:db9::5")));
  // Families never mix, even ::/0 and an IPv4 address.
  EXPECT_FALSE(prefix("::/0").contains(ip("10.0.0.1")));
  EXPECT_FALSE(prefix("0.0.0.0/0").contains(ip("::1")));
}

TEST(IpPrefix, Overlaps) {
  EXPECT_TRUE(prefix("10.0.0.0/8").overlaps(prefix("10.1.0.0/16")));
  EXPECT_TRUE(prefix("10.1.0.0/16").overlaps(prefix("10.0.0.0/8")));
  EXPECT_TRUE(prefix("10.1.0.0/16").overlaps(prefix("10.1.0.0/16")));
  EXPECT_FALSE(prefix("10.1.0.0/16").overlaps(prefix("10.2.0.0/16")));
  EXPECT_TRUE(prefix("2001:db8::/32").overlaps(prefix("2001:db8:5::/48")));
  EXPECT_FALSE(prefix("2001:db8::/32").overlaps(prefix("10.0.0.0/8")));
}

TEST(MacAddress, ParsesAndPrints) {
  MacAddress m = mac("02:AB:cd:00:10:ff");
  EXPECT_EQ(m.str(), "02:ab:cd:00:10:ff");
  EXPECT_EQ(m.bytes[1], 0xab);
  EXPECT_FALSE(m.is_zero());
  EXPECT_TRUE(mac("00:00:00:00:00:00").is_zero());
}

TEST(MacAddress, RejectsInvalid) {
  for (const char *bad : {"", "02:ab:cd:00:10", "02:ab:cd:00:10:ff:00", "02-ab-cd-00-10-ff",
                          "02:ab:cd:00:10:fg", "2:ab:cd:00:10:ff0", "02:ab:cd:00:10:f"}) {
    EXPECT_FALSE(MacAddress::parse(bad)) << '"' << bad << '"';
  }
}

// ---------------------------------------------------------------- check()

// A small consistent node: one underlay and one tenant port, two tenants,
// one route of each kind, one service with two backends and its table.
Tables valid_tables() {
  Tables t;
  t.node.name = "gw-1";
  t.node.vteps = {ip("192.0.2.1")};
  t.node.gateway_mac = mac("02:00:00:00:00:01");
  t.node.hash_seed = 7;
  t.node.ports = {{"eth0", PortRole::kUnderlay, {}, 0}, {"tap-a", PortRole::kTenant, {}, 1}};
  t.nexthops = {{IpAddress{}, "eth0", mac("02:00:00:00:00:fe"), {}}};
  t.vrfs = {{1, 100, "tenant-a", {ip("10.0.0.1")}}, {2, 200, "tenant-b", {}}};
  Route remote;
  remote.vrf = 1;
  remote.prefix = prefix("10.2.0.0/16");
  remote.kind = RouteKind::kRemote;
  remote.vtep = ip("192.0.2.2");
  remote.vni_out = 100;
  remote.dst_mac = mac("02:00:00:00:02:01");
  Route local;
  local.vrf = 1;
  local.prefix = prefix("10.0.0.0/24");
  local.kind = RouteKind::kLocal;
  local.port = "tap-a";
  local.dst_mac = mac("02:00:00:00:01:01");
  Route hole;
  hole.vrf = 2;
  hole.prefix = prefix("0.0.0.0/0");
  t.routes = {remote, local, hole};
  Service s;
  s.id = 0;
  s.name = "web";
  s.vrf = 1;
  s.vip = ip("10.0.0.100");
  s.port = 80;
  s.maglev_size = 13;
  for (std::uint32_t i = 0; i < 2; ++i) {
    Backend b;
    b.id = i;
    b.name = "web-" + std::to_string(i);
    b.addr = ip(i == 0 ? "10.2.0.10" : "10.2.0.11");
    b.vrf = 1;
    b.tunnel_dst = ip("192.0.2.2");
    b.vni = 100;
    b.inner_dst_mac = mac(i == 0 ? "02:00:00:00:03:00" : "02:00:00:00:03:01");
    s.backends.push_back(b);
  }
  s.maglev = {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0};
  t.services = {s};
  return t;
}

TEST(Check, ValidTablesHaveNoErrors) {
  auto errors = check(valid_tables());
  EXPECT_TRUE(errors.empty()) << ::testing::PrintToString(errors);
}

struct CheckCase {
  const char *name;
  std::function<void(Tables &)> breaks;
  std::string message;  // the whole error, location included
};

void PrintTo(const CheckCase &c, std::ostream *os) {
  *os << c.name;
}

class CheckErrors : public ::testing::TestWithParam<CheckCase> {};

TEST_P(CheckErrors, ReportsExactlyThisError) {
  Tables t = valid_tables();
  GetParam().breaks(t);
  auto errors = check(t);
  ASSERT_EQ(errors.size(), 1u) << ::testing::PrintToString(errors);
  EXPECT_EQ(errors[0], GetParam().message);
}

Service &web(Tables &t) {
  return t.services[0];
}
// Maglev tables are immutable: a test edits a copy of the slots.
void set_slot(Service &s, std::size_t slot, std::uint32_t backend) {
  std::vector<std::uint32_t> v(s.maglev.begin(), s.maglev.end());
  v.at(slot) = backend;
  s.maglev = std::move(v);
}

void append_slot(Service &s, std::uint32_t backend) {
  std::vector<std::uint32_t> v(s.maglev.begin(), s.maglev.end());
  v.push_back(backend);
  s.maglev = std::move(v);
}

Backend &web0(Tables &t) {
  return t.services[0].backends[0];
}

const CheckCase kCheckCases[] = {
    {"node_name_empty", [](Tables &t) { t.node.name.clear(); }, "node: name is empty"},
    {"no_vtep", [](Tables &t) { t.node.vteps.clear(); }, "node: no VTEP address"},
    {"empty_vtep", [](Tables &t) { t.node.vteps.push_back({}); }, "node.vteps[1]: empty address"},
    {"vxlan_port_zero", [](Tables &t) { t.node.vxlan_port = 0; }, "node.vxlan_port: must not be 0"},
    {"mtu_too_small", [](Tables &t) { t.node.underlay_mtu = 575; },
     "node.underlay_mtu: 575 is outside 576..9216"},
    {"mtu_too_large", [](Tables &t) { t.node.underlay_mtu = 9217; },
     "node.underlay_mtu: 9217 is outside 576..9216"},
    {"flow_table_empty", [](Tables &t) { t.node.flows.max_entries = 0; },
     "node.flows.max_entries: must be positive"},
    {"too_many_ports",
     [](Tables &t) {
       for (std::uint32_t i = 0; i < kMaxPorts - 1; ++i) {
         t.node.ports.push_back({"u" + std::to_string(i), PortRole::kUnderlay, {}, 0});
       }
     },
     "node.ports: more than 64"},
    {"vrf_id_zero",
     [](Tables &t) {
       t.vrfs[1].id = 0;
       t.routes.pop_back();  // the route of vrf 2 would be a second error
     },
     "vrfs[1] (tenant-b): id 0 outside 1..4095"},
    {"vrf_id_too_large",
     [](Tables &t) {
       t.vrfs[1].id = kMaxVrfs;
       t.routes.pop_back();
     },
     "vrfs[1] (tenant-b): id 4096 outside 1..4095"},
    {"vrf_duplicate_id",
     [](Tables &t) {
       t.vrfs[1].id = 1;
       t.routes.pop_back();  // keep vrf 2 references out of the picture
     },
     "vrfs[1] (tenant-b): duplicate id 1"},
    {"vni_too_large", [](Tables &t) { t.vrfs[1].vni = kMaxVni + 1; },
     "vrfs[1] (tenant-b): VNI 16777216 exceeds 24 bits"},
    {"vni_duplicate", [](Tables &t) { t.vrfs[1].vni = 100; },
     "vrfs[1] (tenant-b): duplicate VNI 100"},
    {"port_name_empty",
     [](Tables &t) {
       t.node.ports.push_back({"", PortRole::kUnderlay, {}, 0});
     },
     "node.ports[2]: name is empty"},
    {"port_duplicate",
     [](Tables &t) {
       t.node.ports.push_back({"eth0", PortRole::kUnderlay, {}, 0});
     },
     "node.ports[2]: duplicate port \"eth0\""},
    {"tenant_port_unknown_vrf",
     [](Tables &t) {
       t.node.ports.push_back({"tap-x", PortRole::kTenant, {}, 9});
     },
     "node.ports[2]: tenant port \"tap-x\" bound to unknown VRF 9"},
    {"nexthop_duplicate", [](Tables &t) { t.nexthops.push_back(t.nexthops[0]); },
     "nexthops[1] (default): duplicate next hop"},
    {"nexthop_unknown_port",
     [](Tables &t) {
       t.nexthops.push_back({ip("198.51.100.1"), "eth9", mac("02:00:00:00:00:fd"), {}});
     },
     "nexthops[1] (198.51.100.1): unknown port \"eth9\""},
    {"nexthop_tenant_port", [](Tables &t) { t.nexthops[0].port = "tap-a"; },
     "nexthops[0] (default): port \"tap-a\" is not an underlay port"},
    {"nexthop_zero_mac", [](Tables &t) { t.nexthops[0].dst_mac = {}; },
     "nexthops[0] (default): destination MAC is zero"},
    {"route_unknown_vrf", [](Tables &t) { t.routes[2].vrf = 3; },
     "routes[2] (vrf 3, 0.0.0.0/0): unknown VRF 3"},
    {"route_no_address", [](Tables &t) { t.routes[2].prefix = IpPrefix{}; },
     "routes[2] (vrf 2, /0): prefix has no address"},
    {"route_host_bits",
     [](Tables &t) {
       t.routes[2].prefix = IpPrefix{ip("10.0.0.1"), 8};
     },
     "routes[2] (vrf 2, 10.0.0.1/8): prefix has host bits set"},
    {"route_too_long",
     [](Tables &t) {
       t.routes[2].prefix = IpPrefix{ip("10.0.0.1"), 33};
     },
     "routes[2] (vrf 2, 10.0.0.1/33): prefix length too long"},
    {"route_duplicate", [](Tables &t) { t.routes.push_back(t.routes[2]); },
     "routes[3] (vrf 2, 0.0.0.0/0): duplicate route"},
    {"remote_without_vtep", [](Tables &t) { t.routes[0].vtep = {}; },
     "routes[0] (vrf 1, 10.2.0.0/16): remote route without a VTEP"},
    {"remote_vni_too_large", [](Tables &t) { t.routes[0].vni_out = kMaxVni + 1; },
     "routes[0] (vrf 1, 10.2.0.0/16): vni_out exceeds 24 bits"},
    {"remote_without_mac", [](Tables &t) { t.routes[0].dst_mac = {}; },
     "routes[0] (vrf 1, 10.2.0.0/16): remote route without an inner destination MAC"},
    {"local_unknown_port", [](Tables &t) { t.routes[1].port = "tap-z"; },
     "routes[1] (vrf 1, 10.0.0.0/24): unknown port \"tap-z\""},
    {"local_underlay_port", [](Tables &t) { t.routes[1].port = "eth0"; },
     "routes[1] (vrf 1, 10.0.0.0/24): port \"eth0\" is not a tenant port of this VRF"},
    {"local_port_of_other_vrf", [](Tables &t) { t.routes[1].vrf = 2; },
     "routes[1] (vrf 2, 10.0.0.0/24): port \"tap-a\" is not a tenant port of this VRF"},
    {"local_without_mac", [](Tables &t) { t.routes[1].dst_mac = {}; },
     "routes[1] (vrf 1, 10.0.0.0/24): local route without a destination MAC"},
    {"service_id_too_large", [](Tables &t) { web(t).id = kMaxServices; },
     "services[0] (web): id 4096 too large"},
    {"service_duplicate_id",
     [](Tables &t) {
       Service s = web(t);
       s.name = "web2";
       s.port = 8080;
       s.backends.clear();
       s.maglev.clear();
       t.services.push_back(s);
     },
     "services[1] (web2): duplicate id 0"},
    {"service_unknown_vrf", [](Tables &t) { web(t).vrf = 9; }, "services[0] (web): unknown VRF 9"},
    {"service_no_vip", [](Tables &t) { web(t).vip = {}; }, "services[0] (web): no VIP"},
    {"service_bad_protocol", [](Tables &t) { web(t).proto = 1; },
     "services[0] (web): protocol 1 is not TCP or UDP"},
    {"service_duplicate_vip",
     [](Tables &t) {
       Service s = web(t);
       s.id = 1;
       s.name = "web2";
       s.backends.clear();
       s.maglev.clear();
       t.services.push_back(s);
     },
     "services[1] (web2): duplicate VIP 10.0.0.100:80"},
    {"maglev_size_not_prime",
     [](Tables &t) {
       web(t).maglev_size = 65536;
       web(t).maglev.clear();
     },
     "services[0] (web): Maglev size 65536 is not a prime up to 1048573"},
    {"maglev_size_too_large",
     [](Tables &t) {
       web(t).maglev_size = 1048583;  // prime, above the bound
       web(t).maglev.clear();
     },
     "services[0] (web): Maglev size 1048583 is not a prime up to 1048573"},
    {"too_many_backends",
     [](Tables &t) {
       Backend b = web0(t);
       web(t).backends.clear();
       web(t).maglev.clear();
       for (std::uint32_t i = 0; i <= kMaxBackendsPerService; ++i) {
         b.id = i;
         web(t).backends.push_back(b);
       }
     },
     "services[0] (web): too many backends"},
    {"unknown_hash_flags", [](Tables &t) { web(t).hash_flags = 0x20; },
     "services[0] (web): unknown hash flags"},
    {"backend_id_too_large", [](Tables &t) { web0(t).id = kMaxBackends; },
     "services[0] (web).backends[0] (web-0): id 262144 too large"},
    {"backend_duplicate_id", [](Tables &t) { web0(t).id = 1; },
     "services[0] (web).backends[1] (web-1): duplicate id 1"},
    {"backend_unknown_vrf", [](Tables &t) { web0(t).vrf = 5; },
     "services[0] (web).backends[0] (web-0): unknown VRF 5"},
    {"backend_no_address", [](Tables &t) { web0(t).addr = {}; },
     "services[0] (web).backends[0] (web-0): no address"},
    {"backend_no_tunnel", [](Tables &t) { web0(t).tunnel_dst = {}; },
     "services[0] (web).backends[0] (web-0): no tunnel destination"},
    {"backend_vni_too_large", [](Tables &t) { web0(t).vni = kMaxVni + 1; },
     "services[0] (web).backends[0] (web-0): VNI exceeds 24 bits"},
    {"backend_vxlan_without_mac", [](Tables &t) { web0(t).inner_dst_mac = {}; },
     "services[0] (web).backends[0] (web-0): VXLAN backend without an inner destination MAC"},
    {"maglev_wrong_size", [](Tables &t) { append_slot(web(t), 0); },
     "services[0] (web): Maglev table has 14 slots, expected 13"},
    {"maglev_bad_index", [](Tables &t) { set_slot(web(t), 3, 2); },
     "services[0] (web): Maglev slot refers to backend 2 of 2"},
};

INSTANTIATE_TEST_SUITE_P(Tables, CheckErrors, ::testing::ValuesIn(kCheckCases),
                         [](const auto &tp) { return std::string(tp.param.name); });

TEST(Check, IpipBackendNeedsNoMacOrVni) {
  Tables t = valid_tables();
  web0(t).encap = Encap::kIpip;
  web0(t).inner_dst_mac = {};
  web0(t).vni = kMaxVni + 1;
  web0(t).vrf = 0;
  EXPECT_TRUE(check(t).empty()) << ::testing::PrintToString(check(t));
}

TEST(Check, EmptyMaglevTableIsAllowed) {
  Tables t = valid_tables();
  web(t).maglev.clear();  // no backend takes new flows
  EXPECT_TRUE(check(t).empty());
}

TEST(Check, ReportsEveryErrorNotJustTheFirst) {
  Tables t = valid_tables();
  t.node.name.clear();
  web(t).proto = 1;
  web0(t).addr = {};
  EXPECT_EQ(check(t).size(), 3u);
}

// ---------------------------------------------------------------- digest

TEST(MaglevTable, CopiesShareTheSlotsAndEqualTablesCompareEqual) {
  MaglevTable a = std::vector<std::uint32_t>{0, 1, 0, 1, 2, 2, 0};
  MaglevTable copy = a;
  EXPECT_TRUE(copy.shares(a));
  MaglevTable rebuilt = std::vector<std::uint32_t>{0, 1, 0, 1, 2, 2, 0};
  EXPECT_FALSE(rebuilt.shares(a));
  EXPECT_EQ(rebuilt, a);
  EXPECT_EQ(rebuilt.hash(), a.hash());
  EXPECT_EQ(rebuilt <=> a, std::strong_ordering::equal);
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(a[4], 2u);
  EXPECT_EQ(std::vector<std::uint32_t>(a.begin(), a.end()),
            (std::vector<std::uint32_t>{0, 1, 0, 1, 2, 2, 0}));
}

TEST(MaglevTable, DifferentSlotsDifferInHashAndOrder) {
  MaglevTable a = {0, 1, 0, 1, 2, 2, 0};
  MaglevTable b = {0, 1, 0, 1, 2, 2, 1};
  EXPECT_NE(a, b);
  EXPECT_NE(a.hash(), b.hash());
  EXPECT_LT(a, b);
  MaglevTable shorter = {0, 1, 0, 1, 2, 2};
  EXPECT_NE(a, shorter);
  EXPECT_LT(shorter, a);
}

TEST(MaglevTable, EmptyTablesAreOneValue) {
  MaglevTable none;
  MaglevTable from_empty = std::vector<std::uint32_t>{};
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.begin(), none.end());
  EXPECT_EQ(none, from_empty);
  EXPECT_EQ(none.hash(), from_empty.hash());
  MaglevTable one = {0};
  EXPECT_NE(none, one);
  one.clear();
  EXPECT_EQ(none, one);
}

TEST(Digest, SharedAndRebuiltMaglevTablesDigestAlike) {
  Tables t = valid_tables();
  Tables rebuilt = t;
  for (auto &s : rebuilt.services)
    s.maglev = std::vector<std::uint32_t>(s.maglev.begin(), s.maglev.end());
  ASSERT_FALSE(rebuilt.services.empty());
  EXPECT_FALSE(rebuilt.services[0].maglev.shares(t.services[0].maglev));
  EXPECT_EQ(rebuilt, t);
  EXPECT_EQ(digest(rebuilt), digest(t));
  set_slot(rebuilt.services[0], 0, rebuilt.services[0].maglev[0] == 0 ? 1 : 0);
  EXPECT_NE(digest(rebuilt), digest(t));
}

TEST(Digest, StableUnderReordering) {
  Tables t = valid_tables();
  Service s2 = web(t);
  s2.id = 1;
  s2.name = "dns";
  s2.proto = 17;
  s2.port = 53;
  for (auto &b : s2.backends)
    b.id += 10;
  t.services.push_back(s2);
  t.nexthops.push_back({ip("198.51.100.1"), "eth0", mac("02:00:00:00:00:fd"), {}});
  const std::uint64_t d = digest(t);

  Tables r = t;
  std::reverse(r.node.ports.begin(), r.node.ports.end());
  std::reverse(r.nexthops.begin(), r.nexthops.end());
  std::reverse(r.vrfs.begin(), r.vrfs.end());
  std::reverse(r.routes.begin(), r.routes.end());
  std::reverse(r.services.begin(), r.services.end());
  EXPECT_EQ(digest(r), d);
  canonicalize(r);
  EXPECT_EQ(digest(r), d);
  EXPECT_EQ(digest(valid_tables()), digest(valid_tables()));
}

TEST(Digest, BackendOrderIsContent) {
  // Maglev entries index the backends, so their order is not cosmetic.
  Tables t = valid_tables();
  Tables r = t;
  std::swap(web(r).backends[0], web(r).backends[1]);
  EXPECT_NE(digest(r), digest(t));
}

TEST(Digest, HexIsSixteenDigits) {
  EXPECT_EQ(digest_hex(0x1234abcdull), "000000001234abcd");
  EXPECT_EQ(digest_hex(~0ull), "ffffffffffffffff");
}

struct FieldChange {
  const char *name;
  std::function<void(Tables &)> change;
};

const FieldChange kFieldChanges[] = {
    {"node_name", [](Tables &t) { t.node.name = "gw-2"; }},
    {"node_kind", [](Tables &t) { t.node.kind = DataplaneKind::kDpdk; }},
    {"node_vtep", [](Tables &t) { t.node.vteps[0] = ip("192.0.2.9"); }},
    {"node_second_vtep", [](Tables &t) { t.node.vteps.push_back(ip("192.0.2.9")); }},
    {"node_vxlan_port", [](Tables &t) { t.node.vxlan_port = 4790; }},
    {"node_mtu", [](Tables &t) { t.node.underlay_mtu = 9000; }},
    {"node_gateway_mac", [](Tables &t) { t.node.gateway_mac.bytes[5] ^= 1; }},
    {"node_hash_seed", [](Tables &t) { t.node.hash_seed = 8; }},
    {"flows_max_entries", [](Tables &t) { t.node.flows.max_entries = 1; }},
    {"flows_tcp_timeout", [](Tables &t) { t.node.flows.tcp_timeout_s = 1; }},
    {"flows_udp_timeout", [](Tables &t) { t.node.flows.udp_timeout_s = 1; }},
    {"port_name", [](Tables &t) { t.node.ports[0].name = "eth1"; }},
    {"port_role", [](Tables &t) { t.node.ports[0].role = PortRole::kTenant; }},
    {"port_mac", [](Tables &t) { t.node.ports[0].mac.bytes[0] = 2; }},
    {"port_vrf", [](Tables &t) { t.node.ports[1].vrf = 2; }},
    {"nexthop_remote", [](Tables &t) { t.nexthops[0].remote = ip("198.51.100.1"); }},
    {"nexthop_port", [](Tables &t) { t.nexthops[0].port = "eth1"; }},
    {"nexthop_dst_mac", [](Tables &t) { t.nexthops[0].dst_mac.bytes[5] ^= 1; }},
    {"nexthop_src_mac", [](Tables &t) { t.nexthops[0].src_mac.bytes[5] ^= 1; }},
    {"vrf_id", [](Tables &t) { t.vrfs[1].id = 3; }},
    {"vrf_vni", [](Tables &t) { t.vrfs[1].vni = 201; }},
    {"vrf_tenant", [](Tables &t) { t.vrfs[1].tenant = "tenant-c"; }},
    {"vrf_gateway", [](Tables &t) { t.vrfs[0].gateways[0] = ip("10.0.0.254"); }},
    {"route_vrf", [](Tables &t) { t.routes[2].vrf = 1; }},
    {"route_prefix_addr", [](Tables &t) { t.routes[0].prefix.addr = ip("10.3.0.0"); }},
    {"route_prefix_len", [](Tables &t) { t.routes[0].prefix.len = 17; }},
    {"route_kind", [](Tables &t) { t.routes[2].kind = RouteKind::kRemote; }},
    {"route_vtep", [](Tables &t) { t.routes[0].vtep = ip("192.0.2.3"); }},
    {"route_vni_out", [](Tables &t) { t.routes[0].vni_out = 101; }},
    {"route_port", [](Tables &t) { t.routes[1].port = "tap-b"; }},
    {"route_dst_mac", [](Tables &t) { t.routes[0].dst_mac.bytes[5] ^= 1; }},
    {"service_id", [](Tables &t) { web(t).id = 1; }},
    {"service_name", [](Tables &t) { web(t).name = "www"; }},
    {"service_vrf", [](Tables &t) { web(t).vrf = 2; }},
    {"service_vip", [](Tables &t) { web(t).vip = ip("10.0.0.101"); }},
    {"service_proto", [](Tables &t) { web(t).proto = 17; }},
    {"service_port", [](Tables &t) { web(t).port = 81; }},
    {"service_maglev_size", [](Tables &t) { web(t).maglev_size = 17; }},
    {"service_hash_flags", [](Tables &t) { web(t).hash_flags = 0x1b; }},
    {"service_maglev_slot", [](Tables &t) { set_slot(web(t), 5, 0); }},
    {"service_maglev_length", [](Tables &t) { append_slot(web(t), 1); }},
    {"backend_added", [](Tables &t) { web(t).backends.push_back(web0(t)); }},
    {"backend_id", [](Tables &t) { web0(t).id = 9; }},
    {"backend_name", [](Tables &t) { web0(t).name = "web-9"; }},
    {"backend_addr", [](Tables &t) { web0(t).addr = ip("10.2.0.99"); }},
    {"backend_vrf", [](Tables &t) { web0(t).vrf = 2; }},
    {"backend_weight", [](Tables &t) { web0(t).weight = 2; }},
    {"backend_state", [](Tables &t) { web0(t).state = BackendState::kDraining; }},
    {"backend_encap", [](Tables &t) { web0(t).encap = Encap::kIpip; }},
    {"backend_tunnel_dst", [](Tables &t) { web0(t).tunnel_dst = ip("192.0.2.7"); }},
    {"backend_vni", [](Tables &t) { web0(t).vni = 101; }},
    {"backend_inner_mac", [](Tables &t) { web0(t).inner_dst_mac.bytes[5] ^= 1; }},
};

void PrintTo(const FieldChange &c, std::ostream *os) {
  *os << c.name;
}

class DigestChange : public ::testing::TestWithParam<FieldChange> {};

TEST_P(DigestChange, ChangesTheDigest) {
  Tables t = valid_tables();
  const std::uint64_t before = digest(t);
  GetParam().change(t);
  EXPECT_NE(digest(t), before);
}

INSTANTIATE_TEST_SUITE_P(Tables, DigestChange, ::testing::ValuesIn(kFieldChanges),
                         [](const auto &tp) { return std::string(tp.param.name); });

}  // namespace
}  // namespace stratus

namespace stratus {
namespace {

// ---------------------------------------------------------------- digest, incrementally

TEST(Digest, IsTheSumOfEntryDigests) {
  Tables t = valid_tables();
  std::uint64_t sum = entry_digest(t.node);
  for (const auto &h : t.nexthops)
    sum += entry_digest(h);
  for (const auto &v : t.vrfs)
    sum += entry_digest(v);
  for (const auto &r : t.routes)
    sum += entry_digest(r);
  for (const auto &s : t.services)
    sum += entry_digest(s);
  EXPECT_EQ(digest(t), sum);
}

TEST(Digest, UpdateFromThePreviousDigestEqualsAFreshOne) {
  Tables from = valid_tables();
  canonicalize(from);
  const std::uint64_t d = digest(from);
  EXPECT_EQ(digest_update(from, d, from), d);
  for (const auto &change : kFieldChanges) {
    Tables to = from;
    change.change(to);
    canonicalize(to);
    EXPECT_EQ(digest_update(from, d, to), digest(to)) << change.name;
    EXPECT_EQ(digest_update(to, digest(to), from), d) << change.name;
  }
  // Entries added and removed, and tables out of order (no merge walk).
  Tables grown = from;
  grown.routes.push_back(grown.routes.front());
  grown.routes.back().prefix.len = 30;
  grown.services.clear();
  canonicalize(grown);
  EXPECT_EQ(digest_update(from, d, grown), digest(grown));
  Tables reversed = grown;
  std::reverse(reversed.routes.begin(), reversed.routes.end());
  EXPECT_EQ(digest_update(from, d, reversed), digest(grown));
}

TEST(CheckChanged, AgreesWithCheckOnTheChangedEntries) {
  Tables t = valid_tables();
  canonicalize(t);
  ASSERT_EQ(check(t), std::vector<std::string>{});
  std::vector<std::size_t> all_routes(t.routes.size()), all_services(t.services.size());
  for (std::size_t i = 0; i < all_routes.size(); ++i)
    all_routes[i] = i;
  for (std::size_t i = 0; i < all_services.size(); ++i)
    all_services[i] = i;
  EXPECT_TRUE(check_changed(t, all_routes, all_services));
  EXPECT_TRUE(check_changed(t, {}, {}));
  // Every field change that check() rejects in a route or a service is
  // caught when that entry is named as changed.
  for (const auto &c : kCheckCases) {
    Tables bad = t;
    c.breaks(bad);
    canonicalize(bad);
    bool rejected = !check(bad).empty();
    bool node_level = !(bad.node == t.node) || bad.nexthops != t.nexthops || bad.vrfs != t.vrfs;
    // check_changed() is not for these: the node, next hops or VRFs changed
    // (the full check runs), or entries were added or removed by key, or
    // two routes share a key (an editor replaces by key: cannot happen).
    bool same_keys = bad.routes.size() == t.routes.size() &&
                     bad.services.size() == t.services.size() &&
                     std::adjacent_find(bad.routes.begin(), bad.routes.end(),
                                        [](const Route &a, const Route &b) {
                                          return a.vrf == b.vrf && a.prefix == b.prefix;
                                        }) == bad.routes.end();
    if (node_level || !same_keys)
      continue;
    std::vector<std::size_t> routes, services;
    for (std::size_t i = 0; i < bad.routes.size(); ++i) {
      if (!(bad.routes[i] == t.routes[i]))
        routes.push_back(i);
    }
    for (std::size_t i = 0; i < bad.services.size(); ++i) {
      if (!(bad.services[i] == t.services[i]))
        services.push_back(i);
    }
    EXPECT_EQ(check_changed(bad, routes, services), !rejected) << c.name;
  }
}

}  // namespace
}  // namespace stratus
