#!/usr/bin/env bash
# Unpack (not install) Debian's cloud-init package into .cache/cloud-init, so the tests can use
# cloud-init's own schema validator without touching the system.
set -euo pipefail
dest=${1:-.cache/cloud-init}
if [ -d "$dest/usr/lib/python3/dist-packages/cloudinit" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "fetch_cloud_init: no apt-get/dpkg-deb here; cloud-config tests fall back to structural checks" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get download cloud-init >/dev/null 2>&1); then
  apt-get update -qq >/dev/null
  (cd "$work" && apt-get download cloud-init >/dev/null)
fi
mkdir -p "$dest"
dpkg-deb -x "$work"/cloud-init_*.deb "$dest"
echo "fetch_cloud_init: unpacked $(basename "$work"/cloud-init_*.deb) into $dest"
