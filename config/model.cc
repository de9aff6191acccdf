#include "config/model.h"

#include <algorithm>
#include <charconv>

#include "lb/flow_hash.h"

namespace stratus::config {

const std::string &SourcePos::file_name() const {
  static const std::string kNone = "<config>";
  return file ? *file : kNone;
}

std::string SourcePos::str() const {
  if (!known())
    return file_name();
  return file_name() + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::optional<ApiEndpoint> ApiEndpoint::parse(std::string_view text) {
  ApiEndpoint e;
  if (text.substr(0, 5) == "unix:") {
    e.kind = Kind::kUnix;
    e.path = std::string(text.substr(5));
    if (e.path.size() < 2 || e.path[0] != '/')
      return std::nullopt;
    return e;
  }
  e.kind = Kind::kTcp;
  std::string_view host, port;
  if (!text.empty() && text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    auto addr = IpAddress::parse(host);
    if (!addr || !addr->is_v6())
      return std::nullopt;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return std::nullopt;  // bare IPv6
  }
  if (host.empty())
    return std::nullopt;
  for (char c : host) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '_';
    if (!ok)
      return std::nullopt;
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
    return std::nullopt;
  }
  e.host = std::string(host);
  e.port = static_cast<std::uint16_t>(value);
  return e;
}

std::string ApiEndpoint::str() const {
  if (kind == Kind::kUnix)
    return "unix:" + path;
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

MacAddress derived_gateway_mac(std::string_view node_name) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (char c : node_name) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  MacAddress m;
  m.bytes[0] = 0x02;  // locally administered, unicast
  for (int i = 1; i < 6; ++i)
    m.bytes[i] = static_cast<std::uint8_t>(h >> (8 * (i - 1)));
  return m;
}

MacAddress NodeSpec::effective_gateway_mac() const {
  return gateway_mac.set() ? *gateway_mac : derived_gateway_mac(*name);
}

const PortSpec *NodeSpec::find_port(std::string_view port_name) const {
  for (const auto &p : ports) {
    if (p.name.set() && *p.name == port_name)
      return &p;
  }
  return nullptr;
}

std::string_view to_string(RouteTarget t) {
  switch (t) {
    case RouteTarget::kNone:
      return "none";
    case RouteTarget::kRemote:
      return "remote";
    case RouteTarget::kPeering:
      return "peering";
    case RouteTarget::kLocal:
      return "local";
    case RouteTarget::kBlackhole:
      return "blackhole";
  }
  return "?";
}

std::uint32_t TenantSpec::vni_in(std::string_view region) const {
  for (const auto &rv : region_vnis) {
    if (rv.region.set() && rv.vni.set() && *rv.region == region)
      return *rv.vni;
  }
  return *vni;
}

bool TenantSpec::contains(const IpAddress &a) const {
  return std::any_of(subnets.begin(), subnets.end(),
                     [&](const Field<IpPrefix> &s) { return s.set() && s->contains(a); });
}

const VniMapEntry *PeeringSpec::find_vni(std::string_view tenant) const {
  for (const auto &e : vni_map) {
    if (e.tenant.set() && *e.tenant == tenant)
      return &e;
  }
  return nullptr;
}

std::string_view to_string(HealthCheckType t) {
  return t == HealthCheckType::kTcp ? "tcp" : "http";
}

bool ServiceSpec::in_region(std::string_view region) const {
  if (!regions.set())
    return true;
  return std::any_of(regions->begin(), regions->end(),
                     [&](const Field<std::string> &r) { return r.set() && *r == region; });
}

std::optional<HealthCheck> ServiceSpec::health_check_for(const BackendSpec &b) const {
  if (!health_check && !b.health_check)
    return std::nullopt;
  HealthCheck hc;
  hc.port = *port;
  auto apply = [&hc](const HealthCheckSpec &s) {
    if (s.type.set())
      hc.type = *s.type;
    if (s.address.set())
      hc.address = *s.address;
    if (s.port.set())
      hc.port = *s.port;
    if (s.path.set())
      hc.path = *s.path;
    if (s.expect_status.set())
      hc.expect_status = *s.expect_status;
    if (s.interval_ms.set())
      hc.interval_ms = *s.interval_ms;
    if (s.timeout_ms.set())
      hc.timeout_ms = *s.timeout_ms;
    if (s.rise.set())
      hc.rise = *s.rise;
    if (s.fall.set())
      hc.fall = *s.fall;
  };
  if (health_check)
    apply(*health_check);
  if (b.health_check)
    apply(*b.health_check);
  return hc;
}

namespace {

template <typename T>
const T *find_named(const std::vector<T> &items, std::string_view name) {
  for (const auto &item : items) {
    if (item.name.set() && *item.name == name)
      return &item;
  }
  return nullptr;
}

}  // namespace

const NodeSpec *Config::find_node(std::string_view name) const {
  return find_named(nodes, name);
}
const TenantSpec *Config::find_tenant(std::string_view name) const {
  return find_named(tenants, name);
}
const PeeringSpec *Config::find_peering(std::string_view name) const {
  return find_named(peerings, name);
}
const ServiceSpec *Config::find_service(std::string_view name) const {
  return find_named(services, name);
}

std::vector<std::string> Config::regions() const {
  std::vector<std::string> out;
  for (const auto &n : nodes) {
    if (n.region.set())
      out.push_back(*n.region);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool Config::has_region(std::string_view region) const {
  return std::any_of(nodes.begin(), nodes.end(),
                     [&](const NodeSpec &n) { return n.region.set() && *n.region == region; });
}

std::string protocol_name(std::uint8_t proto) {
  if (proto == 6)
    return "tcp";
  if (proto == 17)
    return "udp";
  return std::to_string(proto);
}

std::string hash_flags_str(std::uint32_t flags) {
  static const std::pair<std::uint32_t, const char *> kNames[] = {
      {STRATUS_HASH_SRC_IP, "src_ip"},     {STRATUS_HASH_DST_IP, "dst_ip"},
      {STRATUS_HASH_SRC_PORT, "src_port"}, {STRATUS_HASH_DST_PORT, "dst_port"},
      {STRATUS_HASH_PROTO, "proto"},
  };
  std::string out;
  for (const auto &[bit, name] : kNames) {
    if (!(flags & bit))
      continue;
    if (!out.empty())
      out += ",";
    out += name;
  }
  return out.empty() ? "none" : out;
}

}  // namespace stratus::config
