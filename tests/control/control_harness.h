// Test doubles for the control daemon's tests: an in-process data plane (the
// generic Dataplane service over a recording driver, served on a unix socket
// in a temp dir), a fake prober and clock, a client that hangs, and a
// configuration generator.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "control/api/server.h"
#include "control/client.h"
#include "control/health.h"

namespace stratus::control::testing {

// Counts installs; the tables themselves are in the service.
class RecordingDriver : public api::DataplaneDriver {
 public:
  void install(const Tables &, const Tables &) override { ++installs; }
  std::vector<api::pb::PortState> ports() override { return {}; }
  void counters(api::pb::CountersReply *) override {}
  std::optional<api::FlowEntry> lookup_flow(const stratus_flow_key &) override {
    return std::nullopt;
  }
  void dump_flows(const api::pb::FlowsRequest &,
                  const std::function<bool(const api::pb::Flow &)> &sink) override {
    api::pb::Flow f;
    f.set_proto(6);
    f.set_sport(1234);
    f.set_dport(80);
    sink(f);
  }
  std::uint64_t flow_count() override { return 1; }

  std::atomic<int> installs{0};
};

// A data-plane node: start() serves a fresh instance (new instance_id,
// generation 0) on `endpoint`; stop() takes it away.
class FakeNode {
 public:
  FakeNode(std::string name, std::string socket_path)
      : name_(std::move(name)), path_(std::move(socket_path)) {}
  ~FakeNode() { stop(); }

  std::string endpoint() const { return "unix:" + path_; }
  void start() {
    stop();
    driver_ = std::make_unique<RecordingDriver>();
    api::ServiceOptions o;
    o.node_name = name_;
    service_ = std::make_unique<api::DataplaneService>(*driver_, o);
    server_ = api::serve(*service_, endpoint());
  }
  void stop() {
    if (server_)
      server_->Shutdown(std::chrono::system_clock::now());
    server_.reset();
    service_.reset();
    driver_.reset();
  }
  api::DataplaneService &service() { return *service_; }
  RecordingDriver &driver() { return *driver_; }

 private:
  std::string name_;
  std::string path_;
  std::unique_ptr<RecordingDriver> driver_;
  std::unique_ptr<api::DataplaneService> service_;
  std::unique_ptr<grpc::Server> server_;
};

// A client whose calls block until cancel(): a node that accepted the
// connection and never answers.
class HangingClient : public DataplaneClient {
 public:
  grpc::Status get_state(pb::StateReply *) override { return hang(); }
  grpc::Status apply(const std::vector<pb::ApplyRequest> &, pb::ApplyReply *) override {
    return hang();
  }
  grpc::Status explain(const pb::ExplainRequest &, pb::ExplainReply *) override { return hang(); }
  grpc::Status dump_flows(const pb::FlowsRequest &, std::vector<pb::Flow> *) override {
    return hang();
  }
  grpc::Status read_tables(Tables *, std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return cancelled_; });
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no answer");
  }
  void cancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }

 private:
  grpc::Status hang() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return cancelled_; });
    return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;
};

class FakeClock : public Clock {
 public:
  std::chrono::steady_clock::time_point now() override { return now_; }
  void advance(std::chrono::milliseconds d) { now_ += d; }

 private:
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
};

// Answers every probe at once with the result set for its target (default: success).
class FakeProber : public Prober {
 public:
  void probe(const ProbeTarget &target, const config::HealthCheck &, Done done) override {
    bool ok;
    {
      std::lock_guard lock(mu_);
      ++probes[target.str()];
      auto it = results.find(target.str());
      ok = it == results.end() || it->second;
    }
    done(ok, ok ? "fake success" : "fake failure");
  }
  void set(const std::string &target, bool ok) {
    std::lock_guard lock(mu_);
    results[target] = ok;
  }
  std::map<std::string, int> probes;

 private:
  std::mutex mu_;
  std::map<std::string, bool> results;
};

// A temp dir removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "stratus-control-XXXXXX").string();
    char *p = ::mkdtemp(tmpl.data());
    if (!p)
      throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

struct ConfigParams {
  std::vector<std::pair<std::string, std::string>> nodes;  // name, endpoint
  int routes = 4;  // tenant routes 10.0.<i/250>.<i%250+1>/32
  std::string route0_vtep = "192.0.2.11";
  int web_backends = 3;
  bool web_health = true;
  std::string extra_backend_tenant;  // set: a backend with this tenant (for bad configs)
  int skip_backend = 0;              // > 0: leave web-<n> out
};

// Two services: "web" (tenant acme, tcp/80, VXLAN backends web-1.., health
// checked, M = 251) and "api" (underlay, tcp/443, IPIP backends, M = 251).
inline std::string make_config(const ConfigParams &p) {
  std::string y = "nodes:\n";
  int n = 0;
  for (const auto &[name, endpoint] : p.nodes) {
    ++n;
    y += "  - name: " + name + "\n    region: lab\n    kind: xdp\n    api: " + endpoint +
         "\n    vteps: [192.0.2." + std::to_string(n) +
         "]\n    ports:\n      - {name: eth0, role: underlay, mac: \"02:00:00:00:01:0" +
         std::to_string(n) + "\"}\n    nexthops:\n      - {remote: default, port: eth0, mac: " +
         "\"02:00:00:00:fe:01\"}\n";
  }
  y += "tenants:\n  - name: acme\n    vni: 100\n    subnets: [10.0.0.0/8]\n"
       "    gateways: [10.0.0.1]\n    routes:\n";
  for (int i = 0; i < p.routes; ++i) {
    y += "      - {prefix: 10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) +
         "/32, remote: {vtep: " + (i == 0 ? p.route0_vtep : std::string("192.0.2.11")) +
         ", mac: \"02:00:00:01:00:10\"}}\n";
  }
  y += "services:\n  - name: web\n    tenant: acme\n    vip: 10.0.0.100\n    protocol: tcp\n"
       "    port: 80\n    maglev_size: 307\n";
  if (p.web_health) {
    y += "    health_check: {type: tcp, interval_ms: 1000, timeout_ms: 500, rise: 2, fall: 3}\n";
  }
  y += "    backends:\n";
  for (int i = 1; i <= p.web_backends; ++i) {
    if (i == p.skip_backend)
      continue;
    y += "      - {name: web-" + std::to_string(i) + ", address: 10.0.1." + std::to_string(i) +
         ", tenant: acme, vtep: 192.0.2.11, mac: \"02:00:00:01:00:0" + std::to_string(i) + "\"}\n";
  }
  if (!p.extra_backend_tenant.empty()) {
    y += "      - {name: web-x, address: 10.0.1.99, tenant: " + p.extra_backend_tenant +
         ", vtep: 192.0.2.11, mac: \"02:00:00:01:00:99\"}\n";
  }
  y += "  - name: api\n    vip: 203.0.113.10\n    protocol: tcp\n    port: 443\n"
       "    maglev_size: 251\n    backends:\n"
       "      - {name: api-1, address: 198.51.100.1}\n"
       "      - {name: api-2, address: 198.51.100.2}\n";
  return y;
}

// Polls `pred` until it holds or `timeout` passes (for threads we do not
// control: gRPC and session threads).
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred())
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

}  // namespace stratus::control::testing
