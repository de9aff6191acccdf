#!/usr/bin/env bash
# Installs what Stratus needs to build, test and run its demo on Debian 12,
# then configures the meson build directory. Idempotent: packages already
# present are not reinstalled and an existing build directory is reused.
#
#   scripts/setup.sh [BUILD_DIR] [extra meson options...]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true

packages=(
  # build
  build-essential meson ninja-build pkg-config clang llvm
  # libraries
  libbpf-dev bpftool libxdp-dev xdp-tools
  dpdk-dev libdpdk-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  prometheus-cpp-dev libyaml-cpp-dev libyaml-dev libboost-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # tests and demo
  iproute2 iputils-ping tcpdump tshark python3 python3-scapy python3-yaml prometheus curl
  procps psmisc ethtool
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages: ${missing[*]}" >&2
    echo "setup: run as root (or install them with sudo apt-get install)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cd "$here"
if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" "$@"
elif (($#)); then
  meson configure "$build" "$@"
fi
