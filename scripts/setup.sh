#!/usr/bin/env bash
# SPDX-License-Identifier: MPL-2.0
# Installs what building and testing videoip needs on a fresh Debian 12 machine, as root:
# GStreamer 1.22's development files, tools and the plugin sets that tests compare against,
# iproute2 for the network-namespace tests. Safe to run again: it only installs what is
# missing. It also raises the kernel's socket buffer limits where it may (best effort).
set -euo pipefail

packages=(
  pkg-config
  libgstreamer1.0-dev
  libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-base-apps
  python3-gi
  gir1.2-gstreamer-1.0
  iproute2
  procps
  gcc
  libc6-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: no Rust toolchain found: install Rust 1.92 or newer (https://rustup.rs) and run this again" >&2
  exit 1
fi
# gstreamer-rs 0.25 needs Rust 1.92 (Debian 12's own rustc is far older).
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if ! [[ "$rust_minor" =~ ^[0-9]+$ ]] || [ "$rust_minor" -lt 92 ]; then
  echo "setup: $(rustc --version) is too old: videoip needs Rust 1.92 or newer (https://rustup.rs)" >&2
  exit 1
fi

# Large socket buffers let a receiver absorb a whole uncompressed frame. As root the elements
# force their buffer sizes anyway; raising the limits helps unprivileged users on this host.
if [ "$(id -u)" -eq 0 ]; then
  for key in net.core.rmem_max net.core.wmem_max; do
    cur=$(sysctl -n "$key" 2>/dev/null || echo 0)
    if [ "$cur" -lt 67108864 ]; then
      sysctl -q -w "$key=67108864" 2>/dev/null || true
    fi
  done
fi
