#include "control/api/convert.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

namespace stratus::api {

namespace {

std::string mac_bytes(const MacAddress &m) {
  if (m.is_zero())
    return {};
  return std::string(reinterpret_cast<const char *>(m.bytes.data()), 6);
}

MacAddress mac_from(const std::string &b, const std::string &field) {
  MacAddress m;
  if (b.empty())
    return m;
  if (b.size() != 6)
    throw DecodeError(field + ": MAC must be 6 bytes, got " + std::to_string(b.size()));
  std::memcpy(m.bytes.data(), b.data(), 6);
  return m;
}

std::uint32_t u8_field(std::uint32_t v, std::uint32_t max, const std::string &field) {
  if (v > max)
    throw DecodeError(field + ": " + std::to_string(v) + " exceeds " + std::to_string(max));
  return v;
}

}  // namespace

// ---------------------------------------------------------------- to proto

void to_proto(const IpAddress &in, pb::IpAddress *out) {
  if (in.is_v4()) {
    out->set_addr(std::string(reinterpret_cast<const char *>(in.bytes.data()), 4));
  } else if (in.is_v6()) {
    out->set_addr(std::string(reinterpret_cast<const char *>(in.bytes.data()), 16));
  } else {
    out->clear_addr();
  }
}

void to_proto(const IpPrefix &in, pb::IpPrefix *out) {
  to_proto(in.addr, out->mutable_addr());
  out->set_len(in.len);
}

void to_proto(const NodeTable &in, pb::NodeTable *out) {
  out->set_name(in.name);
  out->set_kind(in.kind == DataplaneKind::kXdp ? pb::DATAPLANE_XDP : pb::DATAPLANE_DPDK);
  for (const auto &v : in.vteps)
    to_proto(v, out->add_vteps());
  out->set_vxlan_port(in.vxlan_port);
  out->set_underlay_mtu(in.underlay_mtu);
  out->set_gateway_mac(mac_bytes(in.gateway_mac));
  out->set_hash_seed(in.hash_seed);
  out->mutable_flows()->set_max_entries(in.flows.max_entries);
  out->mutable_flows()->set_tcp_timeout_s(in.flows.tcp_timeout_s);
  out->mutable_flows()->set_udp_timeout_s(in.flows.udp_timeout_s);
  for (const auto &p : in.ports) {
    auto *o = out->add_ports();
    o->set_name(p.name);
    o->set_role(p.role == PortRole::kUnderlay ? pb::PORT_UNDERLAY : pb::PORT_TENANT);
    o->set_mac(mac_bytes(p.mac));
    o->set_vrf(p.vrf);
  }
}

void to_proto(const NextHop &in, pb::NextHop *out) {
  if (!in.remote.empty())
    to_proto(in.remote, out->mutable_remote());
  out->set_port(in.port);
  out->set_dst_mac(mac_bytes(in.dst_mac));
  out->set_src_mac(mac_bytes(in.src_mac));
}

void to_proto(const Vrf &in, pb::Vrf *out) {
  out->set_id(in.id);
  out->set_vni(in.vni);
  out->set_tenant(in.tenant);
  for (const auto &g : in.gateways)
    to_proto(g, out->add_gateways());
}

void to_proto(const Route &in, pb::Route *out) {
  out->set_vrf(in.vrf);
  to_proto(in.prefix, out->mutable_prefix());
  switch (in.kind) {
    case RouteKind::kRemote:
      out->set_kind(pb::ROUTE_REMOTE);
      break;
    case RouteKind::kLocal:
      out->set_kind(pb::ROUTE_LOCAL);
      break;
    case RouteKind::kBlackhole:
      out->set_kind(pb::ROUTE_BLACKHOLE);
      break;
  }
  if (!in.vtep.empty())
    to_proto(in.vtep, out->mutable_vtep());
  out->set_vni_out(in.vni_out);
  out->set_port(in.port);
  out->set_dst_mac(mac_bytes(in.dst_mac));
}

void to_proto(const Backend &in, pb::Backend *out) {
  out->set_id(in.id);
  out->set_name(in.name);
  to_proto(in.addr, out->mutable_addr());
  out->set_vrf(in.vrf);
  out->set_weight(in.weight);
  switch (in.state) {
    case BackendState::kActive:
      out->set_state(pb::BACKEND_ACTIVE);
      break;
    case BackendState::kDraining:
      out->set_state(pb::BACKEND_DRAINING);
      break;
    case BackendState::kDown:
      out->set_state(pb::BACKEND_DOWN);
      break;
  }
  out->set_encap(in.encap == Encap::kVxlan ? pb::ENCAP_VXLAN : pb::ENCAP_IPIP);
  to_proto(in.tunnel_dst, out->mutable_tunnel_dst());
  out->set_vni(in.vni);
  out->set_inner_dst_mac(mac_bytes(in.inner_dst_mac));
}

void to_proto(const Service &in, pb::Service *out) {
  out->set_id(in.id);
  out->set_name(in.name);
  out->set_vrf(in.vrf);
  to_proto(in.vip, out->mutable_vip());
  out->set_proto(in.proto);
  out->set_port(in.port);
  out->set_maglev_size(in.maglev_size);
  out->set_hash_flags(in.hash_flags);
  out->set_mode(pb::FORWARDING_DSR);
  for (const auto &b : in.backends)
    to_proto(b, out->add_backends());
  out->mutable_maglev_table()->Assign(in.maglev.begin(), in.maglev.end());
}

// ---------------------------------------------------------------- from proto

IpAddress from_proto(const pb::IpAddress &in, const std::string &field) {
  IpAddress a;
  const std::string &b = in.addr();
  if (b.empty())
    return a;
  if (b.size() == 4) {
    a.family = IpAddress::Family::kV4;
  } else if (b.size() == 16) {
    a.family = IpAddress::Family::kV6;
  } else {
    throw DecodeError(field + ": address must be 4 or 16 bytes, got " + std::to_string(b.size()));
  }
  std::memcpy(a.bytes.data(), b.data(), b.size());
  return a;
}

IpPrefix from_proto(const pb::IpPrefix &in, const std::string &field) {
  IpPrefix p;
  p.addr = from_proto(in.addr(), field + ".addr");
  if (in.len() > static_cast<std::uint32_t>(p.addr.bit_width())) {
    throw DecodeError(field + ".len: " + std::to_string(in.len()) + " too long for the address");
  }
  p.len = static_cast<std::uint8_t>(in.len());
  return p;
}

NodeTable from_proto(const pb::NodeTable &in) {
  NodeTable n;
  n.name = in.name();
  if (in.kind() != pb::DATAPLANE_XDP && in.kind() != pb::DATAPLANE_DPDK)
    throw DecodeError("node.kind: unknown");
  n.kind = in.kind() == pb::DATAPLANE_XDP ? DataplaneKind::kXdp : DataplaneKind::kDpdk;
  for (int i = 0; i < in.vteps_size(); ++i) {
    n.vteps.push_back(from_proto(in.vteps(i), "node.vteps[" + std::to_string(i) + "]"));
  }
  n.vxlan_port = static_cast<std::uint16_t>(u8_field(in.vxlan_port(), 65535, "node.vxlan_port"));
  n.underlay_mtu = in.underlay_mtu();
  n.gateway_mac = mac_from(in.gateway_mac(), "node.gateway_mac");
  n.hash_seed = in.hash_seed();
  n.flows.max_entries = in.flows().max_entries();
  n.flows.tcp_timeout_s = in.flows().tcp_timeout_s();
  n.flows.udp_timeout_s = in.flows().udp_timeout_s();
  for (int i = 0; i < in.ports_size(); ++i) {
    const auto &p = in.ports(i);
    std::string field = "node.ports[" + std::to_string(i) + "]";
    Port o;
    o.name = p.name();
    if (p.role() != pb::PORT_UNDERLAY && p.role() != pb::PORT_TENANT)
      throw DecodeError(field + ".role: unknown");
    o.role = p.role() == pb::PORT_UNDERLAY ? PortRole::kUnderlay : PortRole::kTenant;
    o.mac = mac_from(p.mac(), field + ".mac");
    o.vrf = p.vrf();
    n.ports.push_back(std::move(o));
  }
  return n;
}

NextHop from_proto(const pb::NextHop &in) {
  NextHop h;
  h.remote = from_proto(in.remote(), "nexthop.remote");
  h.port = in.port();
  h.dst_mac = mac_from(in.dst_mac(), "nexthop.dst_mac");
  h.src_mac = mac_from(in.src_mac(), "nexthop.src_mac");
  return h;
}

Vrf from_proto(const pb::Vrf &in) {
  Vrf v;
  v.id = in.id();
  v.vni = in.vni();
  v.tenant = in.tenant();
  for (int i = 0; i < in.gateways_size(); ++i) {
    v.gateways.push_back(from_proto(in.gateways(i), "vrf.gateways[" + std::to_string(i) + "]"));
  }
  return v;
}

Route from_proto(const pb::Route &in) {
  Route r;
  r.vrf = in.vrf();
  r.prefix = from_proto(in.prefix(), "route.prefix");
  switch (in.kind()) {
    case pb::ROUTE_REMOTE:
      r.kind = RouteKind::kRemote;
      break;
    case pb::ROUTE_LOCAL:
      r.kind = RouteKind::kLocal;
      break;
    case pb::ROUTE_BLACKHOLE:
      r.kind = RouteKind::kBlackhole;
      break;
    default:
      throw DecodeError("route.kind: unknown");
  }
  r.vtep = from_proto(in.vtep(), "route.vtep");
  r.vni_out = in.vni_out();
  r.port = in.port();
  r.dst_mac = mac_from(in.dst_mac(), "route.dst_mac");
  return r;
}

Backend from_proto(const pb::Backend &in, const std::string &field) {
  Backend b;
  b.id = in.id();
  b.name = in.name();
  b.addr = from_proto(in.addr(), field + ".addr");
  b.vrf = in.vrf();
  b.weight = in.weight();
  switch (in.state()) {
    case pb::BACKEND_ACTIVE:
      b.state = BackendState::kActive;
      break;
    case pb::BACKEND_DRAINING:
      b.state = BackendState::kDraining;
      break;
    case pb::BACKEND_DOWN:
      b.state = BackendState::kDown;
      break;
    default:
      throw DecodeError(field + ".state: unknown");
  }
  switch (in.encap()) {
    case pb::ENCAP_VXLAN:
      b.encap = Encap::kVxlan;
      break;
    case pb::ENCAP_IPIP:
      b.encap = Encap::kIpip;
      break;
    default:
      throw DecodeError(field + ".encap: unknown");
  }
  b.tunnel_dst = from_proto(in.tunnel_dst(), field + ".tunnel_dst");
  b.vni = in.vni();
  b.inner_dst_mac = mac_from(in.inner_dst_mac(), field + ".inner_dst_mac");
  return b;
}

Service from_proto(const pb::Service &in) {
  Service s;
  std::string field = "service " + std::to_string(in.id());
  s.id = in.id();
  s.name = in.name();
  s.vrf = in.vrf();
  s.vip = from_proto(in.vip(), field + ".vip");
  s.proto = static_cast<std::uint8_t>(u8_field(in.proto(), 255, field + ".proto"));
  s.port = static_cast<std::uint16_t>(u8_field(in.port(), 65535, field + ".port"));
  s.maglev_size = in.maglev_size();
  s.hash_flags = in.hash_flags();
  if (in.mode() != pb::FORWARDING_DSR)
    throw DecodeError(field + ".mode: unknown");
  s.backends.reserve(in.backends_size());
  for (int i = 0; i < in.backends_size(); ++i) {
    s.backends.push_back(
        from_proto(in.backends(i), field + ".backends[" + std::to_string(i) + "]"));
  }
  s.maglev = std::vector<std::uint32_t>(in.maglev_table().begin(), in.maglev_table().end());
  return s;
}

// ---------------------------------------------------------------- operations

namespace {

// One table under edit. The live tables are canonical (sorted by key), so an
// operation finds its entry by binary search and the transaction costs
// O(k log n) for k operations on n entries: no index of the whole table.
// New keys go to the end (with a map of them) and are merged in by
// compact(); deletes are tombstones until then. A table that is not strictly
// sorted gets a map of every entry instead. Each change adds to the digest
// delta (tables.h: the digest is a sum of entry digests).
template <typename T, typename Key>
class Keyed {
 public:
  Keyed(std::vector<T> &v, Key (*key)(const T &)) : v_(v), key_(key) {
    bool sorted = true;
    for (std::size_t i = 1; i < v_.size() && sorted; ++i)
      sorted = key_(v_[i - 1]) < key_(v_[i]);
    if (sorted) {
      base_ = v_.size();
    } else {
      for (std::size_t i = 0; i < v_.size(); ++i)
        added_.emplace(key_(v_[i]), i);
    }
  }
  // Returns the key.
  Key upsert(T x) {
    Key k = key_(x);
    std::uint64_t h = entry_digest(x);
    std::size_t b = lower_bound(k);
    if (b < base_ && key_(v_[b]) == k) {
      // A base entry, live or erased earlier in this transaction.
      if (dead(b)) {
        dead_[b] = false;
      } else {
        delta_ -= entry_digest(v_[b]);
      }
      delta_ += h;
      v_[b] = std::move(x);
      return k;
    }
    delta_ += h;
    if (added_.empty() && base_ == v_.size() && (base_ == 0 || key_(v_[base_ - 1]) < k)) {
      // Past the last key (a full sync arrives in key order): the sorted
      // part grows, no map.
      v_.push_back(std::move(x));
      ++base_;
      return k;
    }
    auto [it, inserted] = added_.emplace(k, v_.size());
    if (inserted) {
      v_.push_back(std::move(x));
    } else {
      delta_ -= entry_digest(v_[it->second]);
      v_[it->second] = std::move(x);
    }
    return k;
  }
  bool erase(const Key &k) {
    std::size_t b = lower_bound(k);
    std::size_t i;
    if (b < base_ && key_(v_[b]) == k) {
      if (dead(b))
        return false;
      i = b;
    } else {
      auto it = added_.find(k);
      if (it == added_.end())
        return false;
      i = it->second;
      added_.erase(it);
    }
    delta_ -= entry_digest(v_[i]);
    if (dead_.size() < v_.size())
      dead_.resize(v_.size(), false);
    dead_[i] = true;
    return true;
  }
  void compact() {
    std::size_t base = base_;
    if (std::find(dead_.begin(), dead_.end(), true) != dead_.end()) {
      std::size_t out = 0;
      for (std::size_t i = 0; i < v_.size(); ++i) {
        if (i == base_)
          base = out;
        if (dead(i))
          continue;
        if (out != i)
          v_[out] = std::move(v_[i]);
        ++out;
      }
      if (base_ == v_.size())
        base = out;
      v_.resize(out);
    }
    if (base > 0 && base < v_.size()) {
      // Sorted base, new entries after it: sort those and merge, O(n).
      auto less = [this](const T &a, const T &b) { return key_(a) < key_(b); };
      auto mid = v_.begin() + static_cast<std::ptrdiff_t>(base);
      std::sort(mid, v_.end(), less);
      std::inplace_merge(v_.begin(), mid, v_.end(), less);
    }
  }
  std::uint64_t digest_delta() const { return delta_; }

 private:
  bool dead(std::size_t i) const { return i < dead_.size() && dead_[i]; }
  std::size_t lower_bound(const Key &k) const {
    std::size_t lo = 0, hi = base_;
    while (lo < hi) {
      std::size_t mid = lo + (hi - lo) / 2;
      if (key_(v_[mid]) < k) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return lo;
  }

  std::vector<T> &v_;
  Key (*key_)(const T &);
  std::size_t base_ = 0;              // v_[0, base_) is sorted and indexed by search
  std::map<Key, std::size_t> added_;  // every other live entry
  std::vector<bool> dead_;
  std::uint64_t delta_ = 0;
};

IpAddress nexthop_key(const NextHop &h) {
  return h.remote;
}
std::uint32_t vrf_key(const Vrf &v) {
  return v.id;
}
std::pair<std::uint32_t, IpPrefix> route_key(const Route &r) {
  return {r.vrf, r.prefix};
}
std::uint32_t service_key(const Service &s) {
  return s.id;
}

}  // namespace

struct TxnEditor::Index {
  explicit Index(Tables &t)
      : nexthops(t.nexthops, nexthop_key),
        vrfs(t.vrfs, vrf_key),
        routes(t.routes, route_key),
        services(t.services, service_key) {}
  Keyed<NextHop, IpAddress> nexthops;
  Keyed<Vrf, std::uint32_t> vrfs;
  Keyed<Route, std::pair<std::uint32_t, IpPrefix>> routes;
  Keyed<Service, std::uint32_t> services;
};

TxnEditor::TxnEditor(Tables &t) : t_(t), index_(std::make_unique<Index>(t)) {}
TxnEditor::~TxnEditor() = default;

void TxnEditor::finish() {
  index_->nexthops.compact();
  index_->vrfs.compact();
  index_->routes.compact();
  index_->services.compact();
}

std::uint64_t TxnEditor::digest_delta() const {
  return node_delta_ + index_->nexthops.digest_delta() + index_->vrfs.digest_delta() +
         index_->routes.digest_delta() + index_->services.digest_delta();
}

void TxnEditor::apply(const pb::TxnOp &op) {
  switch (op.op_case()) {
    case pb::TxnOp::kUpsertRoute:
    case pb::TxnOp::kDeleteRoute:
    case pb::TxnOp::kUpsertService:
    case pb::TxnOp::kDeleteService:
    case pb::TxnOp::OP_NOT_SET:
      break;
    default:
      changes_.node_nexthops_vrfs = true;
  }
  switch (op.op_case()) {
    case pb::TxnOp::kNode: {
      NodeTable n = from_proto(op.node());
      node_delta_ += entry_digest(n) - entry_digest(t_.node);
      t_.node = std::move(n);
      return;
    }
    case pb::TxnOp::kUpsertNexthop:
      index_->nexthops.upsert(from_proto(op.upsert_nexthop()));
      return;
    case pb::TxnOp::kDeleteNexthop: {
      IpAddress remote = from_proto(op.delete_nexthop(), "delete_nexthop");
      if (!index_->nexthops.erase(remote)) {
        throw DecodeError("delete_nexthop: no next hop " +
                          (remote.empty() ? std::string("default") : remote.str()));
      }
      return;
    }
    case pb::TxnOp::kUpsertVrf:
      index_->vrfs.upsert(from_proto(op.upsert_vrf()));
      return;
    case pb::TxnOp::kDeleteVrf:
      if (!index_->vrfs.erase(op.delete_vrf())) {
        throw DecodeError("delete_vrf: no VRF " + std::to_string(op.delete_vrf()));
      }
      return;
    case pb::TxnOp::kUpsertRoute:
      changes_.routes.push_back(index_->routes.upsert(from_proto(op.upsert_route())));
      return;
    case pb::TxnOp::kDeleteRoute: {
      std::uint32_t vrf = op.delete_route().vrf();
      IpPrefix prefix = from_proto(op.delete_route().prefix(), "delete_route.prefix");
      if (!index_->routes.erase({vrf, prefix})) {
        throw DecodeError("delete_route: no route " + prefix.str() + " in VRF " +
                          std::to_string(vrf));
      }
      changes_.deleted_routes.emplace_back(vrf, prefix);
      return;
    }
    case pb::TxnOp::kUpsertService:
      changes_.services.push_back(index_->services.upsert(from_proto(op.upsert_service())));
      return;
    case pb::TxnOp::kDeleteService:
      if (!index_->services.erase(op.delete_service())) {
        throw DecodeError("delete_service: no service " + std::to_string(op.delete_service()));
      }
      changes_.deleted_services.push_back(op.delete_service());
      return;
    case pb::TxnOp::OP_NOT_SET:
      throw DecodeError("operation with no content");
  }
  throw DecodeError("unknown operation");
}

void apply_op(const pb::TxnOp &op, Tables &t) {
  TxnEditor editor(t);
  editor.apply(op);
  editor.finish();
}

namespace {

// Keyed view of one table for diffing: key -> element pointer.
template <typename T, typename KeyFn>
auto index_by(const std::vector<T> &v, KeyFn key) {
  std::map<decltype(key(v.front())), const T *> m;
  for (const auto &x : v)
    m.emplace(key(x), &x);
  return m;
}

// `less` is the table's canonical order (tables.h), the order of `key`.
// With `dd`, adds to it what the operations add to digest() (mod 2^64).
template <typename T, typename Less, typename KeyFn, typename DeleteFn, typename UpsertFn>
void diff_table(const std::vector<T> &from, const std::vector<T> &to, Less less, KeyFn key,
                std::vector<pb::TxnOp> &deletes, std::vector<pb::TxnOp> &upserts,
                DeleteFn on_delete, UpsertFn on_upsert, std::uint64_t *dd) {
  auto removed = [&](const T &x) {
    on_delete(x, deletes.emplace_back());
    if (dd)
      *dd -= entry_digest(x);
  };
  auto upserted = [&](const T *old, const T &x) {
    on_upsert(x, upserts.emplace_back());
    if (dd)
      *dd += entry_digest(x) - (old ? entry_digest(*old) : 0);
  };
  // Canonical tables: one merge walk, no index; the same operations in the
  // same (key) order as the maps below.
  if (merge_walk(
          from, to, less, removed, [&](const T &x) { upserted(nullptr, x); },
          [&](const T &old, const T &x) { upserted(&old, x); })) {
    return;
  }
  auto a = index_by(from, key);
  auto b = index_by(to, key);
  for (const auto &[k, x] : a) {
    if (!b.count(k))
      removed(*x);
  }
  for (const auto &[k, x] : b) {
    auto old = a.find(k);
    if (old == a.end())
      upserted(nullptr, *x);
    else if (!(*old->second == *x))
      upserted(old->second, *x);
  }
}

}  // namespace

std::vector<pb::TxnOp> diff(const Tables &from, const Tables &to, std::uint64_t *digest_delta) {
  std::vector<pb::TxnOp> deletes, upserts;
  if (!(from.node == to.node)) {
    to_proto(to.node, upserts.emplace_back().mutable_node());
    if (digest_delta)
      *digest_delta += entry_digest(to.node) - entry_digest(from.node);
  }
  diff_table(
      from.nexthops, to.nexthops, nexthop_less, [](const NextHop &h) { return h.remote; }, deletes,
      upserts,
      [](const NextHop &h, pb::TxnOp &op) { to_proto(h.remote, op.mutable_delete_nexthop()); },
      [](const NextHop &h, pb::TxnOp &op) { to_proto(h, op.mutable_upsert_nexthop()); },
      digest_delta);
  diff_table(
      from.vrfs, to.vrfs, vrf_less, [](const Vrf &v) { return v.id; }, deletes, upserts,
      [](const Vrf &v, pb::TxnOp &op) { op.set_delete_vrf(v.id); },
      [](const Vrf &v, pb::TxnOp &op) { to_proto(v, op.mutable_upsert_vrf()); }, digest_delta);
  diff_table(
      from.routes, to.routes, route_less, route_key_of, deletes, upserts,
      [](const Route &r, pb::TxnOp &op) {
        op.mutable_delete_route()->set_vrf(r.vrf);
        to_proto(r.prefix, op.mutable_delete_route()->mutable_prefix());
      },
      [](const Route &r, pb::TxnOp &op) { to_proto(r, op.mutable_upsert_route()); }, digest_delta);
  diff_table(
      from.services, to.services, service_less, service_key_of, deletes, upserts,
      [](const Service &s, pb::TxnOp &op) { op.set_delete_service(s.id); },
      [](const Service &s, pb::TxnOp &op) { to_proto(s, op.mutable_upsert_service()); },
      digest_delta);
  for (auto &op : upserts)
    deletes.push_back(std::move(op));
  return deletes;
}

std::vector<pb::TxnOp> full_sync_ops(const Tables &t) {
  return diff(Tables{}, t);
}

std::vector<pb::ApplyRequest> chunk(const pb::TxnHeader &header, std::vector<pb::TxnOp> ops,
                                    std::size_t max_bytes) {
  std::vector<pb::ApplyRequest> out;
  out.emplace_back();
  *out.back().mutable_header() = header;
  std::size_t bytes = 0;
  for (auto &op : ops) {
    std::size_t size = op.ByteSizeLong();
    if (bytes > 0 && bytes + size > max_bytes) {
      out.emplace_back();
      bytes = 0;
    }
    *out.back().add_ops() = std::move(op);
    bytes += size;
  }
  return out;
}

}  // namespace stratus::api
