// A read-only YAML document tree for the config loader (config/validate.cc):
// null, scalar, sequence and mapping nodes with the line and column each was
// written at. Parsed with libyaml, which is about ten times faster than
// yaml-cpp's YAML::Load on large files (100k routes: ~0.35 s against ~3 s);
// text that libyaml rejects is parsed again with yaml-cpp, so that syntax
// errors keep yaml-cpp's messages and positions.
//
// The accessors are named as yaml-cpp's YAML::Node so that the loader reads
// the same whichever parser built the tree; the semantics follow yaml-cpp too
// (an untagged plain "~", "null", "Null", "NULL" or empty scalar is null; an
// alias is the node its anchor named; only the first document is read).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace stratus::config {

struct YamlMark {
  int line = -1;  // from 0, as YAML::Mark; -1: unknown
  int column = -1;
  bool is_null() const { return line < 0; }
};

class YamlNode {
 public:
  enum class Type : std::uint8_t { kNull, kScalar, kSequence, kMap };

  bool IsNull() const { return type_ == Type::kNull; }
  bool IsScalar() const { return type_ == Type::kScalar; }
  bool IsSequence() const { return type_ == Type::kSequence; }
  bool IsMap() const { return type_ == Type::kMap; }
  // The text of a scalar; empty for other nodes.
  const std::string &Scalar() const { return scalar_; }
  YamlMark Mark() const { return mark_; }
  // Items of a sequence, pairs of a mapping, 0 otherwise.
  std::size_t size() const { return type_ == Type::kMap ? children_.size() / 2 : children_.size(); }
  // Sequence item i (i < size()).
  const YamlNode &operator[](std::size_t i) const { return *children_[i]; }
  // Mapping pair i (i < size()), in document order; repeated keys are kept.
  const YamlNode &key(std::size_t i) const { return *children_[2 * i]; }
  const YamlNode &value(std::size_t i) const { return *children_[2 * i + 1]; }

 private:
  friend class YamlBuilder;
  Type type_ = Type::kNull;
  YamlMark mark_;
  std::string scalar_;
  std::vector<const YamlNode *> children_;  // mapping: key, value, key, value...
};

// Owns the nodes of one document.
class YamlDocument {
 public:
  // Parses the first document of `text`. Throws YAML::Exception (from
  // yaml-cpp, with its message and mark) when the text is not YAML.
  static std::unique_ptr<YamlDocument> parse(std::string_view text);
  // The libyaml path alone: nullptr when libyaml rejects the text.
  static std::unique_ptr<YamlDocument> parse_libyaml(std::string_view text);
  // The yaml-cpp path alone (the fallback of parse(); also the reference
  // that tests compare the fast path with).
  static std::unique_ptr<YamlDocument> parse_yaml_cpp(std::string_view text);

  const YamlNode &root() const { return *root_; }

 private:
  friend class YamlBuilder;
  std::deque<YamlNode> nodes_;
  const YamlNode *root_ = nullptr;
};

}  // namespace stratus::config
