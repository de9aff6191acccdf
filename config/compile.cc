#include "config/compile.h"

#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "lb/maglev.h"

namespace stratus::config {

namespace {

// Hands out ids from `first` upward: ids from the previous tables first (for
// keys that still exist), then the lowest free ids in config order.
template <typename Key>
class IdAllocator {
 public:
  IdAllocator(std::uint32_t first, std::map<Key, std::uint32_t> previous)
      : next_(first), previous_(std::move(previous)) {}

  // Call keep() for every current key before any fresh().
  void keep(const Key &key) {
    auto it = previous_.find(key);
    if (it != previous_.end() && it->second >= next_ && used_.insert(it->second).second) {
      assigned_[key] = it->second;
    }
  }
  std::uint32_t id(const Key &key) {
    auto it = assigned_.find(key);
    if (it != assigned_.end())
      return it->second;
    while (used_.count(next_))
      ++next_;
    used_.insert(next_);
    assigned_[key] = next_;
    return next_;
  }

 private:
  std::uint32_t next_;  // no free id below this one
  std::map<Key, std::uint32_t> previous_;
  std::map<Key, std::uint32_t> assigned_;
  std::set<std::uint32_t> used_;
};

using BackendKey = std::pair<std::string, std::string>;  // (service, backend)

}  // namespace

Tables compile(const Config &config, const std::string &node_name, const Tables *previous) {
  const NodeSpec *node = config.find_node(node_name);
  if (!node)
    throw std::invalid_argument("compile: no node named \"" + node_name + "\"");
  const std::string &region = *node->region;

  std::map<std::string, std::uint32_t> prev_vrfs, prev_services;
  std::map<BackendKey, std::uint32_t> prev_backends;
  if (previous) {
    for (const auto &v : previous->vrfs)
      prev_vrfs[v.tenant] = v.id;
    for (const auto &s : previous->services) {
      prev_services[s.name] = s.id;
      for (const auto &b : s.backends)
        prev_backends[{s.name, b.name}] = b.id;
    }
  }

  Tables t;

  // Table 1: the node.
  NodeTable &n = t.node;
  n.name = *node->name;
  n.kind = *node->kind;
  for (const auto &v : node->vteps)
    n.vteps.push_back(*v);
  n.vxlan_port = *node->vxlan_port;
  n.underlay_mtu = *node->underlay_mtu;
  n.gateway_mac = node->effective_gateway_mac();
  n.hash_seed = *config.hash_seed;
  n.flows.max_entries = *config.flows.max_entries;
  n.flows.tcp_timeout_s = *config.flows.tcp_timeout_s;
  n.flows.udp_timeout_s = *config.flows.udp_timeout_s;

  // Table 3: every tenant is a VRF on every node, with its VNI in this region.
  IdAllocator<std::string> vrf_ids(1, prev_vrfs);
  for (const auto &tenant : config.tenants)
    vrf_ids.keep(*tenant.name);
  std::map<std::string, std::uint32_t> vrf_of;
  // compile() expects a validated config; a dangling reference (a config
  // edited in code and not validated again) is a precondition failure.
  auto unresolved = [](const std::string &what, const std::string &name) {
    return std::invalid_argument("compile: unknown " + what + " \"" + name +
                                 "\" (validate the config first)");
  };
  auto vrf_id = [&](const std::string &tenant) {
    auto it = vrf_of.find(tenant);
    if (it == vrf_of.end())
      throw unresolved("tenant", tenant);
    return it->second;
  };
  for (const auto &tenant : config.tenants) {
    Vrf v;
    v.id = vrf_ids.id(*tenant.name);
    v.vni = tenant.vni_in(region);
    v.tenant = *tenant.name;
    for (const auto &g : tenant.gateways)
      v.gateways.push_back(*g);
    vrf_of[v.tenant] = v.id;
    t.vrfs.push_back(std::move(v));
  }

  for (const auto &p : node->ports) {
    Port port;
    port.name = *p.name;
    port.role = *p.role;
    if (p.mac.set())
      port.mac = *p.mac;
    if (port.role == PortRole::kTenant)
      port.vrf = vrf_id(*p.tenant);
    n.ports.push_back(std::move(port));
  }

  // Table 2: next hops.
  for (const auto &h : node->nexthops) {
    NextHop hop;
    hop.remote = *h.remote;
    hop.port = *h.port;
    hop.dst_mac = *h.mac;
    if (h.src_mac.set())
      hop.src_mac = *h.src_mac;
    t.nexthops.push_back(std::move(hop));
  }

  // Table 4: the routes this node installs (docs/config.md, "routes").
  for (const auto &tenant : config.tenants) {
    std::uint32_t vrf = vrf_id(*tenant.name);
    for (const auto &r : tenant.routes) {
      if (r.region.set() && *r.region != region)
        continue;
      Route route;
      route.vrf = vrf;
      route.prefix = *r.prefix;
      switch (r.target) {
        case RouteTarget::kRemote:
          route.kind = RouteKind::kRemote;
          route.vtep = *r.remote.vtep;
          route.vni_out = tenant.vni_in(region);
          route.dst_mac = *r.remote.mac;
          break;
        case RouteTarget::kPeering: {
          const PeeringSpec *p = config.find_peering(*r.peering);
          if (!p)
            throw unresolved("peering", *r.peering);
          if (*p->region != region)
            continue;
          const VniMapEntry *entry = p->find_vni(*tenant.name);
          if (!entry)
            throw unresolved("vni_map tenant", *tenant.name);
          route.kind = RouteKind::kRemote;
          route.vtep = *p->remote_vtep;
          route.vni_out = *entry->vni;
          route.dst_mac = *p->remote_mac;
          break;
        }
        case RouteTarget::kLocal:
          if (*r.local.node != *node->name)
            continue;
          route.kind = RouteKind::kLocal;
          route.port = *r.local.port;
          route.dst_mac = *r.local.mac;
          break;
        case RouteTarget::kBlackhole:
        case RouteTarget::kNone:
          route.kind = RouteKind::kBlackhole;
          break;
      }
      t.routes.push_back(std::move(route));
    }
  }

  // Tables 5-7: the services of this node's region.
  std::vector<const ServiceSpec *> services;
  for (const auto &s : config.services) {
    if (s.in_region(region))
      services.push_back(&s);
  }
  IdAllocator<std::string> service_ids(0, prev_services);
  IdAllocator<BackendKey> backend_ids(0, prev_backends);
  for (const ServiceSpec *s : services) {
    service_ids.keep(*s->name);
    for (const auto &b : s->backends)
      backend_ids.keep({*s->name, *b.name});
  }
  for (const ServiceSpec *s : services) {
    Service svc;
    svc.id = service_ids.id(*s->name);
    svc.name = *s->name;
    svc.vrf = s->tenant.set() ? vrf_id(*s->tenant) : kUnderlayVrf;
    svc.vip = *s->vip;
    svc.proto = *s->protocol;
    svc.port = *s->port;
    svc.maglev_size = *s->maglev_size;
    svc.hash_flags = *s->hash;
    svc.mode = *s->mode;
    std::vector<lb::MaglevBackend> weights;
    for (const auto &b : s->backends) {
      Backend be;
      be.id = backend_ids.id({*s->name, *b.name});
      be.name = *b.name;
      be.addr = *b.address;
      be.weight = *b.weight;
      be.state = *b.state;
      if (b.tenant.set()) {
        be.vrf = vrf_id(*b.tenant);
        const TenantSpec *tenant = config.find_tenant(*b.tenant);
        be.encap = Encap::kVxlan;
        be.tunnel_dst = *b.vtep;
        be.vni = b.region.set() ? tenant->vni_in(*b.region) : *tenant->vni;
        be.inner_dst_mac = *b.mac;
      } else {
        be.vrf = kUnderlayVrf;
        be.encap = Encap::kIpip;
        be.tunnel_dst = *b.address;
      }
      // Only active backends take new flows; draining ones keep theirs
      // through the connection table.
      weights.push_back({be.name, be.state == BackendState::kActive ? be.weight : 0u});
      svc.backends.push_back(std::move(be));
    }
    svc.maglev = lb::maglev_table(weights, svc.maglev_size);
    t.services.push_back(std::move(svc));
  }

  canonicalize(t);
  return t;
}

std::map<std::string, Tables> compile_all(const Config &config,
                                          const std::map<std::string, Tables> &previous_by_node) {
  std::map<std::string, Tables> out;
  for (const auto &node : config.nodes) {
    auto prev = previous_by_node.find(*node.name);
    out[*node.name] =
        compile(config, *node.name, prev == previous_by_node.end() ? nullptr : &prev->second);
  }
  return out;
}

}  // namespace stratus::config
