#include "config/compile.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>
#include <unordered_map>
#include <stdexcept>
#include <utility>
#include <vector>

#include "lb/maglev.h"

namespace stratus::config {

namespace {

// The ids in use, as a bitmap (a node has up to 262144 backends), handing
// out the lowest free one from `first` upward.
class UsedIds {
 public:
  explicit UsedIds(std::uint32_t first = 0) : first_(first), next_(first) {}

  std::uint32_t first() const { return first_; }
  // Marks `id` used; false when it was used already.
  bool mark(std::uint32_t id) {
    if (id >= used_.size())
      used_.resize(std::max<std::size_t>(id + 1, used_.size() * 2), false);
    if (used_[id])
      return false;
    used_[id] = true;
    return true;
  }
  // The lowest free id, now used.
  std::uint32_t take() {
    while (next_ < used_.size() && used_[next_])
      ++next_;
    mark(next_);
    return next_;
  }

 private:
  std::uint32_t first_;
  std::uint32_t next_;  // no free id below this one
  std::vector<bool> used_;
};

// Hands out ids from `first` upward: ids from the previous tables first (for
// keys that still exist), then the lowest free ids in config order.
class IdAllocator {
 public:
  IdAllocator(std::uint32_t first, std::unordered_map<std::string, std::uint32_t> previous)
      : used_(first), previous_(std::move(previous)) {}

  // Call keep() for every current key before any id().
  void keep(const std::string &key) {
    auto it = previous_.find(key);
    if (it != previous_.end() && it->second >= used_.first() && used_.mark(it->second))
      assigned_.emplace(key, it->second);
  }
  std::uint32_t id(const std::string &key) {
    auto it = assigned_.find(key);
    if (it != assigned_.end())
      return it->second;
    std::uint32_t id = used_.take();
    assigned_.emplace(key, id);
    return id;
  }

 private:
  UsedIds used_;
  std::unordered_map<std::string, std::uint32_t> previous_;
  std::unordered_map<std::string, std::uint32_t> assigned_;
};

// Backend ids: a backend keeps its id when its service had a backend of the
// same name; new backends take the lowest free ids, in config order. Found
// through the previous service (backends usually keep their index), so the
// cost is one probe per backend rather than a map of every backend.
class BackendIds {
 public:
  // keep() every service (its previous tables, or nullptr) in order, then id().
  void keep(const ServiceSpec &s, const Service *prev) {
    std::vector<std::uint32_t> &ids = kept_.emplace_back(s.backends.size(), kNone);
    if (!prev)
      return;
    std::unordered_map<std::string_view, std::uint32_t> by_name;  // built on a miss
    for (std::size_t i = 0; i < s.backends.size(); ++i) {
      const std::string &name = *s.backends[i].name;
      const Backend *hit = nullptr;
      if (i < prev->backends.size() && prev->backends[i].name == name) {
        hit = &prev->backends[i];
      } else {
        if (by_name.empty()) {
          for (const auto &b : prev->backends)
            by_name.emplace(b.name, b.id);
        }
        auto it = by_name.find(name);
        if (it != by_name.end() && used_.mark(it->second))
          ids[i] = it->second;
        continue;
      }
      if (used_.mark(hit->id))
        ids[i] = hit->id;
    }
  }
  // Service number `service` (in keep() order), backend index `i`.
  std::uint32_t id(std::size_t service, std::size_t i) {
    std::uint32_t &id = kept_[service][i];
    if (id == kNone)
      id = used_.take();
    return id;
  }

 private:
  static constexpr std::uint32_t kNone = UINT32_MAX;
  std::vector<std::vector<std::uint32_t>> kept_;
  UsedIds used_;
};

// The previous Maglev table of a service is still right when its inputs are
// the same: the table size and, index by index, each backend's name and the
// weight it takes slots with (lb::maglev_table is a pure function of them).
bool same_maglev_inputs(const Service &prev, std::uint32_t maglev_size,
                        const std::vector<lb::MaglevBackend> &weights) {
  if (prev.maglev_size != maglev_size || prev.backends.size() != weights.size())
    return false;
  // An empty table is right only when no backend takes slots (prev may be a
  // data plane's tables, read back at start-up: trust nothing else).
  bool any_weight = std::any_of(weights.begin(), weights.end(),
                                [](const lb::MaglevBackend &w) { return w.weight > 0; });
  if (prev.maglev.size() != (any_weight ? maglev_size : 0u))
    return false;
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const Backend &b = prev.backends[i];
    std::uint32_t w = b.state == BackendState::kActive ? b.weight : 0u;
    if (b.name != weights[i].name || w != weights[i].weight)
      return false;
  }
  return true;
}

}  // namespace

Tables compile(const Config &config, const std::string &node_name, const Tables *previous) {
  const NodeSpec *node = config.find_node(node_name);
  if (!node)
    throw std::invalid_argument("compile: no node named \"" + node_name + "\"");
  const std::string &region = *node->region;

  std::unordered_map<std::string, std::uint32_t> prev_vrfs, prev_services;
  std::unordered_map<std::string, const Service *> prev_service;
  if (previous) {
    for (const auto &v : previous->vrfs)
      prev_vrfs[v.tenant] = v.id;
    for (const auto &s : previous->services) {
      prev_services[s.name] = s.id;
      prev_service[s.name] = &s;
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
  IdAllocator vrf_ids(1, std::move(prev_vrfs));
  for (const auto &tenant : config.tenants)
    vrf_ids.keep(*tenant.name);
  std::unordered_map<std::string, std::uint32_t> vrf_of;
  std::unordered_map<std::string, const TenantSpec *> tenant_spec;
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
    tenant_spec.emplace(v.tenant, &tenant);
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
  std::size_t route_count = 0;
  for (const auto &tenant : config.tenants)
    route_count += tenant.routes.size();
  t.routes.reserve(route_count);
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
  IdAllocator service_ids(0, std::move(prev_services));
  BackendIds backend_ids;
  for (const ServiceSpec *s : services) {
    service_ids.keep(*s->name);
    auto prev = prev_service.find(*s->name);
    backend_ids.keep(*s, prev == prev_service.end() ? nullptr : prev->second);
  }
  std::size_t service_number = 0;
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
    weights.reserve(s->backends.size());
    svc.backends.reserve(s->backends.size());
    for (std::size_t bi = 0; bi < s->backends.size(); ++bi) {
      const BackendSpec &b = s->backends[bi];
      Backend be;
      be.id = backend_ids.id(service_number, bi);
      be.name = *b.name;
      be.addr = *b.address;
      be.weight = *b.weight;
      be.state = *b.state;
      if (b.tenant.set()) {
        be.vrf = vrf_id(*b.tenant);
        const TenantSpec *tenant = tenant_spec.at(*b.tenant);
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
    // Only services whose Maglev inputs changed pay for a new table.
    auto prev = prev_service.find(svc.name);
    if (prev != prev_service.end() && same_maglev_inputs(*prev->second, svc.maglev_size, weights)) {
      svc.maglev = prev->second->maglev;
    } else {
      svc.maglev = lb::maglev_table(weights, svc.maglev_size);
    }
    t.services.push_back(std::move(svc));
    ++service_number;
  }

  canonicalize(t);
  return t;
}

NodeTables compile_all(const Config &config, const NodeTables &previous_by_node) {
  // Nodes compile independently (each reads the config and its own previous
  // tables): on as many threads as there are cores, each taking the next
  // node. The first error, in node order, is rethrown.
  const std::size_t n = config.nodes.size();
  std::vector<std::shared_ptr<const Tables>> tables(n);
  std::vector<std::exception_ptr> errors(n);
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    for (std::size_t i; (i = next.fetch_add(1)) < n;) {
      const std::string &name = *config.nodes[i].name;
      auto prev = previous_by_node.find(name);
      try {
        tables[i] = std::make_shared<const Tables>(
            compile(config, name, prev == previous_by_node.end() ? nullptr : prev->second.get()));
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  const std::size_t threads =
      std::min<std::size_t>(n, std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t)
    pool.emplace_back(work);
  work();
  for (auto &t : pool)
    t.join();
  NodeTables out;
  for (std::size_t i = 0; i < n; ++i) {
    if (errors[i])
      std::rethrow_exception(errors[i]);
    out[*config.nodes[i].name] = std::move(tables[i]);
  }
  return out;
}

}  // namespace stratus::config
