"""Builds the network a Stratus config describes, in namespaces: the
two-region cloud in a box of the demo and the end-to-end tests.

The config is the one source of truth; the lab reads it and makes:

* one underlay segment per region (a bridge in the `fabric` namespace, whose
  address .254 routes between the regions' underlays: the backbone), and the
  WAN link between the gateways' `wan0` ports (a veth pair);
* a namespace per gateway node with its ports (MACs from the config) and,
  for an XDP node, the VTEP addresses on its kernel interfaces (the kernel
  answers ARP for them); a DPDK node owns its ports and gets a separate
  `mgmt0` interface for its API and metrics;
* a namespace per hypervisor host (every VTEP that routes or backends point
  at), with a Linux kernel VXLAN device and a bridge per tenant: no Stratus
  on them;
* a namespace per VM (every /32 remote route and every backend), with its MAC
  from the config, the tenant gateway as a permanent neighbour and its
  default route, and an uplink to its host for traffic that leaves the
  overlay (direct server return, health checks);
* a `client` outside the overlay and a `mgmt` namespace (stratusd,
  Prometheus) on region a's underlay.

Addresses outside the config (uplinks, client, mgmt) come from 172.31.0.0/16
and the regions' underlay prefixes (.100 client, .250 mgmt, .254 backbone).
"""
import ipaddress
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import Lab, LabError, run  # noqa: E402

VM_MTU = 1400
BACKBONE_HOST = 254
CLIENT_HOST = 100
MGMT_HOST = 250


def backbone_mac(region_index):
    """The backbone router's MAC on region N's underlay (N from 1, in the
    order the config first names each region)."""
    return f"02:00:00:fe:{region_index:02x}:fe"


def _mac(i, j, k):
    return f"02:aa:{i:02x}:{j:02x}:{k:02x}:01"


class Topology:
    def __init__(self, config_path, lab=None):
        with open(config_path, encoding="utf-8") as f:
            self.cfg = yaml.safe_load(f)
        self.config_path = config_path
        self.lab = lab or Lab()
        self.ns = {}          # short name -> Netns
        self.gateways = {}    # node name -> dict
        self.hosts = {}       # vtep address -> dict(name, region, ns, mac)
        self.vms = {}         # vm name -> dict
        self.regions = {}     # region -> dict(subnet, bridge, backbone ip)
        self._fabric_ports = []  # fabric-side veth names, p0, p1...
        self._plan()

    # ------------------------------------------------------------------ plan

    def _plan(self):
        nodes = self.cfg["nodes"]
        for i, node in enumerate(nodes):
            region = node["region"]
            vteps = [ipaddress.ip_address(v) for v in node["vteps"]]
            under = vteps[0]
            subnet = ipaddress.ip_network(f"{under}/24", strict=False)
            self.regions.setdefault(region, {"subnet": subnet, "index": len(self.regions) + 1,
                                             "bridge": f"br-{region}"})
            ports = {p["name"]: p for p in node["ports"]}
            self.gateways[node["name"]] = {
                "name": node["name"], "region": region, "kind": node["kind"],
                "vteps": [str(v) for v in vteps], "ports": ports, "api": node["api"],
                "nexthops": node.get("nexthops", []), "gateway_mac": node["gateway_mac"],
                "index": i,
            }
        # Hosts: every VTEP that a remote route or a backend points at, in the
        # region where it is written; its MAC from a gateway's next hop.
        nh_mac = {}
        for gw in self.gateways.values():
            for nh in gw["nexthops"]:
                if nh["remote"] != "default":
                    nh_mac[nh["remote"]] = nh["mac"]
        gw_vteps = {v for gw in self.gateways.values() for v in gw["vteps"]}

        def host_for(vtep, region):
            if vtep in gw_vteps:
                return None
            if vtep not in self.hosts:
                n = sum(1 for h in self.hosts.values() if h["region"] == region) + 1
                self.hosts[vtep] = {"name": f"hv-{region}{n}", "region": region, "vtep": vtep,
                                    "mac": nh_mac.get(vtep, _mac(0xfe, len(self.hosts), 0)),
                                    "index": len(self.hosts) + 1, "vms": []}
            return self.hosts[vtep]

        tenants = {t["name"]: t for t in self.cfg.get("tenants", [])}
        self.tenants = tenants
        for t in tenants.values():
            for r in t.get("routes", []):
                if "remote" not in r or not r["prefix"].endswith("/32"):
                    continue
                region = r.get("region")
                h = host_for(r["remote"]["vtep"], region)
                if h is None:
                    continue
                addr = r["prefix"].split("/")[0]
                self._add_vm(t["name"], addr, r["remote"]["mac"], h, region)
        for svc in self.cfg.get("services", []):
            for b in svc.get("backends", []):
                if "tenant" not in b:
                    continue
                h = host_for(b["vtep"], b.get("region"))
                vm = self._add_vm(b["tenant"], b["address"], b["mac"], h, b.get("region"))
                vm["backend_of"].append(svc)
                vm["name"] = b["name"]
                probe = (b.get("health_check") or {}).get("address")
                if probe:
                    # stratusd probes the backend on its uplink address.
                    vm["uplink"] = probe

    def _add_vm(self, tenant, addr, mac, host, region):
        for vm in host["vms"]:
            if vm["tenant"] == tenant and vm["addr"] == addr:
                return vm
        t = self.tenants[tenant]
        vni = t["vni"]
        for rv_region, rv in (t.get("region_vnis") or {}).items():
            if rv_region == region:
                vni = rv
        gateway = None
        for g in t.get("gateways", []):
            for s in t.get("subnets", []):
                net = ipaddress.ip_network(s)
                if ipaddress.ip_address(g) in net and ipaddress.ip_address(addr) in net:
                    gateway = g
        hidx = host["index"]
        vidx = len(host["vms"]) + 2
        vm = {"name": f"{tenant}-{host['name'][3:]}-{addr.split('.')[-1]}", "tenant": tenant,
              "addr": addr, "mac": mac, "host": host, "region": region, "vni": vni,
              "gateway": gateway, "uplink": f"172.31.{hidx}.{vidx}",
              "uplink_host": f"172.31.{hidx}.1", "backend_of": []}
        host["vms"].append(vm)
        return vm

    # ------------------------------------------------------------------ build

    def build(self):
        lab = self.lab
        fabric = self.ns["fabric"] = lab.netns("fabric")
        fabric.sysctl("net.ipv4.ip_forward", 1)
        for region, r in self.regions.items():
            lab.bridge(fabric, r["bridge"])
            # A fixed MAC, so that configs can name the backbone as a next hop.
            fabric.run(["ip", "link", "set", r["bridge"], "address", backbone_mac(r["index"])])
            fabric.addr(r["bridge"], f"{r['subnet'][BACKBONE_HOST]}/24")
            r["backbone"] = str(r["subnet"][BACKBONE_HOST])
            r["backbone_mac"] = fabric.mac(r["bridge"])
        self._build_gateways()
        self._build_hosts()
        self._build_edge()
        return self

    def _plug(self, ns, dev, region, mac=None, peer=None):
        """Connects ns:dev to the region's underlay bridge."""
        fabric = self.ns["fabric"]
        peer = peer or f"p{len(self._fabric_ports)}"
        self.lab.veth(ns, dev, fabric, peer, a_mac=mac)
        self.lab.attach(fabric, peer, self.regions[region]["bridge"])
        _no_offload(fabric, peer)
        _no_offload(ns, dev)
        self._fabric_ports.append(peer)

    def _build_gateways(self):
        gws = list(self.gateways.values())
        for gw in gws:
            gw["ns"] = self.ns[gw["name"]] = self.lab.netns(gw["name"])
        for gw in gws:
            ns, region = gw["ns"], gw["region"]
            gw["fabric_peer"] = f"p{len(self._fabric_ports)}"
            self._plug(ns, "eth0", region, mac=gw["ports"]["eth0"]["mac"])
            if gw["kind"] == "xdp":
                ns.addr("eth0", f"{gw['vteps'][0]}/24")
                ns.route(f"default via {self.regions[region]['subnet'][BACKBONE_HOST]}")
            else:
                # The DPDK data plane owns eth0 and wan0; the kernel keeps a
                # management interface for the API and metrics.
                mgmt = str(self.regions[region]["subnet"][2])
                gw["mgmt"] = mgmt
                self._plug(ns, "mgmt0", region)
                ns.addr("mgmt0", f"{mgmt}/24")
                ns.route(f"default via {self.regions[region]['subnet'][BACKBONE_HOST]}")
        wan = [gw for gw in gws if "wan0" in gw["ports"]]
        if len(wan) == 2:
            a, b = wan
            a["wan_peer"], b["wan_peer"] = b, a
            self.lab.veth(a["ns"], "wan0", b["ns"], "wan0", a_mac=a["ports"]["wan0"]["mac"],
                          b_mac=b["ports"]["wan0"]["mac"])
            for gw in (a, b):
                _no_offload(gw["ns"], "wan0")
                if gw["kind"] == "xdp" and len(gw["vteps"]) > 1:
                    gw["ns"].addr("wan0", f"{gw['vteps'][1]}/30")

    def _build_hosts(self):
        for h in self.hosts.values():
            ns = h["ns"] = self.ns[h["name"]] = self.lab.netns(h["name"])
            region = h["region"]
            self._plug(ns, "eth0", region, mac=h["mac"])
            ns.addr("eth0", f"{h['vtep']}/24")
            ns.route(f"default via {self.regions[region]['subnet'][BACKBONE_HOST]}")
            ns.sysctl("net.ipv4.ip_forward", 1)
            gw = next(g for g in self.gateways.values() if g["region"] == region)
            gw_vtep = gw["vteps"][0]
            made = set()
            for vm in h["vms"]:
                vni = vm["vni"]
                vx, br = f"vx{vni}", f"br{vni}"
                if vni not in made:
                    made.add(vni)
                    ns.run(["ip", "link", "add", vx, "type", "vxlan", "id", str(vni), "local",
                            h["vtep"], "dstport", "4789", "nolearning"])
                    self.lab.bridge(ns, br)
                    self.lab.attach(ns, vx, br)
                    ns.link_up(vx)
                    # Unknown destinations (and the gateway's MAC) go to the
                    # region's gateway VTEP: the gateway routes.
                    ns.run(["bridge", "fdb", "append", "00:00:00:00:00:00", "dev", vx, "dst",
                            gw_vtep])
                    ns.run(["bridge", "fdb", "add", gw["gateway_mac"], "dev", vx, "dst", gw_vtep])
                vm_ns = vm["ns"] = self.ns[vm["name"]] = self.lab.netns(vm["name"])
                port = f"v{vm['addr'].split('.')[-1]}-{vni}"[:15]
                self.lab.veth(vm_ns, "eth0", ns, port, a_mac=vm["mac"], mtu=VM_MTU)
                self.lab.attach(ns, port, br)
                _no_offload(vm_ns, "eth0")
                vm_ns.addr("eth0", f"{vm['addr']}/32")
                vm_ns.run(["ip", "neigh", "replace", vm["gateway"], "lladdr", gw["gateway_mac"],
                           "dev", "eth0", "nud", "permanent"])
                vm_ns.route(f"{vm['gateway']} dev eth0 scope link")
                vm_ns.route(f"10.0.0.0/8 via {vm['gateway']} dev eth0 onlink")
                # Uplink: traffic leaving the overlay (DSR replies, probes).
                up = f"u{vm['uplink'].split('.')[-1]}"
                self.lab.veth(vm_ns, "up0", ns, up)
                _no_offload(vm_ns, "up0")
                _no_offload(ns, up)
                vm_ns.addr("up0", f"{vm['uplink']}/24")
                ns.run(["ip", "addr", "add", f"{vm['uplink_host']}/32", "dev", up])
                ns.route(f"{vm['uplink']}/32 dev {up}")
                vm_ns.route(f"{vm['uplink_host']} dev up0 scope link")
                vm_ns.route(f"default via {vm['uplink_host']} dev up0")
                if vm["backend_of"]:
                    for svc in vm["backend_of"]:
                        vm_ns.addr("lo", f"{svc['vip']}/32")
            fabric = self.ns["fabric"]
            hidx = h["index"]
            fabric.route(f"172.31.{hidx}.0/24 via {h['vtep']}")

    def _build_edge(self):
        region = next(iter(self.regions))
        subnet = self.regions[region]["subnet"]
        gw = next(g for g in self.gateways.values() if g["region"] == region)
        for name, host_part in (("client", CLIENT_HOST), ("mgmt", MGMT_HOST)):
            ns = self.ns[name] = self.lab.netns(name)
            self._plug(ns, "eth0", region)
            ns.addr("eth0", f"{subnet[host_part]}/24")
            ns.route(f"default via {subnet[BACKBONE_HOST]}")
        self.client_addr = str(subnet[CLIENT_HOST])
        self.mgmt_addr = str(subnet[MGMT_HOST])
        # The client reaches every VIP through the region's gateway.
        for svc in self.cfg.get("services", []):
            if "tenant" not in svc:
                self.ns["client"].route(f"{svc['vip']}/32 via {gw['vteps'][0]}")

    # ------------------------------------------------------------------ queries

    def vm(self, tenant, addr, region=None):
        for v in self.all_vms():
            if v["tenant"] == tenant and v["addr"] == addr and (region is None or v["region"] == region):
                return v
        raise LabError(f"no VM {tenant}/{addr} in region {region}")

    def all_vms(self):
        return [vm for h in self.hosts.values() for vm in h["vms"]]

    def backends(self, service):
        return [vm for vm in self.all_vms() if any(s["name"] == service for s in vm["backend_of"])]


def _no_offload(ns, dev):
    """Checksums in software: XDP and DPDK see complete packets (a veth
    otherwise hands over TCP/UDP with CHECKSUM_PARTIAL), and a veth peer of
    an XDP port gets NAPI (GRO) so that XDP_TX/XDP_REDIRECT into it works."""
    ns.run(["ethtool", "-K", dev, "tx", "off", "rx", "off"], check=False)
    ns.run(["ethtool", "-K", dev, "gro", "on"], check=False)


if __name__ == "__main__":
    # Build the topology of a config and wait: for poking at it by hand.
    import time
    topo = Topology(sys.argv[1]).build()
    print(f"lab {topo.lab.prefix}: {len(topo.ns)} namespaces; Ctrl-C removes them")
    for vm in topo.all_vms():
        print(f"  {vm['ns'].name:24} {vm['tenant']:6} {vm['addr']:12} on {vm['host']['name']}")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
