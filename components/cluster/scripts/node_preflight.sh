# Fail fast, listing every problem at once, when this node is not fit to run RKE2.
# Inputs: MESHLAB_NODE_NAME, MESHLAB_NODE_IP, MESHLAB_INTERFACE, MESHLAB_PORTS (space-separated),
# MESHLAB_ENDPOINTS (space-separated URLs: what the stack's sources need reached), MESHLAB_TIME_SYNC_TIMEOUT_SECONDS,
# optional MESHLAB_REGISTRY_CA_PEM (the CA https mirrors are signed by).
require_env MESHLAB_NODE_NAME MESHLAB_NODE_IP MESHLAB_INTERFACE MESHLAB_PORTS MESHLAB_ENDPOINTS \
  MESHLAB_TIME_SYNC_TIMEOUT_SECONDS

problems=()

time_synchronised() {
  [ "$(timedatectl show -p NTPSynchronized --value 2>/dev/null)" = yes ]
}
# Right after boot timesyncd may still be on its first exchange: give it a bounded moment.
if ! wait_until "$MESHLAB_TIME_SYNC_TIMEOUT_SECONDS" time_synchronised; then
  problems+=("the clock is not NTP-synchronised after ${MESHLAB_TIME_SYNC_TIMEOUT_SECONDS}s (timedatectl timesync-status); etcd and TLS need it: check meshlab:ntpServers and that UDP 123 is reachable")
fi

# The host of a URL: no scheme, path, user or port ("[v6]:port" keeps the v6 address).
url_host() {
  local host=${1#*://}
  host=${host%%/*}
  host=${host##*@}
  if [[ $host == \[* ]]; then
    host=${host#[}
    echo "${host%%]*}"
  else
    echo "${host%%:*}"
  fi
}

# An address needs no DNS (and `getent hosts ADDRESS` would look it up in reverse, which fails
# without a PTR record): an IPv4 address, or an IPv6 one (the only hosts with a colon).
is_address() {
  [[ $1 == *:* || $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]]
}

curl_ca=()
if [ -n "${MESHLAB_REGISTRY_CA_PEM:-}" ]; then
  ca_file=$(mktemp)
  trap 'rm -f "$ca_file"' EXIT
  printf '%s\n' "$MESHLAB_REGISTRY_CA_PEM" >"$ca_file"
  # The CA is added to the system's, as containerd will trust both.
  curl_ca=(--cacert "$ca_file" --capath /etc/ssl/certs)
fi
for url in $MESHLAB_ENDPOINTS; do
  host=$(url_host "$url")
  if ! is_address "$host" && ! getent hosts "$host" >/dev/null; then
    problems+=("DNS cannot resolve $host (resolvectl status): RKE2 or its images come from there")
  elif ! curl -sS -o /dev/null --max-time 15 "${curl_ca[@]}" "$url" 2>/dev/null; then
    problems+=("$url is not reachable: check the NAT adapter, any proxy, and meshlab:registryMirrors")
  fi
done

if ! ip -4 -o addr show dev "$MESHLAB_INTERFACE" 2>/dev/null | grep -q " $MESHLAB_NODE_IP/"; then
  found=$(ip -4 -o addr show dev "$MESHLAB_INTERFACE" 2>/dev/null | awk '{ print $4 }' | paste -sd ' ' -)
  problems+=("$MESHLAB_INTERFACE does not carry the configured node IP $MESHLAB_NODE_IP (it has: ${found:-nothing}); RKE2 would pick the NAT address 10.0.2.15 instead")
fi

if [ -n "$(swapon --show --noheadings 2>/dev/null)" ]; then
  problems+=("swap is on: the kubelet refuses to start with swap (swapoff -a and remove it from /etc/fstab)")
fi

# Once RKE2 runs here, its own processes hold these ports.
if ! systemctl is-active --quiet rke2-server && ! systemctl is-active --quiet rke2-agent; then
  for port in $MESHLAB_PORTS; do
    holder=$(ss -Htlnp "sport = :$port" 2>/dev/null | head -n 1)
    [ -z "$holder" ] || problems+=("port $port/tcp is already in use: $holder")
  done
fi

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'meshlab: preflight on %s found %d problem(s):\n' "$MESHLAB_NODE_NAME" "${#problems[@]}" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi
log "preflight passed on $MESHLAB_NODE_NAME"
