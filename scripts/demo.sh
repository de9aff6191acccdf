#!/usr/bin/env bash
# The main job. Until the two-region demo lands (see the README), it shows
# the most complete thing there is: the two-region example configuration
# validated, compiled into every node's tables, and printed.
#
#   scripts/demo.sh BUILD_DIR [config.yaml]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
config=${2:-$here/config/examples/two-region.yaml}
[[ $build = /* ]] || build=$here/$build

echo "== Stratus: validating $config"
"$build/config/stratus-compile" --check "$config"
echo
echo "== Compiled tables, per data-plane node"
"$build/config/stratus-compile" "$config"
