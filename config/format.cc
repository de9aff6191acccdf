#include "config/format.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <vector>

#include "config/model.h"

namespace stratus::config {

namespace {

// Rows of cells printed with every column as wide as its widest cell.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.size() == 1; }

  void render(std::string &out, const std::string &indent) const {
    std::vector<std::size_t> width;
    for (const auto &row : rows_) {
      if (width.size() < row.size())
        width.resize(row.size(), 0);
      for (std::size_t i = 0; i < row.size(); ++i)
        width[i] = std::max(width[i], row[i].size());
    }
    for (const auto &row : rows_) {
      std::string line = indent;
      for (std::size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size())
          line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ')
        line.pop_back();
      out += line + "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string join_ips(const std::vector<IpAddress> &list) {
  std::string out;
  for (const auto &a : list)
    out += (out.empty() ? "" : ", ") + a.str();
  return out.empty() ? "-" : out;
}

std::string percent(std::uint64_t part, std::uint64_t whole) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", whole ? 100.0 * part / whole : 0.0);
  return buf;
}

}  // namespace

std::string format_tables(const Tables &t) {
  const NodeTable &n = t.node;
  std::string out;
  std::map<std::uint32_t, std::string> tenant_of;
  for (const auto &v : t.vrfs)
    tenant_of[v.id] = v.tenant;
  auto vrf_name = [&](std::uint32_t vrf) {
    if (vrf == kUnderlayVrf)
      return std::string("underlay");
    auto it = tenant_of.find(vrf);
    return std::to_string(vrf) + " " + (it == tenant_of.end() ? std::string("?") : it->second);
  };

  out += "node " + n.name + " (" + std::string(to_string(n.kind)) + ")  digest " +
         digest_hex(digest(t)) + "\n";
  char seed[16];
  std::snprintf(seed, sizeof seed, "0x%08x", n.hash_seed);
  TextTable facts({"vteps", join_ips(n.vteps)});
  facts.add({"vxlan_port", std::to_string(n.vxlan_port)});
  facts.add({"underlay_mtu", std::to_string(n.underlay_mtu)});
  facts.add({"gateway_mac", n.gateway_mac.str()});
  facts.add({"hash_seed", seed});
  facts.add({"flows", "max_entries " + std::to_string(n.flows.max_entries) + ", tcp_timeout " +
                          std::to_string(n.flows.tcp_timeout_s) + " s, udp_timeout " +
                          std::to_string(n.flows.udp_timeout_s) + " s"});
  facts.render(out, "  ");

  out += "\nports\n";
  TextTable ports({"NAME", "ROLE", "MAC", "VRF"});
  for (const auto &p : n.ports) {
    ports.add({p.name, std::string(to_string(p.role)), p.mac.is_zero() ? "(device)" : p.mac.str(),
               p.role == PortRole::kTenant ? vrf_name(p.vrf) : "-"});
  }
  ports.render(out, "  ");

  out += "\nnext hops\n";
  TextTable hops({"REMOTE", "PORT", "DST_MAC", "SRC_MAC"});
  for (const auto &h : t.nexthops) {
    hops.add({h.remote.empty() ? "default" : h.remote.str(), h.port, h.dst_mac.str(),
              h.src_mac.is_zero() ? "(port)" : h.src_mac.str()});
  }
  if (hops.empty()) {
    out += "  (none)\n";
  } else {
    hops.render(out, "  ");
  }

  out += "\nvrfs\n";
  TextTable vrfs({"ID", "TENANT", "VNI", "GATEWAYS"});
  for (const auto &v : t.vrfs) {
    vrfs.add({std::to_string(v.id), v.tenant, std::to_string(v.vni), join_ips(v.gateways)});
  }
  if (vrfs.empty()) {
    out += "  (none)\n";
  } else {
    vrfs.render(out, "  ");
  }

  out += "\nroutes\n";
  TextTable routes({"VRF", "PREFIX", "KIND", "VIA", "VNI_OUT", "DST_MAC"});
  for (const auto &r : t.routes) {
    std::vector<std::string> row = {vrf_name(r.vrf), r.prefix.str(),
                                    std::string(to_string(r.kind))};
    switch (r.kind) {
      case RouteKind::kRemote:
        row.insert(row.end(), {"vtep " + r.vtep.str(), std::to_string(r.vni_out), r.dst_mac.str()});
        break;
      case RouteKind::kLocal:
        row.insert(row.end(), {"port " + r.port, "-", r.dst_mac.str()});
        break;
      case RouteKind::kBlackhole:
        row.insert(row.end(), {"-", "-", "-"});
        break;
    }
    routes.add(std::move(row));
  }
  if (routes.empty()) {
    out += "  (none)\n";
  } else {
    routes.render(out, "  ");
  }

  out += "\nservices\n";
  if (t.services.empty())
    out += "  (none)\n";
  for (const auto &s : t.services) {
    out += "  " + std::to_string(s.id) + " " + s.name + "  " + s.vip.str() + " " +
           protocol_name(s.proto) + "/" + (s.port ? std::to_string(s.port) : "any") + "  vrf " +
           vrf_name(s.vrf) + "  mode " + std::string(to_string(s.mode)) + "  hash " +
           hash_flags_str(s.hash_flags) + "\n";
    std::vector<std::uint64_t> slots(s.backends.size(), 0);
    for (std::uint32_t idx : s.maglev) {
      if (idx < slots.size())
        ++slots[idx];
    }
    TextTable backends({"ID", "NAME", "ADDRESS", "VRF", "WEIGHT", "STATE", "ENCAP", "TUNNEL_DST",
                        "VNI", "INNER_MAC", "SLOTS"});
    for (std::size_t i = 0; i < s.backends.size(); ++i) {
      const Backend &b = s.backends[i];
      bool vxlan = b.encap == Encap::kVxlan;
      backends.add({std::to_string(b.id), b.name, b.addr.str(), vrf_name(b.vrf),
                    std::to_string(b.weight), std::string(to_string(b.state)),
                    std::string(to_string(b.encap)), b.tunnel_dst.str(),
                    vxlan ? std::to_string(b.vni) : "-", vxlan ? b.inner_dst_mac.str() : "-",
                    std::to_string(slots[i]) + " (" + percent(slots[i], s.maglev.size()) + ")"});
    }
    if (backends.empty()) {
      out += "      (no backends)\n";
    } else {
      backends.render(out, "      ");
    }
    if (s.maglev.empty()) {
      out += "      maglev: M " + std::to_string(s.maglev_size) +
             ", table empty (no backend takes new flows)\n";
    } else {
      std::size_t holders = std::count_if(slots.begin(), slots.end(), [](auto c) { return c > 0; });
      out += "      maglev: " + std::to_string(s.maglev.size()) + " slots, held by " +
             std::to_string(holders) + " of " + std::to_string(s.backends.size()) + " backends\n";
    }
  }
  return out;
}

}  // namespace stratus::config
