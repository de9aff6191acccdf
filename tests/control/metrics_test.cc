// stratusd's /metrics exposition, after a sync, a rejected reload and health
// events, passes `promtool check metrics` (SPEC.md §6). SKIP without promtool.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "control/controller.h"
#include "control/log.h"
#include "tests/control/control_harness.h"

namespace stratus::control {
namespace {

using namespace std::chrono_literals;
using testing::ConfigParams;
using testing::FakeNode;
using testing::TempDir;

const char *promtool() {
  for (const char *p : {"/usr/bin/promtool", "/usr/local/bin/promtool"}) {
    if (std::filesystem::exists(p))
      return p;
  }
  return nullptr;
}

TEST(ControlMetrics, ExpositionPassesPromtool) {
  set_log_enabled(false);
  TempDir dir;
  FakeNode a("gw-a", dir.path() + "/a.sock");
  a.start();
  Metrics metrics;
  ControllerOptions o;
  o.client_factory = grpc_client_factory();
  o.session.backoff_initial = 10ms;
  {
    Controller c(o, &metrics);
    ConfigParams p;
    p.nodes = {{"gw-a", a.endpoint()}, {"gw-dead", "unix:" + dir.path() + "/none.sock"}};
    ASSERT_TRUE(c.reload_text(testing::make_config(p), "m.yaml", "test").ok);
    ASSERT_TRUE(c.session("gw-a")->wait_in_sync(20s));
    p.extra_backend_tenant = "nope";
    ASSERT_FALSE(c.reload_text(testing::make_config(p), "m.yaml", "test").ok);
    metrics.health_check("web", "web-1", false);
    metrics.health_transition("web", "web-1", false);
    c.set_health({"web", "web-1"}, false);
    ASSERT_TRUE(testing::eventually([&] { return c.session("gw-dead")->status().failures > 0; }));
  }
  std::string text = metrics.text();
  for (const char *family :
       {"stratus_config_generation", "stratus_config_valid", "stratus_config_reloads_total",
        "stratus_node_sync_state", "stratus_node_generation", "stratus_push_duration_seconds",
        "stratus_transactions_total", "stratus_health_checks_total",
        "stratus_health_transitions_total", "stratus_backend_state", "stratus_backend_weight"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + family + " "), std::string::npos) << family;
  }
  EXPECT_NE(text.find("stratus_node_sync_state{node=\"gw-dead\",state=\"failed\"} 1"),
            std::string::npos);
  EXPECT_NE(text.find("stratus_backend_state{backend=\"web-1\",service=\"web\",state=\"down\"} 1"),
            std::string::npos);

  std::string file = dir.path() + "/metrics.txt";
  std::ofstream(file) << text;
  std::string cmd = std::string(promtool()) + " check metrics < " + file + " 2>&1";
  FILE *p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p))
    out.append(buf, n);
  int rc = ::pclose(p);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "") << "promtool findings:\n" << out;
  set_log_enabled(true);
}

}  // namespace
}  // namespace stratus::control

int main(int argc, char **argv) {
  if (!stratus::control::promtool()) {
    std::printf("SKIP: promtool not installed\n");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
