# Stop one QEMU VM and delete its disk, console log and tap. A VM that is already gone is fine.
# Inputs: MESHLAB_VM_NAME, MESHLAB_TAP.
require_env MESHLAB_VM_NAME MESHLAB_TAP
vm=$MESHLAB_VM_NAME
dir=$(qemu_vm_dir "$vm")
if qemu_running "$vm"; then
  pid=$(cat "$dir/pid")
  kill "$pid"
  for _ in $(seq 1 30); do
    qemu_running "$vm" || break
    sleep 1
  done
  if qemu_running "$vm"; then
    kill -KILL "$pid"
    sleep 1
  fi
fi
if link_exists "$MESHLAB_TAP"; then
  ip link delete dev "$MESHLAB_TAP"
fi
rm -rf "$dir"
echo "VM $vm deleted"
