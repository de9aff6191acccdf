#!/usr/bin/python3
"""stratus-xdp between real namespaces (suite netns).

Topology (every box is a network namespace made by this test):

    vm1 red  10.1.1.10 --+                                +-- vm2 red  10.1.2.20
    vm5 red  10.1.1.11 --+- host A ==VXLAN==+   +==VXLAN== host B -+
    vm3 blue 10.1.1.10 --+  192.0.2.10      |   |  192.0.2.20      +-- vm4 blue 10.1.2.20
                                        [ underlay switch ]
                                                |
                                    gw 192.0.2.1 (stratus-xdp on ul0, red0)
                                                |
                                    vm6 red 10.1.3.30 (tenant port red0)

Hosts A and B are plain Linux: kernel VXLAN devices (VNI 100 red, 200 blue)
and bridges, no Stratus. The gateway runs stratus-xdp; its tables are pushed
through the Dataplane gRPC API (xdp_test_client). Checks: ping and TCP across
the gateway (VXLAN to VXLAN, VXLAN to a tenant port with ARP answered by
XDP), two tenants with the same addresses stay apart, TCP to a VIP reaches
both backends which answer the client directly (DSR), tshark decodes the
captured VXLAN as valid, forwarding survives the agent's exit, a restart
re-adopts the pinned maps, and --detach removes program and pins.
Everything the test made is removed at the end, also on failure.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

P = "sx%d" % (os.getpid() % 100000)
NS = {n: "%s-%s" % (P, n) for n in ["ul", "gw", "ha", "hb", "vm1", "vm2", "vm3", "vm4", "vm5", "vm6"]}
GW_MAC = "02:00:00:00:aa:01"
MAC = {
    "gw.ul0": "02:00:00:00:00:01", "gw.red0": "02:00:00:00:00:02",
    "ha": "02:00:00:00:00:0a", "hb": "02:00:00:00:00:14",
    "vm1": "02:00:00:01:01:0a", "vm5": "02:00:00:01:01:0b", "vm2": "02:00:00:01:02:14",
    "vm3": "02:00:00:02:01:0a", "vm4": "02:00:00:02:02:14", "vm6": "02:00:00:01:03:1e",
}
VIP = "10.1.9.100"
METRICS_PORT = 19000 + os.getpid() % 1000

procs = []      # background processes we started (killed by pid at the end)
failures = []


def log(msg):
    print("netns_test: " + msg, flush=True)


def sh(cmd, check=True, capture=False, timeout=60):
    r = subprocess.run(cmd, shell=True, text=True, timeout=timeout,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE if capture else subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError("command failed (%d): %s\n%s" % (r.returncode, cmd, r.stderr or ""))
    return r


def ns(name, cmd, **kw):
    return sh("ip netns exec %s %s" % (NS[name], cmd), **kw)


def expect(ok, what):
    log(("PASS: " if ok else "FAIL: ") + what)
    if not ok:
        failures.append(what)


def veth(ns_a, name_a, ns_b, name_b, mac_a=None, mac_b=None):
    cmd = "ip link add %s netns %s" % (name_a, NS[ns_a])
    if mac_a:
        cmd += " address " + mac_a
    cmd += " type veth peer name %s netns %s" % (name_b, NS[ns_b])
    if mac_b:
        cmd += " address " + mac_b
    sh(cmd)


def build(pass_prog):
    for n in NS.values():
        sh("ip netns add " + n)
        sh("ip -n %s link set lo up" % n)
    # Underlay switch.
    sh("ip -n %s link add br0 type bridge" % NS["ul"])
    sh("ip -n %s link set br0 up" % NS["ul"])
    veth("gw", "ul0", "ul", "p-gw", mac_a=MAC["gw.ul0"])
    veth("ha", "eth0", "ul", "p-ha", mac_a=MAC["ha"])
    veth("hb", "eth0", "ul", "p-hb", mac_a=MAC["hb"])
    for p in ["p-gw", "p-ha", "p-hb"]:
        sh("ip -n %s link set %s master br0 up" % (NS["ul"], p))
    sh("ip -n %s addr add 192.0.2.1/24 dev ul0" % NS["gw"])
    sh("ip -n %s link set ul0 up" % NS["gw"])

    # Hosts: one VXLAN device and bridge per tenant, VMs on veths.
    hosts = {"ha": ("192.0.2.10", [("vm1", "red"), ("vm5", "red"), ("vm3", "blue")]),
             "hb": ("192.0.2.20", [("vm2", "red"), ("vm4", "blue")])}
    for host, (addr, vms) in hosts.items():
        h = NS[host]
        sh("ip -n %s addr add %s/24 dev eth0" % (h, addr))
        sh("ip -n %s link set eth0 up" % h)
        for tenant, vni in [("red", 100), ("blue", 200)]:
            sh("ip -n %s link add vx%d type vxlan id %d dstport 4789 local %s remote 192.0.2.1 "
               "nolearning dev eth0" % (h, vni, vni, addr))
            sh("ip -n %s link add br-%s type bridge" % (h, tenant))
            sh("ip -n %s link set vx%d master br-%s up" % (h, vni, tenant))
            sh("ip -n %s link set br-%s up" % (h, tenant))
        for vm, tenant in vms:
            veth(host, "p-" + vm, vm, "eth0", mac_b=MAC[vm])
            sh("ip -n %s link set p-%s mtu 1450 master br-%s up" % (h, vm, tenant))
    vm_addr = {"vm1": "10.1.1.10", "vm5": "10.1.1.11", "vm3": "10.1.1.10",
               "vm2": "10.1.2.20", "vm4": "10.1.2.20", "vm6": "10.1.3.30"}
    # vm6 sits on the gateway's tenant port red0.
    veth("gw", "red0", "vm6", "eth0", mac_a=MAC["gw.red0"], mac_b=MAC["vm6"])
    sh("ip -n %s link set red0 up" % NS["gw"])
    for vm, addr in vm_addr.items():
        n = NS[vm]
        gw = addr.rsplit(".", 1)[0] + ".1"
        sh("ip -n %s link set eth0 mtu 1450 up" % n)
        # Real checksums on the wire: with veth's checksum offload a TCP
        # segment leaves with only its pseudo-header sum, which the kernel
        # trusts along an skb path but not after native XDP turned the frame
        # into raw bytes (ping works, TCP would not).
        ns(vm, "ethtool -K eth0 tx off")
        sh("ip -n %s addr add %s/24 dev eth0" % (n, addr))
        sh("ip -n %s route add default via %s" % (n, gw))
        if vm != "vm6":  # VXLAN tenants: the hosts do not relay ARP to the gateway
            sh("ip -n %s neigh replace %s lladdr %s dev eth0 nud permanent" % (n, gw, GW_MAC))
    # The peers of the gateway's ports receive its XDP_TX and redirected
    # frames: native XDP transmit on veth reaches a peer that runs an XDP
    # program itself.
    if pass_prog:
        sh("ip -n %s link set p-gw xdpdrv obj %s sec xdp" % (NS["ul"], pass_prog))
        sh("ip -n %s link set eth0 xdpdrv obj %s sec xdp" % (NS["vm6"], pass_prog))
    for vm in ["vm2", "vm5"]:  # DSR backends hold the VIP
        sh("ip -n %s addr add %s/32 dev lo" % (NS[vm], VIP))


def tables():
    def route(vrf, prefix, vtep, vni, mac):
        return {"vrf": vrf, "prefix": prefix, "kind": "remote", "vtep": vtep, "vni_out": vni,
                "port": "", "dst_mac": mac}

    def backend(i, name, addr, vtep, mac):
        return {"id": i, "name": name, "addr": addr, "vrf": 1, "weight": 1, "state": "active",
                "encap": "vxlan", "tunnel_dst": vtep, "vni": 100, "inner_dst_mac": mac}

    t = {
        "node": {"name": "gw", "vteps": ["192.0.2.1"], "vxlan_port": 4789, "underlay_mtu": 1500,
                 "gateway_mac": GW_MAC, "hash_seed": 7,
                 "flows": {"max_entries": 4096, "tcp_timeout_s": 300, "udp_timeout_s": 30},
                 "ports": [{"name": "ul0", "role": "underlay", "mac": MAC["gw.ul0"], "vrf": 0},
                           {"name": "red0", "role": "tenant", "mac": MAC["gw.red0"], "vrf": 1}]},
        "nexthops": [{"remote": "192.0.2.10", "port": "ul0", "dst_mac": MAC["ha"], "src_mac": ""},
                     {"remote": "192.0.2.20", "port": "ul0", "dst_mac": MAC["hb"], "src_mac": ""}],
        "vrfs": [{"id": 1, "vni": 100, "tenant": "red",
                  "gateways": ["10.1.1.1", "10.1.2.1", "10.1.3.1"]},
                 {"id": 2, "vni": 200, "tenant": "blue", "gateways": ["10.1.1.1", "10.1.2.1"]}],
        "routes": [route(1, "10.1.1.10/32", "192.0.2.10", 100, MAC["vm1"]),
                   route(1, "10.1.1.11/32", "192.0.2.10", 100, MAC["vm5"]),
                   route(1, "10.1.2.20/32", "192.0.2.20", 100, MAC["vm2"]),
                   {"vrf": 1, "prefix": "10.1.3.30/32", "kind": "local", "vtep": "", "vni_out": 0,
                    "port": "red0", "dst_mac": MAC["vm6"]},
                   route(2, "10.1.1.10/32", "192.0.2.10", 200, MAC["vm3"]),
                   route(2, "10.1.2.20/32", "192.0.2.20", 200, MAC["vm4"])],
        "services": [{"id": 0, "name": "web", "vrf": 1, "vip": VIP, "proto": 6, "port": 80,
                      "maglev_size": 251, "hash_flags": 31,
                      "backends": [backend(0, "web-b", "10.1.2.20", "192.0.2.20", MAC["vm2"]),
                                   backend(1, "web-a", "10.1.1.11", "192.0.2.10", MAC["vm5"])],
                      "maglev": []}],
    }
    return {"tables": {"gw": t}, "cases": []}


SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
while True:
    c, _ = s.accept(); c.recv(100); c.sendall(sys.argv[2].encode()); c.close()
"""

CLIENT = r"""
import socket, sys
out = []
for i in range(int(sys.argv[3])):
    try:
        c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
        c.sendall(b"hello"); out.append(c.recv(100).decode() or "?"); c.close()
    except OSError as e:
        out.append("error:" + type(e).__name__)
print(" ".join(out))
"""


def start(cmd, **kw):
    p = subprocess.Popen(cmd, shell=False, **kw)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=10):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def tcp(vm, addr, port, count, workdir):
    script = os.path.join(workdir, "client.py")
    r = ns(vm, "/usr/bin/python3 %s %s %d %d" % (script, addr, port, count), capture=True,
           check=False, timeout=120)
    return r.stdout.split()


def ping(vm, addr):
    return ns(vm, "ping -c 2 -i 0.2 -W 2 %s" % addr, check=False).returncode == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--client", required=True)
    ap.add_argument("--pass-prog", required=True, help="an XDP_PASS object for the veth peers")
    ap.add_argument("--generic", action="store_true", help="attach in generic (SKB) mode")
    ap.add_argument("--pause", type=int, default=0,
                    help="debugging: wait this many seconds after the push (SIGTERM cleans up)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (network namespaces, XDP)")
        return 77
    for tool in ["ip", "ethtool", "nsenter", "tcpdump", "tshark", "ping"]:
        if sh("command -v " + tool, check=False).returncode != 0:
            print("SKIP: %s not installed" % tool)
            return 77
    probe = "%s-probe" % P
    if sh("ip netns add %s && ip -n %s link add v type vxlan id 1 dstport 4789"
          % (probe, probe), check=False).returncode != 0:
        sh("ip netns del %s" % probe, check=False)
        print("SKIP: no network namespaces or no kernel VXLAN")
        return 77
    sh("ip netns del %s" % probe, check=False)

    workdir = tempfile.mkdtemp(prefix="stratus-xdp-netns-")
    bpffs = "/sys/fs/bpf/stratus-netns-%s" % P
    api = "unix:%s/api.sock" % workdir
    agent_cmd = ["nsenter", "--net=/run/netns/" + NS["gw"], args.agent, "--instance", P,
                 "--interfaces", "ul0,red0", "--api", api, "--metrics",
                 "127.0.0.1:%d" % METRICS_PORT, "--bpffs", bpffs,
                 "--state-dir", workdir + "/state"] + (["--generic"] if args.generic else [])
    agent_log = open(os.path.join(workdir, "agent.log"), "w")
    try:
        with open(os.path.join(workdir, "server.py"), "w") as f:
            f.write(SERVER)
        with open(os.path.join(workdir, "client.py"), "w") as f:
            f.write(CLIENT)
        tables_file = os.path.join(workdir, "tables.json")
        with open(tables_file, "w") as f:
            json.dump(tables(), f)
        build(None if args.generic else args.pass_prog)
        log("topology up")

        agent = start(agent_cmd, stdout=agent_log, stderr=subprocess.STDOUT)
        time.sleep(1.5)
        if agent.poll() is not None:
            raise RuntimeError("stratus-xdp exited: " + open(agent_log.name).read())
        r = sh("%s push %s %s gw 1" % (args.client, api, tables_file), capture=True, check=False)
        expect(r.returncode == 0, "tables pushed through the Dataplane API (%s)"
               % (r.stdout.strip() or r.stderr.strip()))
        r = sh("%s state %s" % (args.client, api), capture=True, check=False)
        log("agent state: " + " | ".join(r.stdout.split("\n")))

        if args.pause:
            log("pausing %ds; namespaces %s, API %s" % (args.pause, P, api))
            time.sleep(args.pause)
        server_py = os.path.join(workdir, "server.py")
        for vm, port, name in [("vm2", 7000, "red-vm2"), ("vm4", 7000, "blue-vm4"),
                               ("vm6", 7000, "red-vm6"), ("vm2", 80, "web-b"), ("vm5", 80, "web-a")]:
            start(["ip", "netns", "exec", NS[vm], "/usr/bin/python3", server_py, str(port), name])
        time.sleep(0.5)

        # Capture the underlay at host B while the traffic runs.
        pcap = os.path.join(workdir, "hb.pcap")
        dump = start(["ip", "netns", "exec", NS["hb"], "tcpdump", "-i", "eth0", "-U", "-w", pcap,
                      "udp port 4789"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)

        expect(ping("vm1", "10.1.2.20"), "ping red vm1 -> vm2 across the gateway (VXLAN both sides)")
        expect(ping("vm3", "10.1.2.20"), "ping blue vm3 -> vm4 (same addresses as red)")
        expect(ping("vm6", "10.1.1.10"), "ping tenant-port vm6 -> vm1 (ARP answered by XDP)")
        got = tcp("vm1", "10.1.2.20", 7000, 3, workdir)
        expect(got == ["red-vm2"] * 3, "TCP red vm1 -> 10.1.2.20 reaches red vm2 (got %s)" % got)
        got = tcp("vm3", "10.1.2.20", 7000, 3, workdir)
        expect(got == ["blue-vm4"] * 3, "TCP blue vm3 -> 10.1.2.20 reaches blue vm4 (got %s)" % got)
        got = tcp("vm1", "10.1.3.30", 7000, 2, workdir)
        expect(got == ["red-vm6"] * 2, "TCP vm1 -> vm6 on the tenant port (got %s)" % got)
        got = tcp("vm3", "10.1.3.30", 7000, 1, workdir)
        expect(got and got[0].startswith("error"), "blue cannot reach red's tenant-port VM (got %s)"
               % got)

        n = 24
        got = tcp("vm1", VIP, 80, n, workdir)
        ok = len(got) == n and all(g in ("web-a", "web-b") for g in got)
        expect(ok, "%d TCP connections to the VIP all answered (got %s)" % (n, " ".join(got)))
        expect("web-a" in got and "web-b" in got, "the VIP's connections reach both backends")
        got = tcp("vm6", VIP, 80, 4, workdir)
        expect(len(got) == 4 and all(g in ("web-a", "web-b") for g in got),
               "the VIP from the tenant port (got %s)" % got)
        time.sleep(1)
        stop(dump, signal.SIGINT)

        c = sh("%s counters %s" % (args.client, api), capture=True, check=False).stdout
        counters = {}
        for line in c.splitlines():
            kind, name, value = line.split()
            counters[(kind, name)] = int(value)
        new_a = counters.get(("backend_new_flows", "web-a"), 0)
        new_b = counters.get(("backend_new_flows", "web-b"), 0)
        # A flow is new once per CPU that sees it (per-CPU connection
        # tables; veth runs XDP on the sending thread's CPU).
        expect(new_a > 0 and new_b > 0 and new_a + new_b >= n + 4,
               "per-backend new flows %d + %d >= %d connections" % (new_a, new_b, n + 4))
        expect(counters.get(("arp_replies", "-"), 0) > 0, "ARP replies counted")
        drops = {k[1]: v for k, v in counters.items() if k[0] == "drops" and v}
        log("drops: %s" % drops)

        # DSR: backend B's replies leave host B as VXLAN with the VIP as
        # inner source, toward the gateway's VTEP; the gateway's frames to
        # the backend carry the VIP as inner destination. tshark decodes all.
        fields = sh("tshark -r %s -d udp.port==4789,vxlan -T fields -e ip.src -e ip.dst -e vxlan.vni"
                    % pcap, capture=True, check=False).stdout.splitlines()
        to_backend = [f for f in fields if f.split("\t")[0] == "192.0.2.1,10.1.1.10"
                      and f.split("\t")[1] == "192.0.2.20,%s" % VIP]
        from_backend = [f for f in fields if f.split("\t")[0] == "192.0.2.20,%s" % VIP]
        expect(len(fields) > 0 and all(len(f.split("\t")) == 3 and f.split("\t")[2] for f in fields),
               "tshark decodes every captured frame as VXLAN (%d frames)" % len(fields))
        expect(len(to_backend) > 0, "gateway -> backend B: VXLAN carrying client -> VIP (%d)"
               % len(to_backend))
        expect(len(from_backend) > 0, "backend B answers from the VIP itself (DSR, %d frames)"
               % len(from_backend))
        malformed = sh("tshark -r %s -d udp.port==4789,vxlan -Y _ws.malformed" % pcap,
                       capture=True, check=False).stdout.strip()
        expect(malformed == "", "no malformed frames in the capture")

        m = sh("nsenter --net=/run/netns/%s curl -s http://127.0.0.1:%d/metrics"
               % (NS["gw"], METRICS_PORT), capture=True, check=False).stdout
        expect(any(l.startswith("stratus_") for l in m.splitlines()), "/metrics serves stratus_ families")

        # The agent exits without --detach: the program keeps forwarding.
        stop(agent)
        expect(ping("vm1", "10.1.2.20"), "forwarding continues after the agent exits")
        got = tcp("vm1", VIP, 80, 4, workdir)
        expect(len(got) == 4 and all(g in ("web-a", "web-b") for g in got),
               "the VIP keeps working without the agent (got %s)" % got)
        # Restart: pinned maps and the state file are adopted, then --detach.
        agent = start(agent_cmd + ["--detach"], stdout=agent_log, stderr=subprocess.STDOUT)
        time.sleep(1.5)
        st = sh("%s state %s" % (args.client, api), capture=True, check=False).stdout
        expect("generation 1" in st, "the restarted agent reports generation 1")
        expect(ping("vm1", "10.1.2.20"), "forwarding after the restart")
        stop(agent)
        xdp = sh("ip -n %s link show ul0" % NS["gw"], capture=True).stdout
        expect("xdp" not in xdp, "--detach removed the program from ul0")
        expect(not os.path.exists(os.path.join(bpffs, P)), "--detach removed the pins")
    except Exception as e:  # noqa: BLE001 - report and clean up
        failures.append("exception: %s" % e)
        log("ERROR: %s" % e)
    finally:
        for p in reversed(procs):
            stop(p, timeout=5)
        agent_log.close()
        if failures:
            log("agent log:\n" + open(agent_log.name).read())
        for n in NS.values():
            sh("ip netns del " + n, check=False)
        # Programs die with their devices; pins are ours to remove.
        sh("rm -rf " + bpffs, check=False)
        sh("rm -rf " + workdir, check=False)
    if failures:
        log("%d check(s) failed:\n  %s" % (len(failures), "\n  ".join(failures)))
        return 1
    log("all checks passed")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # meson timeout: still clean up
    sys.exit(main())
