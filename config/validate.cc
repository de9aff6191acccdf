#include "config/validate.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <tuple>
#include <unordered_map>

#include "config/yaml_tree.h"
#include "lb/flow_hash.h"
#include "lb/prime.h"

namespace stratus::config {

std::string Diagnostic::str() const {
  if (!pos.known())
    return pos.file_name() + ": " + path + ": " + message;
  return pos.str() + ": " + path + ": " + message;
}

std::string format_diagnostics(const std::vector<Diagnostic> &list) {
  std::string out;
  for (const auto &d : list)
    out += d.str() + "\n";
  return out;
}

namespace {

// Largest backend weight; weights are relative, this only keeps sums small.
constexpr std::uint32_t kMaxWeight = 1000000;
constexpr std::size_t kMaxNameLength = 63;

// A value quoted for a message: control bytes escaped, long values cut, so
// that hostile input cannot garble the terminal or flood the log.
std::string quoted(std::string_view s) {
  constexpr std::size_t kMaxShown = 80;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown)
    out += "...";
  return out + "\"";
}

std::string index_path(const std::string &path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

// Collects diagnostics; sorted by position and deduplicated at the end.
class Sink {
 public:
  void error(const SourcePos &pos, std::string path, std::string message) {
    errors_.push_back({pos, std::move(path), std::move(message)});
  }
  void warning(const SourcePos &pos, std::string path, std::string message) {
    warnings_.push_back({pos, std::move(path), std::move(message)});
  }
  std::vector<Diagnostic> &errors() { return errors_; }
  std::vector<Diagnostic> &warnings() { return warnings_; }

  static void finish(std::vector<Diagnostic> &list) {
    auto key = [](const Diagnostic &d) {
      return std::make_tuple(d.pos.line, d.pos.column, std::cref(d.path), std::cref(d.message));
    };
    std::stable_sort(list.begin(), list.end(),
                     [&](const Diagnostic &a, const Diagnostic &b) { return key(a) < key(b); });
    list.erase(
        std::unique(list.begin(), list.end(),
                    [&](const Diagnostic &a, const Diagnostic &b) { return key(a) == key(b); }),
        list.end());
  }

 private:
  std::vector<Diagnostic> errors_;
  std::vector<Diagnostic> warnings_;
};

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > kMaxNameLength)
    return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
      return false;
  }
  return true;
}

std::uint32_t next_prime(std::uint32_t n) {
  while (!lb::is_prime(n))
    ++n;
  return n;
}

// ---------------------------------------------------------------- YAML -> model

// Reads the YAML tree into a Config, reporting shape and value errors (wrong
// types, unknown keys, missing keys, malformed addresses, ranges of single
// values). Cross-field rules are validate()'s.
class Loader {
 public:
  Loader(std::shared_ptr<const std::string> file, Sink &sink)
      : file_(std::move(file)), sink_(sink) {}

  Config load(const YamlNode &root);

 private:
  using Handler = std::function<void(const YamlNode &, const std::string &)>;
  struct Key {
    std::string_view name;
    Handler read;
  };

  SourcePos pos(const YamlNode &n) const {
    SourcePos p;
    p.file = file_;
    YamlMark m = n.Mark();
    if (!m.is_null()) {
      p.line = m.line + 1;
      p.column = m.column + 1;
    }
    return p;
  }
  void error(const YamlNode &n, const std::string &path, std::string message) {
    sink_.error(pos(n), path, std::move(message));
  }
  static std::string describe(const YamlNode &n) {
    if (n.IsSequence())
      return "a list";
    if (n.IsMap())
      return "a mapping";
    if (n.IsScalar())
      return quoted(n.Scalar());
    return "nothing";
  }

  // Walks a mapping, dispatching each key to its reader; unknown and
  // repeated keys are errors. Returns false when `n` is not a mapping.
  bool map(const YamlNode &n, const std::string &path, const std::vector<Key> &keys);
  // Calls each(item, path[i]) for every item of a list.
  bool list(const YamlNode &n, const std::string &path,
            const std::function<void(const YamlNode &, const std::string &)> &each);
  // Reports a required key that map() did not see.
  template <typename T>
  void require(const Field<T> &f, const YamlNode &parent, const std::string &path) {
    if (f.state == Field<T>::State::kAbsent)
      error(parent, path, "required key is missing");
  }

  template <typename T>
  bool scalar(Field<T> &f, const YamlNode &n, const std::string &path, std::string_view what) {
    if (n.IsScalar())
      return true;
    error(n, path, "expected " + std::string(what) + ", got " + describe(n));
    f.state = Field<T>::State::kInvalid;
    f.pos = pos(n);
    return false;
  }
  template <typename T>
  void invalid(Field<T> &f, const YamlNode &n, const std::string &path, std::string message) {
    error(n, path, std::move(message));
    f.state = Field<T>::State::kInvalid;
    f.pos = pos(n);
  }

  void read_string(Field<std::string> &f, const YamlNode &n, const std::string &path) {
    if (!scalar(f, n, path, "a string"))
      return;
    if (n.Scalar().empty())
      return invalid(f, n, path, "must not be empty");
    f.assign(n.Scalar(), pos(n));
  }
  void read_name(Field<std::string> &f, const YamlNode &n, const std::string &path) {
    if (!scalar(f, n, path, "a name"))
      return;
    if (!valid_name(n.Scalar())) {
      return invalid(f, n, path,
                     quoted(n.Scalar()) +
                         " is not a valid name (letters, digits, '.', '_', '-', starting with a "
                         "letter or digit, at most 63 characters)");
    }
    f.assign(n.Scalar(), pos(n));
  }
  template <typename T>
  void read_uint(Field<T> &f, const YamlNode &n, const std::string &path, std::uint64_t lo,
                 std::uint64_t hi) {
    if (!scalar(f, n, path, "an integer"))
      return;
    const std::string &s = n.Scalar();
    bool negative = !s.empty() && s[0] == '-';
    std::string_view digits(s);
    if (negative || (!s.empty() && s[0] == '+'))
      digits.remove_prefix(1);
    int base = 10;
    if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
      digits.remove_prefix(2);
      base = 16;
    }
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (digits.empty() || end != digits.data() + digits.size() ||
        (ec != std::errc() && ec != std::errc::result_out_of_range)) {
      return invalid(f, n, path, "expected an integer, got " + quoted(s));
    }
    if ((negative && (v > 0 || lo > 0)) || (!negative && v < lo)) {
      return invalid(f, n, path, "must be >= " + std::to_string(lo) + ", got " + s);
    }
    if (ec == std::errc::result_out_of_range || v > hi) {
      return invalid(f, n, path, "must be <= " + std::to_string(hi) + ", got " + s);
    }
    f.assign(static_cast<T>(v), pos(n));
  }
  template <typename T>
  void read_enum(Field<T> &f, const YamlNode &n, const std::string &path,
                 const std::vector<std::pair<std::string_view, T>> &names) {
    if (!scalar(f, n, path, "a string"))
      return;
    std::string choices;
    for (const auto &[name, value] : names) {
      if (n.Scalar() == name)
        return f.assign(value, pos(n));
      choices += (choices.empty() ? "" : ", ") + std::string(name);
    }
    invalid(f, n, path, quoted(n.Scalar()) + " is not one of: " + choices);
  }
  void read_bool(Field<bool> &f, const YamlNode &n, const std::string &path) {
    if (!scalar(f, n, path, "true or false"))
      return;
    if (n.Scalar() == "true")
      return f.assign(true, pos(n));
    if (n.Scalar() == "false")
      return f.assign(false, pos(n));
    invalid(f, n, path, "expected true or false, got " + quoted(n.Scalar()));
  }
  void read_ip(Field<IpAddress> &f, const YamlNode &n, const std::string &path) {
    if (!scalar(f, n, path, "an IP address"))
      return;
    auto a = IpAddress::parse(n.Scalar());
    if (!a)
      return invalid(f, n, path, quoted(n.Scalar()) + " is not an IP address");
    f.assign(*a, pos(n));
  }
  void read_prefix(Field<IpPrefix> &f, const YamlNode &n, const std::string &path);
  void read_mac(Field<MacAddress> &f, const YamlNode &n, const std::string &path) {
    if (!scalar(f, n, path, "a MAC address"))
      return;
    auto m = MacAddress::parse(n.Scalar());
    if (!m) {
      return invalid(f, n, path,
                     quoted(n.Scalar()) + " is not a MAC address (expected xx:xx:xx:xx:xx:xx)");
    }
    if (m->is_zero())
      return invalid(f, n, path, "the zero MAC is not a station address");
    if (m->bytes[0] & 1) {
      return invalid(f, n, path, quoted(n.Scalar()) + " is a multicast MAC, not a station address");
    }
    f.assign(*m, pos(n));
  }
  void read_name_list(Field<std::vector<Field<std::string>>> &f, const YamlNode &n,
                      const std::string &path) {
    std::vector<Field<std::string>> names;
    bool ok = list(n, path, [&](const YamlNode &item, const std::string &p) {
      names.emplace_back();
      read_name(names.back(), item, p);
    });
    if (!ok) {
      f.state = Field<std::vector<Field<std::string>>>::State::kInvalid;
      return;
    }
    f.assign(std::move(names), pos(n));
  }

  void read_flows(FlowsSpec &flows, const YamlNode &n, const std::string &path);
  void read_node(NodeSpec &node, const YamlNode &n, const std::string &path);
  void read_port(PortSpec &port, const YamlNode &n, const std::string &path);
  void read_nexthop(NextHopSpec &hop, const YamlNode &n, const std::string &path);
  void read_tenant(TenantSpec &tenant, const YamlNode &n, const std::string &path);
  void read_route(RouteSpec &route, const YamlNode &n, const std::string &path);
  void read_peering(PeeringSpec &peering, const YamlNode &n, const std::string &path);
  void read_service(ServiceSpec &service, const YamlNode &n, const std::string &path);
  void read_health_check(HealthCheckSpec &hc, const YamlNode &n, const std::string &path);
  void read_backend(BackendSpec &backend, const YamlNode &n, const std::string &path);

  std::shared_ptr<const std::string> file_;
  Sink &sink_;
};

bool Loader::map(const YamlNode &n, const std::string &path, const std::vector<Key> &keys) {
  if (!n.IsMap()) {
    error(n, path, "expected a mapping, got " + describe(n));
    return false;
  }
  for (std::size_t i = 0; i < n.size(); ++i) {
    const YamlNode &k = n.key(i);
    const YamlNode &value = n.value(i);
    const std::string &name = k.Scalar();
    std::string key_path = path.empty() ? name : path + "." + name;
    if (!k.IsScalar()) {
      error(k, path.empty() ? "document" : path, "expected a key, got " + describe(k));
      continue;
    }
    // Mappings have a handful of keys: a scan beats building a set.
    std::size_t first = 0;
    while (first < i && !(n.key(first).IsScalar() && n.key(first).Scalar() == name))
      ++first;
    if (first < i) {
      error(k, key_path,
            "duplicate key (first at line " + std::to_string(n.key(first).Mark().line + 1) + ")");
      continue;
    }
    auto key = std::find_if(keys.begin(), keys.end(), [&](const Key &c) { return c.name == name; });
    if (key != keys.end()) {
      key->read(value, key_path);
      continue;
    }
    std::string message = "unknown key " + quoted(name);
    std::string_view best;
    std::size_t best_distance = 3;
    for (const auto &c : keys) {
      std::size_t d = edit_distance(name, c.name);
      if (d < best_distance) {
        best_distance = d;
        best = c.name;
      }
    }
    if (!best.empty())
      message += " (did you mean " + quoted(best) + "?)";
    error(k, key_path, message);
  }
  return true;
}

bool Loader::list(const YamlNode &n, const std::string &path,
                  const std::function<void(const YamlNode &, const std::string &)> &each) {
  if (n.IsNull())
    return true;  // "key:" with nothing after it: an empty list
  if (!n.IsSequence()) {
    error(n, path, "expected a list, got " + describe(n));
    return false;
  }
  for (std::size_t i = 0; i < n.size(); ++i)
    each(n[i], index_path(path, i));
  return true;
}

void Loader::read_prefix(Field<IpPrefix> &f, const YamlNode &n, const std::string &path) {
  if (!scalar(f, n, path, "an IP prefix"))
    return;
  const std::string &s = n.Scalar();
  if (auto p = IpPrefix::parse(s))
    return f.assign(*p, pos(n));
  // Tell "host bits set" apart from garbage: that one is a common typo.
  auto slash = s.find('/');
  if (slash != std::string::npos) {
    auto addr = IpAddress::parse(s.substr(0, slash));
    std::string len = s.substr(slash + 1);
    unsigned bits = 0;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), bits);
    if (addr && ec == std::errc() && end == len.data() + len.size() && !len.empty() &&
        bits <= static_cast<unsigned>(addr->bit_width())) {
      IpPrefix p{*addr, static_cast<std::uint8_t>(bits)};
      return invalid(f, n, path,
                     quoted(s) + " has host bits set (did you mean " + p.canonical().str() + "?)");
    }
  }
  invalid(f, n, path, quoted(s) + " is not an IP prefix (expected address/length)");
}

Config Loader::load(const YamlNode &root) {
  Config c;
  c.file = file_;
  if (root.IsNull()) {
    error(root, "document", "the configuration is empty");
    return c;
  }
  if (!root.IsMap()) {
    error(root, "document", "expected a mapping, got " + describe(root));
    return c;
  }
  bool nodes_seen = false;
  bool ok =
      map(root, "",
          {
              {"hash_seed", [&](auto &v, auto &p) { read_uint(c.hash_seed, v, p, 0, UINT32_MAX); }},
              {"flows", [&](auto &v, auto &p) { read_flows(c.flows, v, p); }},
              {"nodes",
               [&](auto &v, auto &p) {
                 nodes_seen = true;
                 list(v, p, [&](auto &item, auto &ip) {
                   c.nodes.emplace_back();
                   read_node(c.nodes.back(), item, ip);
                 });
                 if (v.IsNull() || (v.IsSequence() && v.size() == 0)) {
                   error(v, p, "at least one node is required");
                 }
               }},
              {"tenants",
               [&](auto &v, auto &p) {
                 list(v, p, [&](auto &item, auto &ip) {
                   c.tenants.emplace_back();
                   read_tenant(c.tenants.back(), item, ip);
                 });
               }},
              {"peerings",
               [&](auto &v, auto &p) {
                 list(v, p, [&](auto &item, auto &ip) {
                   c.peerings.emplace_back();
                   read_peering(c.peerings.back(), item, ip);
                 });
               }},
              {"services",
               [&](auto &v, auto &p) {
                 list(v, p, [&](auto &item, auto &ip) {
                   c.services.emplace_back();
                   read_service(c.services.back(), item, ip);
                 });
               }},
          });
  if (ok && !nodes_seen)
    error(root, "nodes", "required key is missing");
  return c;
}

void Loader::read_flows(FlowsSpec &flows, const YamlNode &n, const std::string &path) {
  flows.pos = pos(n);
  map(n, path,
      {
          {"max_entries",
           [&](auto &v, auto &p) { read_uint(flows.max_entries, v, p, 1, 1u << 26); }},
          {"tcp_timeout_s",
           [&](auto &v, auto &p) { read_uint(flows.tcp_timeout_s, v, p, 1, 86400); }},
          {"udp_timeout_s",
           [&](auto &v, auto &p) { read_uint(flows.udp_timeout_s, v, p, 1, 86400); }},
      });
}

void Loader::read_node(NodeSpec &node, const YamlNode &n, const std::string &path) {
  node.pos = pos(n);
  bool vteps_seen = false;
  bool ok = map(
      n, path,
      {
          {"name", [&](auto &v, auto &p) { read_name(node.name, v, p); }},
          {"region", [&](auto &v, auto &p) { read_name(node.region, v, p); }},
          {"kind",
           [&](auto &v, auto &p) {
             read_enum<DataplaneKind>(
                 node.kind, v, p, {{"xdp", DataplaneKind::kXdp}, {"dpdk", DataplaneKind::kDpdk}});
           }},
          {"api",
           [&](auto &v, auto &p) {
             if (!scalar(node.api, v, p, "an endpoint"))
               return;
             auto e = ApiEndpoint::parse(v.Scalar());
             if (!e) {
               return invalid(
                   node.api, v, p,
                   quoted(v.Scalar()) + " is not an endpoint (expected unix:/path or host:port)");
             }
             node.api.assign(*e, pos(v));
           }},
          {"vteps",
           [&](auto &v, auto &p) {
             vteps_seen = true;
             list(v, p, [&](auto &item, auto &ip) {
               node.vteps.emplace_back();
               read_ip(node.vteps.back(), item, ip);
             });
             if (v.IsNull() || (v.IsSequence() && v.size() == 0)) {
               error(v, p, "at least one VTEP is required");
             }
           }},
          {"vxlan_port", [&](auto &v, auto &p) { read_uint(node.vxlan_port, v, p, 1, 65535); }},
          {"underlay_mtu",
           [&](auto &v, auto &p) { read_uint(node.underlay_mtu, v, p, 576, 9216); }},
          {"gateway_mac", [&](auto &v, auto &p) { read_mac(node.gateway_mac, v, p); }},
          {"ports",
           [&](auto &v, auto &p) {
             list(v, p, [&](auto &item, auto &ip) {
               node.ports.emplace_back();
               read_port(node.ports.back(), item, ip);
             });
           }},
          {"nexthops",
           [&](auto &v, auto &p) {
             list(v, p, [&](auto &item, auto &ip) {
               node.nexthops.emplace_back();
               read_nexthop(node.nexthops.back(), item, ip);
             });
           }},
      });
  if (!ok)
    return;
  require(node.name, n, path + ".name");
  require(node.region, n, path + ".region");
  require(node.kind, n, path + ".kind");
  require(node.api, n, path + ".api");
  if (!vteps_seen)
    error(n, path + ".vteps", "required key is missing");
}

void Loader::read_port(PortSpec &port, const YamlNode &n, const std::string &path) {
  port.pos = pos(n);
  bool ok = map(n, path,
                {
                    {"name", [&](auto &v, auto &p) { read_string(port.name, v, p); }},
                    {"role",
                     [&](auto &v, auto &p) {
                       read_enum<PortRole>(
                           port.role, v, p,
                           {{"underlay", PortRole::kUnderlay}, {"tenant", PortRole::kTenant}});
                     }},
                    {"tenant", [&](auto &v, auto &p) { read_name(port.tenant, v, p); }},
                    {"mac", [&](auto &v, auto &p) { read_mac(port.mac, v, p); }},
                });
  if (!ok)
    return;
  require(port.name, n, path + ".name");
  require(port.role, n, path + ".role");
}

void Loader::read_nexthop(NextHopSpec &hop, const YamlNode &n, const std::string &path) {
  hop.pos = pos(n);
  bool ok = map(n, path,
                {
                    {"remote",
                     [&](auto &v, auto &p) {
                       if (v.IsScalar() && v.Scalar() == "default") {
                         return hop.remote.assign(IpAddress{}, pos(v));
                       }
                       read_ip(hop.remote, v, p);
                     }},
                    {"port", [&](auto &v, auto &p) { read_string(hop.port, v, p); }},
                    {"mac", [&](auto &v, auto &p) { read_mac(hop.mac, v, p); }},
                    {"src_mac", [&](auto &v, auto &p) { read_mac(hop.src_mac, v, p); }},
                });
  if (!ok)
    return;
  require(hop.remote, n, path + ".remote");
  require(hop.port, n, path + ".port");
  require(hop.mac, n, path + ".mac");
}

void Loader::read_tenant(TenantSpec &tenant, const YamlNode &n, const std::string &path) {
  tenant.pos = pos(n);
  bool ok = map(n, path,
                {
                    {"name", [&](auto &v, auto &p) { read_name(tenant.name, v, p); }},
                    {"vni", [&](auto &v, auto &p) { read_uint(tenant.vni, v, p, 1, kMaxVni); }},
                    {"region_vnis",
                     [&](auto &v, auto &p) {
                       if (!v.IsMap())
                         return error(v, p, "expected a mapping, got " + describe(v));
                       std::set<std::string> seen;
                       for (std::size_t i = 0; i < v.size(); ++i) {
                         const YamlNode &key = v.key(i);
                         const YamlNode &value = v.value(i);
                         RegionVni rv;
                         rv.pos = pos(key);
                         std::string rp = p + "." + (key.IsScalar() ? key.Scalar() : "?");
                         read_name(rv.region, key, rp);
                         if (rv.region.set() && !seen.insert(*rv.region).second) {
                           error(key, rp, "duplicate key");
                           continue;
                         }
                         read_uint(rv.vni, value, rp, 1, kMaxVni);
                         tenant.region_vnis.push_back(std::move(rv));
                       }
                     }},
                    {"subnets",
                     [&](auto &v, auto &p) {
                       list(v, p, [&](auto &item, auto &ip) {
                         tenant.subnets.emplace_back();
                         read_prefix(tenant.subnets.back(), item, ip);
                       });
                     }},
                    {"gateways",
                     [&](auto &v, auto &p) {
                       list(v, p, [&](auto &item, auto &ip) {
                         tenant.gateways.emplace_back();
                         read_ip(tenant.gateways.back(), item, ip);
                       });
                     }},
                    {"routes",
                     [&](auto &v, auto &p) {
                       list(v, p, [&](auto &item, auto &ip) {
                         tenant.routes.emplace_back();
                         read_route(tenant.routes.back(), item, ip);
                       });
                     }},
                });
  if (!ok)
    return;
  require(tenant.name, n, path + ".name");
  require(tenant.vni, n, path + ".vni");
}

void Loader::read_route(RouteSpec &route, const YamlNode &n, const std::string &path) {
  route.pos = pos(n);
  std::string first_target;
  // Each target key claims the route; a second one is an error.
  auto claim = [&](RouteTarget t, const YamlNode &v, const std::string &p) {
    std::string name(to_string(t));
    if (!first_target.empty()) {
      error(v, p,
            "a route has exactly one of remote, peering, local, blackhole (this one also has " +
                first_target + ")");
      return false;
    }
    first_target = name;
    route.target = t;
    route.target_pos = pos(v);
    return true;
  };
  bool ok =
      map(n, path,
          {
              {"prefix", [&](auto &v, auto &p) { read_prefix(route.prefix, v, p); }},
              {"region", [&](auto &v, auto &p) { read_name(route.region, v, p); }},
              {"remote",
               [&](auto &v, auto &p) {
                 if (!claim(RouteTarget::kRemote, v, p))
                   return;
                 auto &r = route.remote;
                 r.pos = pos(v);
                 if (!map(v, p,
                          {
                              {"vtep", [&](auto &v2, auto &p2) { read_ip(r.vtep, v2, p2); }},
                              {"mac", [&](auto &v2, auto &p2) { read_mac(r.mac, v2, p2); }},
                          })) {
                   return;
                 }
                 require(r.vtep, v, p + ".vtep");
                 require(r.mac, v, p + ".mac");
               }},
              {"peering",
               [&](auto &v, auto &p) {
                 if (claim(RouteTarget::kPeering, v, p))
                   read_name(route.peering, v, p);
               }},
              {"local",
               [&](auto &v, auto &p) {
                 if (!claim(RouteTarget::kLocal, v, p))
                   return;
                 auto &l = route.local;
                 l.pos = pos(v);
                 if (!map(v, p,
                          {
                              {"node", [&](auto &v2, auto &p2) { read_name(l.node, v2, p2); }},
                              {"port", [&](auto &v2, auto &p2) { read_string(l.port, v2, p2); }},
                              {"mac", [&](auto &v2, auto &p2) { read_mac(l.mac, v2, p2); }},
                          })) {
                   return;
                 }
                 require(l.node, v, p + ".node");
                 require(l.port, v, p + ".port");
                 require(l.mac, v, p + ".mac");
               }},
              {"blackhole",
               [&](auto &v, auto &p) {
                 Field<bool> b;
                 read_bool(b, v, p);
                 if (b.set() && !*b) {
                   return error(v, p, "must be true (leave the key out for another target)");
                 }
                 if (b.set())
                   claim(RouteTarget::kBlackhole, v, p);
               }},
          });
  if (!ok)
    return;
  require(route.prefix, n, path + ".prefix");
  if (first_target.empty()) {
    error(n, path, "needs one of remote, peering, local, blackhole");
  }
}

void Loader::read_peering(PeeringSpec &peering, const YamlNode &n, const std::string &path) {
  peering.pos = pos(n);
  bool ok = map(
      n, path,
      {
          {"name", [&](auto &v, auto &p) { read_name(peering.name, v, p); }},
          {"region", [&](auto &v, auto &p) { read_name(peering.region, v, p); }},
          {"remote_region", [&](auto &v, auto &p) { read_name(peering.remote_region, v, p); }},
          {"remote_vtep", [&](auto &v, auto &p) { read_ip(peering.remote_vtep, v, p); }},
          {"remote_mac", [&](auto &v, auto &p) { read_mac(peering.remote_mac, v, p); }},
          {"vni_map",
           [&](auto &v, auto &p) {
             list(v, p, [&](auto &item, auto &ip) {
               peering.vni_map.emplace_back();
               auto &e = peering.vni_map.back();
               e.pos = pos(item);
               if (!map(item, ip,
                        {
                            {"tenant", [&](auto &v2, auto &p2) { read_name(e.tenant, v2, p2); }},
                            {"vni",
                             [&](auto &v2, auto &p2) { read_uint(e.vni, v2, p2, 1, kMaxVni); }},
                        })) {
                 return;
               }
               require(e.tenant, item, ip + ".tenant");
               require(e.vni, item, ip + ".vni");
             });
           }},
      });
  if (!ok)
    return;
  require(peering.name, n, path + ".name");
  require(peering.region, n, path + ".region");
  require(peering.remote_vtep, n, path + ".remote_vtep");
  require(peering.remote_mac, n, path + ".remote_mac");
}

void Loader::read_health_check(HealthCheckSpec &hc, const YamlNode &n, const std::string &path) {
  hc.pos = pos(n);
  map(n, path,
      {
          {"type",
           [&](auto &v, auto &p) {
             read_enum<HealthCheckType>(
                 hc.type, v, p, {{"tcp", HealthCheckType::kTcp}, {"http", HealthCheckType::kHttp}});
           }},
          {"address", [&](auto &v, auto &p) { read_ip(hc.address, v, p); }},
          {"port", [&](auto &v, auto &p) { read_uint(hc.port, v, p, 1, 65535); }},
          {"path",
           [&](auto &v, auto &p) {
             read_string(hc.path, v, p);
             if (hc.path.set() && hc.path->front() != '/') {
               invalid(hc.path, v, p, "must start with '/', got " + quoted(*hc.path));
             }
           }},
          {"expect_status", [&](auto &v, auto &p) { read_uint(hc.expect_status, v, p, 100, 599); }},
          {"interval_ms", [&](auto &v, auto &p) { read_uint(hc.interval_ms, v, p, 100, 3600000); }},
          {"timeout_ms", [&](auto &v, auto &p) { read_uint(hc.timeout_ms, v, p, 10, 3600000); }},
          {"rise", [&](auto &v, auto &p) { read_uint(hc.rise, v, p, 1, 100); }},
          {"fall", [&](auto &v, auto &p) { read_uint(hc.fall, v, p, 1, 100); }},
      });
}

void Loader::read_service(ServiceSpec &service, const YamlNode &n, const std::string &path) {
  service.pos = pos(n);
  bool ok =
      map(n, path,
          {
              {"name", [&](auto &v, auto &p) { read_name(service.name, v, p); }},
              {"vip", [&](auto &v, auto &p) { read_ip(service.vip, v, p); }},
              {"tenant", [&](auto &v, auto &p) { read_name(service.tenant, v, p); }},
              {"protocol",
               [&](auto &v, auto &p) {
                 read_enum<std::uint8_t>(service.protocol, v, p, {{"tcp", 6}, {"udp", 17}});
               }},
              {"port", [&](auto &v, auto &p) { read_uint(service.port, v, p, 0, 65535); }},
              {"maglev_size",
               [&](auto &v, auto &p) {
                 read_uint(service.maglev_size, v, p, 2, kMaxMaglevSize);
                 if (service.maglev_size.set() && !lb::is_prime(*service.maglev_size)) {
                   std::uint32_t m = *service.maglev_size;
                   invalid(service.maglev_size, v, p,
                           std::to_string(m) + " is not a prime (the next prime is " +
                               std::to_string(next_prime(m)) + ")");
                 }
               }},
              {"hash",
               [&](auto &v, auto &p) {
                 static const std::vector<std::pair<std::string_view, std::uint32_t>> kFlags = {
                     {"src_ip", STRATUS_HASH_SRC_IP},     {"dst_ip", STRATUS_HASH_DST_IP},
                     {"src_port", STRATUS_HASH_SRC_PORT}, {"dst_port", STRATUS_HASH_DST_PORT},
                     {"proto", STRATUS_HASH_PROTO},
                 };
                 std::uint32_t flags = 0;
                 bool bad = false;
                 bool ok2 = list(v, p, [&](auto &item, auto &ip) {
                   Field<std::uint32_t> flag;
                   read_enum<std::uint32_t>(flag, item, ip, kFlags);
                   if (!flag.set()) {
                     bad = true;
                   } else if (flags & *flag) {
                     error(item, ip, "duplicate hash field " + quoted(item.Scalar()));
                   } else {
                     flags |= *flag;
                   }
                 });
                 if (!ok2 || bad) {
                   service.hash.state = Field<std::uint32_t>::State::kInvalid;
                   return;
                 }
                 if (flags == 0)
                   return invalid(service.hash, v, p, "needs at least one field");
                 service.hash.assign(flags, pos(v));
               }},
              {"mode",
               [&](auto &v, auto &p) {
                 read_enum<ForwardingMode>(service.mode, v, p, {{"dsr", ForwardingMode::kDsr}});
               }},
              {"regions", [&](auto &v, auto &p) { read_name_list(service.regions, v, p); }},
              {"health_check",
               [&](auto &v, auto &p) {
                 service.health_check.emplace();
                 read_health_check(*service.health_check, v, p);
               }},
              {"backends",
               [&](auto &v, auto &p) {
                 list(v, p, [&](auto &item, auto &ip) {
                   service.backends.emplace_back();
                   read_backend(service.backends.back(), item, ip);
                 });
               }},
          });
  if (!ok)
    return;
  require(service.name, n, path + ".name");
  require(service.vip, n, path + ".vip");
}

void Loader::read_backend(BackendSpec &backend, const YamlNode &n, const std::string &path) {
  backend.pos = pos(n);
  bool ok =
      map(n, path,
          {
              {"name", [&](auto &v, auto &p) { read_name(backend.name, v, p); }},
              {"address", [&](auto &v, auto &p) { read_ip(backend.address, v, p); }},
              {"tenant", [&](auto &v, auto &p) { read_name(backend.tenant, v, p); }},
              {"vtep", [&](auto &v, auto &p) { read_ip(backend.vtep, v, p); }},
              {"mac", [&](auto &v, auto &p) { read_mac(backend.mac, v, p); }},
              {"region", [&](auto &v, auto &p) { read_name(backend.region, v, p); }},
              {"weight", [&](auto &v, auto &p) { read_uint(backend.weight, v, p, 0, kMaxWeight); }},
              {"state",
               [&](auto &v, auto &p) {
                 read_enum<BackendState>(backend.state, v, p,
                                         {{"active", BackendState::kActive},
                                          {"draining", BackendState::kDraining},
                                          {"down", BackendState::kDown}});
               }},
              {"health_check",
               [&](auto &v, auto &p) {
                 backend.health_check.emplace();
                 read_health_check(*backend.health_check, v, p);
               }},
          });
  if (!ok)
    return;
  require(backend.name, n, path + ".name");
  require(backend.address, n, path + ".address");
}

// ---------------------------------------------------------------- semantic checks

class Checker {
 public:
  Checker(const Config &c, Sink &sink) : c_(c), sink_(sink) {
    // First of each name, as Config::find_tenant: a tenant is looked up per
    // backend, port and vni_map entry, a scan each would be quadratic.
    for (const auto &t : c_.tenants) {
      if (t.name.set())
        tenants_.emplace(*t.name, &t);
    }
  }
  void run();

 private:
  template <typename T>
  void error(const Field<T> &f, const std::string &path, std::string message) {
    sink_.error(f.pos, path, std::move(message));
  }
  void error(const SourcePos &pos, const std::string &path, std::string message) {
    sink_.error(pos, path, std::move(message));
  }
  std::string known_regions() const {
    std::string out;
    for (const auto &r : c_.regions())
      out += (out.empty() ? "" : ", ") + r;
    return out.empty() ? "none" : out;
  }
  // Reports an unknown region; true when the region is known.
  bool check_region(const Field<std::string> &f, const std::string &path) {
    if (!f.set() || c_.has_region(*f))
      return true;
    error(f, path,
          "unknown region " + quoted(*f) + " (regions named by nodes: " + known_regions() + ")");
    return false;
  }
  bool check_tenant(const Field<std::string> &f, const std::string &path) {
    if (!f.set() || find_tenant(*f))
      return true;
    error(f, path, "unknown tenant " + quoted(*f));
    return false;
  }
  template <typename T>
  void check_unique_names(const std::vector<T> &items, const std::string &path,
                          std::string_view what) {
    std::map<std::string, const T *> seen;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const auto &name = items[i].name;
      if (!name.set())
        continue;
      auto [it, fresh] = seen.emplace(*name, &items[i]);
      if (!fresh) {
        error(name, index_path(path, i) + ".name",
              "duplicate " + std::string(what) + " " + quoted(*name) + " (first at line " +
                  std::to_string(it->second->name.pos.line) + ")");
      }
    }
  }

  void check_nodes();
  void check_tenants();
  void check_vnis();
  void check_routes(const TenantSpec &t, const std::string &path);
  void check_peerings();
  void check_services();
  void check_backends(const ServiceSpec &s, const std::string &path);
  void check_health_checks(const ServiceSpec &s, const std::string &path);
  // The nodes a route is installed on (see docs/config.md, "routes").
  std::vector<bool> route_scope(const RouteSpec &r) const;

  const TenantSpec *find_tenant(const std::string &name) const {
    auto it = tenants_.find(name);
    return it == tenants_.end() ? nullptr : it->second;
  }

  const Config &c_;
  Sink &sink_;
  std::unordered_map<std::string_view, const TenantSpec *> tenants_;
};

void Checker::run() {
  check_nodes();
  check_tenants();
  check_vnis();
  check_peerings();
  check_services();
}

void Checker::check_nodes() {
  check_unique_names(c_.nodes, "nodes", "node");
  std::map<IpAddress, std::string> vtep_owner;
  std::map<std::string, std::string> api_owner;
  for (std::size_t i = 0; i < c_.nodes.size(); ++i) {
    const NodeSpec &n = c_.nodes[i];
    std::string path = index_path("nodes", i);
    std::string name = n.name.set() ? *n.name : "";
    for (std::size_t v = 0; v < n.vteps.size(); ++v) {
      if (!n.vteps[v].set())
        continue;
      auto [it, fresh] = vtep_owner.emplace(*n.vteps[v], name);
      if (!fresh) {
        error(n.vteps[v], index_path(path + ".vteps", v),
              "VTEP " + n.vteps[v]->str() + " is already used by node " + quoted(it->second));
      }
    }
    if (n.api.set()) {
      auto [it, fresh] = api_owner.emplace(n.api->str(), name);
      if (!fresh) {
        error(n.api, path + ".api",
              "endpoint " + n.api->str() + " is already used by node " + quoted(it->second));
      }
    }
    if (n.ports.size() > kMaxPorts) {
      error(n.pos, path + ".ports", "more than " + std::to_string(kMaxPorts) + " ports");
    }
    std::map<std::string, std::size_t> port_names;
    for (std::size_t p = 0; p < n.ports.size(); ++p) {
      const PortSpec &port = n.ports[p];
      std::string pp = index_path(path + ".ports", p);
      if (port.name.set() && !port_names.emplace(*port.name, p).second) {
        error(port.name, pp + ".name",
              "duplicate port " + quoted(*port.name) + " (first at line " +
                  std::to_string(n.ports[port_names[*port.name]].name.pos.line) + ")");
      }
      if (!port.role.set())
        continue;
      if (*port.role == PortRole::kTenant) {
        if (port.tenant.state == Field<std::string>::State::kAbsent) {
          error(port.pos, pp + ".tenant", "required for a tenant port");
        }
        check_tenant(port.tenant, pp + ".tenant");
      } else if (port.tenant.set()) {
        error(port.tenant, pp + ".tenant", "only tenant ports belong to a tenant");
      }
    }
    std::map<IpAddress, std::size_t> remotes;
    for (std::size_t h = 0; h < n.nexthops.size(); ++h) {
      const NextHopSpec &hop = n.nexthops[h];
      std::string hp = index_path(path + ".nexthops", h);
      if (hop.remote.set() && !remotes.emplace(*hop.remote, h).second) {
        error(hop.remote, hp + ".remote",
              hop.remote->empty() ? std::string("duplicate default next hop")
                                  : "duplicate next hop for " + hop.remote->str());
      }
      if (!hop.port.set())
        continue;
      const PortSpec *port = n.find_port(*hop.port);
      if (!port) {
        error(hop.port, hp + ".port", "node " + quoted(name) + " has no port " + quoted(*hop.port));
      } else if (port->role.set() && *port->role != PortRole::kUnderlay) {
        error(hop.port, hp + ".port", "port " + quoted(*hop.port) + " is not an underlay port");
      }
    }
  }
}

void Checker::check_tenants() {
  check_unique_names(c_.tenants, "tenants", "tenant");
  if (c_.tenants.size() >= kMaxVrfs) {
    error(c_.tenants.back().pos, "tenants",
          "more than " + std::to_string(kMaxVrfs - 1) + " tenants");
  }
  for (std::size_t i = 0; i < c_.tenants.size(); ++i) {
    const TenantSpec &t = c_.tenants[i];
    std::string path = index_path("tenants", i);
    std::string name = t.name.set() ? *t.name : "";
    for (const auto &rv : t.region_vnis) {
      if (rv.region.set())
        check_region(rv.region, path + ".region_vnis." + *rv.region);
    }
    for (std::size_t s = 0; s < t.subnets.size(); ++s) {
      if (!t.subnets[s].set())
        continue;
      for (std::size_t o = 0; o < s; ++o) {
        if (t.subnets[o].set() && t.subnets[o]->overlaps(*t.subnets[s])) {
          error(t.subnets[s], index_path(path + ".subnets", s),
                "subnet " + t.subnets[s]->str() + " overlaps " + t.subnets[o]->str());
          break;
        }
      }
    }
    std::set<IpAddress> gateways;
    for (std::size_t g = 0; g < t.gateways.size(); ++g) {
      const auto &gw = t.gateways[g];
      if (!gw.set())
        continue;
      std::string gp = index_path(path + ".gateways", g);
      if (!gateways.insert(*gw).second) {
        error(gw, gp, "duplicate gateway " + gw->str());
      } else if (!t.contains(*gw)) {
        error(gw, gp, "gateway " + gw->str() + " is not inside a subnet of tenant " + quoted(name));
      }
    }
    check_routes(t, path);
  }
}

// Every region gives each tenant one VNI (region_vnis, else vni); within a
// region the VNI picks the VRF, so it must be unique there.
void Checker::check_vnis() {
  std::set<std::pair<int, int>> reported;  // positions already reported
  for (const auto &region : c_.regions()) {
    std::map<std::uint32_t, const TenantSpec *> owner;
    for (std::size_t i = 0; i < c_.tenants.size(); ++i) {
      const TenantSpec &t = c_.tenants[i];
      if (!t.vni.set() || !t.name.set())
        continue;
      std::uint32_t vni = t.vni_in(region);
      SourcePos pos = t.vni.pos;
      std::string path = index_path("tenants", i) + ".vni";
      for (const auto &rv : t.region_vnis) {
        if (rv.region.set() && rv.vni.set() && *rv.region == region) {
          pos = rv.vni.pos;
          path = index_path("tenants", i) + ".region_vnis." + region;
        }
      }
      auto [it, fresh] = owner.emplace(vni, &t);
      if (fresh || !reported.insert({pos.line, pos.column}).second)
        continue;
      error(pos, path,
            "VNI " + std::to_string(vni) + " is already used by tenant " +
                quoted(*it->second->name) + " in region " + quoted(region));
    }
  }
}

std::vector<bool> Checker::route_scope(const RouteSpec &r) const {
  std::vector<bool> scope(c_.nodes.size(), false);
  const PeeringSpec *peering =
      r.target == RouteTarget::kPeering && r.peering.set() ? c_.find_peering(*r.peering) : nullptr;
  for (std::size_t i = 0; i < c_.nodes.size(); ++i) {
    const NodeSpec &n = c_.nodes[i];
    if (!n.region.set())
      continue;
    bool in = !r.region.set() || *r.region == *n.region;
    if (peering && peering->region.set())
      in = in && *peering->region == *n.region;
    if (r.target == RouteTarget::kLocal)
      in = in && r.local.node.set() && n.name.set() && *r.local.node == *n.name;
    scope[i] = in;
  }
  return scope;
}

void Checker::check_routes(const TenantSpec &t, const std::string &path) {
  std::string tenant = t.name.set() ? *t.name : "";
  std::vector<std::vector<bool>> scopes;
  std::map<IpPrefix, std::vector<std::size_t>> by_prefix;
  for (std::size_t i = 0; i < t.routes.size(); ++i) {
    const RouteSpec &r = t.routes[i];
    std::string rp = index_path(path + ".routes", i);
    bool region_ok = check_region(r.region, rp + ".region");
    switch (r.target) {
      case RouteTarget::kPeering: {
        if (!r.peering.set())
          break;
        const PeeringSpec *p = c_.find_peering(*r.peering);
        if (!p) {
          error(r.peering, rp + ".peering", "unknown peering " + quoted(*r.peering));
          break;
        }
        if (t.name.set() && !p->find_vni(tenant)) {
          error(r.peering, rp + ".peering",
                "peering " + quoted(*r.peering) + " has no vni_map entry for tenant " +
                    quoted(tenant));
        }
        if (region_ok && r.region.set() && p->region.set() && *r.region != *p->region) {
          error(r.peering, rp + ".peering",
                "peering " + quoted(*r.peering) + " is installed by region " + quoted(*p->region) +
                    ", not " + quoted(*r.region));
        }
        break;
      }
      case RouteTarget::kLocal: {
        const LocalTargetSpec &l = r.local;
        if (!l.node.set())
          break;
        const NodeSpec *n = c_.find_node(*l.node);
        if (!n) {
          error(l.node, rp + ".local.node", "unknown node " + quoted(*l.node));
          break;
        }
        if (region_ok && r.region.set() && n->region.set() && *n->region != *r.region) {
          error(l.node, rp + ".local.node",
                "node " + quoted(*l.node) + " is in region " + quoted(*n->region) + ", not " +
                    quoted(*r.region));
        }
        if (!l.port.set())
          break;
        const PortSpec *port = n->find_port(*l.port);
        if (!port) {
          error(l.port, rp + ".local.port",
                "node " + quoted(*l.node) + " has no port " + quoted(*l.port));
        } else if (port->role.set() && *port->role != PortRole::kTenant) {
          error(
              l.port, rp + ".local.port",
              "port " + quoted(*l.port) + " of node " + quoted(*l.node) + " is not a tenant port");
        } else if (port->tenant.set() && t.name.set() && *port->tenant != tenant) {
          error(l.port, rp + ".local.port",
                "port " + quoted(*l.port) + " of node " + quoted(*l.node) + " belongs to tenant " +
                    quoted(*port->tenant) + ", not " + quoted(tenant));
        }
        break;
      }
      case RouteTarget::kRemote:
      case RouteTarget::kBlackhole:
      case RouteTarget::kNone:
        break;
    }
    scopes.push_back(route_scope(r));
    if (!r.prefix.set())
      continue;
    // Earlier routes with the same prefix, in order: linear in the routes.
    std::vector<std::size_t> &same = by_prefix[*r.prefix];
    same.push_back(i);
    for (std::size_t o : same) {
      if (o == i)
        break;
      const RouteSpec &other = t.routes[o];
      bool shared = false;
      for (std::size_t n = 0; n < c_.nodes.size(); ++n)
        shared |= scopes[i][n] && scopes[o][n];
      if (shared) {
        error(r.prefix, rp + ".prefix",
              "duplicate route for " + r.prefix->str() + " (first at line " +
                  std::to_string(other.prefix.pos.line) + ")");
        break;
      }
    }
  }
}

void Checker::check_peerings() {
  check_unique_names(c_.peerings, "peerings", "peering");
  for (std::size_t i = 0; i < c_.peerings.size(); ++i) {
    const PeeringSpec &p = c_.peerings[i];
    std::string path = index_path("peerings", i);
    check_region(p.region, path + ".region");
    // The region on the other side: named, or the region of the node that
    // owns remote_vtep. Unknown when that region is managed elsewhere.
    std::string remote_region = p.remote_region.set() ? *p.remote_region : "";
    if (p.remote_vtep.set()) {
      for (const auto &n : c_.nodes) {
        bool owns = std::any_of(n.vteps.begin(), n.vteps.end(), [&](const Field<IpAddress> &v) {
          return v.set() && *v == *p.remote_vtep;
        });
        if (!owns || !n.region.set() || !n.name.set())
          continue;
        if (p.region.set() && *n.region == *p.region) {
          error(p.remote_vtep, path + ".remote_vtep",
                p.remote_vtep->str() + " is a VTEP of node " + quoted(*n.name) +
                    " in the peering's own region " + quoted(*p.region));
        } else if (p.remote_region.set() && *n.region != *p.remote_region) {
          error(p.remote_vtep, path + ".remote_vtep",
                p.remote_vtep->str() + " is a VTEP of node " + quoted(*n.name) + " in region " +
                    quoted(*n.region) + ", not " + quoted(*p.remote_region));
        } else {
          if (remote_region.empty())
            remote_region = *n.region;
          if (p.remote_mac.set() && *p.remote_mac != n.effective_gateway_mac()) {
            error(p.remote_mac, path + ".remote_mac",
                  p.remote_mac->str() + " is not the gateway_mac of node " + quoted(*n.name) +
                      " (" + n.effective_gateway_mac().str() + ")");
          }
        }
      }
    }
    if (p.remote_region.set() && p.region.set() && *p.remote_region == *p.region) {
      error(p.remote_region, path + ".remote_region",
            "must differ from the peering's region " + quoted(*p.region));
    }
    std::set<std::string> tenants;
    for (std::size_t e = 0; e < p.vni_map.size(); ++e) {
      const VniMapEntry &entry = p.vni_map[e];
      std::string ep = index_path(path + ".vni_map", e);
      if (!entry.tenant.set())
        continue;
      if (!tenants.insert(*entry.tenant).second) {
        error(entry.tenant, ep + ".tenant",
              "duplicate vni_map entry for tenant " + quoted(*entry.tenant));
        continue;
      }
      if (!check_tenant(entry.tenant, ep + ".tenant"))
        continue;
      const TenantSpec *t = find_tenant(*entry.tenant);
      if (!entry.vni.set() || !t->vni.set() || remote_region.empty() ||
          !c_.has_region(remote_region)) {
        continue;
      }
      std::uint32_t expected = t->vni_in(remote_region);
      if (*entry.vni != expected) {
        error(entry.vni, ep + ".vni",
              "VNI " + std::to_string(*entry.vni) + " does not match tenant " +
                  quoted(*entry.tenant) + "'s VNI " + std::to_string(expected) + " in region " +
                  quoted(remote_region));
      }
    }
  }
}

void Checker::check_services() {
  check_unique_names(c_.services, "services", "service");
  if (c_.services.size() > kMaxServices) {
    error(c_.services.back().pos, "services",
          "more than " + std::to_string(kMaxServices) + " services");
  }
  std::size_t total_backends = 0;
  std::map<IpAddress, std::vector<std::size_t>> by_vip;
  for (std::size_t i = 0; i < c_.services.size(); ++i) {
    const ServiceSpec &s = c_.services[i];
    std::string path = index_path("services", i);
    check_tenant(s.tenant, path + ".tenant");
    if (s.regions.set()) {
      std::set<std::string> seen;
      for (std::size_t r = 0; r < s.regions->size(); ++r) {
        const auto &region = (*s.regions)[r];
        if (!region.set())
          continue;
        std::string rp = index_path(path + ".regions", r);
        if (!seen.insert(*region).second) {
          error(region, rp, "duplicate region " + quoted(*region));
        } else {
          check_region(region, rp);
        }
      }
    }
    if (s.vip.set()) {
      // Two services overlap when a packet could match both on one node.
      // Only earlier services with the same VIP can (in order, as a scan).
      std::vector<std::size_t> &same = by_vip[*s.vip];
      same.push_back(i);
      for (std::size_t o : same) {
        if (o == i)
          break;
        const ServiceSpec &other = c_.services[o];
        if (other.tenant.invalid() || s.tenant.invalid() || other.protocol.invalid() ||
            s.protocol.invalid() || other.port.invalid() || s.port.invalid()) {
          continue;
        }
        if (other.tenant.set() != s.tenant.set() ||
            (s.tenant.set() && *s.tenant != *other.tenant)) {
          continue;
        }
        if (*other.protocol != *s.protocol)
          continue;
        if (*other.port != *s.port && *other.port != 0 && *s.port != 0)
          continue;
        bool shared_region = false;
        for (const auto &region : c_.regions()) {
          shared_region |= s.in_region(region) && other.in_region(region);
        }
        if (!shared_region && !c_.regions().empty())
          continue;
        auto key = [](const ServiceSpec &x) {
          return x.vip->str() + " " + protocol_name(*x.protocol) + "/" +
                 (*x.port == 0 ? std::string("any") : std::to_string(*x.port));
        };
        error(s.vip, path + ".vip",
              key(s) + " overlaps service " + quoted(other.name.set() ? *other.name : "") + " (" +
                  key(other) + ")");
        break;
      }
    }
    std::size_t nb = s.backends.size();
    total_backends += nb;
    if (nb > kMaxBackendsPerService) {
      error(s.pos, path + ".backends",
            std::to_string(nb) + " backends, more than " + std::to_string(kMaxBackendsPerService));
    }
    if (!s.maglev_size.invalid()) {
      SourcePos mpos = s.maglev_size.set() ? s.maglev_size.pos : s.pos;
      std::string mpath = path + ".maglev_size";
      if (*s.maglev_size < nb) {
        error(mpos, mpath,
              "maglev_size " + std::to_string(*s.maglev_size) +
                  " is smaller than the number of backends (" + std::to_string(nb) + ")");
      } else if (*s.maglev_size < 100 * nb) {
        sink_.warning(mpos, mpath,
                      "maglev_size " + std::to_string(*s.maglev_size) + " is less than 100 x " +
                          std::to_string(nb) + " backends: the load will spread unevenly");
      }
    }
    check_backends(s, path);
    check_health_checks(s, path);
  }
  if (total_backends > kMaxBackends) {
    error(c_.services.back().pos, "services",
          std::to_string(total_backends) + " backends in all, more than " +
              std::to_string(kMaxBackends));
  }
}

void Checker::check_backends(const ServiceSpec &s, const std::string &path) {
  check_unique_names(s.backends, path + ".backends", "backend");
  std::map<std::pair<std::string, IpAddress>, std::string> addresses;
  bool any_can_take_flows = false;
  for (std::size_t i = 0; i < s.backends.size(); ++i) {
    const BackendSpec &b = s.backends[i];
    std::string bp = index_path(path + ".backends", i);
    std::string name = b.name.set() ? *b.name : "";
    any_can_take_flows |= *b.weight > 0 && *b.state == BackendState::kActive;
    check_region(b.region, bp + ".region");
    if (b.tenant.invalid())
      continue;
    std::string tenant = b.tenant.set() ? *b.tenant : "";
    if (b.address.set()) {
      auto [it, fresh] = addresses.emplace(std::make_pair(tenant, *b.address), name);
      if (!fresh) {
        error(b.address, bp + ".address",
              "address " + b.address->str() + " (" +
                  (tenant.empty() ? std::string("underlay") : "tenant " + quoted(tenant)) +
                  ") is already used by backend " + quoted(it->second));
      }
    }
    if (b.tenant.set()) {
      if (check_tenant(b.tenant, bp + ".tenant")) {
        const TenantSpec *t = find_tenant(tenant);
        if (b.address.set() && !t->contains(*b.address)) {
          error(b.address, bp + ".address",
                "address " + b.address->str() + " is not inside a subnet of tenant " +
                    quoted(tenant));
        }
      }
      if (b.vtep.state == Field<IpAddress>::State::kAbsent) {
        error(b.pos, bp + ".vtep", "required for a tenant (VXLAN) backend");
      }
      if (b.mac.state == Field<MacAddress>::State::kAbsent) {
        error(b.pos, bp + ".mac", "required for a tenant (VXLAN) backend");
      }
    } else {
      if (b.vtep.set()) {
        error(b.vtep, bp + ".vtep",
              "only tenant (VXLAN) backends have a VTEP; without a tenant the backend is "
              "reached by IPIP at its address");
      }
      if (b.mac.set()) {
        error(b.mac, bp + ".mac", "only tenant (VXLAN) backends have a MAC");
      }
    }
  }
  if (!s.backends.empty() && !any_can_take_flows) {
    sink_.warning(s.name.set() ? s.name.pos : s.pos, path,
                  "no backend can take new flows (all are down, draining or weight 0)");
  }
}

void Checker::check_health_checks(const ServiceSpec &s, const std::string &path) {
  auto check_one = [&](const HealthCheckSpec *service_hc, const HealthCheckSpec *backend_hc,
                       const std::string &hc_path, const SourcePos &hc_pos) {
    // The key comes from the backend's override when it sets it.
    auto pick = [&](auto member) -> const Field<std::uint32_t> * {
      if (backend_hc && (backend_hc->*member).set())
        return &(backend_hc->*member);
      if (service_hc && (service_hc->*member).set())
        return &(service_hc->*member);
      return nullptr;
    };
    bool port_set = (backend_hc && (backend_hc->port.set() || backend_hc->port.invalid())) ||
                    (service_hc && (service_hc->port.set() || service_hc->port.invalid()));
    if (!port_set && s.port.set() && *s.port == 0) {
      error(hc_pos, hc_path + ".port", "required when the service port is 0 (any port)");
    }
    const auto *timeout = pick(&HealthCheckSpec::timeout_ms);
    const auto *interval = pick(&HealthCheckSpec::interval_ms);
    std::uint32_t t = timeout ? **timeout : HealthCheckSpec{}.timeout_ms.value;
    std::uint32_t iv = interval ? **interval : HealthCheckSpec{}.interval_ms.value;
    if (t <= iv)
      return;
    // Report where the conflict was written: the override when it takes part
    // (the service's own check is reported once, not per backend).
    const HealthCheckSpec *owner = backend_hc ? backend_hc : service_hc;
    bool owner_timeout = owner->timeout_ms.set();
    if (!owner_timeout && !owner->interval_ms.set()) {
      if (backend_hc)
        return;
      error(hc_pos, hc_path + ".timeout_ms",
            "timeout_ms " + std::to_string(t) + " exceeds interval_ms " + std::to_string(iv));
      return;
    }
    error(owner_timeout ? owner->timeout_ms.pos : owner->interval_ms.pos,
          hc_path + (owner_timeout ? ".timeout_ms" : ".interval_ms"),
          "timeout_ms " + std::to_string(t) + " exceeds interval_ms " + std::to_string(iv));
  };
  const HealthCheckSpec *shc = s.health_check ? &*s.health_check : nullptr;
  if (shc)
    check_one(shc, nullptr, path + ".health_check", shc->pos);
  for (std::size_t i = 0; i < s.backends.size(); ++i) {
    const BackendSpec &b = s.backends[i];
    if (!b.health_check)
      continue;
    std::string hp = index_path(path + ".backends", i) + ".health_check";
    if (shc) {
      check_one(shc, &*b.health_check, hp, b.health_check->pos);
    } else {
      check_one(nullptr, &*b.health_check, hp, b.health_check->pos);
    }
  }
}

}  // namespace

Validation validate(const Config &config) {
  Sink sink;
  Checker(config, sink).run();
  Sink::finish(sink.errors());
  Sink::finish(sink.warnings());
  return {std::move(sink.errors()), std::move(sink.warnings())};
}

LoadResult load_config_string(std::string_view text, const std::string &filename) {
  auto file = std::make_shared<const std::string>(filename);
  Sink sink;
  LoadResult result;
  std::unique_ptr<YamlDocument> doc;
  try {
    doc = YamlDocument::parse(text);
  } catch (const YAML::Exception &e) {
    SourcePos pos{file, e.mark.is_null() ? 0 : e.mark.line + 1,
                  e.mark.is_null() ? 0 : e.mark.column + 1};
    result.errors.push_back({pos, "syntax", e.msg});
    return result;
  }
  Config config = Loader(file, sink).load(doc->root());
  Checker(config, sink).run();
  Sink::finish(sink.errors());
  Sink::finish(sink.warnings());
  result.errors = std::move(sink.errors());
  result.warnings = std::move(sink.warnings());
  if (result.errors.empty())
    result.config = std::move(config);
  return result;
}

LoadResult load_config(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    LoadResult result;
    int err = errno;
    result.errors.push_back({SourcePos{std::make_shared<const std::string>(path), 0, 0}, "file",
                             std::string("cannot open: ") + std::strerror(err)});
    return result;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_config_string(text.str(), path);
}

}  // namespace stratus::config
