#!/usr/bin/env bash
# Helpers of the hosts-layer steps (they run on the workstation), rendered after
# components/shell/base.sh.

cache_dir() {
  printf '%s' "${MESHLAB_CACHE_DIR:-${HOME}/.cache/meshlab}"
}

# "hostonlynet" on macOS (VirtualBox 7 supports only that there), "hostonlyif" elsewhere.
host_only_mode() {
  case "$(uname -s)" in
    Darwin) printf 'hostonlynet' ;;
    *) printf 'hostonlyif' ;;
  esac
}

ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  printf '%s' "$(((a << 24) + (b << 16) + (c << 8) + d))"
}

same_subnet() { # IP1 IP2 NETMASK
  local mask
  mask=$(ip_to_int "$3")
  [ $(($(ip_to_int "$1") & mask)) -eq $(($(ip_to_int "$2") & mask)) ]
}

# Prints "NAME<TAB>IP<TAB>NETMASK" per VirtualBox host-only interface (Linux/Windows style).
list_host_only_ifs() {
  VBoxManage list hostonlyifs | awk -F': *' '
    /^Name:/ { name = $2 }
    /^IPAddress:/ { ip = $2 }
    /^NetworkMask:/ { print name "\t" ip "\t" $2 }'
}

# Prints "NAME<TAB>LOWER-IP<TAB>NETMASK" per VirtualBox 7 host-only network (macOS style).
list_host_only_nets() {
  VBoxManage list hostonlynets | awk -F': *' '
    /^Name:/ { name = $2 }
    /^NetworkMask:/ { mask = $2 }
    /^LowerIP:/ { print name "\t" $2 "\t" mask }'
}

# One field (LowerIP, UpperIP, ...) of the VirtualBox 7 host-only network NAME.
host_only_net_field() { # NAME FIELD
  VBoxManage list hostonlynets | awk -F': *' -v name="$1" -v field="$2" '
    /^Name:/ { current = $2 }
    current == name && $1 == field { print $2; exit }'
}

# The VirtualBox network that carries HOST_IP's subnet, as "MODE NAME", or nothing.
find_host_only_network() { # HOST_IP NETMASK
  local name ip mask
  if [ "$(host_only_mode)" = hostonlynet ]; then
    while IFS=$'\t' read -r name ip mask; do
      if [ "$mask" = "$2" ] && same_subnet "$ip" "$1" "$2"; then
        printf 'hostonlynet %s' "$name"
        return 0
      fi
    done < <(list_host_only_nets)
  else
    while IFS=$'\t' read -r name ip mask; do
      if [ "$ip" = "$1" ] && [ "$mask" = "$2" ]; then
        printf 'hostonlyif %s' "$name"
        return 0
      fi
    done < <(list_host_only_ifs)
  fi
  return 0
}

vm_exists() {
  VBoxManage showvminfo "$1" --machinereadable >/dev/null 2>&1
}

vm_info() { # VM KEY -> the machine-readable value, unquoted
  VBoxManage showvminfo "$1" --machinereadable | awk -F= -v key="$2" '
    $1 == key { value = substr($0, length(key) + 2); gsub(/^"|"$/, "", value); print value; exit }'
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | awk '{ print $1 }'
  else
    shasum -a 256 "$1" | awk '{ print $1 }'
  fi
}

# check_capacity VMS IMAGE_BYTES: a `problem` (the caller's) for each of CPUs, memory and cache disk
# space that the VMs ("name:cpus:memory_mib:disk_gib" ...) need and this host lacks. Sets want_vms
# and want_memory_mib for the caller's summary.
check_capacity() {
  local vm cpus memory_mib want_cpus_max=0 host_cpus available_mib=0 cache free_kib want_kib
  want_memory_mib=0
  want_vms=0
  for vm in $1; do
    IFS=: read -r _ cpus memory_mib _ <<<"$vm"
    [ "$cpus" -gt "$want_cpus_max" ] && want_cpus_max=$cpus
    want_memory_mib=$((want_memory_mib + memory_mib))
    want_vms=$((want_vms + 1))
  done

  host_cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null || echo 0)
  if [ "$host_cpus" -gt 0 ] && [ "$want_cpus_max" -gt "$host_cpus" ]; then
    problem "a VM wants ${want_cpus_max} vCPUs but this host has ${host_cpus}"
  fi

  if [ -r /proc/meminfo ]; then
    available_mib=$(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)
  elif command -v vm_stat >/dev/null 2>&1; then
    available_mib=$(vm_stat | awk '
      /page size of/ { size = $8 }
      /^Pages (free|inactive|speculative)/ { gsub(/\./, "", $NF); pages += $NF }
      END { print int(pages * size / 1048576) }')
  fi
  if [ "$available_mib" -gt 0 ] && [ "$want_memory_mib" -gt "$available_mib" ]; then
    problem "the VMs need ${want_memory_mib} MiB of memory but only ${available_mib} MiB is available"
  fi

  cache=$(cache_dir)
  mkdir -p "$cache"
  free_kib=$(df -Pk "$cache" | awk 'NR == 2 { print $4 }')
  # The image, its converted base disk, and about 8 GiB that each node writes in its first hour.
  want_kib=$(($2 * 3 / 1024 + want_vms * 8 * 1024 * 1024))
  if [ "${free_kib:-0}" -lt "$want_kib" ]; then
    problem "${cache} has $((free_kib / 1048576)) GiB free; the lab needs about $((want_kib / 1048576)) GiB"
  fi
}

# --- QEMU backend ---

# Where a QEMU VM keeps its disk, pid file and console log.
qemu_vm_dir() { # VM
  printf '%s/qemu/%s' "$(cache_dir)" "$1"
}

# qemu_monitor_path DIR: where a VM's QMP monitor socket goes (tools/checkpoint.py reads it from
# DIR/qmp): DIR/qmp.sock, or a short path in $XDG_RUNTIME_DIR (else /tmp) when that would be longer
# than a UNIX socket's path may be (107 bytes).
qemu_monitor_path() {
  local path="$1/qmp.sock"
  if [ "${#path}" -gt 107 ]; then
    path="${XDG_RUNTIME_DIR:-/tmp}/meshlab-qmp-$(printf '%s' "$1" | sha256sum | cut -c1-16).sock"
  fi
  printf '%s' "$path"
}

# meshlab_snapshots LINES: the checkpoint names among snapshot names (meshlab-NAME), comma separated.
meshlab_snapshots() {
  sed -n 's/^meshlab-\(.*\)$/\1/p' | paste -sd, - | sed 's/,/, /g'
}

qemu_binary() { # GUEST_ARCH
  case "$1" in
    amd64) printf 'qemu-system-x86_64' ;;
    arm64) printf 'qemu-system-aarch64' ;;
    *) die "unknown guest architecture $1" ;;
  esac
}

# UEFI firmware of arm64 guests (Debian's qemu-efi-aarch64, Fedora's edk2-aarch64, Homebrew's qemu).
qemu_arm64_firmware() {
  local candidate
  for candidate in /usr/share/qemu-efi-aarch64/QEMU_EFI.fd /usr/share/AAVMF/AAVMF_CODE.fd \
    /usr/share/edk2/aarch64/QEMU_EFI.fd /usr/share/qemu/edk2-aarch64-code.fd; do
    [ -f "$candidate" ] && printf '%s' "$candidate" && return 0
  done
  return 1
}

# This machine's architecture as meshlab:guestArch names it (amd64, arm64), or uname's own word.
machine_arch() {
  case "$(uname -m)" in
    x86_64) printf 'amd64' ;;
    aarch64 | arm64) printf 'arm64' ;;
    *) uname -m ;;
  esac
}

# Why KVM cannot run GUEST_ARCH guests here, or nothing when it can. A /dev/kvm without VT-x/AMD-V
# behind it (a nested or paravirtualised host) is refused: QEMU aborts or crawls on it.
kvm_unusable_reason() { # GUEST_ARCH
  local host_arch
  host_arch=$(machine_arch)
  if [ "$host_arch" != "$1" ]; then
    printf 'the host is %s and the guests %s' "$host_arch" "$1"
  elif [ ! -e /dev/kvm ]; then
    printf 'there is no /dev/kvm (load kvm_intel or kvm_amd, or enable virtualisation in the firmware)'
  elif [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
    printf '/dev/kvm is not readable and writable by %s (add the user to the kvm group)' "$(id -un)"
  elif [ "$host_arch" = amd64 ] && ! grep -Eqw 'vmx|svm' /proc/cpuinfo; then
    printf '/dev/kvm exists but the CPU shows no VT-x or AMD-V (a nested or paravirtualised host)'
  fi
}

# The accelerator a VM gets: kvm or tcg. ACCELERATOR is auto, kvm or tcg.
qemu_accelerator() { # ACCELERATOR GUEST_ARCH
  local reason
  reason=$(kvm_unusable_reason "$2")
  case "$1" in
    tcg) printf 'tcg' ;;
    kvm)
      [ -z "$reason" ] || die "meshlab:qemuAccelerator is kvm, but KVM is not usable: $reason"
      printf 'kvm'
      ;;
    *) if [ -z "$reason" ]; then printf 'kvm'; else printf 'tcg'; fi ;;
  esac
}

# Whether this process may create bridges and taps (root, or CAP_NET_ADMIN).
has_net_admin() {
  local effective
  [ "$(id -u)" -eq 0 ] && return 0
  effective=$(awk '/^CapEff:/ { print $2 }' /proc/self/status 2>/dev/null)
  [ -n "$effective" ] && [ $(((16#$effective >> 12) & 1)) -eq 1 ]
}

link_exists() { # NAME
  ip link show dev "$1" >/dev/null 2>&1
}

# Whether frames crossing a Linux bridge go through iptables' FORWARD chain as if routed (br_netfilter with
# bridge-nf-call-iptables=1, which Docker, ufw and firewalld turn on; Docker also sets FORWARD's policy to
# DROP). MESHLAB_PROC_SYS lets the tests point at a fake /proc/sys.
bridge_traffic_filtered() {
  [ "$(cat "${MESHLAB_PROC_SYS:-/proc/sys}/net/bridge/bridge-nf-call-iptables" 2>/dev/null)" = 1 ]
}

# The rule that lets the lab bridge's own traffic (tap to tap, tap to host) through FORWARD, whatever the
# chain's policy and later rules say: as iptables arguments after -I/-C/-D FORWARD.
bridge_accept_rule() { # BRIDGE
  printf '%s\n' -i "$1" -o "$1" -j ACCEPT
}

# The interfaces with an IPv4 address in HOST_IP/PREFIX's subnet, as "DEVICE ADDRESS/PREFIX" lines.
addresses_in_subnet() { # HOST_IP PREFIX
  local mask
  mask=$(prefix_netmask "$2")
  ip -4 -o addr show 2>/dev/null | while read -r _ device _ address _; do
    if same_subnet "${address%/*}" "$1" "$mask" || same_subnet "${address%/*}" "$1" "$(prefix_netmask "${address#*/}")"; then
      printf '%s %s\n' "$device" "$address"
    fi
  done
}

prefix_netmask() { # PREFIX -> dotted netmask
  local bits=$(((0xffffffff << (32 - $1)) & 0xffffffff))
  printf '%s.%s.%s.%s' $((bits >> 24 & 255)) $((bits >> 16 & 255)) $((bits >> 8 & 255)) $((bits & 255))
}

# Whether VM's QEMU process runs: the pid in its pid file is alive and is that VM's QEMU (a pid
# file left by a crash may name a pid reused since).
qemu_running() { # VM
  local pid_file pid
  pid_file="$(qemu_vm_dir "$1")/pid"
  [ -f "$pid_file" ] || return 1
  pid=$(cat "$pid_file")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qx "guest=$1,process=$1"
}

# Whether process PID still runs: it exists and is not a zombie waiting for its parent.
pid_alive() { # PID
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# --- SSH to existing hosts (existing_host_key, existing_preflight) ---

# login_options WORK: the options of every meshlab login from the workstation, into the array
# ssh_options, and what logs in, into `login`: batch mode, the stack's key (read from stdin into
# WORK/key) or the ssh-agent (MESHLAB_SSH_AGENT=true), and the bastion (MESHLAB_BASTION
# "USER@HOST:PORT", its pinned key MESHLAB_BASTION_HOST_KEY, checked strictly). Every host is asked
# for its key in the command provider's order (MESHLAB_HOST_KEY_ALGORITHMS), so OpenSSH is shown the
# key the provider's connections are shown. The nodes' known hosts are the caller's, per connection.
login_options() {
  local work=$1
  command -v ssh >/dev/null 2>&1 ||
    die "ssh is not on PATH: the existing hosts are reached over SSH (apt install openssh-client)"
  require_env MESHLAB_HOST_KEY_ALGORITHMS
  ssh_options=(-o BatchMode=yes -o LogLevel=ERROR -o HashKnownHosts=no -o ConnectTimeout=10
    -o ServerAliveInterval=10 -o ServerAliveCountMax=3 -o "HostKeyAlgorithms=$MESHLAB_HOST_KEY_ALGORITHMS")
  # shellcheck disable=SC2034 # the caller's, for its messages
  login="meshlab:sshPrivateKey"
  if [ "${MESHLAB_SSH_AGENT:-false}" = true ]; then
    # shellcheck disable=SC2034
    login="your ssh-agent (meshlab:sshAgent)"
    [ -n "${SSH_AUTH_SOCK:-}" ] ||
      die "meshlab:sshAgent is true but SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add the nodes' key"
  else
    (umask 077 && cat >"$work/key")
    grep -q 'PRIVATE KEY-----' "$work/key" ||
      die "meshlab:sshPrivateKey is not a private key (no '-----BEGIN ... PRIVATE KEY-----' line)"
    ssh_options+=(-o IdentitiesOnly=yes -i "$work/key")
  fi
  if [ -n "${MESHLAB_BASTION:-}" ]; then
    require_env MESHLAB_BASTION_HOST_KEY
    local bastion=${MESHLAB_BASTION%:*} port=${MESHLAB_BASTION##*:} jump
    known_hosts_line "${bastion#*@}" "$port" "$MESHLAB_BASTION_HOST_KEY" >"$work/bastion_known_hosts"
    jump=("${ssh_options[@]}" -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$work/bastion_known_hosts")
    # printf %q: the jump's own ssh line is parsed by a shell.
    ssh_options+=(-o "ProxyCommand=ssh $(printf '%q ' "${jump[@]}")-p $port -W %h:%p $bastion")
  fi
}

# known_hosts_line HOST PORT "TYPE BASE64": the line OpenSSH's known_hosts file pins that key with.
known_hosts_line() {
  if [ "$2" = 22 ]; then
    printf '%s %s\n' "$1" "$3"
  else
    printf '[%s]:%s %s\n' "$1" "$2" "$3"
  fi
}

# fingerprint "TYPE BASE64": the key's SHA256 fingerprint, as ssh-keygen -l shows it.
fingerprint() {
  local found
  found=$(printf '%s\n' "$1" | ssh-keygen -lf - 2>/dev/null | awk '{ print $2 }') || true
  printf '%s' "${found:-(unreadable key)}"
}

# presented_key STDERR: what OpenSSH said the host presented when strict checking refused it ("a TYPE
# key SHA256:..." or "only a TYPE key"), from ssh's error output.
presented_key() {
  local type sum
  type=$(sed -n 's/.*for the \([A-Za-z0-9-]*\) key sent by the remote host is.*/\1/p' "$1" | head -n 1)
  sum=$(grep -o 'SHA256:[A-Za-z0-9+/=]*' "$1" | head -n 1 || true)
  if [ -n "$type" ]; then
    printf 'a different %s key %s' "$type" "$sum"
  else
    type=$(sed -n 's/^No \([A-Za-z0-9-]*\) host key is known for .*/\1/p' "$1" | head -n 1)
    printf 'a %s key first, of another type than the pinned one (the provider asks for ECDSA, then RSA, then ED25519 keys: pin the first the host has)' "${type:-different}"
  fi
}
