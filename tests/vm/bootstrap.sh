#!/usr/bin/env bash
# What the real-VM tier needs on a Debian/Ubuntu machine, installed when missing (root): QEMU, the
# image tools, SSH; then the stand-in guest image (tests/vm/guest_image.sh, cached by its package
# list). Prints what it does and how long it took.
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS

# command -> the Debian package that provides it. One place for the tier's host packages.
declare -A PACKAGES=(
  [qemu-system-x86_64]=qemu-system-x86
  [qemu-img]=qemu-utils
  [mmdebstrap]=mmdebstrap
  [syslinux]=syslinux
  [mcopy]=mtools
  [sfdisk]=fdisk
  [mkfs.ext4]=e2fsprogs
  [ip]=iproute2
  [ssh]=openssh-client
  [ssh-keygen]=openssh-client
  [curl]=curl
  # The tier's namespace filters bridged traffic as Docker's hosts do (FORWARD policy DROP).
  [iptables]=iptables
)
# syslinux's MBR and modules (mbr.bin, ldlinux.c32) come with syslinux-common.
missing=()
for command in "${!PACKAGES[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${PACKAGES[$command]}")
done
[ -f /usr/lib/syslinux/mbr/mbr.bin ] || missing+=(syslinux-common)
if [ "${#missing[@]}" -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || { echo "vm tier: installing ${missing[*]} needs root" >&2; exit 1; }
  mapfile -t unique < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "vm tier: installing ${unique[*]} (apt)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get -q update >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends "${unique[@]}" >/dev/null
  echo "vm tier: packages installed after $((SECONDS - start)) s" >&2
else
  echo "vm tier: QEMU and the image tools are installed" >&2
fi

bash tests/vm/guest_image.sh >/dev/null
echo "vm tier: ready after $((SECONDS - start)) s" >&2
