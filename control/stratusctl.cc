// stratusctl: the operator CLI of stratusd (SPEC.md §1). Aligned tables for
// people, --json for scripts.
//
// Exit status: 0 success, 1 failure (daemon unreachable, refused, invalid
// configuration, a node that could not answer), 2 usage.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <string>
#include <vector>

#include "config/validate.h"
#include "control/operator.grpc.pb.h"

namespace {

namespace op = ::stratus::ops::v1;

const char kUsage[] =
    "usage: stratusctl [--socket PATH] [--json] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  status                          daemon, configuration and last reload\n"
    "  nodes                           data-plane nodes and their sync state\n"
    "  tenants                         tenants (VRFs)\n"
    "  routes TENANT [--node NODE]     the tenant's routes on every node (or one)\n"
    "  services                        services (VIPs) and their backend states\n"
    "  backends SERVICE                backends: state, weight, health, Maglev slots\n"
    "  drain SERVICE BACKEND           no new flows to the backend (existing ones stay)\n"
    "  undrain SERVICE BACKEND         back to active\n"
    "  weight SERVICE BACKEND N        override the backend's weight (0..1000000)\n"
    "  reset SERVICE BACKEND           drop the backend's operator overrides\n"
    "  flows NODE [--limit N] [--service S]  connection-table entries of a node\n"
    "  explain (--tenant T | --underlay) SRC DST PROTO SPORT DPORT [--node NODE]\n"
    "                                  what every node would do with this packet\n"
    "  reload                          reload the daemon's configuration file\n"
    "  validate FILE                   validate a configuration file locally\n"
    "\n"
    "options:\n"
    "  --socket PATH   stratusd's API socket (default $STRATUS_SOCKET or\n"
    "                  /run/stratus/stratusd.sock); host:port for TCP\n"
    "  --json          print the reply as JSON\n"
    "  --timeout SEC   per call (default 30)\n";

int usage_error(const std::string &msg) {
  std::cerr << "stratusctl: " << msg << "\n" << kUsage;
  return 2;
}

// Aligned columns, two spaces apart, header in capitals.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void print(std::ostream &out) const {
    std::vector<std::size_t> width;
    for (const auto &r : rows_) {
      if (width.size() < r.size())
        width.resize(r.size(), 0);
      for (std::size_t i = 0; i < r.size(); ++i)
        width[i] = std::max(width[i], r[i].size());
    }
    for (const auto &r : rows_) {
      std::string line;
      for (std::size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size())
          line += std::string(width[i] - r[i].size() + 2, ' ');
      }
      out << line << "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string num(std::uint64_t v) {
  return std::to_string(v);
}

std::string ago(std::uint64_t unix_ms) {
  if (unix_ms == 0)
    return "never";
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  auto d = (now - static_cast<std::int64_t>(unix_ms)) / 1000;
  if (d < 0)
    d = 0;
  if (d < 120)
    return std::to_string(d) + "s ago";
  if (d < 7200)
    return std::to_string(d / 60) + "m ago";
  return std::to_string(d / 3600) + "h ago";
}

std::string ms(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", v);
  return buf;
}

struct Cli {
  std::string socket;
  bool json = false;
  int timeout_s = 30;
  std::unique_ptr<op::Operator::Stub> stub;

  void connect() {
    std::string target = socket.find('/') != std::string::npos && socket.rfind("unix:", 0) != 0
                             ? "unix:" + socket
                             : socket;
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(64 << 20);
    stub = op::Operator::NewStub(
        grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args));
  }

  // Runs one call; prints the error and returns false on failure.
  template <typename Req, typename Reply, typename Method>
  bool call(Method method, const Req &req, Reply *reply) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_s));
    grpc::Status st = ((*stub).*method)(&ctx, req, reply);
    if (st.ok())
      return true;
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
        st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      std::cerr << "stratusctl: cannot reach stratusd at " << socket << ": " << st.error_message()
                << "\n";
    } else {
      std::cerr << "stratusctl: " << st.error_message() << "\n";
    }
    return false;
  }

  bool print_json(const google::protobuf::Message &m) {
    if (!json)
      return false;
    google::protobuf::util::JsonPrintOptions o;
    o.add_whitespace = true;
    o.always_print_primitive_fields = true;
    o.preserve_proto_field_names = true;
    std::string out;
    (void)google::protobuf::util::MessageToJsonString(m, &out, o);
    std::cout << out;
    if (out.empty() || out.back() != '\n')
      std::cout << "\n";
    return true;
  }
};

void print_reload(const op::ReloadResult &r) {
  std::cout << "reload " << (r.ok() ? "ok" : "REJECTED") << " (" << r.trigger() << ", "
            << r.source() << ", " << ago(r.unix_ms()) << "): generation " << r.generation()
            << (r.ok() && !r.changed() ? " (no change)" : "") << "\n";
  for (const auto &e : r.errors())
    std::cout << "  error: " << e << "\n";
  for (const auto &w : r.warnings())
    std::cout << "  warning: " << w << "\n";
}

void print_backend_table(const google::protobuf::RepeatedPtrField<op::BackendInfo> &list) {
  Table t(
      {"BACKEND", "ADDRESS", "STATE", "WEIGHT", "HEALTH", "OVERRIDE", "SLOTS", "ENCAP", "TUNNEL"});
  for (const auto &b : list) {
    std::string state = b.state();
    if (b.state() != b.configured_state())
      state += " (config " + b.configured_state() + ")";
    std::string weight = num(b.weight());
    if (b.weight() != b.configured_weight())
      weight += " (config " + num(b.configured_weight()) + ")";
    std::string health = b.health();
    if (!b.health_detail().empty() && b.health() != "unchecked")
      health += " (" + b.health_detail() + ")";
    t.add({b.name(), b.address(), state, weight, health, b.override().empty() ? "-" : b.override(),
           num(b.slots()), b.encap(), b.tunnel()});
  }
  t.print(std::cout);
}

std::optional<std::uint32_t> parse_u32(const std::string &s, std::uint32_t max) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 10)
    return std::nullopt;
  unsigned long long v = std::stoull(s);
  if (v > max)
    return std::nullopt;
  return static_cast<std::uint32_t>(v);
}

}  // namespace

int main(int argc, char **argv) {
  Cli cli;
  const char *env = std::getenv("STRATUS_SOCKET");
  cli.socket = env && *env ? env : "/run/stratus/stratusd.sock";
  std::vector<std::string> args;
  std::string node, tenant, service_filter;
  bool underlay = false;
  std::uint32_t limit = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (a == "--socket" || a == "-s") {
      if (!value(cli.socket))
        return usage_error(a + " needs a value");
    } else if (a == "--json") {
      cli.json = true;
    } else if (a == "--timeout") {
      if (!value(v) || !parse_u32(v, 3600))
        return usage_error("--timeout needs seconds");
      cli.timeout_s = static_cast<int>(*parse_u32(v, 3600));
    } else if (a == "--node") {
      if (!value(node))
        return usage_error("--node needs a value");
    } else if (a == "--tenant") {
      if (!value(tenant))
        return usage_error("--tenant needs a value");
    } else if (a == "--underlay") {
      underlay = true;
    } else if (a == "--service") {
      if (!value(service_filter))
        return usage_error("--service needs a value");
    } else if (a == "--limit") {
      if (!value(v) || !parse_u32(v, 1000000))
        return usage_error("--limit needs a number");
      limit = *parse_u32(v, 1000000);
    } else if (a == "-h" || a == "--help" || a == "help") {
      std::cout << kUsage;
      return 0;
    } else if (a.size() > 1 && a[0] == '-' &&
               a.find_first_not_of("0123456789", 1) != std::string::npos) {
      return usage_error("unknown option " + a);
    } else {
      args.push_back(a);
    }
  }
  if (args.empty())
    return usage_error("no command");
  const std::string cmd = args[0];
  auto want = [&](std::size_t n) { return args.size() == n + 1; };

  // Local: needs no daemon.
  if (cmd == "validate") {
    if (!want(1))
      return usage_error("validate FILE");
    auto r = stratus::config::load_config(args[1]);
    op::ValidateReply reply;
    reply.set_ok(r.ok());
    for (const auto &e : r.errors)
      reply.add_errors(e.str());
    for (const auto &w : r.warnings)
      reply.add_warnings(w.str());
    if (r.config) {
      reply.set_nodes(static_cast<std::uint32_t>(r.config->nodes.size()));
      reply.set_tenants(static_cast<std::uint32_t>(r.config->tenants.size()));
      reply.set_services(static_cast<std::uint32_t>(r.config->services.size()));
    }
    if (!cli.print_json(reply)) {
      for (const auto &w : reply.warnings())
        std::cerr << w << " (warning)\n";
      for (const auto &e : reply.errors())
        std::cerr << e << "\n";
      if (reply.ok()) {
        std::cout << args[1] << ": valid (" << reply.nodes() << " nodes, " << reply.tenants()
                  << " tenants, " << reply.services() << " services)\n";
      } else {
        std::cerr << args[1] << ": " << reply.errors_size() << " error"
                  << (reply.errors_size() == 1 ? "" : "s") << "\n";
      }
    }
    return reply.ok() ? 0 : 1;
  }

  cli.connect();
  using S = op::Operator::Stub;

  if (cmd == "status") {
    if (!want(0))
      return usage_error("status takes no argument");
    op::StatusReply r;
    if (!cli.call(&S::Status, op::StatusRequest(), &r))
      return 1;
    if (cli.print_json(r))
      return 0;
    std::cout << "stratusd " << r.version() << ", up " << r.uptime_s() << " s\n"
              << "config      " << r.config_path() << " ("
              << (r.config_valid() ? "valid" : "INVALID: last reload rejected") << ")\n"
              << "generation  " << r.generation() << "\n"
              << "nodes       " << r.nodes_in_sync() << "/" << r.nodes() << " in sync\n"
              << "tenants     " << r.tenants() << "\n"
              << "services    " << r.services() << " (" << r.backends() << " backends, "
              << r.backends_down() << " down by health, " << r.overrides()
              << " with operator overrides)\n";
    print_reload(r.last_reload());
    return 0;
  }
  if (cmd == "nodes") {
    if (!want(0))
      return usage_error("nodes takes no argument");
    op::NodesReply r;
    if (!cli.call(&S::Nodes, op::NodesRequest(), &r))
      return 1;
    if (cli.print_json(r))
      return 0;
    Table t({"NODE", "REGION", "KIND", "ENDPOINT", "STATE", "GEN", "WANT", "DIGEST", "LAST SYNC",
             "PUSH", "ERROR"});
    for (const auto &n : r.nodes()) {
      std::string digest = n.digest() == n.expected_digest()
                               ? n.digest()
                               : n.digest() + " (want " + n.expected_digest() + ")";
      t.add({n.name(), n.region(), n.kind(), n.endpoint(), n.state(), num(n.generation()),
             num(n.desired_generation()), digest, ago(n.last_sync_unix_ms()),
             n.last_sync_unix_ms() ? ms(n.last_push_ms()) + ", " + num(n.last_push_ops()) + " ops"
                                   : "-",
             n.last_error().empty() ? "-" : n.last_error()});
    }
    t.print(std::cout);
    return 0;
  }
  if (cmd == "tenants") {
    if (!want(0))
      return usage_error("tenants takes no argument");
    op::TenantsReply r;
    if (!cli.call(&S::Tenants, op::TenantsRequest(), &r))
      return 1;
    if (cli.print_json(r))
      return 0;
    Table t({"TENANT", "VNI", "REGION VNIS", "SUBNETS", "GATEWAYS", "ROUTES", "SERVICES"});
    auto join = [](const auto &list) {
      std::string s;
      for (const auto &x : list)
        s += (s.empty() ? "" : ",") + x;
      return s.empty() ? std::string("-") : s;
    };
    for (const auto &x : r.tenants()) {
      t.add({x.name(), num(x.vni()), join(x.region_vnis()), join(x.subnets()), join(x.gateways()),
             num(x.routes()), num(x.services())});
    }
    t.print(std::cout);
    return 0;
  }
  if (cmd == "routes") {
    if (!want(1))
      return usage_error("routes TENANT [--node NODE]");
    op::RoutesRequest req;
    req.set_tenant(args[1]);
    req.set_node(node);
    op::RoutesReply r;
    if (!cli.call(&S::Routes, req, &r))
      return 1;
    if (cli.print_json(r))
      return 0;
    Table t({"NODE", "PREFIX", "KIND", "TARGET"});
    for (const auto &x : r.routes())
      t.add({x.node(), x.prefix(), x.kind(), x.target().empty() ? "-" : x.target()});
    t.print(std::cout);
    return 0;
  }
  if (cmd == "services") {
    if (!want(0))
      return usage_error("services takes no argument");
    op::ServicesReply r;
    if (!cli.call(&S::Services, op::ServicesRequest(), &r))
      return 1;
    if (cli.print_json(r))
      return 0;
    Table t({"SERVICE", "TENANT", "VIP", "PORT", "M", "BACKENDS", "ACTIVE", "DRAINING", "DOWN",
             "NODES"});
    for (const auto &s : r.services()) {
      std::string nodes;
      for (const auto &n : s.nodes())
        nodes += (nodes.empty() ? "" : ",") + n;
      t.add({s.name(), s.tenant().empty() ? "(underlay)" : s.tenant(), s.vip(),
             s.protocol() + "/" + num(s.port()), num(s.maglev_size()), num(s.backends()),
             num(s.active()), num(s.draining()), num(s.down()), nodes.empty() ? "-" : nodes});
    }
    t.print(std::cout);
    return 0;
  }
  if (cmd == "backends") {
    if (!want(1))
      return usage_error("backends SERVICE");
    op::BackendsRequest req;
    req.set_service(args[1]);
    op::BackendsReply r;
    if (!cli.call(&S::Backends, req, &r))
      return 1;
    if (cli.print_json(r))
      return 0;
    std::cout << "service " << r.service() << ", Maglev table of " << r.maglev_size() << " slots\n";
    print_backend_table(r.backends());
    return 0;
  }
  if (cmd == "drain" || cmd == "undrain" || cmd == "weight" || cmd == "reset") {
    op::SetBackendRequest req;
    if (cmd == "weight") {
      if (!want(3))
        return usage_error("weight SERVICE BACKEND N");
      auto w = parse_u32(args[3], 1000000);
      if (!w)
        return usage_error("weight must be a number in 0..1000000, got " + args[3]);
      req.set_action(op::SetBackendRequest::ACTION_WEIGHT);
      req.set_weight(*w);
    } else {
      if (!want(2))
        return usage_error(cmd + " SERVICE BACKEND");
      req.set_action(cmd == "drain"     ? op::SetBackendRequest::ACTION_DRAIN
                     : cmd == "undrain" ? op::SetBackendRequest::ACTION_UNDRAIN
                                        : op::SetBackendRequest::ACTION_RESET);
    }
    req.set_service(args[1]);
    req.set_backend(args[2]);
    op::SetBackendReply r;
    if (!cli.call(&S::SetBackend, req, &r))
      return 1;
    if (cli.print_json(r))
      return 0;
    std::cout << args[1] << "/" << args[2] << ": " << r.backend().state() << ", weight "
              << r.backend().weight() << ", " << r.backend().slots() << " Maglev slots (generation "
              << r.generation() << ")\n";
    return 0;
  }
  if (cmd == "flows") {
    if (!want(1))
      return usage_error("flows NODE [--limit N] [--service S]");
    op::FlowsRequest req;
    req.set_node(args[1]);
    req.set_limit(limit);
    req.set_service(service_filter);
    op::FlowsReply r;
    if (!cli.call(&S::Flows, req, &r))
      return 1;
    if (cli.print_json(r))
      return 0;
    Table t({"TENANT", "PROTO", "SOURCE", "DESTINATION", "SERVICE", "BACKEND", "CPU", "AGE"});
    for (const auto &f : r.flows()) {
      t.add({f.tenant().empty() ? "(underlay)" : f.tenant(), f.protocol(),
             f.src() + ":" + num(f.sport()), f.dst() + ":" + num(f.dport()), f.service(),
             f.backend(), num(f.cpu()), ms(static_cast<double>(f.age_ms()))});
    }
    t.print(std::cout);
    std::cout << r.flows_size() << " flows on " << r.node() << "\n";
    return 0;
  }
  if (cmd == "explain") {
    if (!want(5))
      return usage_error("explain (--tenant T | --underlay) SRC DST PROTO SPORT DPORT");
    if (tenant.empty() == !underlay)
      return usage_error("explain needs --tenant T or --underlay");
    auto sport = parse_u32(args[4], 65535), dport = parse_u32(args[5], 65535);
    if (!sport || !dport)
      return usage_error("ports must be numbers in 0..65535");
    op::ExplainRequest req;
    req.set_tenant(tenant);
    req.set_underlay(underlay);
    req.set_src(args[1]);
    req.set_dst(args[2]);
    req.set_protocol(args[3]);
    req.set_sport(*sport);
    req.set_dport(*dport);
    req.set_node(node);
    op::ExplainReply r;
    if (!cli.call(&S::Explain, req, &r))
      return 1;
    bool all_ok = true;
    for (const auto &n : r.nodes())
      all_ok &= n.ok();
    if (cli.print_json(r))
      return all_ok ? 0 : 1;
    for (const auto &n : r.nodes()) {
      if (!n.ok()) {
        std::cout << n.node() << ": cannot answer: " << n.error() << "\n";
        continue;
      }
      std::cout << n.node() << " (generation " << n.generation() << "): " << n.summary() << "\n";
      if (n.path() == "service") {
        std::cout << "  service " << n.service() << ", flow hash " << n.flow_hash() << ", slot "
                  << n.slot() << " -> backend " << n.backend()
                  << (n.existing_flow() ? " (existing flow)" : "") << "\n";
      } else if (n.path() == "route") {
        std::cout << "  route " << n.route() << "\n";
      } else {
        std::cout << "  drop: " << n.drop_reason() << "\n";
      }
      if (!n.outer_dst().empty()) {
        std::cout << "  " << n.encap() << " " << n.outer_src() << " -> " << n.outer_dst();
        if (n.encap() == "vxlan")
          std::cout << " vni " << n.vni() << " udp sport " << n.udp_sport();
        std::cout << " via " << n.egress_port() << "\n";
      }
    }
    return all_ok ? 0 : 1;
  }
  if (cmd == "reload") {
    if (!want(0))
      return usage_error("reload takes no argument");
    op::ReloadReply r;
    if (!cli.call(&S::Reload, op::ReloadRequest(), &r))
      return 1;
    if (!cli.print_json(r))
      print_reload(r.result());
    return r.result().ok() ? 0 : 1;
  }
  return usage_error("unknown command \"" + cmd + "\"");
}
