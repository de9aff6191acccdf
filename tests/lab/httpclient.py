"""Client-side load for the lab, run inside the client namespace.

    httpclient.py spread VIP PORT COUNT       one request per new connection;
                                              prints JSON {backend: count, "errors": n}
    httpclient.py hold VIP PORT COUNT SECONDS opens COUNT keep-alive connections,
                                              prints their backends, then every
                                              second re-asks on each and reports
                                              which broke (JSON lines)
"""
import json
import socket
import sys
import time


def request(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return body.decode().strip()


def spread(vip, port, count):
    counts = {}
    errors = 0
    for _ in range(count):
        try:
            with socket.create_connection((vip, port), timeout=2) as s:
                s.settimeout(2)
                name = request(s)
                counts[name] = counts.get(name, 0) + 1
        except OSError:
            errors += 1
    counts["errors"] = errors
    print(json.dumps(counts), flush=True)


def hold(vip, port, count, seconds):
    conns = []
    for _ in range(count):
        s = socket.create_connection((vip, port), timeout=2)
        s.settimeout(2)
        conns.append([s, request(s), True])
    print(json.dumps({"opened": [c[1] for c in conns]}), flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(1)
        for c in conns:
            if not c[2]:
                continue
            try:
                if request(c[0]) != c[1]:
                    c[2] = False
            except OSError:
                c[2] = False
        print(json.dumps({"alive": [c[1] if c[2] else None for c in conns]}), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "spread":
        spread(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif cmd == "hold":
        hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(2)
