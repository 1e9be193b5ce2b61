# Serve an NFS export for the nfs-subdir-external-provisioner. Idempotent.
# Inputs: MESHLAB_EXPORT_PATH, MESHLAB_ALLOWED_CIDR.
require_env MESHLAB_EXPORT_PATH MESHLAB_ALLOWED_CIDR

install_packages nfs-kernel-server
# root_squash: the provisioner creates volume directories as nobody, so nobody owns the export.
install -d -m 0775 "$ROOT$MESHLAB_EXPORT_PATH"
chown nobody:nogroup "$ROOT$MESHLAB_EXPORT_PATH"

exports="$ROOT/etc/exports.d/meshlab.exports"
wanted="$MESHLAB_EXPORT_PATH $MESHLAB_ALLOWED_CIDR(rw,sync,no_subtree_check,root_squash)"
if [ "$(cat "$exports" 2>/dev/null || true)" != "$wanted" ]; then
  make_dirs "$(dirname "$exports")"
  printf '%s\n' "$wanted" >"$exports"
fi
systemctl enable --now nfs-server >/dev/null 2>&1
exportfs -ra
log "exporting $MESHLAB_EXPORT_PATH to $MESHLAB_ALLOWED_CIDR"
