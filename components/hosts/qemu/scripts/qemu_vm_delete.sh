# Stop one QEMU VM and delete its disk (with the lab checkpoints it holds, which it names), console
# log, monitor socket and tap. A VM that is already gone is fine.
# Inputs: MESHLAB_VM_NAME, MESHLAB_TAP.
require_env MESHLAB_VM_NAME MESHLAB_TAP
vm=$MESHLAB_VM_NAME
dir=$(qemu_vm_dir "$vm")
if qemu_running "$vm"; then
  pid=$(cat "$dir/pid")
  kill "$pid"
  # Until the process is gone, not only its command line (which empties first while it exits).
  for _ in $(seq 1 30); do
    pid_alive "$pid" || break
    sleep 1
  done
  if pid_alive "$pid"; then
    kill -KILL "$pid"
    for _ in $(seq 1 10); do
      pid_alive "$pid" || break
      sleep 1
    done
  fi
  ! pid_alive "$pid" || die "QEMU process $pid of $vm did not end"
fi
if link_exists "$MESHLAB_TAP"; then
  ip link delete dev "$MESHLAB_TAP"
fi
if [ -f "$dir/disk.qcow2" ]; then
  checkpoints=$(qemu-img info -U --output=json "$dir/disk.qcow2" 2>/dev/null |
    grep -o '"name": *"meshlab-[^"]*"' | sed 's/.*"\(meshlab-[^"]*\)"$/\1/' | meshlab_snapshots || true)
  [ -z "$checkpoints" ] || echo "meshlab: VM $vm takes its lab checkpoints with it: $checkpoints" >&2
fi
[ ! -f "$dir/qmp" ] || rm -f "$(cat "$dir/qmp")"
rm -rf "$dir"
echo "VM $vm deleted"
