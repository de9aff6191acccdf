// The desired state of a Stratus deployment as the operator writes it (YAML,
// docs/config.md): nodes, tenants, peerings and services. Every value keeps
// the place it came from (file, line, column) so that validation
// (config/validate.h) can point at it, and the compiler (config/compile.h)
// turns a validated Config into the per-node tables of config/tables.h.
//
// These are plain values: the loader fills them, nothing here reads files.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/tables.h"

namespace stratus::config {

// The flow-hash seed when the configuration does not name one. Every node of a
// deployment must use the same seed; a fixed default keeps that true.
inline constexpr std::uint32_t kDefaultHashSeed = 0x53545241;  // "STRA"

// Where a value was written. line and column count from 1; line 0 means the
// value did not come from a file (a default, or built in code).
struct SourcePos {
  std::shared_ptr<const std::string> file;
  int line = 0;
  int column = 0;

  bool known() const { return line > 0; }
  const std::string &file_name() const;
  std::string str() const;  // "file:line:col", or the file name alone
};

// One configuration value: its value (the default until set), where it was
// written, and whether it was written at all or written wrongly (invalid
// values are reported by the loader once and skipped by later checks, so one
// typo does not cascade into unrelated errors).
template <typename T>
struct Field {
  enum class State : std::uint8_t { kAbsent, kSet, kInvalid };

  T value{};
  SourcePos pos;
  State state = State::kAbsent;

  Field() = default;
  Field(T default_value) : value(std::move(default_value)) {}  // NOLINT: defaults read well

  bool set() const { return state == State::kSet; }
  bool invalid() const { return state == State::kInvalid; }
  const T &operator*() const { return value; }
  const T *operator->() const { return &value; }
  void assign(T v, SourcePos p) {
    value = std::move(v);
    pos = std::move(p);
    state = State::kSet;
  }
};

// Where a node's Dataplane API listens: "unix:/run/stratus/gw-a.sock" or
// "host:port" ("[2001:db8::1]:50051" for an IPv6 literal).
struct ApiEndpoint {
  enum class Kind : std::uint8_t { kUnix, kTcp };

  Kind kind = Kind::kUnix;
  std::string path;  // kUnix
  std::string host;  // kTcp: a name or an address (without brackets)
  std::uint16_t port = 0;

  static std::optional<ApiEndpoint> parse(std::string_view text);
  // The text form, also the gRPC target ("unix:/path", "host:port").
  std::string str() const;
  auto operator<=>(const ApiEndpoint &) const = default;
};

// flows: the connection-table settings of every node.
struct FlowsSpec {
  SourcePos pos;
  Field<std::uint32_t> max_entries{FlowTableConfig{}.max_entries};
  Field<std::uint32_t> tcp_timeout_s{FlowTableConfig{}.tcp_timeout_s};
  Field<std::uint32_t> udp_timeout_s{FlowTableConfig{}.udp_timeout_s};
};

// nodes[].ports[]
struct PortSpec {
  SourcePos pos;
  Field<std::string> name;
  Field<PortRole> role;
  Field<std::string> tenant;  // tenant ports only
  Field<MacAddress> mac;      // absent: the device's own address
};

// nodes[].nexthops[]
struct NextHopSpec {
  SourcePos pos;
  Field<IpAddress> remote;  // empty address: "default"
  Field<std::string> port;
  Field<MacAddress> mac;      // destination MAC
  Field<MacAddress> src_mac;  // absent: the egress port's MAC
};

// nodes[]
struct NodeSpec {
  SourcePos pos;
  Field<std::string> name;
  Field<std::string> region;
  Field<DataplaneKind> kind;
  Field<ApiEndpoint> api;
  std::vector<Field<IpAddress>> vteps;
  Field<std::uint16_t> vxlan_port{kDefaultVxlanPort};
  Field<std::uint32_t> underlay_mtu{1500};
  Field<MacAddress> gateway_mac;  // absent: derived_gateway_mac(name)
  std::vector<PortSpec> ports;
  std::vector<NextHopSpec> nexthops;

  // The configured gateway MAC, or the one derived from the name.
  MacAddress effective_gateway_mac() const;
  const PortSpec *find_port(std::string_view port_name) const;
};

// A locally administered unicast MAC derived from a node name (02:xx:..:xx,
// five bytes of a 64-bit FNV-1a hash of the name): stable across restarts and
// hosts, distinct between nodes in practice.
MacAddress derived_gateway_mac(std::string_view node_name);

// tenants[].region_vnis: one entry per "region: vni" pair.
struct RegionVni {
  SourcePos pos;
  Field<std::string> region;
  Field<std::uint32_t> vni;
};

enum class RouteTarget : std::uint8_t { kNone, kRemote, kPeering, kLocal, kBlackhole };
std::string_view to_string(RouteTarget t);

// tenants[].routes[].remote
struct RemoteTargetSpec {
  SourcePos pos;
  Field<IpAddress> vtep;
  Field<MacAddress> mac;
};

// tenants[].routes[].local
struct LocalTargetSpec {
  SourcePos pos;
  Field<std::string> node;
  Field<std::string> port;
  Field<MacAddress> mac;
};

// tenants[].routes[]
struct RouteSpec {
  SourcePos pos;
  Field<IpPrefix> prefix;
  Field<std::string> region;  // absent: every region
  RouteTarget target = RouteTarget::kNone;
  SourcePos target_pos;  // where the target key was written
  RemoteTargetSpec remote;
  Field<std::string> peering;
  LocalTargetSpec local;
};

// tenants[]
struct TenantSpec {
  SourcePos pos;
  Field<std::string> name;
  Field<std::uint32_t> vni;
  std::vector<RegionVni> region_vnis;
  std::vector<Field<IpPrefix>> subnets;
  std::vector<Field<IpAddress>> gateways;
  std::vector<RouteSpec> routes;

  // The tenant's VNI in a region: its region_vnis entry, else `vni`.
  std::uint32_t vni_in(std::string_view region) const;
  bool contains(const IpAddress &a) const;  // inside one of the subnets
};

// peerings[].vni_map[]
struct VniMapEntry {
  SourcePos pos;
  Field<std::string> tenant;
  Field<std::uint32_t> vni;
};

// peerings[]: how the nodes of `region` reach another region's gateway.
struct PeeringSpec {
  SourcePos pos;
  Field<std::string> name;
  Field<std::string> region;         // the side that installs it
  Field<std::string> remote_region;  // optional; else found from remote_vtep
  Field<IpAddress> remote_vtep;
  Field<MacAddress> remote_mac;
  std::vector<VniMapEntry> vni_map;

  const VniMapEntry *find_vni(std::string_view tenant) const;
};

enum class HealthCheckType : std::uint8_t { kTcp, kHttp };
std::string_view to_string(HealthCheckType t);

// services[].health_check, and a backend's override of some of its keys.
struct HealthCheckSpec {
  SourcePos pos;
  Field<HealthCheckType> type{HealthCheckType::kTcp};
  // Where to probe, when the backend's own address is not reachable from
  // stratusd (a tenant address inside an overlay): e.g. the backend's
  // management address. Absent: the backend's address.
  Field<IpAddress> address;
  Field<std::uint16_t> port;  // absent: the service port
  Field<std::string> path{"/"};
  Field<std::uint32_t> expect_status{200};
  Field<std::uint32_t> interval_ms{2000};
  Field<std::uint32_t> timeout_ms{1000};
  Field<std::uint32_t> rise{2};
  Field<std::uint32_t> fall{3};
};

// A backend's health check with the override applied and every default
// resolved: what the prober runs.
struct HealthCheck {
  HealthCheckType type = HealthCheckType::kTcp;
  IpAddress address;  // empty: the backend's address
  std::uint16_t port = 0;
  std::string path = "/";
  std::uint32_t expect_status = 200;
  std::uint32_t interval_ms = 2000;
  std::uint32_t timeout_ms = 1000;
  std::uint32_t rise = 2;
  std::uint32_t fall = 3;

  auto operator<=>(const HealthCheck &) const = default;
};

// services[].backends[]
struct BackendSpec {
  SourcePos pos;
  Field<std::string> name;
  Field<IpAddress> address;
  Field<std::string> tenant;  // absent: outside the overlay (IPIP)
  Field<IpAddress> vtep;      // tenant backends: the VTEP of its host
  Field<MacAddress> mac;      // tenant backends: its MAC
  Field<std::string> region;  // tenant backends: selects the tenant's VNI
  Field<std::uint32_t> weight{1};
  Field<BackendState> state{BackendState::kActive};
  std::optional<HealthCheckSpec> health_check;
};

// services[]
struct ServiceSpec {
  SourcePos pos;
  Field<std::string> name;
  Field<IpAddress> vip;
  Field<std::string> tenant;  // absent: the underlay
  Field<std::uint8_t> protocol{6};
  Field<std::uint16_t> port{0};
  Field<std::uint32_t> maglev_size{kDefaultMaglevSize};
  Field<std::uint32_t> hash{0x1f};  // STRATUS_HASH_* flags
  Field<ForwardingMode> mode{ForwardingMode::kDsr};
  Field<std::vector<Field<std::string>>> regions;  // absent: every region
  std::optional<HealthCheckSpec> health_check;
  std::vector<BackendSpec> backends;

  bool in_region(std::string_view region) const;
  // The health check of one backend, or nullopt when neither the service nor
  // the backend has one.
  std::optional<HealthCheck> health_check_for(const BackendSpec &b) const;
};

// The whole desired state.
struct Config {
  std::shared_ptr<const std::string> file;
  Field<std::uint32_t> hash_seed{kDefaultHashSeed};
  FlowsSpec flows;
  std::vector<NodeSpec> nodes;
  std::vector<TenantSpec> tenants;
  std::vector<PeeringSpec> peerings;
  std::vector<ServiceSpec> services;

  const NodeSpec *find_node(std::string_view name) const;
  const TenantSpec *find_tenant(std::string_view name) const;
  const PeeringSpec *find_peering(std::string_view name) const;
  const ServiceSpec *find_service(std::string_view name) const;
  // Regions are named by nodes: the sorted, distinct regions of all nodes.
  std::vector<std::string> regions() const;
  bool has_region(std::string_view region) const;
};

// "tcp" / "udp" for IPPROTO_TCP / IPPROTO_UDP, else the number.
std::string protocol_name(std::uint8_t proto);
// The hash flag names in the order of services[].hash: src_ip, dst_ip, ...
std::string hash_flags_str(std::uint32_t flags);

}  // namespace stratus::config
