# Create the lab bridge with the host's address on it, or adopt a bridge that already carries that
# address; on a host that filters bridged traffic with iptables, let the bridge's own traffic through.
# Inputs: MESHLAB_BRIDGE, MESHLAB_HOST_IP, MESHLAB_PREFIX.
# Prints "BRIDGE created|existing [forward-accept]"; the delete step removes only a bridge it created,
# and the FORWARD rule when it added one.
require_env MESHLAB_BRIDGE MESHLAB_HOST_IP MESHLAB_PREFIX
bridge=$MESHLAB_BRIDGE
address="$MESHLAB_HOST_IP/$MESHLAB_PREFIX"

if link_exists "$bridge"; then
  origin=existing
  # Pulumi runs this step again when an input changes: a bridge this stack created stays its own.
  read -r previous_bridge previous_origin _ <<<"${PULUMI_COMMAND_STDOUT:-}"
  [ "${previous_bridge:-}" = "$bridge" ] && [ "${previous_origin:-}" = created ] && origin=created
  if ! ip -4 -o addr show dev "$bridge" | grep -q " $address "; then
    [ "$origin" = created ] || die "bridge $bridge exists without $address: meshlab adds addresses only to a bridge it made"
    ip addr add "$address" dev "$bridge"
  fi
else
  origin=created
  ip link add name "$bridge" type bridge
  ip addr add "$address" dev "$bridge"
fi
ip link set dev "$bridge" up

# With br_netfilter on (Docker, ufw, firewalld), frames between the VMs' taps pass FORWARD, whose policy
# is often DROP: the first server comes up, the others never reach it. Accept the bridge's own traffic.
firewall=""
if bridge_traffic_filtered && command -v iptables >/dev/null 2>&1; then
  mapfile -t rule < <(bridge_accept_rule "$bridge")
  iptables -C FORWARD "${rule[@]}" 2>/dev/null || iptables -I FORWARD 1 "${rule[@]}"
  firewall=" forward-accept"
fi
echo "$bridge $origin$firewall"
