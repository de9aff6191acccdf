#include "control/operator_service.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <map>

#include "config/validate.h"
#include "control/api/convert.h"

namespace stratus::control {

namespace {

std::uint64_t unix_ms(std::chrono::system_clock::time_point t) {
  if (t == std::chrono::system_clock::time_point{})
    return 0;
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count());
}

std::string route_target(const Route &r) {
  switch (r.kind) {
    case RouteKind::kRemote:
      return "vtep " + r.vtep.str() + " vni " + std::to_string(r.vni_out) + " mac " +
             r.dst_mac.str();
    case RouteKind::kLocal:
      return "port " + r.port + " mac " + r.dst_mac.str();
    case RouteKind::kBlackhole:
      return "";
  }
  return "";
}

std::string vrf_tenant(const Tables &t, std::uint32_t vrf) {
  for (const auto &v : t.vrfs) {
    if (v.id == vrf)
      return v.tenant;
  }
  return vrf == kUnderlayVrf ? "" : "vrf " + std::to_string(vrf);
}

std::optional<std::uint8_t> parse_protocol(const std::string &p) {
  if (p == "tcp" || p.empty())
    return 6;
  if (p == "udp")
    return 17;
  if (p == "icmp")
    return 1;
  try {
    std::size_t used = 0;
    unsigned long v = std::stoul(p, &used);
    if (used == p.size() && v <= 255)
      return static_cast<std::uint8_t>(v);
  } catch (const std::exception &) {
  }
  return std::nullopt;
}

}  // namespace

void to_proto(const ReloadResult &r, op::ReloadResult *out) {
  out->set_ok(r.ok);
  out->set_source(r.source);
  out->set_unix_ms(unix_ms(r.when));
  for (const auto &e : r.errors)
    out->add_errors(e);
  for (const auto &w : r.warnings)
    out->add_warnings(w);
  out->set_generation(r.generation);
  out->set_trigger(r.trigger);
  out->set_changed(r.changed);
}

OperatorService::OperatorService(Controller &controller)
    : controller_(controller), started_(std::chrono::steady_clock::now()) {}

grpc::Status OperatorService::Status(grpc::ServerContext *, const op::StatusRequest *,
                                     op::StatusReply *out) {
  out->set_version(STRATUS_VERSION);
  out->set_config_path(controller_.config_path());
  out->set_generation(controller_.generation());
  out->set_config_valid(controller_.config_valid());
  to_proto(controller_.last_reload(), out->mutable_last_reload());
  auto sessions = controller_.sessions();
  out->set_nodes(static_cast<std::uint32_t>(sessions.size()));
  std::uint32_t in_sync = 0;
  for (const auto &s : sessions)
    in_sync += s.state == SyncState::kInSync;
  out->set_nodes_in_sync(in_sync);
  if (auto cfg = controller_.config()) {
    out->set_tenants(static_cast<std::uint32_t>(cfg->tenants.size()));
    out->set_services(static_cast<std::uint32_t>(cfg->services.size()));
    std::uint32_t backends = 0;
    for (const auto &s : cfg->services)
      backends += static_cast<std::uint32_t>(s.backends.size());
    out->set_backends(backends);
  }
  RuntimeState rt = controller_.runtime();
  out->set_backends_down(static_cast<std::uint32_t>(rt.down.size()));
  out->set_overrides(static_cast<std::uint32_t>(rt.overrides.size()));
  out->set_uptime_s(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count()));
  return grpc::Status::OK;
}

grpc::Status OperatorService::Nodes(grpc::ServerContext *, const op::NodesRequest *,
                                    op::NodesReply *out) {
  auto cfg = controller_.config();
  for (const auto &s : controller_.sessions()) {
    auto *n = out->add_nodes();
    n->set_name(s.node);
    if (cfg) {
      if (const config::NodeSpec *spec = cfg->find_node(s.node)) {
        n->set_region(*spec->region);
        n->set_kind(std::string(to_string(*spec->kind)));
      }
    }
    n->set_endpoint(s.endpoint);
    n->set_state(std::string(to_string(s.state)));
    n->set_generation(s.node_generation);
    n->set_desired_generation(s.desired_generation);
    n->set_digest(digest_hex(s.node_digest));
    n->set_expected_digest(digest_hex(s.expected_digest));
    n->set_instance_id(s.instance_id);
    n->set_last_error(s.last_error);
    n->set_full_syncs(s.full_syncs);
    n->set_deltas(s.deltas);
    n->set_failures(s.failures);
    n->set_last_push_ms(s.last_push_ms);
    n->set_last_push_ops(s.last_push_ops);
    n->set_last_sync_unix_ms(unix_ms(s.last_sync));
  }
  return grpc::Status::OK;
}

grpc::Status OperatorService::Tenants(grpc::ServerContext *, const op::TenantsRequest *,
                                      op::TenantsReply *out) {
  auto cfg = controller_.config();
  if (!cfg)
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no configuration loaded");
  for (const auto &t : cfg->tenants) {
    auto *o = out->add_tenants();
    o->set_name(*t.name);
    o->set_vni(*t.vni);
    for (const auto &rv : t.region_vnis)
      o->add_region_vnis(*rv.region + "=" + std::to_string(*rv.vni));
    for (const auto &s : t.subnets)
      o->add_subnets(s->str());
    for (const auto &g : t.gateways)
      o->add_gateways(g->str());
    o->set_routes(static_cast<std::uint32_t>(t.routes.size()));
    std::uint32_t services = 0;
    for (const auto &s : cfg->services)
      services += s.tenant.set() && *s.tenant == *t.name;
    o->set_services(services);
  }
  return grpc::Status::OK;
}

grpc::Status OperatorService::Routes(grpc::ServerContext *, const op::RoutesRequest *req,
                                     op::RoutesReply *out) {
  auto cfg = controller_.config();
  if (!cfg)
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no configuration loaded");
  if (!cfg->find_tenant(req->tenant())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown tenant \"" + req->tenant() + "\"");
  }
  auto tables = controller_.tables();
  if (!req->node().empty() && !tables.count(req->node())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown node \"" + req->node() + "\"");
  }
  for (const auto &[node, t] : tables) {
    if (!req->node().empty() && node != req->node())
      continue;
    std::uint32_t vrf = 0;
    for (const auto &v : t->vrfs) {
      if (v.tenant == req->tenant())
        vrf = v.id;
    }
    for (const auto &r : t->routes) {
      if (r.vrf != vrf)
        continue;
      auto *o = out->add_routes();
      o->set_node(node);
      o->set_prefix(r.prefix.str());
      o->set_kind(std::string(to_string(r.kind)));
      o->set_target(route_target(r));
    }
  }
  return grpc::Status::OK;
}

grpc::Status OperatorService::Services(grpc::ServerContext *, const op::ServicesRequest *,
                                       op::ServicesReply *out) {
  auto cfg = controller_.config();
  if (!cfg)
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no configuration loaded");
  auto tables = controller_.tables();
  for (const auto &s : cfg->services) {
    auto *o = out->add_services();
    o->set_name(*s.name);
    o->set_tenant(s.tenant.set() ? *s.tenant : "");
    o->set_vip(s.vip->str());
    o->set_protocol(config::protocol_name(*s.protocol));
    o->set_port(*s.port);
    o->set_maglev_size(*s.maglev_size);
    o->set_backends(static_cast<std::uint32_t>(s.backends.size()));
    bool counted = false;
    for (const auto &[node, t] : tables) {
      for (const auto &svc : t->services) {
        if (svc.name != *s.name)
          continue;
        o->add_nodes(node);
        if (counted)
          continue;
        counted = true;
        std::uint32_t active = 0, draining = 0, down = 0;
        for (const auto &b : svc.backends) {
          active += b.state == BackendState::kActive;
          draining += b.state == BackendState::kDraining;
          down += b.state == BackendState::kDown;
        }
        o->set_active(active);
        o->set_draining(draining);
        o->set_down(down);
      }
    }
  }
  return grpc::Status::OK;
}

bool OperatorService::backend_info(const std::string &service, const std::string &backend,
                                   op::BackendInfo *out) const {
  auto cfg = controller_.config();
  if (!cfg)
    return false;
  const config::ServiceSpec *s = cfg->find_service(service);
  if (!s)
    return false;
  const config::BackendSpec *b = nullptr;
  for (const auto &x : s->backends) {
    if (*x.name == backend)
      b = &x;
  }
  if (!b)
    return false;
  BackendKey key{service, backend};
  out->set_name(backend);
  out->set_address(b->address->str());
  out->set_configured_weight(*b->weight);
  out->set_configured_state(std::string(to_string(*b->state)));
  RuntimeState rt = controller_.runtime();
  out->set_weight(effective_weight(key, *b->weight, rt));
  out->set_state(std::string(to_string(effective_state(key, *b->state, rt))));
  auto ov = rt.overrides.find(key);
  if (ov != rt.overrides.end()) {
    std::string text;
    if (ov->second.drain)
      text = *ov->second.drain ? "drain" : "undrain";
    if (ov->second.weight) {
      text +=
          (text.empty() ? "" : ",") + std::string("weight=") + std::to_string(*ov->second.weight);
    }
    out->set_override(text);
  }
  auto health = controller_.health();
  auto h = health.find(key);
  if (h == health.end()) {
    out->set_health("unchecked");
  } else {
    out->set_health(h->second.up ? "up" : "down");
    out->set_health_detail(h->second.last_detail);
  }
  // Encapsulation and Maglev slots from the tables of a node that has it.
  for (const auto &[node, t] : controller_.tables()) {
    for (const auto &svc : t->services) {
      if (svc.name != service)
        continue;
      for (std::size_t i = 0; i < svc.backends.size(); ++i) {
        const Backend &be = svc.backends[i];
        if (be.name != backend)
          continue;
        out->set_id(be.id);
        out->set_encap(std::string(to_string(be.encap)));
        out->set_tunnel(be.encap == Encap::kVxlan
                            ? be.tunnel_dst.str() + " vni " + std::to_string(be.vni)
                            : be.tunnel_dst.str());
        std::uint32_t slots = 0;
        for (std::uint32_t m : svc.maglev)
          slots += m == i;
        out->set_slots(slots);
        return true;
      }
    }
  }
  return true;
}

grpc::Status OperatorService::Backends(grpc::ServerContext *, const op::BackendsRequest *req,
                                       op::BackendsReply *out) {
  auto cfg = controller_.config();
  if (!cfg)
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no configuration loaded");
  const config::ServiceSpec *s = cfg->find_service(req->service());
  if (!s) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service \"" + req->service() + "\"");
  }
  out->set_service(*s->name);
  out->set_maglev_size(*s->maglev_size);
  for (const auto &b : s->backends)
    backend_info(*s->name, *b.name, out->add_backends());
  return grpc::Status::OK;
}

grpc::Status OperatorService::SetBackend(grpc::ServerContext *, const op::SetBackendRequest *req,
                                         op::SetBackendReply *out) {
  BackendAction action;
  switch (req->action()) {
    case op::SetBackendRequest::ACTION_DRAIN:
      action = BackendAction::kDrain;
      break;
    case op::SetBackendRequest::ACTION_UNDRAIN:
      action = BackendAction::kUndrain;
      break;
    case op::SetBackendRequest::ACTION_WEIGHT:
      action = BackendAction::kWeight;
      break;
    case op::SetBackendRequest::ACTION_RESET:
      action = BackendAction::kReset;
      break;
    default:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no action");
  }
  std::string err = controller_.set_backend(req->service(), req->backend(), action, req->weight());
  if (!err.empty()) {
    auto code = err.rfind("weight", 0) == 0 ? grpc::StatusCode::INVALID_ARGUMENT
                                            : grpc::StatusCode::NOT_FOUND;
    return grpc::Status(code, err);
  }
  backend_info(req->service(), req->backend(), out->mutable_backend());
  out->set_generation(controller_.generation());
  return grpc::Status::OK;
}

grpc::Status OperatorService::Flows(grpc::ServerContext *, const op::FlowsRequest *req,
                                    op::FlowsReply *out) {
  auto session = controller_.session(req->node());
  if (!session) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown node \"" + req->node() + "\"");
  }
  auto all = controller_.tables();
  auto tables = all.count(req->node()) ? all[req->node()] : std::make_shared<const Tables>();
  pb::FlowsRequest fr;
  fr.set_limit(req->limit() ? req->limit() : 1000);
  if (!req->service().empty()) {
    bool found = false;
    for (const auto &s : tables->services) {
      if (s.name == req->service()) {
        fr.set_service_id(s.id);
        found = true;
      }
    }
    if (!found) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "node " + req->node() + " has no service \"" + req->service() + "\"");
    }
    fr.set_filter_service(true);
  }
  std::vector<pb::Flow> flows;
  grpc::Status st = session->dump_flows(fr, &flows);
  if (!st.ok()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "node " + req->node() + ": " + st.error_message());
  }
  out->set_node(req->node());
  for (const auto &f : flows) {
    auto *o = out->add_flows();
    o->set_tenant(vrf_tenant(*tables, f.vrf()));
    try {
      o->set_src(api::from_proto(f.src(), "src").str());
      o->set_dst(api::from_proto(f.dst(), "dst").str());
    } catch (const std::exception &) {
      o->set_src("?");
    }
    o->set_protocol(config::protocol_name(static_cast<std::uint8_t>(f.proto())));
    o->set_sport(f.sport());
    o->set_dport(f.dport());
    o->set_service("#" + std::to_string(f.service_id()));
    o->set_backend("#" + std::to_string(f.backend_id()));
    for (const auto &s : tables->services) {
      if (s.id != f.service_id())
        continue;
      o->set_service(s.name);
      for (const auto &b : s.backends) {
        if (b.id == f.backend_id())
          o->set_backend(b.name);
      }
    }
    o->set_cpu(f.cpu());
    o->set_age_ms(f.age_ms());
  }
  return grpc::Status::OK;
}

grpc::Status OperatorService::Explain(grpc::ServerContext *, const op::ExplainRequest *req,
                                      op::ExplainReply *out) {
  auto src = IpAddress::parse(req->src());
  auto dst = IpAddress::parse(req->dst());
  if (!src || !dst) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "bad address \"" + (src ? req->dst() : req->src()) + "\"");
  }
  auto proto = parse_protocol(req->protocol());
  if (!proto) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "bad protocol \"" + req->protocol() + "\"");
  }
  if (req->tenant().empty() && !req->underlay()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a tenant or underlay is required");
  }
  auto cfg = controller_.config();
  if (!cfg)
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no configuration loaded");
  if (!req->tenant().empty() && !cfg->find_tenant(req->tenant())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown tenant \"" + req->tenant() + "\"");
  }
  auto tables = controller_.tables();
  if (!req->node().empty() && !tables.count(req->node())) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown node \"" + req->node() + "\"");
  }

  // Every node answers from its live tables, in parallel: a dead node costs
  // its deadline once, not once per node.
  struct Pending {
    std::string node;
    std::future<std::pair<grpc::Status, pb::ExplainReply>> reply;
  };
  std::vector<Pending> pending;
  for (const auto &[node, t] : tables) {
    if (!req->node().empty() && node != req->node())
      continue;
    pb::ExplainRequest er;
    er.set_vrf(kUnderlayVrf);
    if (!req->underlay()) {
      for (const auto &v : t->vrfs) {
        if (v.tenant == req->tenant())
          er.set_vrf(v.id);
      }
    }
    api::to_proto(*src, er.mutable_src());
    api::to_proto(*dst, er.mutable_dst());
    er.set_proto(*proto);
    er.set_sport(req->sport());
    er.set_dport(req->dport());
    auto session = controller_.session(node);
    pending.push_back({node, std::async(std::launch::async, [session, er] {
                         pb::ExplainReply r;
                         grpc::Status st =
                             session ? session->explain(er, &r)
                                     : grpc::Status(grpc::StatusCode::NOT_FOUND, "no session");
                         return std::make_pair(st, r);
                       })});
  }
  for (auto &p : pending) {
    auto [st, r] = p.reply.get();
    auto *o = out->add_nodes();
    o->set_node(p.node);
    o->set_ok(st.ok());
    if (!st.ok()) {
      o->set_error(st.error_message());
      continue;
    }
    switch (r.path()) {
      case pb::ExplainReply::PATH_ROUTE:
        o->set_path("route");
        break;
      case pb::ExplainReply::PATH_SERVICE:
        o->set_path("service");
        break;
      default:
        o->set_path("drop");
        break;
    }
    o->set_summary(r.summary());
    o->set_drop_reason(r.drop_reason());
    if (r.has_route()) {
      try {
        Route route = api::from_proto(r.route());
        o->set_route(route.prefix.str() + " " + std::string(to_string(route.kind)) +
                     (route.kind == RouteKind::kBlackhole ? "" : " " + route_target(route)));
      } catch (const std::exception &) {
      }
    }
    o->set_service(r.service());
    o->set_slot(r.slot());
    o->set_backend(r.backend().name());
    o->set_existing_flow(r.existing_flow());
    if (r.path() != pb::ExplainReply::PATH_DROP) {
      o->set_encap(r.encap() == pb::ENCAP_IPIP ? "ipip" : "vxlan");
    }
    try {
      if (!r.outer_src().addr().empty())
        o->set_outer_src(api::from_proto(r.outer_src(), "outer_src").str());
      if (!r.outer_dst().addr().empty())
        o->set_outer_dst(api::from_proto(r.outer_dst(), "outer_dst").str());
    } catch (const std::exception &) {
    }
    o->set_vni(r.vni());
    o->set_udp_sport(r.udp_sport());
    o->set_egress_port(r.egress_port());
    o->set_generation(r.generation());
    o->set_flow_hash(r.flow_hash());
  }
  return grpc::Status::OK;
}

grpc::Status OperatorService::Reload(grpc::ServerContext *, const op::ReloadRequest *,
                                     op::ReloadReply *out) {
  to_proto(controller_.reload("api"), out->mutable_result());
  return grpc::Status::OK;
}

grpc::Status OperatorService::Validate(grpc::ServerContext *, const op::ValidateRequest *req,
                                       op::ValidateReply *out) {
  config::LoadResult r;
  if (req->has_path()) {
    r = config::load_config(req->path());
  } else if (req->has_content()) {
    r = config::load_config_string(req->content(), req->name().empty() ? "<content>" : req->name());
  } else {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a path or content is required");
  }
  out->set_ok(r.ok());
  for (const auto &e : r.errors)
    out->add_errors(e.str());
  for (const auto &w : r.warnings)
    out->add_warnings(w.str());
  if (r.config) {
    out->set_nodes(static_cast<std::uint32_t>(r.config->nodes.size()));
    out->set_tenants(static_cast<std::uint32_t>(r.config->tenants.size()));
    out->set_services(static_cast<std::uint32_t>(r.config->services.size()));
  }
  return grpc::Status::OK;
}

std::unique_ptr<grpc::Server> serve_operator(grpc::Service &service, const std::string &socket_path,
                                             unsigned mode, const std::string &tcp_listen) {
  grpc::ServerBuilder builder;
  if (!socket_path.empty()) {
    std::error_code ec;
    std::filesystem::path p(socket_path);
    if (p.has_parent_path())
      std::filesystem::create_directories(p.parent_path(), ec);
    ::unlink(socket_path.c_str());  // stale from a previous run
    builder.AddListeningPort("unix:" + socket_path, grpc::InsecureServerCredentials());
  }
  int tcp_port = 0;
  if (!tcp_listen.empty()) {
    builder.AddListeningPort(tcp_listen, grpc::InsecureServerCredentials(), &tcp_port);
  }
  builder.RegisterService(&service);
  // Restrict the socket before anyone can connect: umask covers the window
  // between bind() and chmod().
  mode_t old = ::umask(static_cast<mode_t>(~mode & 0777));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ::umask(old);
  if (!server)
    throw std::runtime_error("cannot start the operator API on " + socket_path);
  if (!tcp_listen.empty() && tcp_port <= 0) {
    throw std::runtime_error("cannot listen on " + tcp_listen);
  }
  if (!socket_path.empty())
    ::chmod(socket_path.c_str(), mode);
  return server;
}

}  // namespace stratus::control
