# Remove the lab bridge if this stack created it; tolerate it being gone already.
# Input: PULUMI_COMMAND_STDOUT, the create step's "BRIDGE created|existing".
read -r bridge origin <<<"${PULUMI_COMMAND_STDOUT:-}"
if [ "${origin:-}" != created ]; then
  echo "bridge ${bridge:-?} was not created by meshlab; leaving it"
  exit 0
fi
if link_exists "$bridge"; then
  ip link delete dev "$bridge"
fi
echo "bridge $bridge removed"
