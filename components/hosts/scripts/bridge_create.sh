# Create the lab bridge with the host's address on it, or adopt a bridge that already carries that
# address. Inputs: MESHLAB_BRIDGE, MESHLAB_HOST_IP, MESHLAB_PREFIX.
# Prints "BRIDGE created|existing"; the delete step removes only a bridge it created.
require_env MESHLAB_BRIDGE MESHLAB_HOST_IP MESHLAB_PREFIX
bridge=$MESHLAB_BRIDGE
address="$MESHLAB_HOST_IP/$MESHLAB_PREFIX"

if link_exists "$bridge"; then
  origin=existing
  # Pulumi runs this step again when an input changes: a bridge this stack created stays its own.
  read -r previous_bridge previous_origin <<<"${PULUMI_COMMAND_STDOUT:-}"
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
echo "$bridge $origin"
