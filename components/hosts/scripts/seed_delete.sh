# Remove the VM's seed ISO (already gone is fine).
require_env MESHLAB_VM_NAME
rm -f "$(cache_dir)/seeds/${MESHLAB_VM_NAME}.iso"
