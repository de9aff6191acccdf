#include "tests/dataplane/harness.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <variant>
#include <mutex>
#include <stdexcept>

#include "dataplane/dpdk.h"

namespace stratus::dpdk::testing {

namespace {
rte_mempool *g_pool = nullptr;
}

bool init_eal(std::string *why) {
  static std::once_flag once;
  static bool ok = false;
  static std::string reason;
  std::call_once(once, [] {
    const char *argv[] = {
        "stratus-dpdk-test", "--no-huge", "--no-shconf",   "--no-pci", "-l", "0", "-m", "1024",
        "--log-level",       "*:warning", "--no-telemetry"};
    int argc = static_cast<int>(sizeof argv / sizeof argv[0]);
    if (rte_eal_init(argc, const_cast<char **>(argv)) < 0) {
      reason = std::string("rte_eal_init failed: ") + rte_strerror(rte_errno);
      return;
    }
    g_pool = rte_pktmbuf_pool_create("stratus_test_pool", 4096, 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                     SOCKET_ID_ANY);
    if (g_pool == nullptr) {
      reason = std::string("cannot create mbuf pool: ") + rte_strerror(rte_errno);
      return;
    }
    ok = true;
  });
  if (!ok && why != nullptr)
    *why = reason;
  return ok;
}

rte_mempool *test_pool() {
  return g_pool;
}

std::string fixtures_path() {
  const char *env = std::getenv("STRATUS_FIXTURES");
  return env != nullptr && *env != '\0' ? env : fixtures::default_path();
}

const fixtures::Fixtures &fixture_file() {
  static const fixtures::Fixtures f = fixtures::load(fixtures_path());
  return f;
}

const fixtures::PacketStep &fixture_packet(const std::string &name, std::size_t step) {
  for (const auto &c : fixture_file().cases) {
    if (c.name == name)
      return std::get<fixtures::PacketStep>(c.steps.at(step));
  }
  throw std::runtime_error("no fixture case " + name);
}

PortResolver index_resolver(const Tables &t, const std::vector<std::string> &absent) {
  std::vector<std::string> names;
  for (const Port &p : t.node.ports)
    names.push_back(p.name);
  return [names, absent](const std::string &name) -> std::optional<DeviceInfo> {
    if (std::find(absent.begin(), absent.end(), name) != absent.end())
      return std::nullopt;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (names[i] == name)
        return DeviceInfo{static_cast<std::uint16_t>(i), {}};
    }
    return std::nullopt;
  };
}

Harness::Harness(std::uint32_t flow_capacity)
    : counters_(make_worker_counters()), flows_(flow_capacity), pipeline_(flows_, *counters_) {}

Harness::~Harness() = default;

void Harness::install(const Tables &t, const std::vector<std::string> &absent) {
  snap_ = build_snapshot(t, index_resolver(t, absent), snap_.get(), kTicksPerSecond);
}

Output Harness::send(const std::string &in_port, const std::vector<std::uint8_t> &frame,
                     std::uint64_t now) {
  return send_burst(in_port, {frame}, now).at(0);
}

std::vector<Output> Harness::send_burst(const std::string &in_port,
                                        const std::vector<std::vector<std::uint8_t>> &frames,
                                        std::uint64_t now) {
  if (!snap_)
    throw std::logic_error("no tables installed");
  if (frames.size() > Pipeline::kBurst)
    throw std::invalid_argument("burst too large");
  rte_mbuf *pkts[Pipeline::kBurst];
  std::uint16_t n = 0;
  for (const auto &frame : frames) {
    rte_mbuf *m = rte_pktmbuf_alloc(test_pool());
    char *data =
        m == nullptr ? nullptr : rte_pktmbuf_append(m, static_cast<std::uint16_t>(frame.size()));
    if (data == nullptr) {
      rte_pktmbuf_free(m);
      rte_pktmbuf_free_bulk(pkts, n);
      throw std::runtime_error("no mbuf for a frame of " + std::to_string(frame.size()) + " bytes");
    }
    std::memcpy(data, frame.data(), frame.size());
    pkts[n++] = m;
  }
  std::uint16_t in = kNoPort;
  for (std::size_t i = 0; i < snap_->ports.size(); ++i) {
    if (snap_->ports[i].name == in_port)
      in = static_cast<std::uint16_t>(i);
  }
  Verdict verdicts[Pipeline::kBurst];
  received_bytes_ += pipeline_.process(*snap_, in, pkts, n, now, verdicts);
  pipeline_.maintain(*snap_, now);
  std::vector<Output> outs(n);
  for (std::uint16_t i = 0; i < n; ++i) {
    Output &out = outs[i];
    out.verdict = verdicts[i];
    const auto *p = rte_pktmbuf_mtod(pkts[i], const std::uint8_t *);
    switch (out.verdict.action) {
      case Action::kForward:
        out.port = snap_->ports.at(out.verdict.port).name;
        out.bytes.assign(p, p + rte_pktmbuf_data_len(pkts[i]));
        break;
      case Action::kPass:
        out.bytes.assign(p, p + rte_pktmbuf_data_len(pkts[i]));
        break;
      case Action::kDrop:
        out.drop_reason =
            std::string(drop_reason_label(static_cast<stratus_drop_reason>(out.verdict.reason)));
        break;
    }
  }
  rte_pktmbuf_free_bulk(pkts, n);
  return outs;
}

}  // namespace stratus::dpdk::testing
