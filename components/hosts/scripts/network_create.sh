# Create the host-only network, or adopt the one that already carries this subnet.
# Inputs: MESHLAB_HOST_IP, MESHLAB_NETMASK, MESHLAB_NETWORK_NAME, and MESHLAB_DHCP_IP (macOS only:
# the address after the host's, or empty when something of ours uses it).
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
