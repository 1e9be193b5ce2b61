# Host preparation RKE2's CIS profile and Cilium expect. Every change is guarded; safe to re-run.
# Inputs: MESHLAB_ROLE (server|agent), MESHLAB_SSH_USER, MESHLAB_STAGING_DIR.
require_env MESHLAB_ROLE MESHLAB_SSH_USER MESHLAB_STAGING_DIR

# CIS: servers need a local etcd user and group (in /etc/passwd and /etc/group, not NSS).
if [ "$MESHLAB_ROLE" = server ]; then
  if ! grep -q '^etcd:' "$ROOT/etc/group"; then
    groupadd --system etcd
    log "created group etcd"
  fi
  if ! grep -q '^etcd:' "$ROOT/etc/passwd"; then
    useradd --system --comment "etcd user" --shell /sbin/nologin --no-create-home --gid etcd etcd
    log "created user etcd"
  fi
fi

# systemd-networkd deletes routes and rules it did not create, Cilium's included.
dropin="$ROOT/etc/systemd/networkd.conf.d/60-meshlab-cilium.conf"
wanted=$'# meshlab: keep the routes and rules Cilium installs\n[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no'
if [ "$(cat "$dropin" 2>/dev/null || true)" != "$wanted" ]; then
  install -d -m 0755 "$(dirname "$dropin")"
  printf '%s\n' "$wanted" >"$dropin"
  systemctl restart systemd-networkd
  log "configured systemd-networkd to keep foreign routes"
fi

# The kubelet mounts NFS volumes with the host's mount.nfs.
install_packages nfs-common

# Files are copied here over SSH as the login user, then installed as root by the files step.
install -d -m 0700 "$ROOT$MESHLAB_STAGING_DIR"
chown "$MESHLAB_SSH_USER:$MESHLAB_SSH_USER" "$ROOT$MESHLAB_STAGING_DIR"
log "host prepared ($MESHLAB_ROLE)"
