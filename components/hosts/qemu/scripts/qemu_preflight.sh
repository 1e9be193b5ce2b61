# QEMU host preflight: every problem with this Linux workstation, reported together, before any VM
# or bridge exists. Inputs: MESHLAB_VMS ("name:cpus:memory_mib:disk_gib" per VM), MESHLAB_HOST_IP,
# MESHLAB_PREFIX, MESHLAB_BRIDGE, MESHLAB_GUEST_ARCH, MESHLAB_ACCELERATOR (auto|kvm|tcg),
# MESHLAB_IMAGE_BYTES.
require_env MESHLAB_VMS MESHLAB_HOST_IP MESHLAB_PREFIX MESHLAB_BRIDGE MESHLAB_GUEST_ARCH MESHLAB_ACCELERATOR \
  MESHLAB_IMAGE_BYTES

problems=()
problem() { problems+=("$*"); }

[ "$(uname -s)" = Linux ] || problem "meshlab:hypervisor qemu runs on Linux hosts; this is $(uname -s) (use virtualbox)"
qemu=$(qemu_binary "$MESHLAB_GUEST_ARCH")
package="qemu-system-x86"
[ "$MESHLAB_GUEST_ARCH" = amd64 ] || package="qemu-system-arm"
for tool in "$qemu:$package" qemu-img:qemu-utils ip:iproute2 curl:curl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || problem "${tool%%:*} is not on PATH (Debian/Ubuntu: apt install ${tool#*:})"
done
if ! command -v sha256sum >/dev/null 2>&1; then
  problem "sha256sum is not on PATH: needed to verify the cloud image (coreutils)"
fi
if [ "$MESHLAB_GUEST_ARCH" = arm64 ] && ! qemu_arm64_firmware >/dev/null; then
  problem "no UEFI firmware for arm64 guests (Debian/Ubuntu: apt install qemu-efi-aarch64)"
fi
[ -c /dev/net/tun ] || problem "/dev/net/tun is missing: the VMs' lab NICs are tap devices (modprobe tun)"
has_net_admin || problem "creating the bridge ${MESHLAB_BRIDGE} and the VMs' taps needs root or CAP_NET_ADMIN: run pulumi as root (sudo -E)"

accelerator_note="KVM"
reason=$(kvm_unusable_reason "$MESHLAB_GUEST_ARCH")
if [ -n "$reason" ]; then
  if [ "$MESHLAB_ACCELERATOR" = kvm ]; then
    problem "meshlab:qemuAccelerator is kvm, but KVM is not usable: $reason"
  elif [ "$MESHLAB_ACCELERATOR" = auto ]; then
    echo "meshlab: warning: KVM is not usable ($reason): the VMs run under TCG emulation, several times slower" >&2
    accelerator_note="TCG (no usable KVM)"
  fi
fi
[ "$MESHLAB_ACCELERATOR" != tcg ] || accelerator_note="TCG (meshlab:qemuAccelerator)"

want_vms=0 want_memory_mib=0
check_capacity "$MESHLAB_VMS" "$MESHLAB_IMAGE_BYTES"

if command -v ip >/dev/null 2>&1; then
  # The subnet is the bridge's alone: another interface in it would take the nodes' traffic.
  while read -r device address; do
    [ -n "$device" ] || continue
    if [ "$device" != "$MESHLAB_BRIDGE" ]; then
      problem "${device} already has ${address}, in the lab subnet ${MESHLAB_HOST_IP}/${MESHLAB_PREFIX}: pick another meshlab:hostOnlyCidr"
    elif [ "$address" != "$MESHLAB_HOST_IP/$MESHLAB_PREFIX" ]; then
      problem "bridge ${MESHLAB_BRIDGE} has ${address}, not meshlab:hostOnlyHostIp ${MESHLAB_HOST_IP}/${MESHLAB_PREFIX}"
    fi
  done < <(addresses_in_subnet "$MESHLAB_HOST_IP" "$MESHLAB_PREFIX")
  if link_exists "$MESHLAB_BRIDGE" && ! ip -d link show dev "$MESHLAB_BRIDGE" | grep -qw bridge; then
    problem "${MESHLAB_BRIDGE} exists and is not a bridge: set meshlab:qemuBridge to a bridge or a free name"
  fi
fi

# Bridged frames through iptables (br_netfilter): the bridge step lets the lab bridge's traffic through
# FORWARD with iptables; without iptables, a firewall that drops forwarded traffic must be told by hand.
bridge_note=""
if bridge_traffic_filtered; then
  if command -v iptables >/dev/null 2>&1; then
    bridge_note="; bridged traffic passes iptables (br_netfilter): ${MESHLAB_BRIDGE}'s own is let through FORWARD"
  else
    echo "meshlab: warning: bridged traffic passes the firewall (net.bridge.bridge-nf-call-iptables=1) and iptables" \
      "is not installed: if your firewall (nftables, firewalld) drops forwarded traffic, allow ${MESHLAB_BRIDGE}'s own" \
      "(e.g. firewall-cmd --zone=trusted --add-interface=${MESHLAB_BRIDGE}), or the VMs cannot reach each other" >&2
  fi
fi

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'meshlab host preflight found %d problem(s):\n' "${#problems[@]}" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "host preflight passed: ${want_vms} VMs, ${want_memory_mib} MiB, QEMU with ${accelerator_note}${bridge_note}"
