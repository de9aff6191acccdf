// config/yaml_tree.h: the libyaml tree the loader reads must be the tree
// yaml-cpp builds for the same text (types, scalars, line and column of every
// node), since the loader's messages and positions come from it; text that
// libyaml rejects goes to yaml-cpp and its syntax error.
#include <yaml-cpp/yaml.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "config/yaml_tree.h"

namespace stratus::config {
namespace {

// The first difference between two trees, as "path: what", or "".
std::string difference(const YamlNode &a, const YamlNode &b, const std::string &path) {
  auto where = [&](const std::string &what) {
    return (path.empty() ? "root" : path) + ": " + what;
  };
  if (a.IsNull() != b.IsNull() || a.IsScalar() != b.IsScalar() ||
      a.IsSequence() != b.IsSequence() || a.IsMap() != b.IsMap()) {
    return where("type");
  }
  if (a.Mark().line != b.Mark().line || a.Mark().column != b.Mark().column) {
    return where("mark " + std::to_string(a.Mark().line) + ":" + std::to_string(a.Mark().column) +
                 " vs " + std::to_string(b.Mark().line) + ":" + std::to_string(b.Mark().column));
  }
  if (a.Scalar() != b.Scalar())
    return where("scalar \"" + a.Scalar() + "\" vs \"" + b.Scalar() + "\"");
  if (a.size() != b.size())
    return where("size");
  for (std::size_t i = 0; i < a.size(); ++i) {
    std::string d = a.IsMap()
                        ? difference(a.key(i), b.key(i), path + ".key" + std::to_string(i)) +
                              difference(a.value(i), b.value(i), path + "." + a.key(i).Scalar())
                        : difference(a[i], b[i], path + "[" + std::to_string(i) + "]");
    if (!d.empty())
      return d;
  }
  return "";
}

std::string compare(const std::string &text) {
  auto fast = YamlDocument::parse_libyaml(text);
  if (!fast)
    return "libyaml rejected it";
  auto reference = YamlDocument::parse_yaml_cpp(text);
  return difference(fast->root(), reference->root(), "");
}

struct Case {
  const char *name;
  const char *text;
};

const Case kCases[] = {
    {"empty", ""},
    {"comment_only", "# nothing\n"},
    {"block_maps_and_lists",
     "nodes:\n  - name: gw\n    vteps:\n      - 192.0.2.1\n      - 192.0.2.2\n    ports: []\n"},
    {"flow_collections", "a: {b: [1, 2, {c: d}], e: []}\nf: [x, {y: z}]\n"},
    {"empty_values", "nodes:\ntenants:\nservices:\n  - name:\n    vip:\n"},
    {"empty_value_last", "a: 1\nb:\n"},
    {"empty_list_items", "a:\n  -\n  - x\n  -\n"},
    {"empty_list_items_nested", "a:\n  - - \n    -\n  -\n  - {b: }\nc: [x, ]\n"},
    {"indentless_empty_items", "a:\n-\n- b\n-\nc: 1\n"},
    {"null_spellings", "a: ~\nb: null\nc: Null\nd: NULL\ne: 'null'\nf: \"~\"\ng: nul\n"},
    {"quoted_scalars", "a: \"x y\"\nb: 'it''s'\nc: \"\\t\\x41\"\n"},
    {"indentless_list", "a:\n- 1\n- 2\nb: 3\n"},
    {"anchors_and_aliases", "a: &x {b: 1}\nc: *x\nd: &y [1, 2]\ne: *y\nf: &s scalar\ng: *s\n"},
    {"repeated_keys", "a: 1\na: 2\n"},
    {"complex_key", "? [a, b]\n: c\n"},
    {"tagged", "a: !!str 12\nb: !!null ''\n"},
    {"multiline", "a: >\n  folded\n  text\nb: |\n  literal\n  text\n"},
    {"second_document_ignored", "a: 1\n---\nb: 2\n"},
    {"document_markers", "---\na: 1\n...\n"},
    {"scalar_root", "just text\n"},
    {"list_root", "- a\n- b\n"},
    {"crlf", "a: 1\r\nb:\r\n  - x\r\n"},
};

class YamlTreeParity : public ::testing::TestWithParam<Case> {};

TEST_P(YamlTreeParity, LibyamlTreeEqualsYamlCppTree) {
  EXPECT_EQ(compare(GetParam().text), "");
}

INSTANTIATE_TEST_SUITE_P(Texts, YamlTreeParity, ::testing::ValuesIn(kCases),
                         [](const auto &tp) { return std::string(tp.param.name); });

TEST(YamlTree, ExampleConfigsParseAlike) {
  const char *root = std::getenv("STRATUS_SOURCE_ROOT");
  if (!root)
    GTEST_SKIP() << "STRATUS_SOURCE_ROOT not set";
  for (const char *name : {"single-node.yaml", "two-region.yaml"}) {
    std::ifstream f(std::string(root) + "/config/examples/" + name);
    ASSERT_TRUE(f) << name;
    std::stringstream text;
    text << f.rdbuf();
    EXPECT_EQ(compare(text.str()), "") << name;
  }
}

TEST(YamlTree, SyntaxErrorsComeFromYamlCpp) {
  const std::string text = "nodes:\n  - name: gw\n   region: a\n";
  EXPECT_EQ(YamlDocument::parse_libyaml(text), nullptr);
  try {
    YamlDocument::parse(text);
    FAIL() << "parsed broken YAML";
  } catch (const YAML::Exception &e) {
    EXPECT_EQ(e.msg, "end of sequence not found");
    EXPECT_EQ(e.mark.line, 2);
  }
}

TEST(YamlTree, AnAliasIsTheAnchoredNode) {
  auto doc = YamlDocument::parse_libyaml("a: &x {b: 1}\nc: *x\n");
  ASSERT_NE(doc, nullptr);
  EXPECT_EQ(&doc->root().value(0), &doc->root().value(1));
  EXPECT_EQ(YamlDocument::parse_libyaml("a: *nowhere\n"), nullptr) << "left to yaml-cpp";
}

}  // namespace
}  // namespace stratus::config
