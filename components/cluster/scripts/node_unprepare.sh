# Undo node_prepare on a machine that stays (an existing host on destroy; a deleted VM skips this).
# Removes the networkd drop-in, the staging directory, the directories meshlab's steps made (once
# empty), and the etcd user and group if meshlab created them (all as recorded); packages stay
# installed: other software on the machine may use them.
# Inputs: MESHLAB_STAGING_DIR.
require_env MESHLAB_STAGING_DIR

dropin=$(networkd_dropin)
if [ -e "$dropin" ]; then
  rm -f "$dropin"
  if systemctl is-active --quiet systemd-networkd; then
    systemctl restart systemd-networkd
  fi
  log "removed the systemd-networkd drop-in"
fi

# Only ever the staging directory node_prepare made (staging_dir in components/cluster/node.py).
case "$MESHLAB_STAGING_DIR" in
  /*/.meshlab-staging) rm -rf "$ROOT$MESHLAB_STAGING_DIR" ;;
  *) die "refusing to remove $MESHLAB_STAGING_DIR: not a meshlab staging directory" ;;
esac

# Every other step's delete has run by now (they all wait for this step): the directories meshlab made
# (/etc/rancher, /var/lib/rancher/..., /etc/exports.d) are empty unless something else is in them.
remove_created_dirs

if [ -f "$CREATED_RECORD" ]; then
  # Users before groups: a group cannot go while it is a user's primary group.
  for kind in user group; do
    database=passwd
    [ "$kind" = user ] || database=group
    while read -r recorded name; do
      [ "$recorded" = "$kind" ] || continue
      if grep -q "^$name:" "$ROOT/etc/$database"; then
        "${kind}del" "$name"
        log "removed $kind $name (meshlab created it)"
      fi
    done <"$CREATED_RECORD"
  done
  rm -f "$CREATED_RECORD"
  rmdir "$(dirname "$CREATED_RECORD")" 2>/dev/null || true
fi
log "host preparation undone (packages stay installed)"
