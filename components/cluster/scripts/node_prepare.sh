# Host preparation RKE2's CIS profile and Cilium expect. Every change is guarded; safe to re-run.
# Inputs: MESHLAB_ROLE (server|agent), MESHLAB_SSH_USER, MESHLAB_STAGING_DIR.
require_env MESHLAB_ROLE MESHLAB_SSH_USER MESHLAB_STAGING_DIR

# CIS: servers need a local etcd user and group (in /etc/passwd and /etc/group, not NSS). What
# meshlab creates is recorded, so that removing meshlab from a machine that stays (node_unprepare)
# removes exactly that and never an etcd user someone else made.
if [ "$MESHLAB_ROLE" = server ]; then
  if ! grep -q '^etcd:' "$ROOT/etc/group"; then
    groupadd --system etcd
    record_created "group etcd"
    log "created group etcd"
  fi
  if ! grep -q '^etcd:' "$ROOT/etc/passwd"; then
    useradd --system --comment "etcd user" --shell /sbin/nologin --no-create-home --gid etcd etcd
    record_created "user etcd"
    log "created user etcd"
  fi
fi

# systemd-networkd deletes routes and rules it did not create, Cilium's included. A host that does
# not run networkd (ifupdown, NetworkManager) gets the drop-in but networkd is not started for it.
dropin=$(networkd_dropin)
wanted=$'# meshlab: keep the routes and rules Cilium installs\n[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no'
if [ "$(cat "$dropin" 2>/dev/null || true)" != "$wanted" ]; then
  make_dirs "$(dirname "$dropin")"
  printf '%s\n' "$wanted" >"$dropin"
  if systemctl is-active --quiet systemd-networkd; then
    systemctl restart systemd-networkd
  fi
  log "configured systemd-networkd to keep foreign routes"
fi

# The kubelet mounts NFS volumes with the host's mount.nfs.
install_packages nfs-common

# Files are copied here over SSH as the login user, then installed as root by the files step.
make_dirs "$ROOT$MESHLAB_STAGING_DIR" 0700
chown "$MESHLAB_SSH_USER:$MESHLAB_SSH_USER" "$ROOT$MESHLAB_STAGING_DIR"
log "host prepared ($MESHLAB_ROLE)"
