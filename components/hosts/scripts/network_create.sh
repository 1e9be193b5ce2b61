# Create the host-only network, or adopt the one that already carries this subnet.
# Inputs: MESHLAB_HOST_IP, MESHLAB_NETMASK, MESHLAB_NETWORK_NAME, MESHLAB_DHCP_IP.
# Prints "MODE NAME created|existing"; the delete step removes only what it created.
require_env MESHLAB_HOST_IP MESHLAB_NETMASK MESHLAB_NETWORK_NAME MESHLAB_DHCP_IP

existing=$(find_host_only_network "$MESHLAB_HOST_IP" "$MESHLAB_NETMASK")
if [ -n "$existing" ]; then
  echo "$existing existing"
  exit 0
fi

if [ "$(host_only_mode)" = hostonlynet ]; then
  # The DHCP range is one address nothing of ours uses, so leases never collide with node IPs.
  VBoxManage hostonlynet add --name="$MESHLAB_NETWORK_NAME" --netmask="$MESHLAB_NETMASK" \
    --lower-ip="$MESHLAB_DHCP_IP" --upper-ip="$MESHLAB_DHCP_IP" --enable
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
