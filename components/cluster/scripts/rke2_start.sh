# Start RKE2 on this node, or restart it when its config file changed, and wait until the node is
# Ready. The first server also waits until kube-vip answers on the API VIP, which the others join.
# Inputs: MESHLAB_SERVICE (rke2-server|rke2-agent), MESHLAB_NODE_NAME, MESHLAB_CONFIG_DIGEST,
# MESHLAB_TIMEOUT_SECONDS, optional MESHLAB_WAIT_FOR_VIP and MESHLAB_INTERFACE.
require_env MESHLAB_SERVICE MESHLAB_NODE_NAME MESHLAB_CONFIG_DIGEST MESHLAB_TIMEOUT_SECONDS

state_dir="$ROOT/var/lib/meshlab"
digest_file="$state_dir/rke2-config.digest"
install -d -m 0700 "$state_dir"

systemctl enable "$MESHLAB_SERVICE" >/dev/null 2>&1
if ! systemctl is-active --quiet "$MESHLAB_SERVICE"; then
  log "starting $MESHLAB_SERVICE"
  systemctl start --no-block "$MESHLAB_SERVICE"
elif [ "$(cat "$digest_file" 2>/dev/null || true)" != "$MESHLAB_CONFIG_DIGEST" ]; then
  log "config.yaml changed: restarting $MESHLAB_SERVICE"
  systemctl restart --no-block "$MESHLAB_SERVICE"
fi

wait_node_ready "$MESHLAB_SERVICE" "$MESHLAB_NODE_NAME" "$MESHLAB_TIMEOUT_SECONDS"

if [ -n "${MESHLAB_WAIT_FOR_VIP:-}" ]; then
  wait_until "$MESHLAB_TIMEOUT_SECONDS" port_open "$MESHLAB_WAIT_FOR_VIP" 9345 ||
    die "the API VIP $MESHLAB_WAIT_FOR_VIP does not answer on 9345 after ${MESHLAB_TIMEOUT_SECONDS}s;" \
      "check the kube-vip static pod ('crictl ps --name kube-vip') and that ${MESHLAB_INTERFACE:-the host-only NIC} is up"
  log "the API VIP $MESHLAB_WAIT_FOR_VIP answers"
fi
printf '%s\n' "$MESHLAB_CONFIG_DIGEST" >"$digest_file"
