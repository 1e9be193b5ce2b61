# Create the host-only network, or adopt the one that already carries this subnet.
# Inputs: MESHLAB_HOST_IP, MESHLAB_NETMASK, MESHLAB_NETWORK_NAME, MESHLAB_DHCP_IP (macOS only:
# the address after the host's, or empty when something of ours uses it), and MESHLAB_RESERVED (the
# addresses the lab uses statically, one "FIRST LAST KEY" a line: no DHCP server may lease them).
# Prints "MODE NAME created|existing"; the delete step removes only what it created.
require_env MESHLAB_HOST_IP MESHLAB_NETMASK MESHLAB_NETWORK_NAME

# On macOS, VirtualBox 7's host-only networks give the host the range's lower address and hand out
# the ones after it, up to the upper address, by DHCP (VBoxManage-hostonlynet(1)). So the range
# starts at meshlab:hostOnlyHostIp and ends at the one address after it, which nothing of ours uses.
set_mac_range() {
  local next
  if [ -z "${MESHLAB_DHCP_IP:-}" ]; then
    next=$(($(ip_to_int "$MESHLAB_HOST_IP") + 1))
    next="$((next >> 24 & 255)).$((next >> 16 & 255)).$((next >> 8 & 255)).$((next & 255))"
    die "on macOS, VirtualBox leases the address after meshlab:hostOnlyHostIp ${MESHLAB_HOST_IP} to DHCP" \
      "clients, but ${next} is a node's, the API VIP, in the MetalLB pool or outside the subnet: free it" \
      "or pick another meshlab:hostOnlyHostIp"
  fi
  lower=$MESHLAB_HOST_IP
  upper=$MESHLAB_DHCP_IP
}

# dhcp_server_field INTERFACE FIELD: a field (Enabled, LowerIPAddress, ...) of the DHCP server VirtualBox
# runs on a host-only interface (Linux), empty when it has none.
dhcp_server_field() {
  VBoxManage list dhcpservers | awk -F': *' -v network="HostInterfaceNetworking-$1" -v field="$2" '
    /^NetworkName:/ { current = $2 }
    current == network && $1 == field { print $2; exit }'
}

# check_adopted_dhcp INTERFACE: a network that is not ours keeps its DHCP server; refuse one whose range
# covers an address the lab uses statically, naming them (its leases would collide with them).
check_adopted_dhcp() {
  local name=$1 lower upper first last key covered=()
  [ "$(dhcp_server_field "$name" Enabled)" = Yes ] || return 0
  lower=$(dhcp_server_field "$name" LowerIPAddress)
  upper=$(dhcp_server_field "$name" UpperIPAddress)
  [ -n "$lower" ] && [ -n "$upper" ] || return 0
  while read -r first last key; do
    [ -n "${first:-}" ] || continue
    if [ "$(ip_to_int "$first")" -le "$(ip_to_int "$upper")" ] && [ "$(ip_to_int "$last")" -ge "$(ip_to_int "$lower")" ]; then
      covered+=("$key ($first${last:+-$last})")
    fi
  done <<<"${MESHLAB_RESERVED:-}"
  [ "${#covered[@]}" -eq 0 ] && return 0
  die "host-only network $name (not meshlab's) runs a DHCP server that leases $lower-$upper, which covers" \
    "$(printf '%s, ' "${covered[@]}" | sed 's/, $//'): its leases would collide with the lab's addresses." \
    "Turn it off (VBoxManage dhcpserver modify --interface=$name --disable), move its range, or pick another" \
    "meshlab:hostOnlyCidr"
}

read -r mode name <<<"$(find_host_only_network "$MESHLAB_HOST_IP" "$MESHLAB_NETMASK")"
if [ -n "${name:-}" ]; then
  origin=existing
  # Pulumi runs this step again when an input changes: a network this stack created stays its own.
  previous=${PULUMI_COMMAND_STDOUT:-}
  [ "${previous%$'\n'}" = "$mode $name created" ] && origin=created
  if [ "$mode" = hostonlynet ]; then
    set_mac_range
    if [ "$origin" = created ]; then
      if [ "$(host_only_net_field "$name" LowerIP)" != "$lower" ] ||
        [ "$(host_only_net_field "$name" UpperIP)" != "$upper" ]; then
        # Running VMs see the change after their next start.
        VBoxManage hostonlynet modify --name="$name" --lower-ip="$lower" --upper-ip="$upper"
      fi
    else
      host=$(host_only_net_field "$name" LowerIP)
      [ "$host" = "$MESHLAB_HOST_IP" ] ||
        die "host-only network ${name} already carries this subnet but gives this host ${host}" \
          "(its lower IP), not meshlab:hostOnlyHostIp ${MESHLAB_HOST_IP}: set meshlab:hostOnlyHostIp" \
          "to ${host} if nothing else uses it, or remove that network"
    fi
  fi
  if [ "$mode" = hostonlyif ]; then
    if [ "$origin" = existing ]; then
      check_adopted_dhcp "$name"
    elif [ "$(dhcp_server_field "$name" Enabled)" = Yes ]; then
      # Ours, and someone turned its DHCP server back on: static node IPs only.
      VBoxManage dhcpserver modify --interface="$name" --disable
    fi
  fi
  echo "$mode $name $origin"
  exit 0
fi

if [ "$(host_only_mode)" = hostonlynet ]; then
  set_mac_range
  VBoxManage hostonlynet add --name="$MESHLAB_NETWORK_NAME" --netmask="$MESHLAB_NETMASK" \
    --lower-ip="$lower" --upper-ip="$upper" --enable
  echo "hostonlynet $MESHLAB_NETWORK_NAME created"
else
  created=$(VBoxManage hostonlyif create)
  name=$(printf '%s\n' "$created" | sed -n "s/.*Interface '\([^']*\)'.*/\1/p")
  [ -n "$name" ] || die "could not read the new interface name from: $created"
  VBoxManage hostonlyif ipconfig "$name" --ip="$MESHLAB_HOST_IP" --netmask="$MESHLAB_NETMASK"
  # Static node IPs only: a DHCP server on this network could hand out a node's or the pool's address.
  if VBoxManage list dhcpservers | grep -q "HostInterfaceNetworking-${name}\$"; then
    VBoxManage dhcpserver modify --interface="$name" --disable
  fi
  echo "hostonlyif $name created"
fi
