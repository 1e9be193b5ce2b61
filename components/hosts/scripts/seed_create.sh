# Write the VM's cloud-init NoCloud seed ISO from the documents on stdin (JSON).
# Runs the project's own Python (the Pulumi virtualenv), so no ISO tool is needed on the host.
# Inputs: MESHLAB_VM_NAME; optional MESHLAB_PYTHON.
require_env MESHLAB_VM_NAME
python=${MESHLAB_PYTHON:-}
if [ -z "$python" ]; then
  for candidate in venv/bin/python venv/Scripts/python.exe; do
    [ -x "$candidate" ] && python=$candidate && break
  done
fi
[ -n "$python" ] || die "no project virtualenv in $(pwd): run pulumi from the meshlab directory or set MESHLAB_PYTHON"
"$python" -m components.hosts.seed_iso "$(cache_dir)/seeds/${MESHLAB_VM_NAME}.iso"
echo "$(cache_dir)/seeds/${MESHLAB_VM_NAME}.iso"
