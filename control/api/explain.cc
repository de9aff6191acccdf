#include "control/api/explain.h"

#include <arpa/inet.h>

#include <cstring>

#include "control/api/convert.h"
#include "lb/drop_reason.h"

namespace stratus::api {

const Route *lookup_route(const Tables &t, std::uint32_t vrf, const IpAddress &dst) {
  const Route *best = nullptr;
  for (const auto &r : t.routes) {
    if (r.vrf == vrf && r.prefix.contains(dst) && (!best || r.prefix.len > best->prefix.len)) {
      best = &r;
    }
  }
  return best;
}

const Service *match_service(const Tables &t, std::uint32_t vrf, const IpAddress &dst,
                             std::uint8_t proto, std::uint16_t dport) {
  const Service *any_port = nullptr;
  for (const auto &s : t.services) {
    if (s.vrf != vrf || s.vip != dst || s.proto != proto)
      continue;
    if (s.port == dport)
      return &s;
    if (s.port == 0)
      any_port = &s;
  }
  return any_port;
}

const NextHop *lookup_nexthop(const Tables &t, const IpAddress &remote) {
  const NextHop *fallback = nullptr;
  for (const auto &h : t.nexthops) {
    if (h.remote == remote)
      return &h;
    if (h.remote.empty())
      fallback = &h;
  }
  return fallback;
}

namespace {

stratus_flow_key make_key(std::uint32_t vrf, const IpAddress &src, const IpAddress &dst,
                          std::uint8_t proto, std::uint16_t sport, std::uint16_t dport) {
  stratus_flow_key k{};
  std::memcpy(k.src, src.bytes.data(), 16);
  std::memcpy(k.dst, dst.bytes.data(), 16);
  k.vrf = vrf;
  k.proto = proto;
  bool ports = proto == 6 || proto == 17;
  k.sport = ports ? htons(sport) : 0;
  k.dport = ports ? htons(dport) : 0;
  return k;
}

const IpAddress *outer_source(const Tables &t) {
  for (const auto &v : t.node.vteps) {
    if (v.is_v4())
      return &v;
  }
  return nullptr;
}

void drop(pb::ExplainReply &r, stratus_drop_reason reason, const std::string &why) {
  r.set_path(pb::ExplainReply::PATH_DROP);
  r.set_drop_reason(std::string(drop_reason_label(reason)));
  r.set_summary("drop (" + std::string(drop_reason_label(reason)) + "): " + why);
}

// Fills the encapsulation toward `tunnel_dst` and returns false (after
// recording the drop) when no next hop reaches it.
bool encapsulate(const Tables &t, pb::ExplainReply &r, Encap encap, const IpAddress &tunnel_dst,
                 std::uint32_t vni, const stratus_flow_key &inner) {
  const NextHop *nh = lookup_nexthop(t, tunnel_dst);
  if (!nh) {
    drop(r, STRATUS_DROP_NO_NEXTHOP, "no underlay next hop toward " + tunnel_dst.str());
    return false;
  }
  r.set_encap(encap == Encap::kVxlan ? pb::ENCAP_VXLAN : pb::ENCAP_IPIP);
  if (const IpAddress *src = outer_source(t))
    to_proto(*src, r.mutable_outer_src());
  to_proto(tunnel_dst, r.mutable_outer_dst());
  r.set_egress_port(nh->port);
  if (encap == Encap::kVxlan) {
    r.set_vni(vni);
    r.set_udp_sport(stratus_vxlan_sport(&inner, t.node.hash_seed));
  }
  return true;
}

}  // namespace

pb::ExplainReply explain(const Tables &t, std::uint64_t generation, const pb::ExplainRequest &req,
                         const FlowLookup &lookup_flow) {
  pb::ExplainReply r;
  r.set_generation(generation);
  IpAddress src, dst;
  try {
    src = from_proto(req.src(), "src");
    dst = from_proto(req.dst(), "dst");
  } catch (const DecodeError &e) {
    drop(r, STRATUS_DROP_MALFORMED_IPV4, e.what());
    return r;
  }
  if (!dst.is_v4() || !src.is_v4()) {
    drop(r, STRATUS_DROP_UNSUPPORTED_INNER, "only IPv4 is forwarded");
    return r;
  }
  auto proto = static_cast<std::uint8_t>(req.proto());
  auto sport = static_cast<std::uint16_t>(req.sport());
  auto dport = static_cast<std::uint16_t>(req.dport());
  std::uint32_t vrf = req.vrf();
  // The inner 5-tuple as the encapsulation hashes it (vrf 0, no reduction).
  stratus_flow_key inner = make_key(0, src, dst, proto, sport, dport);

  if (const Service *svc = match_service(t, vrf, dst, proto, dport)) {
    r.set_path(pb::ExplainReply::PATH_SERVICE);
    r.set_service_id(svc->id);
    r.set_service(svc->name);
    stratus_flow_key key = make_key(vrf, src, dst, proto, sport, dport);
    stratus_flow_key_reduce(&key, svc->hash_flags);
    std::uint32_t hash = stratus_flow_hash(&key, t.node.hash_seed);
    r.set_flow_hash(hash);
    r.set_slot(hash % svc->maglev_size);
    const Backend *backend = nullptr;
    if (lookup_flow) {
      if (auto entry = lookup_flow(key); entry && entry->service_id == svc->id) {
        for (const auto &b : svc->backends) {
          if (b.id == entry->backend_id && b.state != BackendState::kDown)
            backend = &b;
        }
        r.set_existing_flow(backend != nullptr);
      }
    }
    if (!backend) {
      if (svc->maglev.empty()) {
        drop(r, STRATUS_DROP_NO_BACKEND, "service " + svc->name + " has no active backend");
        return r;
      }
      backend = &svc->backends[svc->maglev[r.slot()]];
    }
    to_proto(*backend, r.mutable_backend());
    if (!encapsulate(t, r, backend->encap, backend->tunnel_dst, backend->vni, inner))
      return r;
    r.set_path(pb::ExplainReply::PATH_SERVICE);
    r.set_summary("service " + svc->name + " slot " + std::to_string(r.slot()) + " -> backend " +
                  backend->name + " (" + backend->addr.str() + ")" +
                  (r.existing_flow() ? " [existing flow]" : " [new flow]") + " via " +
                  std::string(to_string(backend->encap)) + " to " + backend->tunnel_dst.str() +
                  (backend->encap == Encap::kVxlan ? " vni " + std::to_string(backend->vni) : ""));
    return r;
  }

  const Route *route = lookup_route(t, vrf, dst);
  if (!route) {
    drop(r, STRATUS_DROP_NO_ROUTE, "no route to " + dst.str() + " in VRF " + std::to_string(vrf));
    return r;
  }
  to_proto(*route, r.mutable_route());
  if (route->kind == RouteKind::kBlackhole) {
    drop(r, STRATUS_DROP_BLACKHOLE, "route " + route->prefix.str() + " is a blackhole");
    return r;
  }
  std::uint32_t ttl = req.ttl() ? req.ttl() : 64;
  if (ttl <= 1) {
    drop(r, STRATUS_DROP_TTL_EXCEEDED, "TTL " + std::to_string(ttl) + " expires here");
    return r;
  }
  if (route->kind == RouteKind::kLocal) {
    r.set_path(pb::ExplainReply::PATH_ROUTE);
    r.set_egress_port(route->port);
    r.set_summary("route " + route->prefix.str() + " -> local port " + route->port + " to " +
                  route->dst_mac.str());
    return r;
  }
  if (!encapsulate(t, r, Encap::kVxlan, route->vtep, route->vni_out, inner))
    return r;
  r.set_path(pb::ExplainReply::PATH_ROUTE);
  r.set_summary("route " + route->prefix.str() + " -> vxlan to " + route->vtep.str() + " vni " +
                std::to_string(route->vni_out) + " via port " + r.egress_port());
  return r;
}

}  // namespace stratus::api
