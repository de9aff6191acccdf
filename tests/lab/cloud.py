"""The whole system on a topology: data planes in the gateway namespaces,
web backends in their VMs, stratusd and Prometheus in `mgmt`. Shared by the
demo (scripts/demo.sh) and the end-to-end tests (tests/e2e/).

    cloud = Cloud(build_dir, config_path, run_dir, kinds={"gw-b": "xdp"})
    cloud.start()        # topology, data planes, backends, stratusd
    ...
    cloud.close()        # everything stopped and removed (also on failure)

`kinds` overrides a node's data plane (the end-to-end tests run each region
on either); the config actually used is written to run_dir.
"""
import json
import os
import shutil
import sys
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lab import Lab, LabError, run, wait_until  # noqa: E402
from topology import Topology  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
XDP_METRICS_PORT = 9101
DPDK_METRICS_PORT = 9102
STRATUSD_METRICS_PORT = 9100
PROMETHEUS_PORT = 9090


class Cloud:
    def __init__(self, build_dir, config_path, run_dir, kinds=None, log=print):
        self.build = os.path.abspath(build_dir)
        self.run_dir = os.path.abspath(run_dir)
        self.log = log
        shutil.rmtree(self.run_dir, ignore_errors=True)
        os.makedirs(self.run_dir)
        self.lab = Lab(log_dir=os.path.join(self.run_dir, "logs"))
        with open(config_path, encoding="utf-8") as f:
            cfg = yaml.safe_load(f)
        for node in cfg["nodes"]:
            if kinds and node["name"] in kinds:
                node["kind"] = kinds[node["name"]]
            # Every API socket lives in this run's directory.
            node["api"] = f"unix:{self.run_dir}/{node['name']}.sock"
        self.config_path = os.path.join(self.run_dir, "stratus.yaml")
        self._write_config(cfg)
        self.topo = Topology(self.config_path, self.lab)
        self.procs = {}
        self.metrics = {}  # name -> "host:port" in mgmt's view

    def _write_config(self, cfg):
        with open(self.config_path, "w", encoding="utf-8") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        self.cfg = cfg

    # ------------------------------------------------------------------ start

    def start(self):
        self.log(f"building the topology ({self.topo.lab.prefix})")
        self.topo.build()
        self._peer_xdp()
        for gw in self.topo.gateways.values():
            if gw["kind"] == "xdp":
                self._start_xdp(gw)
            else:
                self._start_dpdk(gw)
        for vm in self.topo.all_vms():
            if vm["backend_of"]:
                self.start_backend(vm)
        self._start_stratusd()
        return self

    def _peer_xdp(self):
        """Native XDP on a veth can XDP_TX or redirect a frame only into a
        peer that runs an XDP program itself: give the peers of every XDP
        gateway port a pass-through one (a real NIC needs nothing)."""
        prog = self.binary("tests/xdp/xdp_pass.bpf.o")
        fabric = self.topo.ns["fabric"]
        for gw in self.topo.gateways.values():
            if gw["kind"] != "xdp":
                continue
            fabric.run(["ip", "link", "set", gw["fabric_peer"], "xdpdrv", "obj", prog, "sec", "xdp"])
            other = gw.get("wan_peer")
            if other and other["kind"] != "xdp":
                other["ns"].run(["ip", "link", "set", "wan0", "xdpdrv", "obj", prog, "sec", "xdp"])

    def binary(self, rel):
        path = os.path.join(self.build, rel)
        if not os.path.exists(path):
            raise LabError(f"{path} is not built")
        return path

    def _start_xdp(self, gw):
        ns = gw["ns"]
        ports = [p for p in gw["ports"]]
        addr = f"{gw['vteps'][0]}:{XDP_METRICS_PORT}"
        cmd = [self.binary("xdp/stratus-xdp"), "--instance", f"{self.lab.prefix}-{gw['name']}",
               "--interfaces", ",".join(ports), "--api", self._api(gw),
               "--metrics", addr, "--state-dir", os.path.join(self.run_dir, gw["name"]),
               "--detach"]
        self.procs[gw["name"]] = ns.popen(cmd, log=f"{gw['name']}.log")
        self.metrics[gw["name"]] = addr
        wait_until(lambda: os.path.exists(self._api(gw)[5:]), 20, what=f"{gw['name']} API socket")

    def _start_dpdk(self, gw):
        ns = gw["ns"]
        eal = ["-l", "0-1", "--no-huge", "-m", "512", "--no-shconf", "--no-pci",
               "--log-level", "lib.eal:error"]
        # One af_packet vdev per port, called by the port's name in the
        # node table (--port), so the config reads like the XDP node's.
        for p in gw["ports"].values():
            eal += ["--vdev", f"{dpdk_device(p['name'])},iface={p['name']}"]
        addr = f"{gw['mgmt']}:{DPDK_METRICS_PORT}"
        cmd = [self.binary("dataplane/stratus-dpdk"), "--instance", gw["name"],
               "--api", self._api(gw), "--metrics", addr]
        for p in gw["ports"].values():
            cmd += ["--port", f"{p['name']}={dpdk_device(p['name'])}"]
        cmd += ["--"] + eal
        self.procs[gw["name"]] = ns.popen(cmd, log=f"{gw['name']}.log")
        self.metrics[gw["name"]] = addr
        wait_until(lambda: os.path.exists(self._api(gw)[5:]), 30, what=f"{gw['name']} API socket")

    def _api(self, gw):
        node = next(n for n in self.cfg["nodes"] if n["name"] == gw["name"])
        return node["api"]

    def start_backend(self, vm):
        key = f"web:{vm['name']}"
        self.procs[key] = vm["ns"].popen(["/usr/bin/python3", os.path.join(HERE, "webserver.py"),
                                          vm["name"], "80"], log=f"{key}.log")

    def stop_backend(self, vm):
        p = self.procs.pop(f"web:{vm['name']}", None)
        if p:
            self.lab.stop(p)

    def _start_stratusd(self):
        mgmt = self.topo.ns["mgmt"]
        addr = f"{self.topo.mgmt_addr}:{STRATUSD_METRICS_PORT}"
        self.socket = os.path.join(self.run_dir, "stratusd.sock")
        cmd = [self.binary("control/stratusd"), "--config", self.config_path,
               "--socket", self.socket, "--metrics", addr]
        self.procs["stratusd"] = mgmt.popen(cmd, log="stratusd.log")
        self.metrics["stratusd"] = addr
        wait_until(lambda: os.path.exists(self.socket), 20, what="stratusd socket")

    def start_prometheus(self, interval="1s"):
        mgmt = self.topo.ns["mgmt"]
        prom_dir = os.path.join(self.run_dir, "prometheus")
        os.makedirs(prom_dir, exist_ok=True)
        conf = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "scrape_configs": [{"job_name": name, "static_configs": [{"targets": [addr]}]}
                               for name, addr in self.metrics.items()],
        }
        with open(os.path.join(prom_dir, "prometheus.yml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(conf, f)
        self.prometheus = f"{self.topo.mgmt_addr}:{PROMETHEUS_PORT}"
        self.procs["prometheus"] = mgmt.popen(
            ["prometheus", f"--config.file={prom_dir}/prometheus.yml",
             f"--storage.tsdb.path={prom_dir}/data", f"--web.listen-address={self.prometheus}"],
            log="prometheus.log")
        wait_until(lambda: self.prom_query("up") is not None, 30, what="prometheus")

    def prom_query(self, expr):
        """Runs an instant query through the mgmt namespace; None when
        Prometheus does not answer yet."""
        url = f"http://{self.prometheus}/api/v1/query?query={urllib.parse.quote(expr)}"
        out = self.topo.ns["mgmt"].run(["curl", "-sf", "--max-time", "3", url], check=False)
        if not out:
            return None
        data = json.loads(out)
        return data["data"]["result"] if data.get("status") == "success" else None

    # ------------------------------------------------------------------ control

    def ctl(self, *args, check=True, json_out=False):
        cmd = [self.binary("control/stratusctl"), "--socket", self.socket]
        if json_out:
            cmd.append("--json")
        out = run(cmd + list(args), check=check, timeout=30)
        return json.loads(out) if json_out else out

    def scrape(self, name):
        return self.topo.ns["mgmt"].run(["curl", "-sf", "--max-time", "3",
                                         f"http://{self.metrics[name]}/metrics"])

    def rewrite_config(self, edit):
        """Applies edit(cfg) to the running config file and asks stratusd to
        reload it."""
        cfg = json.loads(json.dumps(self.cfg))
        edit(cfg)
        self._write_config(cfg)
        return self.ctl("reload", check=False)

    def close(self):
        self.lab.close()


def dpdk_device(port):
    """The lab's af_packet vdev for an interface."""
    return f"net_af_packet_{port}"
