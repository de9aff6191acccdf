#include "config/yaml_tree.h"

#include <yaml-cpp/yaml.h>
#include <yaml.h>

#include <unordered_map>

namespace stratus::config {

// Builds the nodes of a YamlDocument (the only writer of YamlNode).
class YamlBuilder {
 public:
  explicit YamlBuilder(YamlDocument &doc) : doc_(doc) {}

  YamlNode &make(YamlNode::Type type, YamlMark mark) {
    YamlNode &n = doc_.nodes_.emplace_back();
    n.type_ = type;
    n.mark_ = mark;
    return n;
  }
  static void set_scalar(YamlNode &n, std::string_view text) { n.scalar_.assign(text); }
  static void add_child(YamlNode &parent, const YamlNode *child) {
    parent.children_.push_back(child);
  }
  void set_root(const YamlNode *root) { doc_.root_ = root; }

  // libyaml events -> nodes. False when libyaml reports an error or an alias
  // names no anchor.
  bool from_libyaml(std::string_view text);
  // A yaml-cpp tree -> nodes.
  const YamlNode *from_yaml_cpp(const YAML::Node &n);

 private:
  YamlDocument &doc_;
};

namespace {

bool is_null_text(std::string_view v) {
  return v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL";
}

YamlMark mark_of(const yaml_mark_t &m) {
  return {static_cast<int>(m.line), static_cast<int>(m.column)};
}

}  // namespace

bool YamlBuilder::from_libyaml(std::string_view text) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser))
    return false;
  struct ParserGuard {
    yaml_parser_t *p;
    ~ParserGuard() { yaml_parser_delete(p); }
  } parser_guard{&parser};
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char *>(text.data()),
                               text.size());

  std::vector<YamlNode *> open;  // sequences and mappings being filled
  std::unordered_map<std::string, const YamlNode *> anchors;
  const YamlNode *root = nullptr;
  auto attach = [&](const YamlNode *n) {
    if (open.empty()) {
      root = n;
    } else {
      add_child(*open.back(), n);
    }
  };
  auto name_anchor = [&](const yaml_char_t *anchor, const YamlNode *n) {
    if (anchor)
      anchors[reinterpret_cast<const char *>(anchor)] = n;
  };

  // An empty value ("key:" or "-" with nothing after it) is placed where
  // yaml-cpp places it: at the next token, where libyaml says the end of the
  // indicator. In a block sequence the next item's token is its "-", in the
  // sequence's column, not the item itself.
  YamlNode *empty_value = nullptr;
  const YamlNode *empty_parent = nullptr;
  int dash_column = -1;               // the block sequence holding empty_value, or -1
  std::vector<int> block_seq_column;  // per open node: its "-" column, or -1
  for (bool done = false; !done;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev))
      return false;
    struct EventGuard {
      yaml_event_t *e;
      ~EventGuard() { yaml_event_delete(e); }
    } event_guard{&ev};
    if (empty_value) {
      empty_value->mark_ = mark_of(ev.start_mark);
      bool next_item = ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
                       ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_ALIAS_EVENT;
      if (next_item && dash_column >= 0 && !open.empty() && open.back() == empty_parent)
        empty_value->mark_.column = dash_column;
      empty_value = nullptr;
    }
    switch (ev.type) {
      case YAML_SCALAR_EVENT: {
        const auto &s = ev.data.scalar;
        std::string_view v(reinterpret_cast<const char *>(s.value), s.length);
        // yaml-cpp's rule: an untagged plain scalar spelled as null is null.
        bool null = s.style == YAML_PLAIN_SCALAR_STYLE && !s.tag && is_null_text(v);
        YamlNode &n =
            make(null ? YamlNode::Type::kNull : YamlNode::Type::kScalar, mark_of(ev.start_mark));
        if (!null)
          set_scalar(n, v);
        if (null && v.empty() && !s.anchor) {
          empty_value = &n;
          empty_parent = open.empty() ? nullptr : open.back();
          dash_column = block_seq_column.empty() ? -1 : block_seq_column.back();
        }
        name_anchor(s.anchor, &n);
        attach(&n);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        bool seq = ev.type == YAML_SEQUENCE_START_EVENT;
        YamlNode &n =
            make(seq ? YamlNode::Type::kSequence : YamlNode::Type::kMap, mark_of(ev.start_mark));
        name_anchor(seq ? ev.data.sequence_start.anchor : ev.data.mapping_start.anchor, &n);
        attach(&n);
        open.push_back(&n);
        block_seq_column.push_back(
            seq && ev.data.sequence_start.style == YAML_BLOCK_SEQUENCE_STYLE ? n.mark_.column : -1);
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        if (open.empty())
          return false;
        open.pop_back();
        block_seq_column.pop_back();
        break;
      case YAML_ALIAS_EVENT: {
        auto it = anchors.find(reinterpret_cast<const char *>(ev.data.alias.anchor));
        if (it == anchors.end())
          return false;  // yaml-cpp words this error
        attach(it->second);
        break;
      }
      case YAML_DOCUMENT_END_EVENT:  // the first document only, as YAML::Load
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      case YAML_NO_EVENT:
      case YAML_STREAM_START_EVENT:
      case YAML_DOCUMENT_START_EVENT:
        break;
    }
  }
  set_root(root ? root : &make(YamlNode::Type::kNull, YamlMark{}));
  return true;
}

const YamlNode *YamlBuilder::from_yaml_cpp(const YAML::Node &n) {
  YAML::Mark m = n.Mark();
  YamlMark mark = m.is_null() ? YamlMark{} : YamlMark{m.line, m.column};
  switch (n.Type()) {
    case YAML::NodeType::Scalar: {
      YamlNode &out = make(YamlNode::Type::kScalar, mark);
      set_scalar(out, n.Scalar());
      return &out;
    }
    case YAML::NodeType::Sequence: {
      YamlNode &out = make(YamlNode::Type::kSequence, mark);
      for (std::size_t i = 0; i < n.size(); ++i)
        add_child(out, from_yaml_cpp(n[i]));
      return &out;
    }
    case YAML::NodeType::Map: {
      YamlNode &out = make(YamlNode::Type::kMap, mark);
      for (auto it = n.begin(); it != n.end(); ++it) {
        // Copies: the iterator yields a temporary pair.
        const YAML::Node k = it->first;
        const YAML::Node v = it->second;
        add_child(out, from_yaml_cpp(k));
        add_child(out, from_yaml_cpp(v));
      }
      return &out;
    }
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return &make(YamlNode::Type::kNull, mark);
}

std::unique_ptr<YamlDocument> YamlDocument::parse_libyaml(std::string_view text) {
  auto doc = std::make_unique<YamlDocument>();
  if (!YamlBuilder(*doc).from_libyaml(text))
    return nullptr;
  return doc;
}

std::unique_ptr<YamlDocument> YamlDocument::parse_yaml_cpp(std::string_view text) {
  YAML::Node root = YAML::Load(std::string(text));
  auto doc = std::make_unique<YamlDocument>();
  YamlBuilder b(*doc);
  b.set_root(b.from_yaml_cpp(root));
  return doc;
}

std::unique_ptr<YamlDocument> YamlDocument::parse(std::string_view text) {
  if (auto doc = parse_libyaml(text))
    return doc;
  return parse_yaml_cpp(text);
}

}  // namespace stratus::config
