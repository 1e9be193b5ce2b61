# Upgrade this node to MESHLAB_RKE2_VERSION, restart RKE2 and wait until the node is Ready on the new
# version. Pulumi runs these one node at a time: servers first, then agents. Never downgrades.
# Inputs: MESHLAB_RKE2_VERSION, MESHLAB_RKE2_TYPE, MESHLAB_RKE2_ARTIFACTS or MESHLAB_RKE2_INSTALL_URL (as
# for the install step), MESHLAB_SERVICE, MESHLAB_NODE_NAME, MESHLAB_TIMEOUT_SECONDS.
require_env MESHLAB_RKE2_VERSION MESHLAB_RKE2_TYPE MESHLAB_SERVICE \
  MESHLAB_NODE_NAME MESHLAB_TIMEOUT_SECONDS

ensure_rke2 "$MESHLAB_RKE2_VERSION" "$MESHLAB_RKE2_TYPE"
install_cis_sysctl
if [ "$RKE2_CHANGED" = 1 ] || ! node_ready "$MESHLAB_NODE_NAME" "$MESHLAB_RKE2_VERSION"; then
  systemctl restart --no-block "$MESHLAB_SERVICE"
  wait_node_ready "$MESHLAB_SERVICE" "$MESHLAB_NODE_NAME" "$MESHLAB_TIMEOUT_SECONDS" "$MESHLAB_RKE2_VERSION"
fi
log "$MESHLAB_NODE_NAME runs RKE2 $MESHLAB_RKE2_VERSION"
