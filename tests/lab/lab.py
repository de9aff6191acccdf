"""Network-namespace lab: the primitives the netns tests, the end-to-end
tests and the demo build their topologies from.

Everything a Lab creates is named with its run prefix and recorded, and
Lab.close() (also called from atexit and on SIGINT/SIGTERM) removes it in
reverse order: processes first, then namespaces (which takes their
interfaces with them). A run that was killed hard leaves names with its
prefix; `lab.py --sweep PREFIX` removes them.

Run with /usr/bin/python3 (Debian's, which has scapy); stdlib only here.
"""
import atexit
import os
import shlex
import signal
import subprocess
import sys
import time


class LabError(RuntimeError):
    pass


def run(cmd, check=True, capture=True, timeout=30, input=None):
    """Runs a command (list or string); returns stdout. Raises LabError with
    the command and its stderr when it fails and check is set."""
    if isinstance(cmd, str):
        cmd = shlex.split(cmd)
    p = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout, input=input)
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed ({p.returncode}): {(p.stderr or '').strip()}")
    return p.stdout if capture else ""


def skip(reason):
    """Meson's skip protocol: print the reason, exit 77."""
    print(f"SKIP: {reason}", flush=True)
    sys.exit(77)


def require_root():
    if os.geteuid() != 0:
        skip("needs root (network namespaces)")
    for tool in ("ip", "bridge"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            skip(f"needs {tool} (iproute2)")


class Netns:
    def __init__(self, lab, name):
        self.lab = lab
        self.name = name

    def cmd(self, args):
        if isinstance(args, str):
            args = shlex.split(args)
        return ["ip", "netns", "exec", self.name] + list(args)

    def run(self, args, check=True, timeout=30, input=None):
        return run(self.cmd(args), check=check, timeout=timeout, input=input)

    def sh(self, script, check=True, timeout=30):
        return run(self.cmd(["sh", "-c", script]), check=check, timeout=timeout)

    def popen(self, args, log=None, env=None):
        return self.lab.spawn(self.cmd(args), log=log, env=env)

    def sysctl(self, key, value):
        self.run(["sysctl", "-qw", f"{key}={value}"])

    def link_up(self, dev):
        self.run(["ip", "link", "set", dev, "up"])

    def addr(self, dev, cidr):
        self.run(["ip", "addr", "add", cidr, "dev", dev])

    def route(self, spec):
        self.run(["ip", "route", "add"] + shlex.split(spec))

    def mac(self, dev):
        out = self.run(["cat", f"/sys/class/net/{dev}/address"])
        return out.strip()


class Lab:
    """A set of namespaces, links and processes with one cleanup."""

    def __init__(self, prefix=None, log_dir=None):
        self.prefix = prefix or f"st{os.getpid() % 100000}"
        self.namespaces = []
        self.procs = []
        self.cleanups = []  # extra callables, run first
        self.log_dir = log_dir
        self.closed = False
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
        atexit.register(self.close)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, _frame):
        # A second signal (timeout(1) and a shell both forwarding one) must
        # not cut the cleanup short.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        self.close()
        sys.exit(128 + signum)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -------------------------------------------------------------- building

    def netns(self, short):
        name = f"{self.prefix}-{short}"
        run(["ip", "netns", "add", name])
        ns = Netns(self, name)
        self.namespaces.append(ns)
        ns.link_up("lo")
        ns.sysctl("net.ipv4.conf.all.rp_filter", 0)
        ns.sysctl("net.ipv4.conf.default.rp_filter", 0)
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", 1)
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", 1)
        return ns

    def veth(self, a, a_dev, b, b_dev, a_mac=None, b_mac=None, mtu=None):
        """A veth pair between namespaces a and b, both ends up."""
        run(["ip", "link", "add", a_dev, "netns", a.name, "type", "veth",
             "peer", "name", b_dev, "netns", b.name])
        for ns, dev, mac in ((a, a_dev, a_mac), (b, b_dev, b_mac)):
            if mac:
                ns.run(["ip", "link", "set", dev, "address", mac])
            if mtu:
                ns.run(["ip", "link", "set", dev, "mtu", str(mtu)])
            ns.link_up(dev)

    def bridge(self, ns, name):
        ns.run(["ip", "link", "add", name, "type", "bridge"])
        # No STP delay, no multicast snooping surprises.
        ns.run(["ip", "link", "set", name, "type", "bridge", "stp_state", "0",
                "forward_delay", "0", "mcast_snooping", "0"])
        ns.link_up(name)

    def attach(self, ns, dev, bridge):
        ns.run(["ip", "link", "set", dev, "master", bridge])

    # -------------------------------------------------------------- processes

    def spawn(self, cmd, log=None, env=None):
        out = subprocess.DEVNULL
        if log:
            path = log if os.path.isabs(log) or not self.log_dir else os.path.join(self.log_dir, log)
            out = open(path, "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def stop(self, p, timeout=5):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=timeout)

    # -------------------------------------------------------------- teardown

    def close(self):
        if self.closed:
            return
        self.closed = True
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # cleanup goes on whatever failed
                print(f"lab: cleanup step failed: {e}", file=sys.stderr)
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception as e:
                print(f"lab: cannot stop pid {p.pid}: {e}", file=sys.stderr)
        for ns in reversed(self.namespaces):
            # Kill anything still running inside before deleting.
            run(["ip", "netns", "pids", ns.name], check=False)
            pids = run(["ip", "netns", "pids", ns.name], check=False).split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", ns.name], check=False)
        self.namespaces.clear()


def wait_until(fn, timeout=10.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # keep trying until the deadline
            last = e
        time.sleep(interval)
    raise LabError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def sweep(prefix):
    for line in run(["ip", "netns", "list"], check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix + "-"):
            for pid in run(["ip", "netns", "pids", name], check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            run(["ip", "netns", "del", name], check=False)
            print(f"removed {name}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--sweep":
        sweep(sys.argv[2])
    else:
        print("usage: lab.py --sweep PREFIX", file=sys.stderr)
        sys.exit(2)
