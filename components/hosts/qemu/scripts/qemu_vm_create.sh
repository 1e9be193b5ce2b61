# Create and start one QEMU VM: a qcow2 disk backed by the base disk, the seed ISO as a CD, a NAT
# NIC (QEMU's user-mode network) and a lab NIC on a tap in the bridge. Safe to re-run: a running VM
# is left as it is, a stopped one is started again on its own disk.
# Inputs: MESHLAB_VM_NAME, MESHLAB_GUEST_ARCH, MESHLAB_ACCELERATOR (auto|kvm|tcg), MESHLAB_CPUS,
# MESHLAB_MEMORY_MIB, MESHLAB_DISK_GIB, MESHLAB_MAC_NAT, MESHLAB_MAC_LAB (aa:bb:...), MESHLAB_BRIDGE,
# MESHLAB_TAP, MESHLAB_BASE_DISK. Prints the VM's UUID.
require_env MESHLAB_VM_NAME MESHLAB_GUEST_ARCH MESHLAB_ACCELERATOR MESHLAB_CPUS MESHLAB_MEMORY_MIB \
  MESHLAB_DISK_GIB MESHLAB_MAC_NAT MESHLAB_MAC_LAB MESHLAB_BRIDGE MESHLAB_TAP MESHLAB_BASE_DISK

vm=$MESHLAB_VM_NAME
cache=$(cache_dir)
dir=$(qemu_vm_dir "$vm")
seed="$cache/seeds/$vm.iso"
base="$cache/images/$MESHLAB_BASE_DISK"
[ -f "$seed" ] || die "seed ISO $seed is missing: the seed step must run first"
[ -f "$base" ] || die "base disk $base is missing: the image step must run first"
link_exists "$MESHLAB_BRIDGE" || die "bridge $MESHLAB_BRIDGE is missing: the network step must run first"
mkdir -p "$dir"

if qemu_running "$vm"; then
  cat "$dir/uuid"
  exit 0
fi

[ -f "$dir/uuid" ] || cat /proc/sys/kernel/random/uuid >"$dir/uuid"
if [ ! -f "$dir/disk.qcow2" ]; then
  qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$dir/disk.qcow2.partial" "${MESHLAB_DISK_GIB}G"
  mv "$dir/disk.qcow2.partial" "$dir/disk.qcow2"
fi

if ! link_exists "$MESHLAB_TAP"; then
  ip tuntap add dev "$MESHLAB_TAP" mode tap
fi
ip link set dev "$MESHLAB_TAP" master "$MESHLAB_BRIDGE"
ip link set dev "$MESHLAB_TAP" up

accelerator=$(qemu_accelerator "$MESHLAB_ACCELERATOR" "$MESHLAB_GUEST_ARCH")
if [ "$accelerator" = kvm ]; then
  accel_args=(-accel kvm -cpu host)
else
  [ "$MESHLAB_ACCELERATOR" = tcg ] ||
    echo "meshlab: warning: $vm runs under TCG emulation: $(kvm_unusable_reason "$MESHLAB_GUEST_ARCH")" >&2
  # Multi-threaded TCG with a large translation cache: the fastest emulation QEMU offers.
  accel_args=(-accel "tcg,thread=multi,tb-size=256" -cpu max)
fi
if [ "$MESHLAB_GUEST_ARCH" = arm64 ]; then
  machine_args=(-machine virt -bios "$(qemu_arm64_firmware)")
else
  machine_args=(-machine q35)
fi
# The seed CD on virtio-scsi, not q35's AHCI: cloud kernels (Debian's linux-image-cloud) leave AHCI out.
cdrom_args=(-drive "file=$seed,if=none,id=seed,media=cdrom,readonly=on" -device virtio-scsi-pci
  -device "scsi-cd,drive=seed")

# The QMP monitor: lab checkpoints (tools/checkpoint.py) pause, save and load the VM through it.
monitor=$(qemu_monitor_path "$dir")
rm -f "$dir/pid" "$monitor"
printf '%s\n' "$monitor" >"$dir/qmp"
"$(qemu_binary "$MESHLAB_GUEST_ARCH")" -name "guest=$vm,process=$vm" -uuid "$(cat "$dir/uuid")" \
  "${machine_args[@]}" "${accel_args[@]}" -smp "$MESHLAB_CPUS" -m "$MESHLAB_MEMORY_MIB" \
  -drive "file=$dir/disk.qcow2,if=virtio,format=qcow2" "${cdrom_args[@]}" \
  -netdev user,id=nat -device "virtio-net-pci,netdev=nat,mac=$MESHLAB_MAC_NAT" \
  -netdev "tap,id=lab,ifname=$MESHLAB_TAP,script=no,downscript=no" \
  -device "virtio-net-pci,netdev=lab,mac=$MESHLAB_MAC_LAB" \
  -qmp "unix:${monitor//,/,,},server=on,wait=off" \
  -display none -serial "file:$dir/console.log" -daemonize -pidfile "$dir/pid"
qemu_running "$vm" || die "QEMU did not stay up for $vm; see $dir/console.log"
cat "$dir/uuid"
