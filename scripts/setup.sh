#!/usr/bin/env bash
# Sourced by scripts/demo.sh and scripts/test.sh: installs the Debian 12 packages that are
# missing, then configures and builds nixprov into build/ (or $BUILD_DIR).
set -euo pipefail

NIXPROV_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$NIXPROV_SRC/build}

# Build: compiler, CMake, the libraries. Tests: cmocka, clang's libFuzzer, and the real
# programs the tests start (minisign, Nix, OpenSSH, curl, python3 for a fault-injecting server;
# QEMU, a Debian kernel, initramfs-tools, dracut, busybox, e2fsprogs and socat for the boot tests).
# clang-format: scripts/check-format.sh.
NIXPROV_PACKAGES=(
  build-essential cmake pkg-config git
  libsodium-dev libyaml-dev libcurl4-openssl-dev libssh-dev libmicrohttpd-dev libsqlite3-dev
  libjansson-dev libcmocka-dev
  clang libclang-rt-14-dev clang-format
  minisign nix-bin openssh-server openssh-client curl openssl python3 procps jq time
  strace # the kill test (tests/integration/test-crash.sh)
  qemu-system-x86 linux-image-amd64 initramfs-tools dracut-core busybox-static e2fsprogs socat
  systemd # systemd-analyze verify, for the units in systemd/
  nginx-light # a static mirror of profiles (ETag and 304), tests/integration/test-etag.sh
)

nixprov_install_packages() {
  local missing=() p
  for p in "${NIXPROV_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  echo "==> installing: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
}

nixprov_build() { # nixprov_build DIR [CMAKE OPTIONS...]
  local dir=$1
  shift
  echo "==> building in $dir $*"
  cmake -S "$NIXPROV_SRC" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" -- --no-print-directory >/dev/null
}

nixprov_install_packages
nixprov_build "$BUILD_DIR"
