// How errors are collected and reported: all of them at once, in file order,
// with file, line and column; syntax errors and unreadable files; warnings
// that do not reject a config; hostile input that must not crash.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/validate.h"

namespace stratus::config {
namespace {

std::vector<std::string> errors_of(const std::string &yaml, const std::string &file = "demo.yaml") {
  std::vector<std::string> out;
  for (const auto &e : load_config_string(yaml, file).errors)
    out.push_back(e.str());
  return out;
}

TEST(Errors, SeveralErrorsAreReportedTogetherInFileOrder) {
  const std::string yaml =
      "nodes:\n"                                                // 1
      "  - name: gw\n"                                          // 2
      "    region: a\n"                                         // 3
      "    kind: xdp\n"                                         // 4
      "    api: unix:/run/gw.sock\n"                            // 5
      "    vteps: [192.0.2.1]\n"                                // 6
      "    vxlan_port: 70000\n"                                 // 7
      "tenants:\n"                                              // 8
      "  - {name: red, vni: 100, subnets: [10.1.0.0/16]}\n"     // 9
      "  - {name: blue, vni: 100}\n"                            // 10
      "services:\n"                                             // 11
      "  - name: web\n"                                         // 12
      "    vip: 203.0.113.10\n"                                 // 13
      "    maglev_size: 100\n"                                  // 14
      "    colour: green\n"                                     // 15
      "    backends:\n"                                         // 16
      "      - {name: b1, address: 10.1.0.5, tenant: bleu}\n";  // 17
  std::vector<std::string> expected = {
      "demo.yaml:7:17: nodes[0].vxlan_port: must be <= 65535, got 70000",
      "demo.yaml:10:23: tenants[1].vni: VNI 100 is already used by tenant \"red\" in region "
      "\"a\"",
      "demo.yaml:14:18: services[0].maglev_size: 100 is not a prime (the next prime is 101)",
      "demo.yaml:15:5: services[0].colour: unknown key \"colour\"",
      "demo.yaml:17:9: services[0].backends[0].mac: required for a tenant (VXLAN) backend",
      "demo.yaml:17:9: services[0].backends[0].vtep: required for a tenant (VXLAN) backend",
      "demo.yaml:17:47: services[0].backends[0].tenant: unknown tenant \"bleu\"",
  };
  EXPECT_EQ(errors_of(yaml), expected);
}

TEST(Errors, AnInvalidValueDoesNotCascade) {
  // The backend's tenant is malformed: reported once, and the checks that
  // depend on it (VTEP, MAC, subnet) stay quiet.
  const std::string yaml =
      "nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: [192.0.2.1]}]\n"
      "services:\n"
      "  - name: web\n"
      "    vip: 203.0.113.10\n"
      "    backends: [{name: b1, address: 10.1.0.5, tenant: [red]}]\n";
  EXPECT_EQ(errors_of(yaml),
            std::vector<std::string>{"demo.yaml:5:54: services[0].backends[0].tenant: expected a "
                                     "name, got a list"});
}

TEST(Errors, SyntaxErrorNamesFileLineAndColumn) {
  auto errors = errors_of("nodes:\n  - name: gw\n    vteps: [192.0.2.1\n", "broken.yaml");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].rfind("broken.yaml:", 0), 0u) << errors[0];
  EXPECT_NE(errors[0].find(": syntax: "), std::string::npos) << errors[0];
}

TEST(Errors, MissingFileIsAnError) {
  LoadResult r = load_config("/nonexistent/stratus.yaml");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].str(),
            "/nonexistent/stratus.yaml: file: cannot open: No such file or directory");
}

TEST(Errors, WarningsDoNotRejectTheConfig) {
  const std::string yaml =
      "nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: [192.0.2.1]}]\n"
      "services:\n"
      "  - name: web\n"
      "    vip: 203.0.113.10\n"
      "    maglev_size: 101\n"
      "    backends: [{name: b1, address: 192.0.2.51, state: down}, {name: b2, address: "
      "192.0.2.52, weight: 0}]\n";
  LoadResult r = load_config_string(yaml, "w.yaml");
  ASSERT_TRUE(r.ok()) << format_diagnostics(r.errors);
  std::vector<std::string> warnings;
  for (const auto &w : r.warnings)
    warnings.push_back(w.str());
  EXPECT_EQ(warnings,
            (std::vector<std::string>{
                "w.yaml:3:11: services[0]: no backend can take new flows (all are down, "
                "draining or weight 0)",
                "w.yaml:5:18: services[0].maglev_size: maglev_size 101 is less than 100 x 2 "
                "backends: the load will spread unevenly"}));
}

TEST(Errors, ValidateRunsOnAnEditedConfig) {
  // The control daemon edits a loaded Config (e.g. an operator's weight
  // change) and validates it again without YAML.
  LoadResult r = load_config_string(
      "nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: [192.0.2.1]}]\n"
      "tenants: [{name: red, vni: 7}]\n"
      "services: [{name: web, vip: 203.0.113.10, tenant: red}]\n",
      "e.yaml");
  ASSERT_TRUE(r.ok()) << format_diagnostics(r.errors);
  Config c = *r.config;
  EXPECT_TRUE(validate(c).errors.empty());
  c.services[0].tenant.value = "green";
  Validation v = validate(c);
  ASSERT_EQ(v.errors.size(), 1u);
  EXPECT_EQ(v.errors[0].str(), "e.yaml:3:51: services[0].tenant: unknown tenant \"green\"");
}

TEST(Errors, SameVipInDisjointRegionsIsNotAnOverlap) {
  // Each node installs only its region's services, so no node sees both.
  const std::string yaml =
      "nodes:\n"
      "  - {name: gw-a, region: a, kind: xdp, api: 'unix:/a', vteps: [192.0.2.1]}\n"
      "  - {name: gw-b, region: b, kind: xdp, api: 'unix:/b', vteps: [192.0.2.2]}\n"
      "services:\n"
      "  - {name: web-a, vip: 203.0.113.10, port: 80, regions: [a]}\n"
      "  - {name: web-b, vip: 203.0.113.10, port: 80, regions: [b]}\n";
  EXPECT_EQ(errors_of(yaml), std::vector<std::string>{});
  // ... but it is once both are in region a.
  std::string both = yaml;
  both.replace(both.rfind("regions: [b]"), 12, "regions: [b, a]");
  EXPECT_EQ(errors_of(both),
            std::vector<std::string>{"demo.yaml:6:24: services[1].vip: 203.0.113.10 tcp/80 "
                                     "overlaps service \"web-a\" (203.0.113.10 tcp/80)"});
}

TEST(Errors, EmptyListKeysAreEmptyLists) {
  EXPECT_EQ(errors_of("nodes: [{name: gw, region: a, kind: xdp, api: 'unix:/g', vteps: "
                      "[192.0.2.1]}]\ntenants:\nservices:\npeerings:\n"),
            std::vector<std::string>{});
  EXPECT_EQ(errors_of("nodes:\n"),
            std::vector<std::string>{"demo.yaml:2:1: nodes: at least one node is required"});
}

TEST(Errors, HostileInputGetsErrorsNotCrashes) {
  // Deep nesting, huge numbers, binary junk, anchors: errors, never a crash.
  std::string deep(5000, '[');
  EXPECT_FALSE(errors_of(deep).empty());
  EXPECT_FALSE(errors_of("nodes: [{name: gw, vxlan_port: 99999999999999999999999}]").empty());
  EXPECT_FALSE(errors_of(std::string("\0\xff\xfe nodes", 9)).empty());
  EXPECT_FALSE(errors_of("a: &x [*x]\n").empty());
  EXPECT_FALSE(errors_of("nodes: [[], {}, 3, ~]\n").empty());
  // Values echoed in messages are escaped and cut short.
  auto escaped = errors_of("nodes: [{name: \"a\\tb\\e\"}]\n");
  bool found = false;
  for (const auto &e : escaped) {
    found |= e.rfind("demo.yaml:1:16: nodes[0].name: \"a\\x09b\\x1b\" is not a valid name", 0) == 0;
  }
  EXPECT_TRUE(found) << ::testing::PrintToString(escaped);
  auto long_value = errors_of("nodes: [{name: gw, kind: " + std::string(10000, 'x') + "}]\n");
  ASSERT_FALSE(long_value.empty());
  for (const auto &e : long_value)
    EXPECT_LT(e.size(), 300u) << e;
}

}  // namespace
}  // namespace stratus::config
