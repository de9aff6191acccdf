// Health checks: the rise/fall state machine on a fake prober and clock, and
// the socket prober's TCP and HTTP probes against listeners on loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

#include "config/validate.h"
#include "control/health.h"
#include "control/log.h"
#include "tests/control/control_harness.h"

namespace stratus::control {
namespace {

using namespace std::chrono_literals;
using testing::FakeClock;
using testing::FakeProber;

config::HealthCheck check(std::uint32_t rise, std::uint32_t fall) {
  config::HealthCheck c;
  c.interval_ms = 1000;
  c.timeout_ms = 500;
  c.rise = rise;
  c.fall = fall;
  return c;
}

HealthTarget target(const std::string &backend, const std::string &addr,
                    config::HealthCheck c = check(2, 3)) {
  return {{"svc", backend}, {*IpAddress::parse(addr), 80}, c};
}

class MonitorTest : public ::testing::Test {
 protected:
  void SetUp() override { set_log_enabled(false); }
  void TearDown() override { set_log_enabled(true); }

  FakeClock clock_;
  FakeProber prober_;
  std::vector<std::pair<BackendKey, bool>> changes_;
  HealthMonitor monitor_{prober_, clock_, nullptr,
                         [this](const BackendKey &k, bool up, const std::string &) {
                           changes_.push_back({k, up});
                         }};

  // One probe round: tick, then let the interval pass.
  void round() {
    monitor_.tick();
    clock_.advance(1000ms);
  }
};

TEST_F(MonitorTest, FallConsecutiveFailuresTakeABackendDown) {
  monitor_.set_targets({target("b1", "10.0.0.1")});
  prober_.set("10.0.0.1:80", false);
  round();
  round();
  EXPECT_TRUE(changes_.empty()) << "two failures with fall 3";
  EXPECT_TRUE(monitor_.snapshot().at({"svc", "b1"}).up);
  round();
  ASSERT_EQ(changes_.size(), 1u);
  EXPECT_EQ(changes_[0].first, (BackendKey{"svc", "b1"}));
  EXPECT_FALSE(changes_[0].second);
  EXPECT_FALSE(monitor_.snapshot().at({"svc", "b1"}).up);
  round();
  EXPECT_EQ(changes_.size(), 1u) << "no repeated transition";
}

TEST_F(MonitorTest, RiseConsecutiveSuccessesBringItBack) {
  monitor_.set_targets({target("b1", "10.0.0.1", check(3, 1))});
  prober_.set("10.0.0.1:80", false);
  round();
  ASSERT_EQ(changes_.size(), 1u);
  prober_.set("10.0.0.1:80", true);
  round();
  round();
  EXPECT_EQ(changes_.size(), 1u) << "two successes with rise 3";
  round();
  ASSERT_EQ(changes_.size(), 2u);
  EXPECT_TRUE(changes_[1].second);
}

TEST_F(MonitorTest, AFailureResetsTheSuccessCount) {
  monitor_.set_targets({target("b1", "10.0.0.1", check(2, 1))});
  prober_.set("10.0.0.1:80", false);
  round();  // down
  prober_.set("10.0.0.1:80", true);
  round();
  prober_.set("10.0.0.1:80", false);
  round();
  prober_.set("10.0.0.1:80", true);
  round();
  EXPECT_EQ(changes_.size(), 1u) << "success, failure, success is not 2 in a row";
  round();
  EXPECT_EQ(changes_.size(), 2u);
}

TEST_F(MonitorTest, ProbesOncePerInterval) {
  monitor_.set_targets({target("b1", "10.0.0.1")});
  monitor_.tick();
  monitor_.tick();
  clock_.advance(999ms);
  monitor_.tick();
  EXPECT_EQ(prober_.probes["10.0.0.1:80"], 1);
  clock_.advance(1ms);
  auto next = monitor_.tick();
  EXPECT_EQ(prober_.probes["10.0.0.1:80"], 2);
  EXPECT_EQ(next, clock_.now() + 1000ms);
}

TEST_F(MonitorTest, UnchangedTargetsKeepTheirStateAcrossSetTargets) {
  monitor_.set_targets({target("b1", "10.0.0.1", check(2, 1)), target("b2", "10.0.0.2")});
  prober_.set("10.0.0.1:80", false);
  round();
  ASSERT_FALSE(monitor_.snapshot().at({"svc", "b1"}).up);
  // Same target: stays down. A changed target starts afresh (up).
  monitor_.set_targets({target("b1", "10.0.0.1", check(2, 1)), target("b2", "10.0.0.3")});
  EXPECT_FALSE(monitor_.snapshot().at({"svc", "b1"}).up);
  EXPECT_EQ(monitor_.snapshot().at({"svc", "b2"}).target.addr.str(), "10.0.0.3");
  monitor_.set_targets({target("b1", "10.0.0.1", check(2, 2))});
  EXPECT_TRUE(monitor_.snapshot().at({"svc", "b1"}).up) << "a new check starts afresh";
  EXPECT_EQ(monitor_.snapshot().count({"svc", "b2"}), 0u);
}

TEST(ProbeTarget, BackendAddressAndCheckPortElseServicePort) {
  auto r = config::load_config_string(R"(
nodes:
  - {name: gw, region: r, kind: xdp, api: "unix:/x.sock", vteps: [192.0.2.1],
     ports: [{name: eth0, role: underlay}], nexthops: [{remote: default, port: eth0, mac: "02:00:00:00:00:01"}]}
services:
  - name: s
    vip: 203.0.113.1
    protocol: tcp
    port: 443
    maglev_size: 307
    health_check: {type: http, path: /healthz}
    backends:
      - {name: a, address: 198.51.100.1}
      - {name: b, address: 198.51.100.2, health_check: {port: 8080}}
      - {name: c, address: 198.51.100.3, health_check: {address: 172.31.1.3}}
)",
                                      "t.yaml");
  ASSERT_TRUE(r.ok()) << config::format_diagnostics(r.errors);
  auto targets = health_targets(*r.config);
  ASSERT_EQ(targets.size(), 3u);
  EXPECT_EQ(targets[0].target.str(), "198.51.100.1:443");
  EXPECT_EQ(targets[1].target.str(), "198.51.100.2:8080");
  EXPECT_EQ(targets[2].target.str(), "172.31.1.3:443") << "health_check.address is probed instead";
  EXPECT_EQ(targets[0].check.type, config::HealthCheckType::kHttp);
  EXPECT_EQ(targets[0].check.path, "/healthz");
}

// A loopback listener; with `http_status` > 0 it answers each connection
// with that status line.
class Listener {
 public:
  explicit Listener(int http_status) : status_(http_status) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr *>(&sin), sizeof sin), 0);
    socklen_t len = sizeof sin;
    ::getsockname(fd_, reinterpret_cast<sockaddr *>(&sin), &len);
    port_ = ntohs(sin.sin_port);
    ::listen(fd_, 8);
    if (status_ > 0) {
      thread_ = std::thread([this] {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0)
          return;
        char buf[1024];
        std::string req;
        while (req.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = ::recv(c, buf, sizeof buf, 0);
          if (n <= 0)
            break;
          req.append(buf, static_cast<std::size_t>(n));
        }
        request = req;
        std::string resp = "HTTP/1.0 " + std::to_string(status_) + " X\r\n\r\n";
        [[maybe_unused]] ssize_t w = ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
        ::close(c);
      });
    }
  }
  ~Listener() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (thread_.joinable())
      thread_.join();
  }
  std::uint16_t port() const { return port_; }
  std::string request;

 private:
  int status_;
  int fd_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

std::pair<bool, std::string> run_probe(SocketProber &prober, std::uint16_t port,
                                       config::HealthCheck c) {
  std::promise<std::pair<bool, std::string>> p;
  auto f = p.get_future();
  prober.probe({*IpAddress::parse("127.0.0.1"), port}, c, [&p](bool ok, const std::string &d) {
    p.set_value({ok, d});
  });
  if (f.wait_for(10s) != std::future_status::ready)
    return {false, "no result"};
  return f.get();
}

TEST(SocketProber, TcpConnectSucceedsOnAListener) {
  SocketProber prober;
  Listener l(0);
  auto [ok, detail] = run_probe(prober, l.port(), check(1, 1));
  EXPECT_TRUE(ok) << detail;
}

TEST(SocketProber, TcpConnectFailsWhenNothingListens) {
  SocketProber prober;
  std::uint16_t port;
  {
    Listener l(0);
    port = l.port();
  }  // closed: connection refused
  auto [ok, detail] = run_probe(prober, port, check(1, 1));
  EXPECT_FALSE(ok);
  EXPECT_NE(detail.find("connect"), std::string::npos) << detail;
}

TEST(SocketProber, HttpStatusMustMatch) {
  SocketProber prober;
  config::HealthCheck c = check(1, 1);
  c.type = config::HealthCheckType::kHttp;
  c.path = "/healthz";
  {
    Listener l(200);
    auto [ok, detail] = run_probe(prober, l.port(), c);
    EXPECT_TRUE(ok) << detail;
    EXPECT_EQ(l.request.rfind("GET /healthz HTTP/1.0\r\n", 0), 0u) << l.request;
  }
  {
    Listener l(503);
    auto [ok, detail] = run_probe(prober, l.port(), c);
    EXPECT_FALSE(ok);
    EXPECT_EQ(detail, "HTTP 503, expected 200");
  }
}

TEST(SocketProber, SilentServerTimesOut) {
  SocketProber prober;
  Listener l(0);  // accepts (backlog) but never answers
  config::HealthCheck c = check(1, 1);
  c.type = config::HealthCheckType::kHttp;
  c.timeout_ms = 100;
  auto [ok, detail] = run_probe(prober, l.port(), c);
  EXPECT_FALSE(ok);
  EXPECT_EQ(detail, "timeout after 100 ms");
}

}  // namespace
}  // namespace stratus::control
