// Named invalid configurations: each case is YAML text and the exact list of
// errors the loader must report for it (FILE:LINE:COL: FIELD.PATH: message).
// Most cases append to kBase, a valid single-node prefix of 8 lines, so
// their own text starts at line 9.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "config/validate.h"

namespace stratus::config {
namespace {

constexpr const char *kBase = R"(nodes:
  - name: gw
    region: a
    kind: xdp
    api: unix:/run/gw.sock
    vteps: [192.0.2.1]
    ports:
      - {name: eth0, role: underlay}
)";

// Two nodes in two regions, 14 lines; case text starts at line 15.
constexpr const char *kTwoRegions = R"(nodes:
  - name: gw-a
    region: a
    kind: xdp
    api: unix:/run/gw-a.sock
    vteps: [192.0.2.1]
    gateway_mac: "02:00:00:00:0a:01"
  - name: gw-b
    region: b
    kind: dpdk
    api: 127.0.0.1:50052
    vteps: [198.51.100.1]
    gateway_mac: "02:00:00:00:0b:01"
tenants:
)";

struct InvalidCase {
  std::string name;
  std::string yaml;
  std::vector<std::string> errors;
};

std::string base(const char *rest) {
  return std::string(kBase) + rest;
}
std::string two_regions(const char *rest) {
  return std::string(kTwoRegions) + rest;
}

const std::vector<InvalidCase> &cases() {
  static const std::vector<InvalidCase> kCases = {
      // ---------------------------------------------------------- document shape
      {"syntax_error_has_position",
       "nodes:\n  - name: gw\n   region: a\n",
       {"test.yaml:3:4: syntax: end of sequence not found"}},
      {"empty_document", "", {"test.yaml: document: the configuration is empty"}},
      {"top_level_not_a_mapping",
       "- a\n- b\n",
       {"test.yaml:1:1: document: expected a mapping, got a list"}},
      {"nodes_missing", "tenants: []\n", {"test.yaml:1:1: nodes: required key is missing"}},
      {"nodes_empty", "nodes: []\n", {"test.yaml:1:8: nodes: at least one node is required"}},
      {"unknown_top_level_key_with_suggestion",
       base("tenant:\n  - name: red\n"),
       {"test.yaml:9:1: tenant: unknown key \"tenant\" (did you mean \"tenants\"?)"}},
      {"unknown_nested_key_and_missing_required",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    backends:\n"
            "      - {name: b1, adress: 192.0.2.50}\n"),
       {"test.yaml:13:9: services[0].backends[0].address: required key is missing",
        "test.yaml:13:20: services[0].backends[0].adress: unknown key \"adress\" (did you mean "
        "\"address\"?)"}},
      {"duplicate_key",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    vni: 200\n"),
       {"test.yaml:12:5: tenants[0].vni: duplicate key (first at line 11)"}},
      {"missing_required_key",
       base("tenants:\n"
            "  - name: red\n"),
       {"test.yaml:10:5: tenants[0].vni: required key is missing"}},

      // ---------------------------------------------------------- value types
      {"list_expected_got_scalar",
       base("tenants: red\n"),
       {"test.yaml:9:10: tenants: expected a list, got \"red\""}},
      {"name_expected_got_list",
       base("tenants:\n"
            "  - name: [red]\n"
            "    vni: 100\n"),
       {"test.yaml:10:11: tenants[0].name: expected a name, got a list"}},
      {"invalid_name_characters",
       base("tenants:\n"
            "  - name: \"red team\"\n"
            "    vni: 100\n"),
       {"test.yaml:10:11: tenants[0].name: \"red team\" is not a valid name (letters, digits, "
        "'.', '_', '-', starting with a letter or digit, at most 63 characters)"}},
      {"integer_expected",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: abc\n"),
       {"test.yaml:11:10: tenants[0].vni: expected an integer, got \"abc\""}},
      {"vni_out_of_range",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 16777216\n"),
       {"test.yaml:11:10: tenants[0].vni: must be <= 16777215, got 16777216"}},
      {"vni_zero",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 0\n"),
       {"test.yaml:11:10: tenants[0].vni: must be >= 1, got 0"}},
      {"mtu_out_of_range",
       "nodes:\n"
       "  - name: gw\n"
       "    region: a\n"
       "    kind: xdp\n"
       "    api: unix:/run/gw.sock\n"
       "    vteps: [192.0.2.1]\n"
       "    underlay_mtu: 100\n",
       {"test.yaml:7:19: nodes[0].underlay_mtu: must be >= 576, got 100"}},
      {"bad_ip_address",
       "nodes:\n"
       "  - name: gw\n"
       "    region: a\n"
       "    kind: xdp\n"
       "    api: unix:/run/gw.sock\n"
       "    vteps: [192.0.2.300]\n",
       {"test.yaml:6:13: nodes[0].vteps[0]: \"192.0.2.300\" is not an IP address"}},
      {"bad_prefix",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    subnets: [10.1.0.0/33]\n"),
       {"test.yaml:12:15: tenants[0].subnets[0]: \"10.1.0.0/33\" is not an IP prefix (expected "
        "address/length)"}},
      {"route_prefix_with_host_bits",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.1/16, blackhole: true}\n"),
       {"test.yaml:13:18: tenants[0].routes[0].prefix: \"10.1.0.1/16\" has host bits set (did "
        "you mean 10.1.0.0/16?)"}},
      {"bad_mac",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.5/32, remote: {vtep: 192.0.2.11, mac: \"02:00:00:00:00\"}}\n"),
       {"test.yaml:13:63: tenants[0].routes[0].remote.mac: \"02:00:00:00:00\" is not a MAC "
        "address (expected xx:xx:xx:xx:xx:xx)"}},
      {"multicast_gateway_mac",
       "nodes:\n"
       "  - name: gw\n"
       "    region: a\n"
       "    kind: xdp\n"
       "    api: unix:/run/gw.sock\n"
       "    vteps: [192.0.2.1]\n"
       "    gateway_mac: \"01:00:5e:00:00:01\"\n",
       {"test.yaml:7:18: nodes[0].gateway_mac: \"01:00:5e:00:00:01\" is a multicast MAC, not a "
        "station address"}},
      {"bad_node_kind",
       "nodes:\n"
       "  - name: gw\n"
       "    region: a\n"
       "    kind: ebpf\n"
       "    api: unix:/run/gw.sock\n"
       "    vteps: [192.0.2.1]\n",
       {"test.yaml:4:11: nodes[0].kind: \"ebpf\" is not one of: xdp, dpdk"}},
      {"bad_api_endpoint",
       "nodes:\n"
       "  - name: gw\n"
       "    region: a\n"
       "    kind: xdp\n"
       "    api: localhost\n"
       "    vteps: [192.0.2.1]\n",
       {"test.yaml:5:10: nodes[0].api: \"localhost\" is not an endpoint (expected unix:/path or "
        "host:port)"}},
      {"bad_protocol",
       base("services:\n"
            "  - {name: web, vip: 203.0.113.10, protocol: sctp}\n"),
       {"test.yaml:10:46: services[0].protocol: \"sctp\" is not one of: tcp, udp"}},
      {"negative_weight",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    backends:\n"
            "      - {name: b1, address: 192.0.2.50, weight: -1}\n"),
       {"test.yaml:13:49: services[0].backends[0].weight: must be >= 0, got -1"}},
      {"unknown_hash_field",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    hash: [src_ip, src_mac]\n"),
       {"test.yaml:12:20: services[0].hash[1]: \"src_mac\" is not one of: src_ip, dst_ip, "
        "src_port, dst_port, proto"}},

      // ---------------------------------------------------------- nodes
      {"duplicate_node_name",
       "nodes:\n"
       "  - {name: gw, region: a, kind: xdp, api: unix:/run/a.sock, vteps: [192.0.2.1]}\n"
       "  - {name: gw, region: a, kind: xdp, api: unix:/run/b.sock, vteps: [192.0.2.2]}\n",
       {"test.yaml:3:12: nodes[1].name: duplicate node \"gw\" (first at line 2)"}},
      {"duplicate_vtep_across_nodes",
       "nodes:\n"
       "  - {name: gw1, region: a, kind: xdp, api: unix:/run/a.sock, vteps: [192.0.2.1]}\n"
       "  - {name: gw2, region: a, kind: xdp, api: unix:/run/b.sock, vteps: [192.0.2.1]}\n",
       {"test.yaml:3:70: nodes[1].vteps[0]: VTEP 192.0.2.1 is already used by node \"gw1\""}},
      {"nexthop_unknown_port",
       base("    nexthops:\n"
            "      - {remote: default, port: eth9, mac: \"02:00:00:00:00:01\"}\n"),
       {"test.yaml:10:33: nodes[0].nexthops[0].port: node \"gw\" has no port \"eth9\""}},
      {"tenant_port_without_tenant",
       base("      - {name: tap0, role: tenant}\n"),
       {"test.yaml:9:9: nodes[0].ports[1].tenant: required for a tenant port"}},
      {"underlay_port_with_tenant",
       base("      - {name: eth1, role: underlay, tenant: red}\n"
            "tenants:\n"
            "  - {name: red, vni: 100}\n"),
       {"test.yaml:9:46: nodes[0].ports[1].tenant: only tenant ports belong to a tenant"}},

      {"nexthop_on_tenant_port_and_duplicate_default",
       base("      - {name: tap0, role: tenant, tenant: red}\n"
            "    nexthops:\n"
            "      - {remote: default, port: tap0, mac: \"02:00:00:00:00:01\"}\n"
            "      - {remote: default, port: eth0, mac: \"02:00:00:00:00:02\"}\n"
            "tenants: [{name: red, vni: 1}]\n"),
       {"test.yaml:11:33: nodes[0].nexthops[0].port: port \"tap0\" is not an underlay port",
        "test.yaml:12:18: nodes[0].nexthops[1].remote: duplicate default next hop"}},
      {"node_missing_every_required_key",
       "nodes:\n  - {vxlan_port: 4789}\n",
       {"test.yaml:2:5: nodes[0].api: required key is missing",
        "test.yaml:2:5: nodes[0].kind: required key is missing",
        "test.yaml:2:5: nodes[0].name: required key is missing",
        "test.yaml:2:5: nodes[0].region: required key is missing",
        "test.yaml:2:5: nodes[0].vteps: required key is missing"}},
      {"duplicate_api_endpoint",
       "nodes:\n"
       "  - {name: gw1, region: a, kind: xdp, api: 10.0.0.1:50051, vteps: [192.0.2.1]}\n"
       "  - {name: gw2, region: a, kind: xdp, api: 10.0.0.1:50051, vteps: [192.0.2.2]}\n",
       {"test.yaml:3:44: nodes[1].api: endpoint 10.0.0.1:50051 is already used by node \"gw1\""}},

      // ---------------------------------------------------------- tenants
      {"duplicate_tenant_name",
       base("tenants:\n"
            "  - {name: red, vni: 100}\n"
            "  - {name: red, vni: 200}\n"),
       {"test.yaml:11:12: tenants[1].name: duplicate tenant \"red\" (first at line 10)"}},
      {"duplicate_vni_in_region",
       base("tenants:\n"
            "  - {name: red, vni: 100}\n"
            "  - {name: blue, vni: 100}\n"),
       {"test.yaml:11:23: tenants[1].vni: VNI 100 is already used by tenant \"red\" in region "
        "\"a\""}},
      {"duplicate_vni_through_region_override",
       base("tenants:\n"
            "  - {name: red, vni: 100}\n"
            "  - {name: blue, vni: 200, region_vnis: {a: 100}}\n"),
       {"test.yaml:11:45: tenants[1].region_vnis.a: VNI 100 is already used by tenant \"red\" in "
        "region \"a\""}},
      {"region_vnis_unknown_region",
       base("tenants:\n"
            "  - {name: red, vni: 100, region_vnis: {c: 300}}\n"),
       {"test.yaml:10:41: tenants[0].region_vnis.c: unknown region \"c\" (regions named by "
        "nodes: a)"}},
      {"overlapping_subnets",
       base("tenants:\n"
            "  - {name: red, vni: 100, subnets: [10.1.0.0/16, 10.1.2.0/24]}\n"),
       {"test.yaml:10:50: tenants[0].subnets[1]: subnet 10.1.2.0/24 overlaps 10.1.0.0/16"}},
      {"gateway_outside_subnets",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    subnets: [10.1.0.0/16]\n"
            "    gateways: [10.1.0.1, 10.9.0.1]\n"),
       {"test.yaml:13:26: tenants[0].gateways[1]: gateway 10.9.0.1 is not inside a subnet of "
        "tenant \"red\""}},

      // ---------------------------------------------------------- routes
      {"route_without_target",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/16}\n"),
       {"test.yaml:13:9: tenants[0].routes[0]: needs one of remote, peering, local, "
        "blackhole"}},
      {"route_with_two_targets",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/16, blackhole: true, peering: p}\n"),
       {"test.yaml:13:57: tenants[0].routes[0].peering: a route has exactly one of remote, "
        "peering, local, blackhole (this one also has blackhole)"}},
      {"blackhole_false",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/16, blackhole: false}\n"),
       {"test.yaml:13:9: tenants[0].routes[0]: needs one of remote, peering, local, blackhole",
        "test.yaml:13:42: tenants[0].routes[0].blackhole: must be true (leave the key out for "
        "another target)"}},
      {"route_unknown_region",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/16, region: z, blackhole: true}\n"),
       {"test.yaml:13:39: tenants[0].routes[0].region: unknown region \"z\" (regions named by "
        "nodes: a)"}},
      {"route_unknown_peering",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.2.0.0/16, peering: to-b}\n"),
       {"test.yaml:13:40: tenants[0].routes[0].peering: unknown peering \"to-b\""}},
      {"local_route_unknown_node",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/24, local: {node: gw9, port: tap0, mac: "
            "\"02:00:00:00:00:05\"}}\n"),
       {"test.yaml:13:45: tenants[0].routes[0].local.node: unknown node \"gw9\""}},
      {"local_route_unknown_port",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/24, local: {node: gw, port: tap9, mac: "
            "\"02:00:00:00:00:05\"}}\n"),
       {"test.yaml:13:55: tenants[0].routes[0].local.port: node \"gw\" has no port \"tap9\""}},
      {"local_route_to_underlay_port",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/24, local: {node: gw, port: eth0, mac: "
            "\"02:00:00:00:00:05\"}}\n"),
       {"test.yaml:13:55: tenants[0].routes[0].local.port: port \"eth0\" of node \"gw\" is not a "
        "tenant port"}},
      {"local_route_to_other_tenants_port",
       base("      - {name: tap-blue, role: tenant, tenant: blue}\n"
            "tenants:\n"
            "  - {name: blue, vni: 200}\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/24, local: {node: gw, port: tap-blue, mac: "
            "\"02:00:00:00:00:05\"}}\n"),
       {"test.yaml:15:55: tenants[1].routes[0].local.port: port \"tap-blue\" of node \"gw\" "
        "belongs to tenant \"blue\", not \"red\""}},
      {"duplicate_route",
       base("tenants:\n"
            "  - name: red\n"
            "    vni: 100\n"
            "    routes:\n"
            "      - {prefix: 10.1.0.0/16, blackhole: true}\n"
            "      - {prefix: 10.1.0.0/16, region: a, remote: {vtep: 192.0.2.9, mac: "
            "\"02:00:00:00:00:09\"}}\n"),
       {"test.yaml:14:18: tenants[0].routes[1].prefix: duplicate route for 10.1.0.0/16 (first "
        "at line 13)"}},

      // ---------------------------------------------------------- peerings
      {"peering_vni_does_not_match_remote_region",
       two_regions("  - {name: red, vni: 1001, region_vnis: {b: 2001}}\n"
                   "peerings:\n"
                   "  - name: a-to-b\n"
                   "    region: a\n"
                   "    remote_vtep: 198.51.100.1\n"
                   "    remote_mac: \"02:00:00:00:0b:01\"\n"
                   "    vni_map: [{tenant: red, vni: 2002}]\n"),
       {"test.yaml:21:34: peerings[0].vni_map[0].vni: VNI 2002 does not match tenant \"red\"'s "
        "VNI 2001 in region \"b\""}},
      {"peering_remote_mac_is_not_the_remote_gateway_mac",
       two_regions("  - {name: red, vni: 1001}\n"
                   "peerings:\n"
                   "  - name: a-to-b\n"
                   "    region: a\n"
                   "    remote_vtep: 198.51.100.1\n"
                   "    remote_mac: \"02:00:00:00:0b:99\"\n"
                   "    vni_map: [{tenant: red, vni: 1001}]\n"),
       {"test.yaml:20:17: peerings[0].remote_mac: 02:00:00:00:0b:99 is not the gateway_mac of "
        "node \"gw-b\" (02:00:00:00:0b:01)"}},
      {"peering_toward_own_region",
       two_regions("  - {name: red, vni: 1001}\n"
                   "peerings:\n"
                   "  - name: a-to-a\n"
                   "    region: a\n"
                   "    remote_vtep: 192.0.2.1\n"
                   "    remote_mac: \"02:00:00:00:0a:01\"\n"),
       {"test.yaml:19:18: peerings[0].remote_vtep: 192.0.2.1 is a VTEP of node \"gw-a\" in the "
        "peering's own region \"a\""}},
      {"route_through_peering_without_vni_map_entry",
       two_regions("  - name: red\n"
                   "    vni: 1001\n"
                   "    routes: [{prefix: 10.2.0.0/16, peering: a-to-b}]\n"
                   "peerings:\n"
                   "  - {name: a-to-b, region: a, remote_vtep: 198.51.100.1, remote_mac: "
                   "\"02:00:00:00:0b:01\"}\n"),
       {"test.yaml:17:45: tenants[0].routes[0].peering: peering \"a-to-b\" has no vni_map entry "
        "for tenant \"red\""}},
      {"peering_unknown_region_and_tenant",
       base("peerings:\n"
            "  - name: p\n"
            "    region: q\n"
            "    remote_vtep: 198.51.100.1\n"
            "    remote_mac: \"02:00:00:00:0b:01\"\n"
            "    vni_map: [{tenant: bleu, vni: 5}]\n"),
       {"test.yaml:11:13: peerings[0].region: unknown region \"q\" (regions named by nodes: a)",
        "test.yaml:14:24: peerings[0].vni_map[0].tenant: unknown tenant \"bleu\""}},

      {"peering_remote_region_contradicts_remote_vtep",
       two_regions("  - {name: red, vni: 1001}\n"
                   "peerings:\n"
                   "  - name: a-to-c\n"
                   "    region: a\n"
                   "    remote_region: c\n"
                   "    remote_vtep: 198.51.100.1\n"
                   "    remote_mac: \"02:00:00:00:0b:01\"\n"),
       {"test.yaml:20:18: peerings[0].remote_vtep: 198.51.100.1 is a VTEP of node \"gw-b\" in "
        "region \"b\", not \"c\""}},

      // ---------------------------------------------------------- services
      {"unknown_backend_tenant",
       base("tenants:\n"
            "  - {name: blue, vni: 100, subnets: [10.1.0.0/16]}\n"
            "services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    backends:\n"
            "      - name: b1\n"
            "        address: 10.1.0.5\n"
            "        tenant: bleu\n"
            "        vtep: 192.0.2.11\n"
            "        mac: \"02:00:00:00:00:05\"\n"),
       {"test.yaml:17:17: services[0].backends[0].tenant: unknown tenant \"bleu\""}},
      {"unknown_service_tenant_and_region",
       base("services:\n"
            "  - {name: web, vip: 10.0.0.10, tenant: green, regions: [a, z]}\n"),
       {"test.yaml:10:41: services[0].tenant: unknown tenant \"green\"",
        "test.yaml:10:61: services[0].regions[1]: unknown region \"z\" (regions named by nodes: "
        "a)"}},
      {"duplicate_service_name",
       base("services:\n"
            "  - {name: web, vip: 203.0.113.10, port: 80}\n"
            "  - {name: web, vip: 203.0.113.11, port: 80}\n"),
       {"test.yaml:11:12: services[1].name: duplicate service \"web\" (first at line 10)"}},
      {"overlapping_vip_same_port",
       base("services:\n"
            "  - {name: web, vip: 203.0.113.10, port: 80}\n"
            "  - {name: web2, vip: 203.0.113.10, port: 80}\n"),
       {"test.yaml:11:23: services[1].vip: 203.0.113.10 tcp/80 overlaps service \"web\" "
        "(203.0.113.10 tcp/80)"}},
      {"overlapping_vip_any_port",
       base("services:\n"
            "  - {name: web, vip: 203.0.113.10, port: 80}\n"
            "  - {name: all, vip: 203.0.113.10, port: 0}\n"),
       {"test.yaml:11:22: services[1].vip: 203.0.113.10 tcp/any overlaps service \"web\" "
        "(203.0.113.10 tcp/80)"}},
      {"maglev_size_not_prime",
       base("services:\n"
            "  - {name: web, vip: 203.0.113.10, maglev_size: 65536}\n"),
       {"test.yaml:10:49: services[0].maglev_size: 65536 is not a prime (the next prime is "
        "65537)"}},
      {"maglev_size_smaller_than_backends",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    maglev_size: 2\n"
            "    backends:\n"
            "      - {name: b1, address: 192.0.2.51}\n"
            "      - {name: b2, address: 192.0.2.52}\n"
            "      - {name: b3, address: 192.0.2.53}\n"),
       {"test.yaml:12:18: services[0].maglev_size: maglev_size 2 is smaller than the number of "
        "backends (3)"}},
      {"duplicate_backend_name",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    backends:\n"
            "      - {name: b1, address: 192.0.2.51}\n"
            "      - {name: b1, address: 192.0.2.52}\n"),
       {"test.yaml:14:16: services[0].backends[1].name: duplicate backend \"b1\" (first at line "
        "13)"}},
      {"duplicate_backend_address",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    backends:\n"
            "      - {name: b1, address: 192.0.2.51}\n"
            "      - {name: b2, address: 192.0.2.51}\n"),
       {"test.yaml:14:29: services[0].backends[1].address: address 192.0.2.51 (underlay) is "
        "already used by backend \"b1\""}},
      {"tenant_backend_without_vtep_and_mac",
       base("tenants:\n"
            "  - {name: red, vni: 100, subnets: [10.1.0.0/16]}\n"
            "services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    backends:\n"
            "      - {name: b1, address: 10.1.0.5, tenant: red}\n"),
       {"test.yaml:15:9: services[0].backends[0].mac: required for a tenant (VXLAN) backend",
        "test.yaml:15:9: services[0].backends[0].vtep: required for a tenant (VXLAN) backend"}},
      {"tenant_backend_outside_subnets",
       base("tenants:\n"
            "  - {name: red, vni: 100, subnets: [10.1.0.0/16]}\n"
            "services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    backends:\n"
            "      - {name: b1, address: 10.7.0.5, tenant: red, vtep: 192.0.2.11, mac: "
            "\"02:00:00:00:00:05\"}\n"),
       {"test.yaml:15:29: services[0].backends[0].address: address 10.7.0.5 is not inside a "
        "subnet of tenant \"red\""}},
      {"underlay_backend_with_vtep",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    backends:\n"
            "      - {name: b1, address: 192.0.2.51, vtep: 192.0.2.11}\n"),
       {"test.yaml:13:47: services[0].backends[0].vtep: only tenant (VXLAN) backends have a "
        "VTEP; without a tenant the backend is reached by IPIP at its address"}},
      {"health_check_port_needed_for_any_port_service",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    port: 0\n"
            "    health_check: {type: tcp}\n"),
       {"test.yaml:13:19: services[0].health_check.port: required when the service port is 0 "
        "(any port)"}},
      {"health_check_bad_probe_address",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    port: 80\n"
            "    backends:\n"
            "      - {name: b1, address: 192.0.2.51, health_check: {address: 172.31.1.300}}\n"),
       {"test.yaml:14:65: services[0].backends[0].health_check.address: \"172.31.1.300\" is not an "
        "IP address"}},
      {"health_check_timeout_exceeds_interval",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    port: 80\n"
            "    health_check: {type: http, interval_ms: 1000}\n"
            "    backends:\n"
            "      - name: b1\n"
            "        address: 192.0.2.51\n"
            "        health_check: {timeout_ms: 3000}\n"),
       {"test.yaml:17:36: services[0].backends[0].health_check.timeout_ms: timeout_ms 3000 "
        "exceeds interval_ms 1000"}},
      {"health_check_bad_values",
       base("services:\n"
            "  - name: web\n"
            "    vip: 203.0.113.10\n"
            "    port: 80\n"
            "    health_check: {type: http, path: healthz, expect_status: 700, rise: 0}\n"),
       {"test.yaml:13:38: services[0].health_check.path: must start with '/', got \"healthz\"",
        "test.yaml:13:62: services[0].health_check.expect_status: must be <= 599, got 700",
        "test.yaml:13:73: services[0].health_check.rise: must be >= 1, got 0"}},
      {"bad_backend_state_and_underlay_backend_mac",
       base(
           "services:\n"
           "  - name: web\n"
           "    vip: 203.0.113.10\n"
           "    backends:\n"
           "      - {name: b1, address: 192.0.2.51, state: drained, mac: \"02:00:00:00:00:33\"}\n"),
       {"test.yaml:13:48: services[0].backends[0].state: \"drained\" is not one of: active, "
        "draining, down",
        "test.yaml:13:62: services[0].backends[0].mac: only tenant (VXLAN) backends have a MAC"}},
      {"empty_and_repeated_hash_fields",
       base("services:\n"
            "  - {name: web, vip: 203.0.113.10, hash: []}\n"
            "  - {name: api, vip: 203.0.113.11, hash: [src_ip, src_ip]}\n"),
       {"test.yaml:10:42: services[0].hash: needs at least one field",
        "test.yaml:11:51: services[1].hash[1]: duplicate hash field \"src_ip\""}},
  };
  return kCases;
}

class InvalidConfig : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidConfig, ReportsExactlyTheseErrors) {
  const InvalidCase &c = GetParam();
  LoadResult r = load_config_string(c.yaml, "test.yaml");
  std::vector<std::string> got;
  for (const auto &e : r.errors)
    got.push_back(e.str());
  EXPECT_EQ(got, c.errors) << "YAML:\n" << c.yaml;
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(r.config.has_value());
}

INSTANTIATE_TEST_SUITE_P(Cases, InvalidConfig, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<InvalidCase> &param) {
                           return param.param.name;
                         });

// Every case must be a distinct, named situation.
TEST(InvalidConfigTable, NamesAreUniqueAndThereAreEnough) {
  std::set<std::string> names;
  for (const auto &c : cases())
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
  EXPECT_GE(cases().size(), 30u);
}

// The base prefixes themselves are valid, so each case's errors are its own.
TEST(InvalidConfigTable, BasesAreValid) {
  EXPECT_TRUE(load_config_string(kBase, "base.yaml").ok());
  EXPECT_TRUE(
      load_config_string(std::string(kTwoRegions) + "  - {name: red, vni: 1}\n", "two.yaml").ok());
}

}  // namespace
}  // namespace stratus::config
