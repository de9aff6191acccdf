#!/usr/bin/python3
"""stratusd and stratusctl end to end, on loopback only: a fake data-plane
process (fake_dataplane), stratusd reloading by SIGHUP and by file change,
every stratusctl command, its tables, --json, and its exit codes.

usage: cli_test.py STRATUSD STRATUSCTL FAKE_DATAPLANE
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

STRATUSD, STRATUSCTL, FAKE_DP = sys.argv[1:4]

CONFIG = """
nodes:
  - name: gw-a
    region: lab
    kind: xdp
    api: unix:{dir}/a.sock
    vteps: [192.0.2.1]
    ports: [{{name: eth0, role: underlay, mac: "02:00:00:00:01:01"}}]
    nexthops: [{{remote: default, port: eth0, mac: "02:00:00:00:fe:01"}}]
  - name: gw-b
    region: lab
    kind: dpdk
    api: unix:{dir}/b.sock
    vteps: [192.0.2.2]
    ports: [{{name: eth0, role: underlay, mac: "02:00:00:00:01:02"}}]
    nexthops: [{{remote: default, port: eth0, mac: "02:00:00:00:fe:01"}}]
tenants:
  - name: acme
    vni: 100
    subnets: [10.0.0.0/8]
    gateways: [10.0.0.1]
    routes:
      - {{prefix: 10.1.0.1/32, remote: {{vtep: {vtep}, mac: "02:00:00:01:00:10"}}}}
      - {{prefix: 10.2.0.0/16, blackhole: true}}
services:
  - name: web
    tenant: acme
    vip: 10.0.0.100
    protocol: tcp
    port: 80
    maglev_size: 307
    backends:
      - {{name: web-1, address: 10.0.1.1, tenant: acme, vtep: 192.0.2.11, mac: "02:00:00:01:00:01"}}
      - {{name: web-2, address: 10.0.1.2, tenant: acme, vtep: 192.0.2.11, mac: "02:00:00:01:00:02"}}
      - {{name: web-3, address: 10.0.1.3, tenant: acme, vtep: 192.0.2.11, mac: "02:00:00:01:00:03"}}
"""


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


class StratusCtlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stratus-cli-")
        cls.procs = []
        cls.config = os.path.join(cls.dir, "stratus.yaml")
        cls.write_config(vtep="192.0.2.11")
        cls.sock = os.path.join(cls.dir, "stratusd.sock")
        cls.log = open(os.path.join(cls.dir, "stratusd.log"), "w+")
        for node in ("a", "b"):
            cls.procs.append(subprocess.Popen(
                [FAKE_DP, "gw-" + node, "unix:%s/%s.sock" % (cls.dir, node)],
                stdout=subprocess.DEVNULL))
        cls.stratusd = subprocess.Popen(
            [STRATUSD, "--config", cls.config, "--socket", cls.sock, "--metrics", "off",
             "--watch-ms", "100", "--no-health"], stderr=cls.log)
        cls.procs.append(cls.stratusd)
        wait_for(lambda: os.path.exists(cls.sock), what="the operator socket")
        wait_for(lambda: cls.nodes_in_sync() == 2, what="both nodes in sync")

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            if p.poll() is None:
                p.terminate()
        for p in cls.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        cls.log.close()
        shutil.rmtree(cls.dir, ignore_errors=True)

    @classmethod
    def write_config(cls, vtep, extra=""):
        tmp = cls.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(CONFIG.format(dir=cls.dir, vtep=vtep) + extra)
        os.rename(tmp, cls.config)

    @classmethod
    def ctl(cls, *args):
        r = subprocess.run([STRATUSCTL, "--socket", cls.sock] + list(args),
                           capture_output=True, text=True, timeout=60)
        return r.returncode, r.stdout, r.stderr

    @classmethod
    def ctl_json(cls, *args):
        rc, out, err = cls.ctl("--json", *args)
        if rc != 0:
            raise AssertionError("stratusctl %s: rc %d: %s" % (args, rc, err))
        return json.loads(out)

    @classmethod
    def nodes_in_sync(cls):
        rc, out, _ = cls.ctl("--json", "status")
        return json.loads(out).get("nodes_in_sync", 0) if rc == 0 else -1

    def test_operator_socket_is_private(self):
        self.assertEqual(os.stat(self.sock).st_mode & 0o777, 0o600)

    def test_status_and_nodes_tables(self):
        rc, out, _ = self.ctl("status")
        self.assertEqual(rc, 0)
        self.assertIn("2/2 in sync", out)
        rc, out, _ = self.ctl("nodes")
        self.assertEqual(rc, 0)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("NODE"))
        self.assertEqual(len(lines), 3)
        self.assertIn("in_sync", lines[1])
        # Columns are aligned: STATE starts at the same offset on every line.
        col = lines[0].index("STATE")
        self.assertTrue(all(l[col:].startswith(("STATE", "in_sync")) for l in lines))

    def test_views(self):
        self.assertEqual(self.ctl("tenants")[0], 0)
        routes = self.ctl_json("routes", "acme")["routes"]
        self.assertEqual(len(routes), 4)  # 2 routes x 2 nodes
        services = self.ctl_json("services")["services"]
        self.assertEqual([s["name"] for s in services], ["web"])
        backends = self.ctl_json("backends", "web")["backends"]
        self.assertEqual(sum(b["slots"] for b in backends), 307)
        flows = self.ctl_json("flows", "gw-a")
        self.assertEqual(len(flows["flows"]), 1)

    def test_drain_weight_undrain(self):
        b = self.ctl_json("drain", "web", "web-2")["backend"]
        self.assertEqual((b["state"], b["slots"]), ("draining", 0))
        b = self.ctl_json("weight", "web", "web-3", "3")["backend"]
        self.assertEqual(b["weight"], 3)
        b = self.ctl_json("reset", "web", "web-3")["backend"]
        self.assertEqual(b["weight"], 1)
        b = self.ctl_json("undrain", "web", "web-2")["backend"]
        self.assertEqual(b["state"], "active")
        self.assertGreater(b["slots"], 0)
        rc, _, err = self.ctl("drain", "web", "nope")
        self.assertEqual(rc, 1)
        self.assertIn("no backend", err)
        self.assertEqual(self.ctl("weight", "web", "web-1", "x")[0], 2)

    def test_explain_every_node(self):
        r = self.ctl_json("explain", "--tenant", "acme", "10.0.5.5", "10.0.0.100", "tcp",
                          "40000", "80")
        self.assertEqual(len(r["nodes"]), 2)
        self.assertEqual({n["path"] for n in r["nodes"]}, {"service"})
        self.assertEqual(len({n["backend"] for n in r["nodes"]}), 1)
        rc, out, _ = self.ctl("explain", "--tenant", "acme", "10.0.5.5", "10.2.3.4", "udp",
                              "1", "53")
        self.assertEqual(rc, 0)
        self.assertIn("blackhole", out)
        self.assertEqual(self.ctl("explain", "10.0.5.5", "10.2.3.4", "udp", "1", "53")[0], 2)

    def test_usage_and_unreachable_daemon(self):
        self.assertEqual(self.ctl("frobnicate")[0], 2)
        self.assertEqual(self.ctl()[0], 2)
        r = subprocess.run([STRATUSCTL, "--socket", self.dir + "/none.sock", "status"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot reach stratusd", r.stderr)

    def test_validate_locally(self):
        rc, out, _ = self.ctl("validate", self.config)
        self.assertEqual(rc, 0, out)
        bad = os.path.join(self.dir, "bad.yaml")
        with open(bad, "w") as f:
            f.write(CONFIG.format(dir=self.dir, vtep="not-an-ip"))
        rc, _, err = self.ctl("validate", bad)
        self.assertEqual(rc, 1)
        self.assertIn("bad.yaml:", err)
        self.assertIn("vtep", err)

    def test_z_reload_by_file_sighup_and_api(self):
        gen = self.ctl_json("status")["generation"]
        # A file change is picked up and pushed as a delta.
        self.write_config(vtep="192.0.2.12")
        wait_for(lambda: int(self.ctl_json("status")["generation"]) > int(gen),
                 what="the file change")
        wait_for(lambda: self.nodes_in_sync() == 2, what="sync after the file change")
        routes = self.ctl_json("routes", "acme", "--node", "gw-a")["routes"]
        self.assertIn("192.0.2.12", routes[0]["target"] + routes[1]["target"])
        gen = self.ctl_json("status")["generation"]
        # An invalid file, by SIGHUP: rejected, the state kept.
        self.stratusd.send_signal(signal.SIGHUP)  # harmless: same valid file
        self.write_config(vtep="192.0.2.13", extra="  - name: [oops\n")
        self.stratusd.send_signal(signal.SIGHUP)
        wait_for(lambda: not self.ctl_json("status")["config_valid"], what="the rejection")
        st = self.ctl_json("status")
        self.assertEqual(st["generation"], gen)
        self.assertTrue(st["last_reload"]["errors"][0].startswith(self.config + ":"))
        rc, out, _ = self.ctl("reload")
        self.assertEqual(rc, 1)
        self.assertIn("REJECTED", out)
        # Fixed, by the API.
        self.write_config(vtep="192.0.2.13")
        rc, out, _ = self.ctl("reload")
        self.assertEqual(rc, 0, out)
        self.assertTrue(self.ctl_json("status")["config_valid"])


class StratusdMetricsTest(unittest.TestCase):
    """The /metrics of a running stratusd (nodes unreachable) pass promtool."""

    def test_metrics_endpoint_passes_promtool(self):
        import socket
        import urllib.request
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        if not os.path.exists(promtool):
            self.skipTest("promtool not installed")
        d = tempfile.mkdtemp(prefix="stratus-cli-")
        try:
            with open(os.path.join(d, "c.yaml"), "w") as f:
                f.write(CONFIG.format(dir=d, vtep="192.0.2.11"))
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            p = subprocess.Popen([STRATUSD, "--config", os.path.join(d, "c.yaml"), "--socket",
                                  os.path.join(d, "d.sock"), "--metrics", "127.0.0.1:%d" % port,
                                  "--no-health"], stderr=subprocess.DEVNULL)
            try:
                text = ""

                def scraped():
                    nonlocal text
                    try:
                        text = urllib.request.urlopen(
                            "http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
                    except OSError:
                        return False
                    return 'state="failed"} 1' in text

                wait_for(scraped, what="/metrics with failed nodes")
                self.assertIn("stratus_config_valid 1", text)
                r = subprocess.run([promtool, "check", "metrics"], input=text,
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertEqual(r.stdout + r.stderr, "")
            finally:
                p.terminate()
                p.wait(timeout=10)
        finally:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
