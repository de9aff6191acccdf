#!/usr/bin/env bash
# The main job: the two-region cloud in a box (tests/lab/demo.py) on the
# embedded default configuration, config/examples/two-region.yaml.
#
#   scripts/demo.sh BUILD_DIR [--once] [--config FILE] [--run-dir DIR]
#
# Needs root (namespaces, XDP, DPDK). Everything it starts is stopped and
# removed on exit, also on failure or Ctrl-C.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
[[ $build = /* ]] || build=$here/$build
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (network namespaces, XDP, DPDK); try: sudo make demo" >&2
  exit 2
fi
exec /usr/bin/python3 -u "$here/tests/lab/demo.py" --build "$build" "$@"
