#!/usr/bin/env bash
# Runs every benchmark (meson `benchmark()` targets), each of which prints
# its baseline and ratios beside the absolute figures.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
cd "$here"
meson test -C "$build" --benchmark --verbose --timeout-multiplier 4
