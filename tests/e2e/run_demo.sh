#!/usr/bin/env bash
# Runs the demo's steps once as a test: BUILD_DIR KINDS RUN_DIR.
set -euo pipefail
if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: needs root (network namespaces, XDP, DPDK)"
  exit 77
fi
here=$(cd "$(dirname "$0")/../.." && pwd)
exec /usr/bin/python3 -u "$here/tests/lab/demo.py" --build "$1" --once --connections 2000 --kinds "$2" --run-dir "$3"
