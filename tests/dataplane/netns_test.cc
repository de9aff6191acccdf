// stratus-dpdk between real hosts: a gateway namespace runs the binary on a
// net_af_packet vdev; hosts A, B and C, each in its own namespace, reach it
// over a bridged underlay with Linux kernel VXLAN devices. Checks: red
// tenant traffic crosses between hosts A and B through the gateway (VXLAN
// decap, route, re-encap; ARP for the VTEP answered by DPDK), the blue
// tenant on host C cannot reach red, and an underlay VIP load-balances UDP
// to a red backend on host B that answers the client directly (DSR).
//
// Needs root, iproute2 and network namespaces: SKIP (77) otherwise. Every
// namespace and process it makes is removed, also on failure.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "control/api/convert.h"
#include "control/api/dataplane.grpc.pb.h"

namespace stratus::dpdk::testing {
namespace {

namespace pb = ::stratus::dataplane::v1;

const std::string kSuffix = std::to_string(getpid());
const std::string kUl = "st-ul-" + kSuffix;
const std::string kGw = "st-gw-" + kSuffix;
const std::string kA = "st-a-" + kSuffix;
const std::string kB = "st-b-" + kSuffix;
const std::string kC = "st-c-" + kSuffix;
const std::string kApi = "/tmp/stratus-dpdk-netns-" + kSuffix + ".sock";
const std::string kLog = "/tmp/stratus-dpdk-netns-" + kSuffix + ".log";

const char *kGwMac = "02:00:00:00:00:01";
const char *kG0Mac = "02:00:00:00:01:01";  // the gateway's underlay port (af_packet on g0)
const char *kAMac = "02:00:00:00:0a:01";   // red VM on host A (vxlan device)
const char *kBMac = "02:00:00:00:0b:01";   // red VM on host B
const char *kCMac = "02:00:00:00:0c:01";   // blue VM on host C

int sh(const std::string &cmd) {
  int rc = std::system((cmd + " >>" + kLog + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void must(const std::string &cmd) {
  if (sh(cmd) != 0)
    throw std::runtime_error("command failed: " + cmd + " (see " + kLog + ")");
}

std::string in(const std::string &ns, const std::string &cmd) {
  return "ip netns exec " + ns + " " + cmd;
}

std::string binary() {
  const char *root = std::getenv("STRATUS_BUILD_ROOT");
  return std::string(root != nullptr ? root : ".") + "/dataplane/stratus-dpdk";
}

IpAddress ip(const char *t) {
  return *IpAddress::parse(t);
}
MacAddress mac(const char *t) {
  return *MacAddress::parse(t);
}

Tables gateway_tables() {
  Tables t;
  t.node.name = "gw";
  t.node.kind = DataplaneKind::kDpdk;
  t.node.vteps = {ip("192.0.2.1")};
  t.node.gateway_mac = mac(kGwMac);
  t.node.hash_seed = 7;
  t.node.ports = {{"net_af_packet0", PortRole::kUnderlay, MacAddress{}, 0}};
  // Every underlay peer is on the bridge: its own MAC comes from a static
  // neighbour table in the hosts' namespaces; next hops here name it.
  t.nexthops = {{ip("192.0.2.20"), "net_af_packet0", mac("02:00:00:00:01:20"), MacAddress{}},
                {ip("192.0.2.21"), "net_af_packet0", mac("02:00:00:00:01:21"), MacAddress{}},
                {ip("192.0.2.30"), "net_af_packet0", mac("02:00:00:00:01:30"), MacAddress{}}};
  t.vrfs = {{1, 100, "red", {ip("10.1.1.1"), ip("10.1.2.1")}}, {2, 200, "blue", {ip("10.2.1.1")}}};
  Route a;
  a.vrf = 1;
  a.prefix = *IpPrefix::parse("10.1.1.0/24");
  a.kind = RouteKind::kRemote;
  a.vtep = ip("192.0.2.20");
  a.vni_out = 100;
  a.dst_mac = mac(kAMac);
  Route b = a;
  b.prefix = *IpPrefix::parse("10.1.2.0/24");
  b.vtep = ip("192.0.2.21");
  b.dst_mac = mac(kBMac);
  Route c = a;
  c.vrf = 2;
  c.prefix = *IpPrefix::parse("10.2.1.0/24");
  c.vtep = ip("192.0.2.30");
  c.vni_out = 200;
  c.dst_mac = mac(kCMac);
  t.routes = {a, b, c};
  Service s;
  s.id = 0;
  s.name = "echo";
  s.vrf = 0;
  s.vip = ip("203.0.113.10");
  s.proto = 17;
  s.port = 5000;
  s.maglev_size = 7;
  Backend be;
  be.id = 0;
  be.name = "echo-b";
  be.addr = ip("10.1.2.10");
  be.vrf = 1;
  be.encap = Encap::kVxlan;
  be.tunnel_dst = ip("192.0.2.21");
  be.vni = 100;
  be.inner_dst_mac = mac(kBMac);
  s.backends = {be};
  s.maglev = std::vector<std::uint32_t>(7, 0);
  t.services = {s};
  return t;
}

class Topology {
 public:
  Topology() {
    must("ip netns add " + kUl);
    for (const auto &ns : {kGw, kA, kB, kC})
      must("ip netns add " + ns);
    must(in(kUl, "ip link add br0 type bridge"));
    must(in(kUl, "ip link set br0 up"));
    struct Host {
      std::string ns, dev, ul_ip, ul_mac;
    };
    for (const Host &h :
         {Host{kGw, "g0", "", ""}, Host{kA, "a0", "192.0.2.20", "02:00:00:00:01:20"},
          Host{kB, "b0", "192.0.2.21", "02:00:00:00:01:21"},
          Host{kC, "c0", "192.0.2.30", "02:00:00:00:01:30"}}) {
      must(in(kUl, "ip link add " + h.dev + " type veth peer name " + h.dev + "b"));
      must(in(kUl, "ip link set " + h.dev + "b master br0 up"));
      must(in(kUl, "ip link set " + h.dev + " netns " + h.ns));
      must(in(h.ns, "ip link set lo up"));
      if (!h.ul_ip.empty()) {
        must(in(h.ns, "ip link set " + h.dev + " address " + h.ul_mac));
        must(in(h.ns, "ip addr add " + h.ul_ip + "/24 dev " + h.dev));
        // Loose reverse-path filtering: DSR replies and decapsulated
        // packets do not come back the way they went.
        must(in(h.ns, "sysctl -qw net.ipv4.conf.all.rp_filter=0"));
        must(in(h.ns, "sysctl -qw net.ipv4.conf.default.rp_filter=0"));
      } else {
        must(in(h.ns, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1"));
        must(in(h.ns, "sysctl -qw net.ipv6.conf.default.disable_ipv6=1"));
        must(in(h.ns, "ip link set " + h.dev + " address " + kG0Mac));
      }
      // veth leaves checksums to the receiver (CHECKSUM_PARTIAL); a frame
      // that crosses af_packet and the wire again must carry a real one.
      must(in(h.ns, "ethtool -K " + h.dev + " tx off"));
      must(in(h.ns, "ip link set " + h.dev + " up"));
    }
    // Tenant VMs as kernel VXLAN devices pointing at the gateway's VTEP.
    vm(kA, "a0", "192.0.2.20", 100, kAMac, "10.1.1.10/24", "10.1.0.0/16", "10.1.1.1");
    vm(kB, "b0", "192.0.2.21", 100, kBMac, "10.1.2.10/24", "10.1.0.0/16", "10.1.2.1");
    vm(kC, "c0", "192.0.2.30", 200, kCMac, "10.2.1.10/24", "10.0.0.0/8", "10.2.1.1");
    // The VIP: host C reaches it through the gateway; host B, the backend,
    // owns it on lo for direct server return.
    must(in(kC, "ip route add 203.0.113.10/32 via 192.0.2.1"));
    must(in(kB, "ip addr add 203.0.113.10/32 dev lo"));
  }

  ~Topology() {
    stop_gateway();
    for (const auto &ns : {kA, kB, kC, kGw, kUl})
      sh("ip netns del " + ns);
    std::remove(kApi.c_str());
  }

  void start_gateway() {
    pid_ = fork();
    if (pid_ == 0) {
      std::freopen(kLog.c_str(), "a", stdout);
      std::freopen(kLog.c_str(), "a", stderr);
      execlp("ip", "ip", "netns", "exec", kGw.c_str(), binary().c_str(), "--instance", "gw",
             "--api", ("unix:" + kApi).c_str(), "--metrics", "127.0.0.1:9102", "--idle-sleep-us",
             "100", "--exception-port", "net_tap0", "--", "-l", "0-1", "--no-huge", "--no-shconf",
             "--no-pci", "-m", "512", "--file-prefix", ("st" + kSuffix).c_str(), "--log-level",
             "*:warning", "--vdev", "net_af_packet0,iface=g0", "--vdev", "net_tap0,iface=dtap0",
             static_cast<char *>(nullptr));
      _exit(127);
    }
  }

  void stop_gateway() {
    if (pid_ <= 0)
      return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 50; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  static void vm(const std::string &ns, const std::string &dev, const std::string &local, int vni,
                 const char *vm_mac, const std::string &addr, const std::string &net,
                 const std::string &gw) {
    std::string vx = "vx" + std::to_string(vni);
    must(in(ns, "ip link add " + vx + " type vxlan id " + std::to_string(vni) + " local " + local +
                    " remote 192.0.2.1 dstport 4789 dev " + dev));
    must(in(ns, "ip link set " + vx + " address " + vm_mac));
    must(in(ns, "ip addr add " + addr + " dev " + vx));
    must(in(ns, "ip link set " + vx + " up"));
    must(in(ns, "ip route add " + net + " via " + gw + " dev " + vx));
    // ARP over VXLAN for the gateway is not answered (unsupported_inner).
    must(in(ns, "ip neigh replace " + gw + " lladdr " + kGwMac + " dev " + vx));
  }

  pid_t pid_ = -1;
};

bool push(const Tables &t, std::string *error) {
  auto channel = grpc::CreateChannel("unix:" + kApi, grpc::InsecureChannelCredentials());
  auto stub = pb::Dataplane::NewStub(channel);
  for (int attempt = 0; attempt < 100; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    pb::ApplyReply reply;
    auto writer = stub->Apply(&ctx, &reply);
    pb::TxnHeader header;
    header.set_generation(1);
    header.set_full(true);
    for (const auto &req : api::chunk(header, api::full_sync_ops(t)))
      writer->Write(req);
    writer->WritesDone();
    grpc::Status st = writer->Finish();
    if (st.ok())
      return true;
    *error = st.error_message();
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // still starting
  }
  return false;
}

pb::CountersReply fetch_counters(std::string *error) {
  auto stub = pb::Dataplane::NewStub(
      grpc::CreateChannel("unix:" + kApi, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  pb::CountersRequest req;
  pb::CountersReply reply;
  grpc::Status st = stub->GetCounters(&ctx, req, &reply);
  if (!st.ok())
    *error = st.error_message();
  return reply;
}

// The gateway's non-zero counters, for failure messages.
std::string gateway_counters() {
  std::string error;
  pb::CountersReply reply = fetch_counters(&error);
  if (!error.empty())
    return "counters unavailable: " + error;
  std::string out;
  for (const auto &p : reply.ports()) {
    out += " port " + p.port() + " rx " + std::to_string(p.rx().packets()) + " tx " +
           std::to_string(p.tx().packets()) + ";";
  }
  for (const auto &d : reply.drops()) {
    if (d.packets() != 0)
      out += " drop " + d.reason() + "=" + std::to_string(d.packets()) + ";";
  }
  for (const auto &s : reply.services()) {
    out += " service " + s.name() + " fwd " + std::to_string(s.fwd().packets()) + ";";
  }
  out += " arp_replies=" + std::to_string(reply.arp_replies());
  out += " passed_to_host=" + std::to_string(reply.passed_to_host());
  return out;
}

class NetnsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    topo_ = new Topology();
    topo_->start_gateway();
    std::string error;
    ASSERT_TRUE(push(gateway_tables(), &error)) << error << " (log: " << kLog << ")";
    // The exception port's kernel side is the gateway's own host stack: it
    // owns the VTEP address, with the underlay port's MAC (which DPDK's ARP
    // replies announce).
    must(in(kGw, "ip link set dtap0 address " + std::string(kG0Mac)));
    must(in(kGw, "ip addr add 192.0.2.1/24 dev dtap0"));
    must(in(kGw, "ip link set dtap0 up"));
  }
  static void TearDownTestSuite() {
    delete topo_;
    topo_ = nullptr;
  }
  static inline Topology *topo_ = nullptr;
};

TEST_F(NetnsTest, RedTenantCrossesBetweenHosts) {
  EXPECT_EQ(sh(in(kA, "ping -c 3 -i 0.2 -W 2 10.1.2.10")), 0)
      << "log: " << kLog << "; gateway:" << gateway_counters();
  EXPECT_EQ(sh(in(kB, "ping -c 3 -i 0.2 -W 2 10.1.1.10")), 0);
}

TEST_F(NetnsTest, HostStackAnswersThroughExceptionPort) {
  // ICMP to the VTEP address is the host's: DPDK passes it to the tap, the
  // kernel answers, and DPDK sends the answer out of the underlay port.
  std::string error;
  std::uint64_t before = fetch_counters(&error).passed_to_host();
  ASSERT_EQ(error, "");
  EXPECT_EQ(sh(in(kA, "ping -c 3 -i 0.2 -W 2 192.0.2.1")), 0)
      << "log: " << kLog << "; gateway:" << gateway_counters();
  EXPECT_GE(fetch_counters(&error).passed_to_host() - before, 3u) << "the echo requests";
}

TEST_F(NetnsTest, BlueTenantCannotReachRed) {
  EXPECT_NE(sh(in(kC, "ping -c 2 -i 0.2 -W 1 10.1.2.10")), 0);
}

TEST_F(NetnsTest, VipLoadBalancesWithDirectServerReturn) {
  // A one-shot UDP echo on the backend, bound to the VIP; the client on
  // host C must get the answer from the VIP (sent by host B directly).
  const std::string server =
      "timeout 10 /usr/bin/python3 -c \"import socket; s=socket.socket(2,2); "
      "s.bind(('203.0.113.10',5000)); d,a=s.recvfrom(100); s.sendto(d[::-1],a)\" &";
  ASSERT_EQ(std::system((in(kB, server)).c_str()), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const std::string client =
      "/usr/bin/python3 -c \"import socket,sys; s=socket.socket(2,2); s.settimeout(3); "
      "s.sendto(b'stratus',('203.0.113.10',5000)); d,a=s.recvfrom(100); "
      "sys.exit(0 if d==b'sutarts' and a[0]=='203.0.113.10' else 1)\"";
  EXPECT_EQ(sh(in(kC, client)), 0) << "log: " << kLog << "; gateway:" << gateway_counters();
}

TEST_F(NetnsTest, MetricsPassPromtool) {
  // Traffic first, so that the families carry samples.
  ASSERT_EQ(sh(in(kA, "ping -c 1 -W 2 10.1.2.10")), 0);
  const std::string file = "/tmp/stratus-dpdk-netns-" + kSuffix + ".prom";
  ASSERT_EQ(sh(in(kGw, "curl -sf -o " + file + " http://127.0.0.1:9102/metrics")), 0);
  std::ifstream in_file(file);
  std::string text((std::istreambuf_iterator<char>(in_file)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("stratus_drops_total"), std::string::npos);
  EXPECT_NE(text.find("net_af_packet0"), std::string::npos) << "per-port counters";
  if (sh("command -v promtool") == 0) {
    EXPECT_EQ(sh("promtool check metrics < " + file), 0) << "see " << kLog;
  }
  std::remove(file.c_str());
}

}  // namespace
}  // namespace stratus::dpdk::testing

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (geteuid() != 0) {
    std::printf("SKIP: needs root for network namespaces\n");
    return 77;
  }
  if (std::system("ip netns add st-probe-ns >/dev/null 2>&1 && ip netns del st-probe-ns") != 0) {
    std::printf("SKIP: cannot create network namespaces here\n");
    return 77;
  }
  if (access(stratus::dpdk::testing::binary().c_str(), X_OK) != 0) {
    std::printf("SKIP: %s not built\n", stratus::dpdk::testing::binary().c_str());
    return 77;
  }
  int rc = RUN_ALL_TESTS();
  if (rc == 0)
    std::remove(stratus::dpdk::testing::kLog.c_str());  // kept for a failure
  return rc;
}
