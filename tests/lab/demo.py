"""The main job: a two-region cloud in a box, driven step by step.

Starts the topology of a Stratus config (by default the two-region example:
region a on stratus-xdp, region b on stratus-dpdk, kernel VXLAN hosts, two
tenants with the same addresses, a VIP with backends in both regions),
stratusd and Prometheus, then shows each behaviour with what was expected,
what happened, and PASS or FAIL. Leaves everything running until Ctrl-C, or
with --once stops and cleans up at the end. Exit status: 0 when every step
passed.

    demo.py --build BUILD_DIR [--config FILE] [--once] [--run-dir DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cloud import Cloud  # noqa: E402
from lab import LabError, wait_until  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WHOAMI_PORT = 8080
# Chi-square critical values at the 1% level, by degrees of freedom (1..10).
CHI2_1PCT = {1: 6.635, 2: 9.210, 3: 11.345, 4: 13.277, 5: 15.086, 6: 16.812, 7: 18.475,
             8: 20.090, 9: 21.666, 10: 23.209}


class Report:
    def __init__(self):
        self.results = []

    def step(self, title, expected, fn):
        print(f"\n== {title}\n   expected: {expected}", flush=True)
        try:
            ok, happened = fn()
        except (LabError, OSError, ValueError, KeyError) as e:
            ok, happened = False, f"error: {e}"
        print(f"   happened: {happened}\n   {'PASS' if ok else 'FAIL'}", flush=True)
        self.results.append((title, ok))
        return ok

    def summary(self):
        print("\n== Summary")
        for title, ok in self.results:
            print(f"   {'PASS' if ok else 'FAIL'}  {title}")
        passed = sum(ok for _, ok in self.results)
        print(f"   {passed} of {len(self.results)} steps passed")
        return passed == len(self.results)


def ping(vm, addr):
    out = vm["ns"].run(["ping", "-c", "2", "-W", "1", "-i", "0.2", addr], check=False)
    return " 0 received" not in out and "received" in out


def whoami(vm, addr):
    """The name of the VM that answers on addr, or None."""
    out = vm["ns"].run(["curl", "-s", "--max-time", "2", f"http://{addr}:{WHOAMI_PORT}/"],
                       check=False)
    return out.strip() or None


def spread(cloud, vip, port, count):
    out = cloud.topo.ns["client"].run(["/usr/bin/python3", os.path.join(HERE, "httpclient.py"),
                                       "spread", vip, str(port), str(count)], timeout=300)
    return json.loads(out)


def backend_health(cloud, service):
    rows = cloud.ctl("backends", service, json_out=True)
    rows = rows.get("backends", rows) if isinstance(rows, dict) else rows
    return {r["name"]: r for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--config", default=os.path.join(ROOT, "config/examples/two-region.yaml"))
    ap.add_argument("--run-dir", default="/run/stratus-demo")
    ap.add_argument("--once", action="store_true", help="run the steps, clean up and exit")
    ap.add_argument("--connections", type=int, default=300,
                    help="connections in the load-balancing step (e2e: 2000)")
    ap.add_argument("--kinds", default="",
                    help="override data planes, e.g. gw-a=dpdk,gw-b=xdp (default: the config's)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("demo: needs root (network namespaces, XDP, DPDK)", file=sys.stderr)
        return 2

    kinds = dict(kv.split("=", 1) for kv in args.kinds.split(",") if kv)
    cloud = Cloud(args.build, args.config, args.run_dir, kinds=kinds)
    report = Report()
    try:
        cloud.start()
        topo = cloud.topo
        for vm in topo.all_vms():
            vm["ns"].popen(["/usr/bin/python3", os.path.join(HERE, "webserver.py"),
                            vm["name"], str(WHOAMI_PORT)], log=f"whoami-{vm['name']}.log")
        cloud.start_prometheus()
        svc = cloud.cfg["services"][0]
        vip, vport = svc["vip"], svc.get("port", 80)
        names = [b["name"] for b in svc["backends"]]
        vm = topo.vm
        kind = {g["region"]: g["kind"].upper() for g in topo.gateways.values()}

        def synced():
            nodes = cloud.ctl("nodes", json_out=True)
            nodes = nodes.get("nodes", nodes) if isinstance(nodes, dict) else nodes
            return all(n.get("state") == "in_sync" for n in nodes) and nodes

        report.step("stratusd pushes the compiled tables to both gateways",
                    "every node in_sync", lambda: (bool(wait_until(synced, 30, what="sync")),
                                                   cloud.ctl("nodes").strip()))
        print(cloud.ctl("nodes"))

        red_a1, red_a2 = vm("red", "10.1.0.11", "a"), vm("red", "10.1.0.12", "a")
        blue_a1, blue_a2 = vm("blue", "10.1.0.11", "a"), vm("blue", "10.1.0.12", "a")
        red_b1, blue_b1 = vm("red", "10.2.0.11", "b"), vm("blue", "10.2.0.11", "b")

        def within_region():
            got = {"red": whoami(red_a1, "10.1.0.12"), "blue": whoami(blue_a1, "10.1.0.12")}
            return got == {"red": red_a2["name"], "blue": blue_a2["name"]}, f"answered by {got}"

        report.step(f"tenant VMs reach each other within region a (host -> gw-a {kind['a']} -> host)",
                    f"10.1.0.11 -> 10.1.0.12 answered by {red_a2['name']} (red), "
                    f"{blue_a2['name']} (blue)", within_region)

        def across_regions():
            got = {"red": whoami(red_a1, "10.2.0.11"), "blue": whoami(blue_a1, "10.2.0.11")}
            back = whoami(red_b1, "10.1.0.11")
            ok = got == {"red": red_b1["name"], "blue": blue_b1["name"]} and back == red_a1["name"]
            return ok, f"a->b answered by {got}; b->a answered by {back}"

        report.step(f"tenant VMs reach each other across regions (gw-a {kind['a']} -> WAN, "
                    f"VNI 1001->2001 -> gw-b {kind['b']})",
                    f"10.1.0.11 -> 10.2.0.11 answered by {red_b1['name']} / {blue_b1['name']}, "
                    "and back", across_regions)

        def isolation():
            web = vm("red", "10.1.0.21", "a")
            red_only = not ping(blue_a1, web["addr"])
            same = whoami(blue_a1, "10.1.0.12") == blue_a2["name"]
            return red_only and same, (f"blue ping of red-only {web['addr']}: "
                                       f"{'no answer' if red_only else 'ANSWERED'}; blue's "
                                       f"10.1.0.12 is {whoami(blue_a1, '10.1.0.12')}")

        report.step("the other tenant cannot reach them despite equal addresses",
                    "blue reaches only blue VMs; red-only addresses do not answer", isolation)

        weights = {b["name"]: b.get("weight", 1) for b in svc["backends"]}
        client_counts = {}

        def lb_spread():
            n = args.connections
            counts = spread(cloud, vip, vport, n)
            errors = counts.pop("errors", 0)
            client_counts.update(counts)
            total_w = sum(weights.values())
            expected = {b: n * w / total_w for b, w in weights.items()}
            chi2 = sum((counts.get(b, 0) - e) ** 2 / e for b, e in expected.items() if e > 0)
            limit = CHI2_1PCT[len(expected) - 1]
            ok = errors == 0 and set(counts) <= set(names) and chi2 <= limit
            return ok, (f"{counts}, {errors} errors; chi-square {chi2:.2f} against the weights "
                        f"(1% critical value {limit})")

        report.step(f"{args.connections} HTTP connections from the client to the VIP {vip}:{vport}",
                    f"spread over {', '.join(names)} in proportion to their weights (Maglev; "
                    "chi-square test at 1%), answered directly by the backends (DSR)", lb_spread)

        victim = topo.backends(svc["name"])[1]
        held = {}

        def failover():
            hold = topo.ns["client"].popen(["/usr/bin/python3", os.path.join(HERE, "httpclient.py"),
                                            "hold", vip, str(vport), "12", "25"],
                                           log="hold.log")
            held["proc"] = hold
            time.sleep(2)
            cloud.stop_backend(victim)
            t0 = time.monotonic()
            wait_until(lambda: backend_health(cloud, svc["name"])[victim["name"]]["state"] == "down",
                       15, what=f"{victim['name']} down")
            took = time.monotonic() - t0
            counts = spread(cloud, vip, vport, 100)
            return counts.get(victim["name"], 0) == 0 and counts.get("errors", 0) == 0, (
                f"{victim['name']} down after {took:.1f} s; new connections: {counts}")

        report.step(f"backend {victim['name']} is killed",
                    "health checks take it out within fall x interval; new connections avoid it",
                    failover)

        def survivors():
            cloud.lab.stop(held["proc"], timeout=40) if held["proc"].poll() is None else None
            lines = open(os.path.join(cloud.run_dir, "logs", "hold.log")).read().splitlines()
            opened = json.loads(lines[0])["opened"]
            last = json.loads(lines[-1])["alive"]
            broken = [o for o, a in zip(opened, last) if o != victim["name"] and a is None]
            return not broken, (f"{len(opened)} held connections "
                                f"({', '.join(sorted(set(opened)))}); broken among survivors: "
                                f"{len(broken)}")

        report.step("established connections to the other backends survive",
                    "no held connection to a surviving backend breaks", survivors)

        def restore():
            cloud.start_backend(victim)
            wait_until(lambda: backend_health(cloud, svc["name"])[victim["name"]]["state"] ==
                       "active", 15, what=f"{victim['name']} active")
            counts = spread(cloud, vip, vport, 100)
            return counts.get(victim["name"], 0) > 0, f"new connections: {counts}"

        report.step(f"{victim['name']} is restored", "it is active again and gets new connections",
                    restore)

        def route_change():
            saved = {}

            def red_route(cfg):
                t = next(t for t in cfg["tenants"] if t["name"] == "red")
                return next(r for r in t["routes"] if r["prefix"] == "10.1.0.12/32")

            def blackhole(cfg):
                r = red_route(cfg)
                saved.update(r)
                r.pop("remote")
                r["blackhole"] = True

            def restore_route(cfg):
                r = red_route(cfg)
                r.clear()
                r.update(saved)

            print("   " + cloud.rewrite_config(blackhole).strip().replace("\n", "\n   "))
            wait_until(lambda: not ping(red_a1, "10.1.0.12"), 15, what="blackhole live")
            blue_ok = whoami(blue_a1, "10.1.0.12") == blue_a2["name"]
            cloud.rewrite_config(restore_route)
            wait_until(lambda: ping(red_a1, "10.1.0.12"), 15, what="route restored")
            return blue_ok, ("red's 10.1.0.12/32 blackholed live (blue unaffected: "
                             f"{blue_ok}), then restored")

        report.step("a route change is pushed live (stratusctl reload)",
                    "red's route to 10.1.0.12/32 becomes a blackhole, only for red, then comes back",
                    route_change)

        def prometheus():
            problems = []
            for name in cloud.metrics:
                text = cloud.scrape(name)
                p = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                                   capture_output=True)
                if p.returncode != 0:
                    problems.append(f"{name}: {(p.stdout + p.stderr).strip()[:200]}")
            time.sleep(3)  # one more scrape after the last connections
            res = cloud.prom_query("sum by (backend) (stratus_backend_new_flows_total)")
            got = {r["metric"].get("backend"): int(float(r["value"][1])) for r in res or []}
            # Every connection the client made is at least one new flow on
            # the gateway (a flow seen on two CPUs counts on each).
            short = {b: c for b, c in client_counts.items() if got.get(b, 0) < c}
            up = cloud.prom_query("up") or []
            down = [r["metric"]["job"] for r in up if r["value"][1] != "1"]
            ok = not problems and not short and not down and len(up) == len(cloud.metrics)
            return ok, (f"promtool: {'ok' if not problems else problems}; targets up: "
                        f"{len(up) - len(down)}/{len(cloud.metrics)}; new flows per backend from "
                        f"Prometheus: {got} (client counted {client_counts} in the spread step)")

        report.step("Prometheus scrapes every endpoint",
                    "promtool accepts every /metrics; every target up; per-backend new-flow "
                    "counts at least what the client saw", prometheus)
        print("\n== Where to look")
        for name, addr in cloud.metrics.items():
            print(f"   /metrics of {name:9} http://{addr}/metrics  (in namespace {topo.ns['mgmt'].name})")
        print(f"   Prometheus       http://{cloud.prometheus}  (in namespace {topo.ns['mgmt'].name})")
        print(f"   stratusctl       {cloud.binary('control/stratusctl')} --socket {cloud.socket} status")
        print(f"   logs             {cloud.run_dir}/logs/")
        ok = report.summary()
        if not args.once:
            print("\nThe cloud keeps running; Ctrl-C stops and removes it.", flush=True)
            while True:
                time.sleep(1)
        return 0 if ok else 1
    except KeyboardInterrupt:
        return 0
    finally:
        cloud.close()


if __name__ == "__main__":
    sys.exit(main())
