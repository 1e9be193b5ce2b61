# Remove the lab bridge if this stack created it, and the FORWARD rule if it added one; tolerate both
# being gone already. Input: PULUMI_COMMAND_STDOUT, the create step's "BRIDGE created|existing [forward-accept]".
read -r bridge origin firewall <<<"${PULUMI_COMMAND_STDOUT:-}"
if [ "${firewall:-}" = forward-accept ] && command -v iptables >/dev/null 2>&1; then
  mapfile -t rule < <(bridge_accept_rule "$bridge")
  while iptables -C FORWARD "${rule[@]}" 2>/dev/null; do
    iptables -D FORWARD "${rule[@]}"
  done
  echo "FORWARD rule for $bridge removed"
fi
if [ "${origin:-}" != created ]; then
  echo "bridge ${bridge:-?} was not created by meshlab; leaving it"
  exit 0
fi
if link_exists "$bridge"; then
  ip link delete dev "$bridge"
fi
echo "bridge $bridge removed"
