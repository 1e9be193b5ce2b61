#!/usr/bin/env bash
# Build the real-VM tier's guest disk image: Debian bookworm standing in for Ubuntu's cloud image.
#
#   bash tests/vm/guest_image.sh [CACHE_DIR]      (default ${MESHLAB_VM_CACHE:-$HOME/.cache/meshlab/vm})
#
# stdout: "<absolute path of the qcow2>\t<its sha256>"; progress on stderr.
# Cached in CACHE_DIR/<key>/guest.qcow2, key = first 16 hex of sha256(guest-packages.txt + this
# script): a cache hit prints and exits at once. Needs root (mmdebstrap --mode=root into a
# directory; it mounts /proc, /sys, /dev inside that directory for the maintainer scripts only) and
# mmdebstrap, mtools, syslinux, syslinux-common, fdisk (sfdisk), e2fsprogs, qemu-utils; network
# access to deb.debian.org.
#
# The image boots like a cloud image, with no -kernel/-initrd: an MBR (syslinux mbr.bin) disk whose
# partition 1 is a 64 MiB FAT (bootable flag) holding syslinux, the kernel, the initrd and
# syslinux.cfg, and whose partition 2, the last one so that cloud-init's growpart can grow it into
# a bigger qcow2 overlay, is the ext4 root labelled meshlab-root. cloud-init (NoCloud, then None)
# configures it from a seed with the label CIDATA; netplan renders to systemd-networkd.
# The kernel is linux-image-cloud-amd64: it has no ahci, so on q35 give the seed as a virtio-scsi
# cdrom (see tests/vm/smoke_guest.sh); NICs must be virtio-net.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")
PACKAGES="$HERE/guest-packages.txt"
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security
ROOT_LABEL=meshlab-root
FAT_MIB=64
SLACK_MIB=400
KERNEL_CMDLINE="root=LABEL=$ROOT_LABEL ro console=tty0 console=ttyS0,115200n8"

log() {
    printf 'guest_image: [%4ss] %s\n' "$SECONDS" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

# Runs as an mmdebstrap --essential-hook, before the --include packages (the kernel) are installed:
# fstab, and the root's type for initramfs-tools (it cannot probe LABEL=meshlab-root at build time),
# so that the initramfs holds fsck.ext4 and checks the root before mounting it.
essential_rootfs() {
    local root=$1
    printf 'LABEL=%s / ext4 defaults 0 1\n' "$ROOT_LABEL" >"$root/etc/fstab"
    mkdir -p "$root/etc/initramfs-tools/conf.d"
    printf 'FSTYPE=ext4\n' >"$root/etc/initramfs-tools/conf.d/meshlab-fstype.conf"
}

# Runs as an mmdebstrap --customize-hook (this script calls itself): $1 is the root directory,
# with /proc, /sys and /dev mounted by mmdebstrap; chroot commands run the guest's own tools.
customize_rootfs() {
    local root=$1
    # cloud-init's locale module ends in error unless the default locale is generated.
    sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' "$root/etc/locale.gen"
    chroot "$root" locale-gen
    printf 'LANG=en_US.UTF-8\n' >"$root/etc/default/locale"

    # The hostname comes from the seed; this is only the name before cloud-init runs.
    printf 'meshlab-guest\n' >"$root/etc/hostname"
    cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
EOF
    # DNS set by netplan reaches systemd-networkd, then systemd-resolved and its stub (which also
    # resolves the machine's own hostname, as on Ubuntu).
    ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"

    cat >"$root/etc/cloud/cloud.cfg.d/90-meshlab.cfg" <<'EOF'
# meshlab guest image (tests/vm/guest_image.sh): a NoCloud seed only, network through netplan.
datasource_list: [ NoCloud, None ]
system_info:
  network:
    renderers: [ netplan ]
    activators: [ netplan ]
EOF
    chroot "$root" systemctl enable systemd-networkd.service systemd-resolved.service \
        systemd-timesyncd.service ssh.service
    # No password for root, no user: cloud-init creates the seed's user.
    chroot "$root" passwd --lock root >/dev/null
    # Each VM generates its own SSH host keys (cloud-init's ssh module) and machine id.
    rm -f "$root"/etc/ssh/ssh_host_*
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/journal/*
}

if [[ ${1:-} == --essential-rootfs ]]; then
    essential_rootfs "$2"
    exit 0
fi
if [[ ${1:-} == --customize-rootfs ]]; then
    customize_rootfs "$2"
    exit 0
fi

CACHE_DIR=${1:-${MESHLAB_VM_CACHE:-$HOME/.cache/meshlab/vm}}
mkdir -p "$CACHE_DIR"
CACHE_DIR=$(cd "$CACHE_DIR" && pwd -P)
[[ -f $PACKAGES ]] || die "missing package list $PACKAGES"
KEY=$(cat "$PACKAGES" "$SELF" | sha256sum | cut -c1-16)
FINAL="$CACHE_DIR/$KEY"
IMAGE="$FINAL/guest.qcow2"

print_cached() {
    local sum
    [[ -f $IMAGE && -f $IMAGE.sha256 ]] || return 1
    read -r sum _ <"$IMAGE.sha256"
    [[ $sum =~ ^[0-9a-f]{64}$ ]] || return 1
    printf '%s\t%s\n' "$IMAGE" "$sum"
}

print_cached && exit 0

# One builder per key: a second caller waits, then finds the image.
exec 9>"$CACHE_DIR/.$KEY.lock"
flock 9
print_cached && exit 0

[[ $EUID -eq 0 ]] || die "building the image needs root (mmdebstrap --mode=root)"
for tool in mmdebstrap mformat mcopy syslinux sfdisk mkfs.ext4 qemu-img flock; do
    command -v "$tool" >/dev/null || die "missing $tool"
done
MBR_BIN=/usr/lib/syslinux/mbr/mbr.bin
[[ -f $MBR_BIN ]] || die "missing $MBR_BIN (syslinux-common)"

# A directory without a checksum is a leftover (nothing else renames into FINAL): rebuild it.
[[ -e $FINAL ]] && rm -rf --one-file-system "$FINAL"
log "building image $KEY into $CACHE_DIR"
BUILD=$(mktemp -d "$CACHE_DIR/.build-$KEY.XXXXXX")
cleanup() {
    # --one-file-system: never follow a /proc or /dev mmdebstrap might have left mounted.
    [[ -n ${BUILD:-} && -d $BUILD ]] && rm -rf --one-file-system "$BUILD"
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ROOTFS="$BUILD/rootfs"
include=$(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$PACKAGES" | awk 'NF' | paste -sd, -)
[[ -n $include ]] || die "empty package list"

log "phase mmdebstrap: $SUITE minbase + $(tr ',' '\n' <<<"$include" | wc -l) packages"
phase_start=$SECONDS
nice -n 10 mmdebstrap --mode=root --variant=minbase --format=directory \
    --include="$include" \
    --aptopt='APT::Install-Recommends "false"' \
    --aptopt='APT::Sandbox::User "root"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --essential-hook="bash '$SELF' --essential-rootfs \"\$1\"" \
    --customize-hook="bash '$SELF' --customize-rootfs \"\$1\"" \
    "$SUITE" "$ROOTFS" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main" >&2
log "phase mmdebstrap done in $((SECONDS - phase_start))s"

phase_start=$SECONDS
shopt -s nullglob
kernels=("$ROOTFS"/boot/vmlinuz-*)
initrds=("$ROOTFS"/boot/initrd.img-*)
shopt -u nullglob
[[ ${#kernels[@]} -eq 1 && ${#initrds[@]} -eq 1 ]] || die "expected one kernel and one initrd in /boot"
# shellcheck disable=SC2016 # dpkg-query's own ${Field} syntax
chroot "$ROOTFS" dpkg-query -W -f '${Package}\t${Version}\n' >"$BUILD/packages.manifest"

# Partition 1: FAT with syslinux (installed through mtools, no mount), kernel, initrd, config.
FAT="$BUILD/boot.fat"
truncate -s "${FAT_MIB}M" "$FAT"
export MTOOLS_SKIP_CHECK=1
mformat -i "$FAT" -v MESHLABBOOT -T $((FAT_MIB * 2048)) -h 64 -s 32 -H 2048 ::
syslinux --install "$FAT"
cat >"$BUILD/syslinux.cfg" <<EOF
SERIAL 0 115200
PROMPT 0
TIMEOUT 0
DEFAULT linux
LABEL linux
  KERNEL /vmlinuz
  INITRD /initrd.img
  APPEND $KERNEL_CMDLINE
EOF
mcopy -i "$FAT" "${kernels[0]}" ::/vmlinuz
mcopy -i "$FAT" "${initrds[0]}" ::/initrd.img
mcopy -i "$FAT" "$BUILD/syslinux.cfg" ::/syslinux.cfg
# The kernel and initrd live on the boot partition only (saves their size in the root).
rm -f "${kernels[0]}" "${initrds[0]}" "$ROOTFS"/vmlinuz* "$ROOTFS"/initrd.img*
printf 'The kernel and initrd are on partition 1 (FAT, syslinux), not here.\n' >"$ROOTFS/boot/README.meshlab"
log "phase boot partition done in $((SECONDS - phase_start))s ($(basename "${kernels[0]}"))"

# Partition 2: ext4 root filled from the directory, content + slack; growpart grows it at boot.
phase_start=$SECONDS
content_mib=$(du -sm -x "$ROOTFS" | cut -f1)
root_mib=$((content_mib + content_mib / 10 + SLACK_MIB))
ROOTIMG="$BUILD/root.ext4"
nice -n 10 mkfs.ext4 -q -F -L "$ROOT_LABEL" -d "$ROOTFS" "$ROOTIMG" "${root_mib}M" >&2
rm -rf --one-file-system "$ROOTFS"
log "phase root fs done in $((SECONDS - phase_start))s (content ${content_mib} MiB, fs ${root_mib} MiB)"

phase_start=$SECONDS
RAW="$BUILD/disk.raw"
fat_start=2048
root_start=$((fat_start + FAT_MIB * 2048))
truncate -s $(((root_start + root_mib * 2048) * 512)) "$RAW"
sfdisk -q --no-reread --no-tell-kernel "$RAW" >&2 <<EOF
label: dos
label-id: 0x6d65736c
unit: sectors
start=$fat_start, size=$((FAT_MIB * 2048)), type=e, bootable
start=$root_start, size=$((root_mib * 2048)), type=83
EOF
dd if="$MBR_BIN" of="$RAW" bs=440 count=1 conv=notrunc status=none
dd if="$FAT" of="$RAW" bs=1M seek=$((fat_start / 2048)) conv=notrunc,sparse status=none
dd if="$ROOTIMG" of="$RAW" bs=1M seek=$((root_start / 2048)) conv=notrunc,sparse status=none
rm -f "$FAT" "$ROOTIMG"
log "phase raw disk done in $((SECONDS - phase_start))s"

phase_start=$SECONDS
nice -n 10 qemu-img convert -c -O qcow2 "$RAW" "$BUILD/guest.qcow2"
rm -f "$RAW"
(cd "$BUILD" && sha256sum guest.qcow2 >guest.qcow2.sha256)
log "phase qcow2 done in $((SECONDS - phase_start))s ($(du -m "$BUILD/guest.qcow2" | cut -f1) MiB)"

printf '%s\n' "$KERNEL_CMDLINE" >"$BUILD/kernel-cmdline"
chmod 0755 "$BUILD"  # mktemp made it 0700; the image is for any user's QEMU to read
if ! mv -T "$BUILD" "$FINAL" 2>/dev/null; then
    print_cached || die "cannot move the image into $FINAL"
    exit 0
fi
BUILD=
log "image ready in ${SECONDS}s total"
print_cached
