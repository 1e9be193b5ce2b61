# Runs ON an existing host, as root, sent there by existing_preflight: everything about this machine
# that would stop meshlab's node steps, checked without changing anything. Prints one line per
# finding: "problem<TAB>CHECK<TAB>FOUND<TAB>NEEDED", or "fact<TAB>TEXT" for what the summary shows.
# Always exits 0 once it ran: the workstation side turns the lines of every node into one list.
# Inputs: MESHLAB_NODE_NAME, MESHLAB_NODE_IP, MESHLAB_ROLE, MESHLAB_CPUS, MESHLAB_MEMORY_MIB,
# MESHLAB_DISK_GIB, MESHLAB_MEMORY_PERCENT, MESHLAB_INTERFACE, MESHLAB_GUEST_ARCH,
# MESHLAB_SUPPORTED_OS (comma-separated "ID VERSION_ID"), MESHLAB_PORTS, MESHLAB_TIME_SYNC_TIMEOUT_SECONDS,
# and on one node MESHLAB_FREE_ADDRESSES ("ADDRESS=KEY" each: addresses meshlab will announce).
# MESHLAB_ROOT prefixes every path (empty on a host) so the tests can point it at a directory.
require_env MESHLAB_NODE_NAME MESHLAB_NODE_IP MESHLAB_ROLE MESHLAB_CPUS MESHLAB_MEMORY_MIB MESHLAB_DISK_GIB \
  MESHLAB_MEMORY_PERCENT MESHLAB_INTERFACE MESHLAB_GUEST_ARCH MESHLAB_SUPPORTED_OS MESHLAB_PORTS \
  MESHLAB_TIME_SYNC_TIMEOUT_SECONDS

ROOT="${MESHLAB_ROOT:-}"
problem() { printf 'problem\t%s\t%s\t%s\n' "$1" "$2" "$3"; }
fact() { printf 'fact\t%s\n' "$1"; }
key() { printf 'meshlab:%s%s' "$MESHLAB_ROLE" "$1"; }

# --- operating system and architecture ---------------------------------------------------------
os_id="" os_version="" os_name=""
if [ -r "$ROOT/etc/os-release" ]; then
  # shellcheck disable=SC1091 # the host's own file, read in a subshell
  IFS=$'\t' read -r os_id os_version os_name < <(
    . "$ROOT/etc/os-release" && printf '%s\t%s\t%s\n' "${ID:-none}" "${VERSION_ID:-none}" "${PRETTY_NAME:-${ID:-}}"
  )
fi
supported=",$MESHLAB_SUPPORTED_OS,"
if [[ $supported != *",$os_id $os_version,"* ]]; then
  problem "operating system" "${os_name:-no /etc/os-release}" "one of: ${MESHLAB_SUPPORTED_OS//,/, } (what the node steps support)"
fi
machine=$(uname -m)
if [ "$(machine_arch)" != "$MESHLAB_GUEST_ARCH" ]; then
  problem "architecture" "$machine" "$MESHLAB_GUEST_ARCH (meshlab:guestArch)"
fi

# --- size ----------------------------------------------------------------------------------------
cpus=$(nproc)
if [ "$cpus" -lt "$MESHLAB_CPUS" ]; then
  problem "CPUs" "$cpus" "at least $MESHLAB_CPUS ($(key Cpus))"
fi
memory_mib=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' "$ROOT/proc/meminfo")
needed_mib=$((MESHLAB_MEMORY_MIB * MESHLAB_MEMORY_PERCENT / 100))
if [ "${memory_mib:-0}" -lt "$needed_mib" ]; then
  problem "memory" "${memory_mib:-unknown} MiB (MemTotal)" \
    "at least $needed_mib MiB ($MESHLAB_MEMORY_PERCENT % of $(key MemoryMib) $MESHLAB_MEMORY_MIB: MemTotal leaves out what the kernel keeps)"
fi
# RKE2 keeps its images, etcd and container layers under /var/lib/rancher: the nearest directory
# that exists is on the file system it will use. Free space as root sees it (reserved blocks count).
data="/var/lib/rancher"
while [ ! -d "$ROOT$data" ]; do data=$(dirname "$data"); done
free_gib=$(stat -f -c '%f %S' "$ROOT$data" | awk '{ printf "%d", $1 * $2 / 1073741824 }')
if [ "$free_gib" -lt "$MESHLAB_DISK_GIB" ]; then
  problem "disk" "$free_gib GiB free under $data" "at least $MESHLAB_DISK_GIB GiB free ($(key DiskGib))"
fi

# --- network -------------------------------------------------------------------------------------
holder=$(ip -4 -o addr show 2>/dev/null | awk -v ip="$MESHLAB_NODE_IP" '{ split($4, a, "/"); if (a[1] == ip) { print $2; exit } }')
if [ -z "$holder" ]; then
  addresses=$(ip -4 -o addr show scope global 2>/dev/null | awk '{ print $2 " " $4 }' | paste -sd ',' - | sed 's/,/, /g')
  problem "node address" "$MESHLAB_NODE_IP on no interface (this host has: ${addresses:-none})" \
    "$MESHLAB_NODE_IP on $MESHLAB_INTERFACE (the address meshlab:${MESHLAB_ROLE}s gives this node)"
elif [ "$holder" != "$MESHLAB_INTERFACE" ]; then
  problem "interface" "$MESHLAB_NODE_IP on $holder" \
    "$MESHLAB_NODE_IP on meshlab:nodeInterface $MESHLAB_INTERFACE (kube-vip, Cilium and MetalLB bind there)"
fi

# --- time ----------------------------------------------------------------------------------------
time_synchronised() {
  [ "$(timedatectl show -p NTPSynchronized --value 2>/dev/null)" = yes ]
}
# A host that has just booted may still be on its first exchange: give it a bounded moment.
deadline=$((SECONDS + MESHLAB_TIME_SYNC_TIMEOUT_SECONDS))
until time_synchronised || [ "$SECONDS" -ge "$deadline" ]; do sleep "${MESHLAB_POLL_SECONDS:-2}"; done
if ! time_synchronised; then
  problem "clock" "not NTP-synchronised after ${MESHLAB_TIME_SYNC_TIMEOUT_SECONDS}s (timedatectl)" \
    "synchronised (etcd and TLS need it: enable systemd-timesyncd or chrony)"
fi

# --- what would be in RKE2's way -----------------------------------------------------------------
rke2_running=false
if systemctl is-active --quiet rke2-server || systemctl is-active --quiet rke2-agent; then
  rke2_running=true
fi
found_software=()
for tool in kubelet kubeadm k3s k0s microk8s dockerd containerd crio; do
  for directory in /usr/bin /usr/local/bin /usr/sbin /snap/bin; do
    if [ -e "$ROOT$directory/$tool" ]; then
      found_software+=("$directory/$tool")
      break
    fi
  done
done
# An RKE2 already here is meshlab's own (a re-run) only if its config names this node and address.
for prefix in /usr/local /opt/rke2; do
  [ -x "$ROOT$prefix/bin/rke2" ] || continue
  config="$ROOT/etc/rancher/rke2/config.yaml"
  if ! grep -qx "node-name: $MESHLAB_NODE_NAME" "$config" 2>/dev/null ||
    ! grep -qx "node-ip: $MESHLAB_NODE_IP" "$config" 2>/dev/null; then
    found_software+=("$prefix/bin/rke2 (not configured by meshlab for $MESHLAB_NODE_NAME)")
  fi
done
if [ "${#found_software[@]}" -gt 0 ]; then
  joined=$(printf '%s, ' "${found_software[@]}")
  problem "other Kubernetes or container runtime" "${joined%, }" \
    "none (RKE2 brings its own kubelet and containerd; uninstall the others first)"
fi
swaps=$(swapon --show=NAME,SIZE --noheadings 2>/dev/null | awk '{ print $1 " " $2 }' | paste -sd ',' -)
if [ -n "$swaps" ]; then
  problem "swap" "on (${swaps//,/, })" "off (the kubelet refuses to start with swap: swapoff -a and remove it from /etc/fstab)"
fi
# Once RKE2 runs here, its own processes hold these ports.
if ! $rke2_running; then
  for port in $MESHLAB_PORTS; do
    listener=$(ss -Htlnp "sport = :$port" 2>/dev/null | head -n 1 | awk '{ print $NF }')
    if [ -n "$listener" ]; then
      problem "port $port/tcp" "in use ($listener)" "free for RKE2"
    fi
  done
fi

# The API VIP and MetalLB's addresses are announced by ARP once the cluster runs: on a real network
# another machine may have one already. Whoever answers a ping, or ARP for it (a host that drops ICMP
# still answers ARP on its subnet), has it. Before RKE2 runs here: afterwards kube-vip answers itself.
if ! $rke2_running && command -v ping >/dev/null 2>&1; then
  for entry in ${MESHLAB_FREE_ADDRESSES:-}; do
    address=${entry%%=*} owner_key=${entry#*=}
    answered=false
    if ping -c 1 -W 1 "$address" >/dev/null 2>&1; then
      answered=true
    elif ip neigh show "$address" 2>/dev/null | grep -q lladdr; then
      answered=true
    fi
    if $answered; then
      mac=$(ip neigh show "$address" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1) }')
      problem "address $address" "in use on the network${mac:+ (by $mac)}" "a free address for $owner_key (meshlab announces it by ARP)"
    fi
  done
fi

fact "${os_name:-unknown OS} $machine, $cpus CPUs, ${memory_mib:-?} MiB, $free_gib GiB free under $data; $MESHLAB_NODE_IP on ${holder:-no interface}$([ "$holder" = "$MESHLAB_INTERFACE" ] && printf ' (the cluster binds there)')"
