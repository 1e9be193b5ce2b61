# Wait until an admission webhook can answer: its Service has a ready endpoint and its webhook
# configuration carries a CA bundle. Objects the webhook validates are refused until then.
# Runs on the first server. Inputs: MESHLAB_NAMESPACE, MESHLAB_SERVICE,
# MESHLAB_WEBHOOK_CONFIGURATION (kind/name), MESHLAB_TIMEOUT_SECONDS.
require_env MESHLAB_NAMESPACE MESHLAB_SERVICE MESHLAB_WEBHOOK_CONFIGURATION MESHLAB_TIMEOUT_SECONDS
export KUBECONFIG="$ROOT/etc/rancher/rke2/rke2.yaml"

endpoint_ready() {
  [ -n "$("$KUBECTL" -n "$MESHLAB_NAMESPACE" get endpointslices -l "kubernetes.io/service-name=$MESHLAB_SERVICE" \
    -o 'jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].addresses[0]}' 2>/dev/null)" ]
}

ca_bundle_injected() {
  [ -n "$("$KUBECTL" get "$MESHLAB_WEBHOOK_CONFIGURATION" -o 'jsonpath={.webhooks[0].clientConfig.caBundle}' 2>/dev/null)" ]
}

wait_until "$MESHLAB_TIMEOUT_SECONDS" endpoint_ready ||
  die "service $MESHLAB_NAMESPACE/$MESHLAB_SERVICE has no ready endpoint after ${MESHLAB_TIMEOUT_SECONDS}s;" \
    "see 'kubectl -n $MESHLAB_NAMESPACE get pods'"
wait_until "$MESHLAB_TIMEOUT_SECONDS" ca_bundle_injected ||
  die "$MESHLAB_WEBHOOK_CONFIGURATION has no CA bundle after ${MESHLAB_TIMEOUT_SECONDS}s"
log "the webhook behind $MESHLAB_NAMESPACE/$MESHLAB_SERVICE is ready"
