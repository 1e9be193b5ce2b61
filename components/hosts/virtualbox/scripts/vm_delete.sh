# Power off and delete one VM with its disk and snapshots (naming the lab checkpoints among them). A VM
# that is already gone is fine.
# Input: MESHLAB_VM_NAME.
require_env MESHLAB_VM_NAME
vm=$MESHLAB_VM_NAME
if ! vm_exists "$vm"; then
  echo "VM $vm is already gone"
  exit 0
fi
state=$(vm_info "$vm" VMState)
if [ "$state" != poweroff ] && [ "$state" != aborted ] && [ "$state" != saved ]; then
  VBoxManage controlvm "$vm" poweroff >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do
    state=$(vm_info "$vm" VMState)
    [ "$state" = poweroff ] || [ "$state" = aborted ] && break
    sleep 1
  done
  [ "$state" = poweroff ] || [ "$state" = aborted ] || die "VM $vm did not power off within 60s (state: $state)"
fi
checkpoints=$(VBoxManage snapshot "$vm" list --machinereadable 2>/dev/null |
  sed -n 's/^SnapshotName[-0-9]*="\(.*\)"$/\1/p' | meshlab_snapshots || true)
[ -z "$checkpoints" ] || echo "meshlab: VM $vm takes its lab checkpoints with it: $checkpoints" >&2
VBoxManage unregistervm "$vm" --delete >/dev/null
echo "VM $vm deleted"
