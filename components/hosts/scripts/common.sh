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
