# Wait until every node is Ready and Cilium (and Hubble, when enabled) has rolled out.
# Runs on the first server. Inputs: MESHLAB_NODES (space-separated), MESHLAB_TIMEOUT_SECONDS,
# MESHLAB_WORKLOADS (space-separated kind/name in kube-system).
require_env MESHLAB_NODES MESHLAB_TIMEOUT_SECONDS MESHLAB_WORKLOADS
export KUBECONFIG="$ROOT/etc/rancher/rke2/rke2.yaml"

node_is_ready() {
  [ "$("$KUBECTL" get node "$1" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

all_nodes_ready() {
  local node
  for node in $MESHLAB_NODES; do
    node_is_ready "$node" || return 1
  done
}

# The kubelets' events of failed pulls, cluster-wide: why a node or a workload is not ready yet.
cluster_pull_failures() {
  local failures
  failures=$("$KUBECTL" get events -A --field-selector reason=Failed -o 'jsonpath={range .items[*]}{.message}{"\n"}{end}' \
    2>/dev/null | grep -F 'Failed to pull image' | tail -n 200 | describe_pull_failures)
  [ -z "$failures" ] || printf '\nimage pulls failed in the cluster:\n%s' "$failures"
}

if ! wait_until "$MESHLAB_TIMEOUT_SECONDS" all_nodes_ready; then
  die "not every node is Ready after ${MESHLAB_TIMEOUT_SECONDS}s:" \
    "$("$KUBECTL" get nodes --no-headers 2>&1 | awk '{ printf "%s=%s ", $1, $2 }')$(cluster_pull_failures)"
fi

workload_exists() {
  "$KUBECTL" -n kube-system get "$1" >/dev/null 2>&1
}

for workload in $MESHLAB_WORKLOADS; do
  wait_until "$MESHLAB_TIMEOUT_SECONDS" workload_exists "$workload" ||
    die "kube-system $workload does not exist after ${MESHLAB_TIMEOUT_SECONDS}s; see 'kubectl -n kube-system get helmcharts'$(cluster_pull_failures)"
  "$KUBECTL" -n kube-system rollout status "$workload" --timeout="${MESHLAB_TIMEOUT_SECONDS}s" >/dev/null ||
    die "kube-system $workload did not become ready within ${MESHLAB_TIMEOUT_SECONDS}s$(cluster_pull_failures)"
  log "$workload is ready"
done
log "all $(wc -w <<<"$MESHLAB_NODES") nodes are Ready and Cilium is healthy"
