#!/usr/bin/python3
"""Independent reference for the known-answer vectors in tests/lb/*_test.cc.

Written from the descriptions in lb/flow_hash.h and lb/maglev.h, without
calling the C/C++ code, so that a change to the flow hash, the Maglev name
hashes or the Maglev fill order shows up in a unit test even where the BPF
comparison cannot run. Run it (/usr/bin/python3 tests/lb/reference_vectors.py)
and compare its output with the constants in the tests; it is not part of the
test suite.
"""
import struct

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


def rotl32(x, r):
    return ((x << r) | (x >> (32 - r))) & M32


def flow_hash(key_bytes, seed):
    """MurmurHash3 x86_32 block and finaliser over 11 little-endian words."""
    assert len(key_bytes) == 44
    h = seed
    for (k,) in struct.iter_unpack("<I", key_bytes):
        k = (k * 0xCC9E2D51) & M32
        k = rotl32(k, 15)
        k = (k * 0x1B873593) & M32
        h ^= k
        h = rotl32(h, 13)
        h = (h * 5 + 0xE6546B64) & M32
    h ^= 44
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def flow_key(src, dst, vrf, sport, dport, proto):
    """src/dst: 16 address bytes; ports in host order (stored big-endian)."""
    return src + dst + struct.pack("<I", vrf) + struct.pack(">HH", sport, dport) + bytes([proto, 0, 0, 0])


def v4(a, b, c, d):
    return bytes([a, b, c, d]) + bytes(12)


def v6(text):
    import ipaddress
    return ipaddress.IPv6Address(text).packed


def name_hash(name, seed):
    h = 0xCBF29CE484222325 ^ seed
    for c in name.encode():
        h ^= c
        h = (h * 0x100000001B3) & M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


OFFSET_SEED = int.from_bytes(b"maglev-o", "big")
SKIP_SEED = int.from_bytes(b"maglev-s", "big")


def maglev(backends, m):
    """backends: list of (name, weight). The paper's populate loop with the
    weighted turn rule of lb/maglev.h, written the slow obvious way."""
    # Turn order: offset hash, then name.
    order = sorted(range(len(backends)),
                   key=lambda i: (name_hash(backends[i][0], OFFSET_SEED), backends[i][0].encode()))
    live = [i for i in order if backends[i][1] > 0]
    if not live:
        return []
    perm = {}
    for i in live:
        name = backends[i][0]
        offset = name_hash(name, OFFSET_SEED) % m
        skip = name_hash(name, SKIP_SEED) % (m - 1) + 1
        perm[i] = [(offset + j * skip) % m for j in range(m)]
    total = sum(backends[i][1] for i in live)
    equal = len(set(backends[i][1] for i in live)) == 1
    quota = {i: m * backends[i][1] // total for i in live}
    left = m - sum(quota.values())
    by_remainder = sorted(live, key=lambda i: (-(m * backends[i][1] % total), live.index(i)))
    for i in by_remainder[:left]:
        quota[i] += 1
    q_max = max(quota.values())
    nxt = {i: 0 for i in live}
    table = [None] * m
    filled = 0
    r = 0
    while True:
        r += 1
        for i in live:
            if not equal and (r * quota[i]) // q_max == ((r - 1) * quota[i]) // q_max:
                continue
            while table[perm[i][nxt[i]]] is not None:
                nxt[i] += 1
            table[perm[i][nxt[i]]] = i
            nxt[i] += 1
            filled += 1
            if filled == m:
                return table


def main():
    print("// flow hash: (description, seed, hash)")
    keys = [
        ("all zero", bytes(44), 0),
        ("all zero", bytes(44), 0x12345678),
        ("tcp v4", flow_key(v4(10, 0, 0, 1), v4(10, 0, 0, 2), 0, 12345, 80, 6), 0),
        ("tcp v4", flow_key(v4(10, 0, 0, 1), v4(10, 0, 0, 2), 0, 12345, 80, 6), 0xDEADBEEF),
        ("udp v4 vrf 7", flow_key(v4(192, 168, 1, 10), v4(172, 16, 0, 1), 7, 53000, 53, 17), 42),
        ("tcp v6", flow_key(v6("2001:db8::1"), v6("2001:db8::2"), 3, 40000, 443, 6), 1),
        ("all ones", bytes([0xFF] * 44), 0xFFFFFFFF),
    ]
    for desc, key, seed in keys:
        h = flow_hash(key, seed)
        print(f"  {desc:14s} seed=0x{seed:08x} hash=0x{h:08x} vxlan_sport={49152 + (h & 16383)}")
    print("// name hashes: (name, offset hash, skip hash)")
    for name in ["", "a", "backend-0", "web-01.eu-west", "\u00e9t\u00e9"]:
        print(f"  {name!r:18s} 0x{name_hash(name, OFFSET_SEED):016x}ull 0x{name_hash(name, SKIP_SEED):016x}ull")
    print("// maglev tables")
    cases = [
        ([("a", 1), ("b", 1), ("c", 1)], 13),
        ([("a", 1), ("b", 2), ("c", 0), ("d", 3)], 17),
        ([("b-%d" % i, 1 + i % 3) for i in range(5)], 31),
        ([("be-%d" % i, 1) for i in range(7)], 31),
        ([("be-%d" % i, 1 + i % 3) for i in range(7)], 37),
    ]
    for backends, m in cases:
        print(f"  {backends} m={m}")
        print("   ", ", ".join(str(x) for x in maglev(backends, m)))


if __name__ == "__main__":
    main()
