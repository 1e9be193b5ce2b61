# Wait, with a bounded retry, until the VM's SSH server answers on the host-only address.
# Inputs: MESHLAB_VM_NAME, MESHLAB_NODE_IP, MESHLAB_TIMEOUT_SECONDS; optional MESHLAB_SSH_HINT (where
# to look when it times out; VirtualBox's log by default).
require_env MESHLAB_VM_NAME MESHLAB_NODE_IP MESHLAB_TIMEOUT_SECONDS

probe() {
  (
    exec 3<>"/dev/tcp/$1/22" || exit 1
    IFS= read -r -t 5 line <&3 || exit 1
    printf '%s' "$line"
  ) 2>/dev/null
}

# bash's /dev/tcp has no connect timeout: a watchdog ends a probe that hangs on a silent address.
ssh_banner() {
  local result probe_pid watchdog_pid
  result=$(mktemp)
  probe "$1" >"$result" &
  probe_pid=$!
  # Its own stdout is /dev/null, or the caller's $(...) would wait for the sleep to end.
  (sleep 10 && kill "$probe_pid") >/dev/null 2>&1 &
  watchdog_pid=$!
  wait "$probe_pid" 2>/dev/null || true
  kill "$watchdog_pid" 2>/dev/null || true
  cat "$result"
  rm -f "$result"
}

hint="check 'VBoxManage showvminfo $MESHLAB_VM_NAME --log 0' and that the host-only network is up"
hint=${MESHLAB_SSH_HINT:-$hint}
deadline=$((SECONDS + MESHLAB_TIMEOUT_SECONDS))
while :; do
  banner=$(ssh_banner "$MESHLAB_NODE_IP" || true)
  case "$banner" in
    SSH-*)
      echo "$MESHLAB_VM_NAME: SSH answers on $MESHLAB_NODE_IP (${banner%$'\r'})"
      exit 0
      ;;
  esac
  if [ "$SECONDS" -ge "$deadline" ]; then
    die "timed out after ${MESHLAB_TIMEOUT_SECONDS}s waiting for SSH on $MESHLAB_VM_NAME ($MESHLAB_NODE_IP:22);" \
      "$hint"
  fi
  sleep 5
done
