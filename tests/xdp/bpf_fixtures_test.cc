// The XDP program against the shared packet fixtures (tests/fixtures,
// docs/packet-behaviour.md): every case runs through BPF_PROG_TEST_RUN on
// fresh maps filled by XdpDriver::install (the real install path), inside a
// private network namespace whose veth devices carry the fixture port
// names. Verdict and output bytes must match exactly; the drop reason is
// read from the per-CPU drop counters and the egress port from the per-port
// tx counters. Also: an agent restart over pinned maps keeps tables and
// connections.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "lb/drop_reason.h"
#include "tests/fixtures/fixture.h"
#include "tests/xdp/test_netns.h"
#include "xdp/bpf/stratus_maps.h"
#include "xdp/xdp_driver.h"

namespace stratus::xdp {
namespace {

namespace fx = stratus::fixtures;
namespace fs = std::filesystem;
using test_support::TestNetns;

fx::Fixtures &fixtures() {
  static fx::Fixtures f;
  return f;
}

const fx::Case &find_case(const std::string &name) {
  for (const auto &c : fixtures().cases) {
    if (c.name == name)
      return c;
  }
  throw std::runtime_error("no fixture case " + name);
}

// ------------------------------------------------------------ running

struct RunResult {
  int rc = 0;  // bpf_prog_test_run_opts() return
  std::uint32_t action = 0;
  std::vector<std::uint8_t> output;
};

RunResult run_packet(int prog_fd, const std::string &in_port, const std::vector<std::uint8_t> &in) {
  RunResult r;
  r.output.resize(in.size() + 512);
  xdp_md ctx{};
  ctx.data_end = static_cast<__u32>(in.size());
  ctx.ingress_ifindex = if_nametoindex(in_port.c_str());
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in.data(), .data_out = r.output.data(),
              .data_size_in = static_cast<__u32>(in.size()),
              .data_size_out = static_cast<__u32>(r.output.size()), .ctx_in = &ctx,
              .ctx_size_in = sizeof ctx, .repeat = 1);
  r.rc = bpf_prog_test_run_opts(prog_fd, &opts);
  r.action = opts.retval;
  r.output.resize(r.rc == 0 ? opts.data_size_out : 0);
  return r;
}

std::string action_name(std::uint32_t a) {
  switch (a) {
    case XDP_ABORTED:
      return "XDP_ABORTED";
    case XDP_DROP:
      return "XDP_DROP";
    case XDP_PASS:
      return "XDP_PASS";
    case XDP_TX:
      return "XDP_TX";
    case XDP_REDIRECT:
      return "XDP_REDIRECT";
  }
  return "action " + std::to_string(a);
}

struct Snapshot {
  std::map<std::string, std::uint64_t> drops;
  std::map<std::string, std::uint64_t> tx;
};

Snapshot snapshot(XdpDriver &driver) {
  api::pb::CountersReply reply;
  driver.counters(&reply);
  Snapshot s;
  for (const auto &d : reply.drops())
    s.drops[d.reason()] = d.packets();
  for (const auto &p : reply.ports())
    s.tx[p.port()] = p.tx().packets();
  return s;
}

std::map<std::string, std::uint64_t> delta(const std::map<std::string, std::uint64_t> &before,
                                           const std::map<std::string, std::uint64_t> &after) {
  std::map<std::string, std::uint64_t> d;
  for (const auto &[k, v] : after) {
    auto it = before.find(k);
    std::uint64_t b = it == before.end() ? 0 : it->second;
    if (v != b)
      d[k] = v - b;
  }
  return d;
}

std::string describe(const std::map<std::string, std::uint64_t> &m) {
  std::string s = "{";
  for (const auto &[k, v] : m)
    s += " " + k + "+" + std::to_string(v);
  return s + " }";
}

// Runs one packet step and checks verdict, bytes, drop reason and port.
void check_step(XdpDriver &driver, const fx::PacketStep &p, std::size_t index) {
  SCOPED_TRACE("step " + std::to_string(index) + " (in on " + p.in_port + ")");
  Snapshot before = snapshot(driver);
  RunResult r = run_packet(driver.program_fd(), p.in_port, p.input);
  ASSERT_EQ(r.rc, 0) << "BPF_PROG_TEST_RUN failed: " << std::strerror(errno);
  Snapshot after = snapshot(driver);
  auto drops = delta(before.drops, after.drops);
  auto tx = delta(before.tx, after.tx);

  switch (p.verdict) {
    case fx::Verdict::kForward: {
      std::uint32_t want = p.out_port == p.in_port ? XDP_TX : XDP_REDIRECT;
      EXPECT_EQ(action_name(r.action), action_name(want)) << "drops " << describe(drops);
      EXPECT_EQ(fx::hex(r.output), fx::hex(p.output)) << "output bytes differ";
      std::map<std::string, std::uint64_t> want_tx = {{p.out_port, 1}};
      EXPECT_EQ(describe(tx), describe(want_tx)) << "tx counters";
      EXPECT_TRUE(drops.empty()) << "drops " << describe(drops);
      break;
    }
    case fx::Verdict::kPass:
      EXPECT_EQ(action_name(r.action), action_name(XDP_PASS)) << "drops " << describe(drops);
      EXPECT_EQ(fx::hex(r.output), fx::hex(p.input)) << "a passed frame must be unchanged";
      EXPECT_TRUE(drops.empty()) << "drops " << describe(drops);
      EXPECT_TRUE(tx.empty()) << "tx " << describe(tx);
      break;
    case fx::Verdict::kDrop: {
      EXPECT_EQ(action_name(r.action), action_name(XDP_DROP));
      std::map<std::string, std::uint64_t> want = {{p.drop_reason, 1}};
      EXPECT_EQ(describe(drops), describe(want)) << "drop counters";
      EXPECT_TRUE(tx.empty()) << "tx " << describe(tx);
      break;
    }
  }
}

XdpOptions private_maps() {
  XdpOptions o;
  o.bpffs_root.clear();  // fresh, unpinned maps
  return o;
}

// ------------------------------------------------------------ fixture cases

class Fixture : public testing::TestWithParam<std::string> {};

TEST_P(Fixture, Case) {
  const fx::Case &c = find_case(GetParam());
  SCOPED_TRACE(c.description);
  for (const auto &step : c.steps) {
    if (const auto *p = std::get_if<fx::PacketStep>(&step); p && p->input.size() < 14) {
      GTEST_SKIP() << "BPF_PROG_TEST_RUN refuses frames shorter than 14 bytes (ETH_HLEN), so "
                      "this case cannot reach the program";
    }
  }
  XdpDriver driver(private_maps());
  Tables tables = fixtures().tables.at(c.tables);
  ASSERT_NO_THROW(driver.install(Tables{}, tables));
  for (std::size_t i = 0; i < c.steps.size(); ++i) {
    if (const auto *p = std::get_if<fx::PacketStep>(&c.steps[i])) {
      check_step(driver, *p, i);
      if (HasFatalFailure())
        return;
    } else {
      Tables next = tables;
      fx::apply(std::get<fx::SetBackendStep>(c.steps[i]), next);
      ASSERT_NO_THROW(driver.install(tables, next)) << "step " << i;
      tables = next;
    }
  }
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto &c : fixtures().cases)
    names.push_back(c.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Packets, Fixture, testing::ValuesIn(case_names()),
                         [](const testing::TestParamInfo<std::string> &param) {
                           return param.param;
                         });

// ------------------------------------------------------------ install

// A transaction that cannot be installed (a port that does not exist)
// leaves the previous tables working.
TEST(Install, FailedInstallKeepsPreviousTables) {
  const fx::Case &c = find_case("overlay_remote_tcp");
  const auto &p = std::get<fx::PacketStep>(c.steps.at(0));
  XdpDriver driver(private_maps());
  Tables tables = fixtures().tables.at(c.tables);
  driver.install(Tables{}, tables);
  Tables bad = tables;
  bad.node.ports.push_back({"nosuchport0", PortRole::kUnderlay, {}, 0});
  bad.routes.clear();
  EXPECT_THROW(driver.install(tables, bad), std::exception);
  check_step(driver, p, 0);
}

// A transaction that fails while it is being applied (the gateways map
// overflows after the VNI map and the Maglev tables were already written)
// is undone: the new VNI is gone, the old Maglev table is back.
TEST(Install, FailedApplyRollsBack) {
  const fx::Case &routed = find_case("overlay_remote_tcp");
  const fx::Case &lb = find_case("lb_underlay_vxlan_backend");
  ASSERT_EQ(routed.tables, lb.tables);
  const auto &rp = std::get<fx::PacketStep>(routed.steps.at(0));
  const auto &lp = std::get<fx::PacketStep>(lb.steps.at(0));
  XdpDriver driver(private_maps());
  Tables tables = fixtures().tables.at(routed.tables);
  driver.install(Tables{}, tables);

  Tables bad = tables;
  Vrf extra;
  extra.id = 4000;
  extra.vni = 999;
  extra.tenant = "overflow";
  for (std::uint32_t i = 0; i < 20000; ++i) {
    extra.gateways.push_back(IpAddress::v4(0x0ac80000u + i));  // 10.200.0.0 + i
  }
  bad.vrfs.push_back(extra);
  for (auto &svc : bad.services)
    svc.maglev = std::vector<std::uint32_t>(svc.maglev.size(), 0);
  ASSERT_TRUE(check(bad).empty());
  EXPECT_THROW(driver.install(tables, bad), std::exception);

  check_step(driver, rp, 0);
  check_step(driver, lp, 1);
  // VNI 999 was written before the failure and must be gone again.
  std::vector<std::uint8_t> vni999 = rp.input;
  ASSERT_GT(vni999.size(), 49u);
  vni999[46] = 0x00;
  vni999[47] = 0x03;
  vni999[48] = 0xe7;
  fx::PacketStep unknown;
  unknown.in_port = rp.in_port;
  unknown.input = vni999;
  unknown.verdict = fx::Verdict::kDrop;
  unknown.drop_reason = "unknown_vni";
  check_step(driver, unknown, 2);
}

// Removing every route and then putting them back goes through the delete
// and re-add paths of the diff.
TEST(Install, DeleteThenRestore) {
  const fx::Case &c = find_case("overlay_remote_tcp");
  const auto &p = std::get<fx::PacketStep>(c.steps.at(0));
  XdpDriver driver(private_maps());
  Tables tables = fixtures().tables.at(c.tables);
  driver.install(Tables{}, tables);
  Tables empty = tables;
  empty.routes.clear();
  empty.services.clear();
  driver.install(tables, empty);
  RunResult r = run_packet(driver.program_fd(), p.in_port, p.input);
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(action_name(r.action), action_name(XDP_DROP));
  driver.install(empty, tables);
  check_step(driver, p, 0);
}

// A delta install (same node, next hops and VRFs: only the routes and
// services that differ are encoded and written) leaves the maps as a full
// install of the same tables would: after going from each fixture table
// set to each other one with the same node, every single-packet case of
// the target set made of packets only gives its fixture's output.
// The keys of the routes and services that differ between two canonical
// tables, plus one that does not (a transaction may touch an entry and
// leave it as it was).
api::DataplaneDriver::TouchedKeys touched_between(const Tables &from, const Tables &to) {
  api::DataplaneDriver::TouchedKeys k;
  auto route_key = [&](const Route &r) { k.routes.emplace_back(r.vrf, r.prefix); };
  auto service_key = [&](const Service &s) { k.services.push_back(s.id); };
  EXPECT_TRUE(merge_walk(from.routes, to.routes, route_less, route_key, route_key,
                         [&](const Route &, const Route &r) { route_key(r); }));
  EXPECT_TRUE(merge_walk(from.services, to.services, service_less, service_key, service_key,
                         [&](const Service &, const Service &s) { service_key(s); }));
  if (!to.routes.empty())
    route_key(to.routes.front());
  return k;
}

// flows.max_entries is validated up to 2^26 (4 GiB of ways per CPU): a
// resize that would take more than half of the free memory is refused with
// the figures, before any table is made.
TEST(ConnTables, RefusedWhenTheyWouldTakeHalfTheFreeMemory) {
  constexpr std::uint64_t kGiB = 1ull << 30;
  auto problem = [](std::uint64_t each, int cpus, std::uint64_t available) {
    return conn_memory_problem(each, cpus, "CPU", available, "lower flows.max_entries");
  };
  EXPECT_EQ(problem(4u << 20, 64, 16 * kGiB), "") << "4 MiB x 64 CPUs of 16 GiB";
  EXPECT_EQ(problem(kGiB, 4, 8 * kGiB), "") << "exactly half";
  EXPECT_EQ(problem(4 * kGiB, 2, 20 * kGiB), "") << "8 of 20 GiB";
  EXPECT_NE(problem(kGiB + 1, 4, 8 * kGiB), "") << "a byte over half";
  EXPECT_EQ(problem(4 * kGiB, 8, 20 * kGiB),
            "connection tables of 4096 MiB per CPU x 8 CPUs = 32768 MiB exceed half of the "
            "20480 MiB of memory available; lower flows.max_entries");
}

// A delta install (found by comparing the tables, or from the keys a
// transaction touched) leaves the data plane as a full install of the new
// tables would: every packet-only fixture case of the new tables passes.
TEST(Install, DeltaInstallEqualsFullInstall) {
  int pairs = 0;
  for (const auto &[from_name, fixture_from] : fixtures().tables) {
    for (const auto &[to_name, fixture_to] : fixtures().tables) {
      // As the data-plane service installs them.
      Tables from = fixture_from, to = fixture_to;
      canonicalize(from);
      canonicalize(to);
      if (from_name == to_name || !(from.node == to.node) || !(from.nexthops == to.nexthops) ||
          !(from.vrfs == to.vrfs)) {
        continue;
      }
      ++pairs;
      for (bool by_keys : {false, true}) {
        SCOPED_TRACE(from_name + " -> " + to_name + (by_keys ? ", touched keys" : ", compared"));
        XdpDriver driver(private_maps());
        ASSERT_NO_THROW(driver.install(Tables{}, from));
        EXPECT_FALSE(driver.last_install_was_delta()) << "a first install writes everything";
        if (by_keys) {
          ASSERT_NO_THROW(driver.install_delta(from, to, touched_between(from, to)));
        } else {
          ASSERT_NO_THROW(driver.install(from, to));
        }
        EXPECT_TRUE(driver.last_install_was_delta());
        for (const auto &c : fixtures().cases) {
          auto runnable = [](const fx::Step &step) {
            const auto *p = std::get_if<fx::PacketStep>(&step);
            return p && p->input.size() >= 14;
          };
          if (c.tables != to_name || !std::all_of(c.steps.begin(), c.steps.end(), runnable))
            continue;
          SCOPED_TRACE(c.name);
          for (std::size_t i = 0; i < c.steps.size(); ++i)
            check_step(driver, std::get<fx::PacketStep>(c.steps[i]), i);
        }
      }
    }
  }
  EXPECT_GT(pairs, 0) << "no two fixture table sets differ only in routes and services";
}

// Every entry of a map as raw bytes; for the Maglev outer map, the inner
// map's slots (map ids differ between two drivers).
std::map<std::string, std::string> map_entries(int fd, bool inner_maps = false) {
  bpf_map_info info{};
  __u32 len = sizeof info;
  EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
  std::map<std::string, std::string> out;
  std::string key(info.key_size, '\0'), next(info.key_size, '\0'), value(info.value_size, '\0');
  bool first = true;
  while (bpf_map_get_next_key(fd, first ? nullptr : key.data(), next.data()) == 0) {
    first = false;
    key = next;
    if (bpf_map_lookup_elem(fd, key.data(), value.data()) != 0)
      continue;
    if (!inner_maps) {
      out[key] = value;
      continue;
    }
    __u32 id = 0;
    std::memcpy(&id, value.data(), sizeof id);
    int inner = bpf_map_get_fd_by_id(id);
    EXPECT_GE(inner, 0);
    std::string slots;
    for (const auto &[k, v] : map_entries(inner))
      slots += k + v;
    close(inner);
    out[key] = slots;
  }
  return out;
}

// The keys (in hex) that two map dumps disagree on: "" when equal.
std::string map_difference(const std::map<std::string, std::string> &got,
                           const std::map<std::string, std::string> &want) {
  auto hex = [](const std::string &b) {
    std::string out;
    char buf[4];
    for (unsigned char c : b) {
      std::snprintf(buf, sizeof buf, "%02x", c);
      out += buf;
    }
    return out;
  };
  std::string out;
  for (const auto &[k, v] : want) {
    auto it = got.find(k);
    if (it == got.end())
      out += " missing " + hex(k);
    else if (it->second != v)
      out += " differs " + hex(k);
  }
  for (const auto &[k, v] : got) {
    if (!want.count(k))
      out += " extra " + hex(k);
  }
  return out;
}

// What the program reads: every table map of the driver, found by name
// among the program's maps.
std::map<std::string, std::map<std::string, std::string>> table_maps(const XdpDriver &driver) {
  const std::set<std::string> tables = {"node_cfg", "port_slots", "ports",  "tx_ports",
                                        "vnis",     "gateways",   "routes", "services",
                                        "vips",     "backends",   "maglev"};
  bpf_prog_info prog{};
  __u32 len = sizeof prog;
  EXPECT_EQ(bpf_obj_get_info_by_fd(driver.program_fd(), &prog, &len), 0);
  std::vector<__u32> ids(prog.nr_map_ids);
  prog = {};
  prog.nr_map_ids = static_cast<__u32>(ids.size());
  prog.map_ids = reinterpret_cast<__u64>(ids.data());
  len = sizeof prog;
  EXPECT_EQ(bpf_obj_get_info_by_fd(driver.program_fd(), &prog, &len), 0);
  std::map<std::string, std::map<std::string, std::string>> out;
  for (__u32 id : ids) {
    int fd = bpf_map_get_fd_by_id(id);
    EXPECT_GE(fd, 0);
    bpf_map_info info{};
    len = sizeof info;
    EXPECT_EQ(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
    if (tables.count(info.name))
      out[info.name] = map_entries(fd, std::string(info.name) == "maglev");
    close(fd);
  }
  EXPECT_EQ(out.size(), tables.size()) << "maps not found by name";
  return out;
}

// A delta that removes, changes and adds routes and services leaves every
// table map byte for byte as a full install of the new tables does, whether
// the driver compares the tables or is handed the touched keys.
TEST(Install, DeltaLeavesTheMapsAsAFullInstallWould) {
  Tables from = fixtures().tables.at("gw_fleet");
  canonicalize(from);
  ASSERT_GE(from.routes.size(), 3u);
  ASSERT_GE(from.services.size(), 2u);
  Tables to = from;
  to.routes.erase(to.routes.begin());              // removed
  to.routes.front().kind = RouteKind::kBlackhole;  // changed
  Route added = to.routes.back();
  added.prefix = *IpPrefix::parse("198.51.100.0/24");  // added
  to.routes.push_back(added);
  to.services.erase(to.services.begin());  // removed
  Service &changed = to.services.front();  // changed: one backend down
  changed.backends.front().state = BackendState::kDown;
  std::vector<std::uint32_t> slots(changed.maglev.begin(), changed.maglev.end());
  std::replace(slots.begin(), slots.end(), 0u, changed.backends.size() > 1 ? 1u : 0u);
  changed.maglev = std::move(slots);
  canonicalize(to);
  ASSERT_EQ(check(to), std::vector<std::string>{});

  XdpDriver full(private_maps());
  ASSERT_NO_THROW(full.install(Tables{}, to));
  const auto want = table_maps(full);
  for (bool by_keys : {false, true}) {
    SCOPED_TRACE(by_keys ? "touched keys" : "compared");
    XdpDriver driver(private_maps());
    ASSERT_NO_THROW(driver.install(Tables{}, from));
    if (by_keys) {
      ASSERT_NO_THROW(driver.install_delta(from, to, touched_between(from, to)));
    } else {
      ASSERT_NO_THROW(driver.install(from, to));
    }
    EXPECT_TRUE(driver.last_install_was_delta());
    auto got = table_maps(driver);
    for (const auto &[name, entries] : want)
      EXPECT_EQ(map_difference(got[name], entries), "") << name;
  }
}

// ------------------------------------------------------------ XDP-specific

// docs/packet-behaviour.md §3: ARP for a VTEP address on the underlay is the
// kernel's business in XDP (no shared fixture, each data plane tests it).
TEST(Underlay, ArpForVtepPasses) {
  const fx::Case &c = find_case("overlay_remote_tcp");
  Tables tables = fixtures().tables.at(c.tables);
  ASSERT_FALSE(tables.node.vteps.empty());
  std::uint32_t vtep = tables.node.vteps[0].v4_be();
  std::vector<std::uint8_t> arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0,    0,   0,
                                   0xfe, 0x01, 0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 6,   4,
                                   0x00, 0x01, 0x02, 0,    0,    0,    0xfe, 0x01, 192, 0,
                                   2,    254,  0,    0,    0,    0,    0,    0};
  const auto *v = reinterpret_cast<const std::uint8_t *>(&vtep);
  arp.insert(arp.end(), v, v + 4);
  XdpDriver driver(private_maps());
  driver.install(Tables{}, tables);
  fx::PacketStep step;
  step.in_port = tables.node.ports.at(0).name;
  ASSERT_EQ(tables.node.ports.at(0).role, PortRole::kUnderlay);
  step.input = arp;
  step.verdict = fx::Verdict::kPass;
  check_step(driver, step, 0);
}

// Per-VRF tx counts what leaves a tenant VRF encapsulated or delivered,
// load-balanced packets included (inner frame bytes, like routed ones);
// service and backend counters count forwarded packets only.
struct LbCounts {
  std::uint64_t vrf_rx = 0, vrf_tx = 0, vrf_tx_bytes = 0, service = 0, backends = 0;
};

LbCounts lb_counts(XdpDriver &driver, std::uint32_t vrf) {
  api::pb::CountersReply r;
  driver.counters(&r);
  LbCounts c;
  for (const auto &v : r.vrfs()) {
    if (v.vrf() == vrf) {
      c.vrf_rx = v.rx().packets();
      c.vrf_tx = v.tx().packets();
      c.vrf_tx_bytes = v.tx().bytes();
    }
  }
  for (const auto &s : r.services()) {
    c.service += s.fwd().packets();
    for (const auto &b : s.backends())
      c.backends += b.fwd().packets();
  }
  return c;
}

TEST(Counters, LoadBalancedPacketCountsInItsVrf) {
  const fx::Case &c = find_case("lb_tenant_port");
  const auto &p = std::get<fx::PacketStep>(c.steps.at(0));
  Tables tables = fixtures().tables.at(c.tables);
  std::uint32_t vrf = 0;
  for (const Port &port : tables.node.ports) {
    if (port.name == p.in_port)
      vrf = port.vrf;
  }
  ASSERT_NE(vrf, 0u) << p.in_port << " is not a tenant port";
  XdpDriver driver(private_maps());
  driver.install(Tables{}, tables);
  LbCounts before = lb_counts(driver, vrf);
  check_step(driver, p, 0);
  LbCounts after = lb_counts(driver, vrf);
  // The inner frame: Ethernet and the IP packet (total length), no padding.
  ASSERT_GE(p.input.size(), 18u);
  std::uint64_t inner = 14u + (static_cast<std::uint64_t>(p.input[16]) << 8 | p.input[17]);
  EXPECT_EQ(after.vrf_rx - before.vrf_rx, 1u);
  EXPECT_EQ(after.vrf_tx - before.vrf_tx, 1u);
  EXPECT_EQ(after.vrf_tx_bytes - before.vrf_tx_bytes, inner);
  EXPECT_EQ(after.service - before.service, 1u);
  EXPECT_EQ(after.backends - before.backends, 1u);
}

TEST(Counters, DroppedLoadBalancedPacketIsNotForwarded) {
  const fx::Case &c = find_case("lb_mtu_exceeded_vxlan");
  const auto &p = std::get<fx::PacketStep>(c.steps.at(0));
  ASSERT_EQ(p.verdict, fx::Verdict::kDrop);
  XdpDriver driver(private_maps());
  driver.install(Tables{}, fixtures().tables.at(c.tables));
  LbCounts before = lb_counts(driver, 0);
  check_step(driver, p, 0);
  LbCounts after = lb_counts(driver, 0);
  EXPECT_EQ(after.service - before.service, 0u);
  EXPECT_EQ(after.backends - before.backends, 0u);
}

// A VIP with several port services: the `vips` entry cannot carry them,
// the program finds each in `services` (no fixture has such a VIP).
TEST(Lb, VipWithSeveralPortServices) {
  const fx::Case &c = find_case("lb_underlay_vxlan_backend");
  const auto &p = std::get<fx::PacketStep>(c.steps.at(0));
  Tables tables = fixtures().tables.at(c.tables);
  ASSERT_GE(p.input.size(), 34u);
  std::uint32_t vip = 0;  // the fixture's destination, network order
  std::memcpy(&vip, p.input.data() + 30, 4);
  const Service *web = nullptr;
  std::uint32_t service_id = 0, backend_id = 0;
  for (const Service &svc : tables.services) {
    service_id = std::max(service_id, svc.id + 1);
    for (const Backend &be : svc.backends)
      backend_id = std::max(backend_id, be.id + 1);
    if (svc.vip.is_v4() && svc.vip.v4_be() == vip && svc.proto == p.input[14 + 9])
      web = &svc;
  }
  ASSERT_NE(web, nullptr) << "no service on the fixture's VIP";
  ASSERT_NE(web->port, 0) << "the fixture's service must have a port";
  Service alt = *web;
  alt.id = service_id;
  alt.name = "web-alt";
  alt.port = static_cast<std::uint16_t>(web->port + 1);
  Backend b;
  b.id = backend_id;
  b.name = "web-alt-a";
  b.addr = *IpAddress::parse("192.0.2.99");
  b.encap = Encap::kIpip;
  b.tunnel_dst = b.addr;
  alt.backends = {b};
  alt.maglev_size = 7;
  alt.maglev = std::vector<std::uint32_t>(7, 0);
  const std::uint16_t web_port = web->port;
  tables.services.push_back(alt);  // `web` dangles from here on
  XdpDriver driver(private_maps());
  driver.install(Tables{}, tables);

  // The fixture's port: its own service, the fixture's output.
  check_step(driver, p, 0);

  auto with_port = [&](std::uint16_t port) {
    std::vector<std::uint8_t> in = p.input;
    std::size_t l4 = 14 + (in[14] & 0x0fu) * 4;
    in[l4 + 2] = static_cast<std::uint8_t>(port >> 8);
    in[l4 + 3] = static_cast<std::uint8_t>(port);
    return in;
  };
  auto alt_packets = [&] {
    api::pb::CountersReply r;
    driver.counters(&r);
    for (const auto &s : r.services()) {
      if (s.id() == alt.id)
        return s.fwd().packets();
    }
    return std::uint64_t{0};
  };

  // The other port: the other service, IPIP toward its backend.
  RunResult r = run_packet(driver.program_fd(), p.in_port, with_port(alt.port));
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(action_name(r.action), action_name(XDP_TX));
  ASSERT_GE(r.output.size(), 34u);
  EXPECT_EQ(r.output[14 + 9], 4) << "outer protocol IPIP";
  std::uint32_t outer_dst;
  std::memcpy(&outer_dst, r.output.data() + 30, 4);
  EXPECT_EQ(outer_dst, b.tunnel_dst.v4_be());
  EXPECT_EQ(alt_packets(), 1u);

  // A port of neither (and no port-0 service): the host's.
  fx::PacketStep none = p;
  none.input = with_port(static_cast<std::uint16_t>(web_port + 2));
  none.verdict = fx::Verdict::kPass;
  check_step(driver, none, 1);
  EXPECT_EQ(alt_packets(), 1u);
}

// Connection entries expire after the node's timeout: the next packet of
// the flow is a miss again (and Maglev picks the same backend).
TEST(ConnectionTable, EntriesExpire) {
  const fx::Case &c = find_case("lb_underlay_multi_packet_flow");
  const auto &p = std::get<fx::PacketStep>(c.steps.at(0));
  Tables tables = fixtures().tables.at(c.tables);
  tables.node.flows.tcp_timeout_s = 1;
  XdpDriver driver(private_maps());
  driver.install(Tables{}, tables);
  auto hits_misses = [&] {
    api::pb::CountersReply r;
    driver.counters(&r);
    return std::make_pair(r.flow_hits(), r.flow_misses());
  };
  check_step(driver, p, 0);
  check_step(driver, p, 1);
  EXPECT_EQ(hits_misses(), std::make_pair(std::uint64_t{1}, std::uint64_t{1}));
  ::usleep(1500 * 1000);
  check_step(driver, p, 2);
  EXPECT_EQ(hits_misses(), std::make_pair(std::uint64_t{1}, std::uint64_t{2}));
  EXPECT_EQ(driver.flow_count(), 1u);
}

// Set-associative connection tables (xdp/bpf/maps.h conns4): with
// flows.max_entries 1 a table is one set of STRATUS_CONN_WAYS ways, so
// every flow competes for the same ways. The tests fill that set by hand
// (other flows, given ages) on every CPU and run a new flow on CPU 0.
class ConnectionSet : public testing::Test {
 protected:
  static constexpr std::uint64_t kSecond = 1000000000;

  static std::uint64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * kSecond + static_cast<std::uint64_t>(ts.tv_nsec);
  }
  // A way of another flow (not the fixture's): protocol `proto`, last seen
  // `age` ago.
  static stratus_conn_way way(std::uint8_t proto, std::uint32_t n, std::uint64_t age) {
    stratus_conn_way w{};
    w.key.vrf_proto = proto;
    w.key.src = htonl(0x0a630000 + n);  // 10.99.0.n
    w.key.dst = htonl(0x0a640001);
    w.key.sport = htons(static_cast<std::uint16_t>(40000 + n));
    w.key.dport = htons(80);
    w.conn.backend = 1;
    w.conn.service = 1;
    w.conn.last_seen_ns = now_ns() - age;
    return w;
  }
  // Installs the fixture's tables with one-set connection tables, fills
  // set 0 of every CPU with `ways`, runs the fixture's first (new) flow
  // and returns CPU 0's set afterwards.
  stratus_conn_set run(Tables tables, const stratus_conn_set &ways) {
    tables.node.flows.max_entries = 1;
    XdpDriver driver(private_maps());
    driver.install(Tables{}, tables);
    const XdpLoader &loader = driver.loader();
    EXPECT_EQ(loader.conn_table_entries(), std::uint32_t{STRATUS_CONN_WAYS});
    __u32 set0 = 0;
    for (int cpu = 0; cpu < loader.possible_cpus(); ++cpu) {
      int fd = loader.conn_table_fd(static_cast<std::uint32_t>(cpu));
      EXPECT_GE(fd, 0);
      EXPECT_EQ(bpf_map_update_elem(fd, &set0, &ways, BPF_ANY), 0);
      ::close(fd);
    }
    check_step(driver, std::get<fx::PacketStep>(case_.steps.at(0)), 0);
    stratus_conn_set after{};
    int fd = loader.conn_table_fd(0);
    EXPECT_EQ(bpf_map_lookup_elem(fd, &set0, &after), 0);
    ::close(fd);
    return after;
  }
  static bool same(const stratus_conn_way &a, const stratus_conn_way &b) {
    return std::memcmp(&a, &b, sizeof a) == 0;
  }

  const fx::Case &case_ = find_case("lb_underlay_multi_packet_flow");
};

// A full set evicts its least recently used way (the oldest last_seen),
// whatever its position; the other ways keep their flows.
TEST_F(ConnectionSet, FullSetEvictsItsLeastRecentlyUsedWay) {
  Tables tables = fixtures().tables.at(case_.tables);
  tables.node.flows.tcp_timeout_s = 100;
  stratus_conn_set ways{};
  const std::uint64_t ages[STRATUS_CONN_WAYS] = {3, 1, 5, 2};  // seconds; way 2 oldest
  for (std::uint32_t i = 0; i < STRATUS_CONN_WAYS; ++i)
    ways.ways[i] = way(IPPROTO_TCP, i, ages[i] * kSecond);
  stratus_conn_set after = run(tables, ways);
  for (std::uint32_t i = 0; i < STRATUS_CONN_WAYS; ++i) {
    SCOPED_TRACE("way " + std::to_string(i));
    if (i == 2) {
      EXPECT_FALSE(same(after.ways[i], ways.ways[i])) << "the LRU way was not evicted";
      EXPECT_GT(after.ways[i].conn.last_seen_ns, ways.ways[0].conn.last_seen_ns);
    } else {
      EXPECT_TRUE(same(after.ways[i], ways.ways[i])) << "a more recent way was evicted";
    }
  }
}

// An expired way is taken before the LRU one: here the oldest way is a
// live TCP flow, and a younger UDP flow has outlived the UDP timeout
// (each way expires by its own protocol's timeout).
TEST_F(ConnectionSet, ExpiredWayIsReusedFirst) {
  Tables tables = fixtures().tables.at(case_.tables);
  tables.node.flows.tcp_timeout_s = 100;
  tables.node.flows.udp_timeout_s = 1;
  stratus_conn_set ways{};
  ways.ways[0] = way(IPPROTO_TCP, 0, 50 * kSecond);  // oldest, live
  ways.ways[1] = way(IPPROTO_TCP, 1, 10 * kSecond);
  ways.ways[2] = way(IPPROTO_UDP, 2, 3 * kSecond);  // expired
  ways.ways[3] = way(IPPROTO_TCP, 3, 20 * kSecond);
  stratus_conn_set after = run(tables, ways);
  EXPECT_FALSE(same(after.ways[2], ways.ways[2])) << "the expired way was not reused";
  EXPECT_TRUE(same(after.ways[0], ways.ways[0])) << "the live LRU way was evicted";
  EXPECT_TRUE(same(after.ways[1], ways.ways[1]));
  EXPECT_TRUE(same(after.ways[3], ways.ways[3]));
}

// An empty way is taken before any live one (here not the first way).
TEST_F(ConnectionSet, EmptyWayIsTakenFirst) {
  Tables tables = fixtures().tables.at(case_.tables);
  stratus_conn_set ways{};
  ways.ways[0] = way(IPPROTO_TCP, 0, 50 * kSecond);
  ways.ways[1] = way(IPPROTO_TCP, 1, 10 * kSecond);
  ways.ways[3] = way(IPPROTO_TCP, 3, 20 * kSecond);
  stratus_conn_set after = run(tables, ways);
  EXPECT_NE(after.ways[2].key.vrf_proto, 0u) << "the empty way was not taken";
  for (std::uint32_t i : {0u, 1u, 3u})
    EXPECT_TRUE(same(after.ways[i], ways.ways[i])) << "way " << i;
}

// The agent finds entries where the program puts them: lookup_flow in the
// set of the key's index, the count and the dump over every set of a table
// larger than one batch of the walk (2048 sets).
TEST_F(ConnectionSet, AgentFindsEntriesInTheirSets) {
  Tables tables = fixtures().tables.at(case_.tables);
  tables.node.flows.max_entries = 4096;
  XdpDriver driver(private_maps());
  driver.install(Tables{}, tables);
  const XdpLoader &loader = driver.loader();
  const std::uint32_t sets = loader.conn_table_entries() / STRATUS_CONN_WAYS;
  ASSERT_EQ(sets, 2048u);
  int fd = loader.conn_table_fd(0);
  ASSERT_GE(fd, 0);
  std::vector<stratus_conn_way> written;
  for (std::uint32_t n = 0; n < 3; ++n) {
    stratus_conn_way w = way(IPPROTO_TCP, n * 1000, kSecond);
    w.conn.backend = 7 + n;
    __u32 index = stratus_conn_set_index(&w.key, sets - 1);
    stratus_conn_set set{};
    ASSERT_EQ(bpf_map_lookup_elem(fd, &index, &set), 0);
    set.ways[n] = w;  // a way of its own should two keys share a set
    ASSERT_EQ(bpf_map_update_elem(fd, &index, &set, BPF_ANY), 0);
    written.push_back(w);
  }
  ::close(fd);
  // And one flow that the program records (its set index computed in BPF).
  check_step(driver, std::get<fx::PacketStep>(case_.steps.at(0)), 0);
  EXPECT_EQ(driver.flow_count(), 4u);
  std::set<std::uint32_t> dumped;
  std::optional<api::pb::Flow> recorded;
  driver.dump_flows({}, [&](const api::pb::Flow &f) {
    EXPECT_EQ(f.cpu(), 0u);
    if (f.backend_id() >= 7 && f.backend_id() <= 9)
      dumped.insert(f.backend_id());
    else
      recorded = f;
    return true;
  });
  EXPECT_EQ(dumped, (std::set<std::uint32_t>{7, 8, 9}));
  ASSERT_TRUE(recorded.has_value());
  stratus_flow_key rkey{};
  std::memcpy(&rkey.src[0], recorded->src().addr().data(), 4);
  std::memcpy(&rkey.dst[0], recorded->dst().addr().data(), 4);
  rkey.vrf = recorded->vrf();
  rkey.sport = htons(static_cast<std::uint16_t>(recorded->sport()));
  rkey.dport = htons(static_cast<std::uint16_t>(recorded->dport()));
  rkey.proto = static_cast<std::uint8_t>(recorded->proto());
  auto found = driver.lookup_flow(rkey);
  ASSERT_TRUE(found.has_value()) << "the agent's set index differs from the program's";
  EXPECT_EQ(found->backend_id, recorded->backend_id());
  for (const stratus_conn_way &w : written) {
    stratus_flow_key key{};
    key.vrf = w.key.vrf_proto >> 8;
    key.proto = static_cast<std::uint8_t>(w.key.vrf_proto & 0xff);
    key.src[0] = w.key.src;
    key.dst[0] = w.key.dst;
    key.sport = w.key.sport;
    key.dport = w.key.dport;
    auto entry = driver.lookup_flow(key);
    ASSERT_TRUE(entry.has_value()) << "backend " << w.conn.backend;
    EXPECT_EQ(entry->backend_id, w.conn.backend);
    EXPECT_EQ(entry->cpu, 0u);
  }
}

// ------------------------------------------------------------ restart

class Restart : public testing::Test {
 protected:
  void SetUp() override {
    root_ = "/sys/fs/bpf/stratus-xdp-test-" + std::to_string(::getpid());
    options_.instance = "restart";
    options_.bpffs_root = root_;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string root_;
  XdpOptions options_;
};

TEST_F(Restart, PinnedMapsKeepTablesAndFlows) {
  const fx::Case &lb = find_case("lb_underlay_multi_packet_flow");
  const auto &first = std::get<fx::PacketStep>(lb.steps.at(0));
  const fx::Case &route = find_case("overlay_remote_tcp");
  const auto &routed = std::get<fx::PacketStep>(route.steps.at(0));
  ASSERT_EQ(lb.tables, route.tables);
  Tables tables = fixtures().tables.at(lb.tables);

  stratus_flow_key key{};
  api::pb::Flow flow;
  {
    XdpDriver before(options_);
    EXPECT_FALSE(before.reused_pins());
    before.install(Tables{}, tables);
    check_step(before, first, 0);
    ASSERT_EQ(before.flow_count(), 1u);
    before.dump_flows({}, [&](const api::pb::Flow &f) {
      flow = f;
      return false;
    });
  }  // destroyed without detach: the pins stay

  XdpDriver after(options_);
  EXPECT_TRUE(after.reused_pins());
  EXPECT_EQ(after.flow_count(), 1u);
  api::pb::Flow again;
  after.dump_flows({}, [&](const api::pb::Flow &f) {
    again = f;
    return false;
  });
  EXPECT_EQ(again.backend_id(), flow.backend_id());
  EXPECT_EQ(again.service_id(), flow.service_id());
  std::memcpy(&key.src[0], again.src().addr().data(), 4);
  std::memcpy(&key.dst[0], again.dst().addr().data(), 4);
  key.vrf = again.vrf();
  key.sport = htons(static_cast<std::uint16_t>(again.sport()));
  key.dport = htons(static_cast<std::uint16_t>(again.dport()));
  key.proto = static_cast<std::uint8_t>(again.proto());
  auto entry = after.lookup_flow(key);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->backend_id, flow.backend_id());

  // The tables are live before any install (the program keeps forwarding);
  // the driver names counters only once it has tables, so check the frame.
  RunResult r = run_packet(after.program_fd(), routed.in_port, routed.input);
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(action_name(r.action), action_name(XDP_TX));
  EXPECT_EQ(fx::hex(r.output), fx::hex(routed.output));
  // The restarted agent re-installs its saved tables: nothing is lost.
  after.install(Tables{}, tables);
  EXPECT_EQ(after.flow_count(), 1u);
  check_step(after, first, 1);
  check_step(after, routed, 1);

  after.set_detach_on_exit(true);
}

// Pins of the connection tables of an older layout (per-CPU LRU_HASH
// tables, before the set-associative ARRAY) are refused with the layout
// message, not reused: the verifier would take the old inner layout.
TEST_F(Restart, PinnedLruConnectionTablesAreRefused) {
  std::string dir = root_ + "/restart";
  fs::create_directories(dir);
  int inner = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "old_conn4", sizeof(stratus_conn_key4),
                             sizeof(stratus_conn), 16, nullptr);
  ASSERT_GE(inner, 0) << std::strerror(errno);
  LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = static_cast<__u32>(inner));
  int outer = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "conns4", sizeof(__u32), sizeof(__u32),
                             static_cast<__u32>(libbpf_num_possible_cpus()), &opts);
  ASSERT_GE(outer, 0) << std::strerror(errno);
  __u32 cpu0 = 0;
  __u32 inner_fd = static_cast<__u32>(inner);
  EXPECT_EQ(bpf_map_update_elem(outer, &cpu0, &inner_fd, BPF_ANY), 0);
  EXPECT_EQ(bpf_obj_pin(outer, (dir + "/conns4").c_str()), 0) << std::strerror(errno);
  ::close(outer);
  ::close(inner);
  try {
    XdpDriver d(options_);
    ADD_FAILURE() << "the old connection tables were reused";
  } catch (const XdpError &e) {
    EXPECT_NE(std::string(e.what()).find("has another layout"), std::string::npos) << e.what();
  }
}

TEST_F(Restart, DetachRemovesPins) {
  {
    XdpDriver d(options_);
    d.set_detach_on_exit(true);
  }
  EXPECT_FALSE(fs::exists(root_ + "/restart"));
}

}  // namespace
}  // namespace stratus::xdp

int main(int argc, char **argv) {
  if (::geteuid() != 0) {
    std::cout << "SKIP: needs root (BPF programs, network namespaces)\n";
    return 77;
  }
  struct statfs sfs {};
  if (::statfs("/sys/fs/bpf", &sfs) != 0 || sfs.f_type != 0xcafe4a11) {
    // XdpDriver mounts it when it pins; do it here so a missing bpffs is a
    // SKIP rather than a failure.
    if (std::system("mount -t bpf bpf /sys/fs/bpf >/dev/null 2>&1") != 0) {
      std::cout << "SKIP: no bpffs on /sys/fs/bpf and cannot mount one\n";
      return 77;
    }
  }
  std::string path = std::getenv("STRATUS_FIXTURES") ? std::getenv("STRATUS_FIXTURES")
                                                     : stratus::fixtures::default_path();
  try {
    stratus::xdp::fixtures() = stratus::fixtures::load(path);
  } catch (const std::exception &e) {
    std::cerr << "cannot load fixtures: " << e.what() << "\n";
    return 1;
  }
  // After the fixtures: the case names are the test parameters.
  testing::InitGoogleTest(&argc, argv);
  std::map<std::string, stratus::MacAddress> ports;
  for (const auto &[name, t] : stratus::xdp::fixtures().tables) {
    for (const auto &p : t.node.ports)
      ports[p.name] = p.mac;
  }

  // Every step of a case must run on one CPU (per-CPU connection tables).
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(0, &cpus);
  sched_setaffinity(0, sizeof cpus, &cpus);

  int rc;
  {
    stratus::xdp::test_support::TestNetns netns;
    netns.remove_stale();
    // Pins of earlier runs that crashed (Restart.* removes its own).
    std::error_code ec;
    for (const auto &e : std::filesystem::directory_iterator("/sys/fs/bpf", ec)) {
      std::string n = e.path().filename();
      const std::string prefix = "stratus-xdp-test-";
      if (n.rfind(prefix, 0) != 0)
        continue;
      int pid = std::atoi(n.c_str() + prefix.size());
      if (pid > 0 && ::kill(pid, 0) != 0)
        std::filesystem::remove_all(e.path(), ec);
    }
    std::string why;
    if (!netns.enter(ports, &why)) {
      std::cout << "SKIP: " << why << "\n";
      return 77;
    }
    rc = RUN_ALL_TESTS();
  }
  return rc;
}
