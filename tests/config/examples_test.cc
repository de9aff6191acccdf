// Every file in config/examples/ loads without errors or warnings, compiles
// for each of its nodes, and the tables pass stratus::check().
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "config/compile.h"
#include "config/format.h"
#include "config/validate.h"

namespace stratus::config {
namespace {

std::vector<std::string> example_files() {
  const char *root = std::getenv("STRATUS_SOURCE_ROOT");
  std::filesystem::path dir = std::filesystem::path(root ? root : ".") / "config" / "examples";
  std::vector<std::string> files;
  if (std::filesystem::is_directory(dir)) {
    for (const auto &entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() == ".yaml")
        files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

TEST(Examples, TheDemoExamplesExist) {
  std::vector<std::string> names;
  for (const auto &f : example_files()) {
    names.push_back(std::filesystem::path(f).filename().string());
  }
  EXPECT_NE(std::find(names.begin(), names.end(), "single-node.yaml"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "two-region.yaml"), names.end());
}

class Example : public ::testing::TestWithParam<std::string> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Example);

TEST_P(Example, LoadsCompilesAndPassesCheck) {
  LoadResult r = load_config(GetParam());
  ASSERT_TRUE(r.ok()) << format_diagnostics(r.errors);
  EXPECT_TRUE(r.warnings.empty()) << format_diagnostics(r.warnings);
  const Config &c = *r.config;
  ASSERT_FALSE(c.nodes.empty());
  auto all = compile_all(c, {});
  ASSERT_EQ(all.size(), c.nodes.size());
  for (const auto &[node, compiled] : all) {
    SCOPED_TRACE(node);
    const Tables &tables = *compiled;
    EXPECT_EQ(check(tables), std::vector<std::string>{});
    EXPECT_EQ(tables.node.name, node);
    EXPECT_EQ(tables.vrfs.size(), c.tenants.size());
    // Recompiling against itself changes nothing (ids are stable).
    EXPECT_EQ(compile(c, node, &tables), tables);
    EXPECT_NE(format_tables(tables).find("node " + node), std::string::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Files, Example, ::testing::ValuesIn(example_files()),
                         [](const ::testing::TestParamInfo<std::string> &param) {
                           std::string name = std::filesystem::path(param.param).stem().string();
                           for (char &ch : name) {
                             if (!isalnum(static_cast<unsigned char>(ch)))
                               ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace stratus::config
