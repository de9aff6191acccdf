#!/usr/bin/env python3
"""Summarise meson's testlog.json: list skipped tests with their reason and
print one closing line "N passed, N failed[, N skipped]".

A test that exits 77 is a skip in meson; its reason is the line it printed
that starts with "SKIP". Exit status is non-zero when anything failed."""
import json
import sys


def skip_reason(entry):
    for line in (entry.get("stdout") or "").splitlines() + (entry.get("stderr") or "").splitlines():
        if line.strip().startswith("SKIP"):
            return line.strip()
    return "(no reason printed)"


def main(path):
    passed = failed = skipped = 0
    skips = []
    fails = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            raw = raw.strip()
            if not raw:
                continue
            entry = json.loads(raw)
            result = entry.get("result")
            name = entry.get("name")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
                skips.append((name, skip_reason(entry)))
            else:
                failed += 1
                fails.append((name, result))
    for name, reason in skips:
        print(f"skipped: {name}: {reason}")
    for name, result in fails:
        print(f"failed: {name}: {result}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
