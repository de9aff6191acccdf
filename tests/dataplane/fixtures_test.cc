// Every case of tests/fixtures/packets.json through the DPDK pipeline on
// in-memory mbufs: verdict, egress port, drop reason and output bytes must
// match exactly (the XDP programs pass the same cases under
// BPF_PROG_TEST_RUN). One named test per case.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <variant>

#include "tests/dataplane/harness.h"
#include "tests/fixtures/fixture.h"

namespace stratus::dpdk::testing {
namespace {

// Loaded once; a loading error becomes one failing test instead of a crash.
struct Loaded {
  fixtures::Fixtures fx;
  std::string error;
};

const Loaded &loaded() {
  static const Loaded l = [] {
    Loaded out;
    try {
      out.fx = fixtures::load(fixtures_path());
    } catch (const std::exception &e) {
      out.error = e.what();
    }
    return out;
  }();
  return l;
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto &c : loaded().fx.cases)
    names.push_back(c.name);
  return names;
}

std::string action_name(Action a) {
  switch (a) {
    case Action::kForward:
      return "forward";
    case Action::kPass:
      return "pass";
    case Action::kDrop:
      return "drop";
  }
  return "?";
}

std::uint64_t total_drops(const WorkerCounters &c) {
  std::uint64_t n = 0;
  for (const auto &d : c.drops)
    n += d.get();
  return n;
}

TEST(Fixtures, Load) {
  ASSERT_EQ(loaded().error, "") << fixtures_path();
  EXPECT_GT(loaded().fx.cases.size(), 0u);
}

class FixtureCase : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureCase, MatchesExpectedBytes) {
  const auto &fx = loaded().fx;
  const fixtures::Case *c = nullptr;
  for (const auto &x : fx.cases) {
    if (x.name == GetParam())
      c = &x;
  }
  ASSERT_NE(c, nullptr);
  SCOPED_TRACE(c->description);
  Tables tables = fx.tables.at(c->tables);
  Harness h;
  h.install(tables);
  std::uint64_t now = 0;
  for (std::size_t i = 0; i < c->steps.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    now += 1;  // a millisecond per step: no flow expires within a case
    if (const auto *set = std::get_if<fixtures::SetBackendStep>(&c->steps[i])) {
      fixtures::apply(*set, tables);
      h.install(tables);
      continue;
    }
    const auto &step = std::get<fixtures::PacketStep>(c->steps[i]);
    std::uint64_t drops_before = total_drops(h.counters());
    Output out = h.send(step.in_port, step.input, now);
    std::uint64_t drops_added = total_drops(h.counters()) - drops_before;
    ASSERT_EQ(action_name(out.verdict.action), fixtures::verdict_name(step.verdict))
        << "drop reason: " << out.drop_reason;
    switch (step.verdict) {
      case fixtures::Verdict::kForward:
        EXPECT_EQ(drops_added, 0u);
        EXPECT_EQ(out.port, step.out_port);
        EXPECT_EQ(fixtures::hex(out.bytes), fixtures::hex(step.output));
        break;
      case fixtures::Verdict::kPass:
        EXPECT_EQ(fixtures::hex(out.bytes), fixtures::hex(step.input)) << "pass must not modify";
        break;
      case fixtures::Verdict::kDrop:
        EXPECT_EQ(out.drop_reason, step.drop_reason);
        EXPECT_EQ(drops_added, 1u) << "a drop is counted once";
        break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Packets, FixtureCase, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string> &p) { return p.param; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FixtureCase);

}  // namespace
}  // namespace stratus::dpdk::testing
