# Host preflight: every problem with this workstation, reported together, before any VM exists.
# Inputs: MESHLAB_VMS ("name:cpus:memory_mib:disk_gib" per VM, space separated), MESHLAB_HOST_IP,
# MESHLAB_NETMASK, MESHLAB_GUEST_ARCH, MESHLAB_IMAGE_BYTES, MESHLAB_VBOX_MIN ("7.0").
require_env MESHLAB_VMS MESHLAB_HOST_IP MESHLAB_NETMASK MESHLAB_GUEST_ARCH MESHLAB_IMAGE_BYTES MESHLAB_VBOX_MIN

problems=()
vbox_version=""
problem() { problems+=("$*"); }

if ! command -v VBoxManage >/dev/null 2>&1; then
  problem "VBoxManage is not on PATH: install VirtualBox ${MESHLAB_VBOX_MIN} or newer"
else
  # Only the version line: VBoxManage may print warnings (e.g. about kernel modules) first.
  vbox_version=$(VBoxManage --version 2>/dev/null | grep -E '^[0-9]+\.[0-9]+' | tail -n 1 || true)
  IFS=. read -r have_major have_minor _ <<<"${vbox_version%%[_r]*}"
  IFS=. read -r want_major want_minor <<<"$MESHLAB_VBOX_MIN"
  if [ -z "$vbox_version" ]; then
    problem "could not read the VirtualBox version from 'VBoxManage --version'"
  elif [ "${have_major:-0}" -lt "$want_major" ] ||
    { [ "${have_major:-0}" -eq "$want_major" ] && [ "${have_minor:-0}" -lt "$want_minor" ]; }; then
    problem "VirtualBox ${vbox_version} is too old: meshlab needs ${MESHLAB_VBOX_MIN} or newer"
  elif [ "$MESHLAB_GUEST_ARCH" = arm64 ] && [ "$have_major" -eq 7 ] && [ "${have_minor:-0}" -lt 1 ]; then
    problem "VirtualBox ${vbox_version} cannot run arm64 guests: use 7.1 or newer"
  fi
fi
command -v curl >/dev/null 2>&1 || problem "curl is not on PATH: it downloads the Ubuntu cloud image"
if ! command -v sha256sum >/dev/null 2>&1 && ! command -v shasum >/dev/null 2>&1; then
  problem "neither sha256sum nor shasum is on PATH: needed to verify the cloud image"
fi
if [ "$MESHLAB_GUEST_ARCH" = arm64 ] && ! command -v qemu-img >/dev/null 2>&1; then
  problem "qemu-img is not on PATH: arm64 guests need it to convert the qcow2 cloud image (brew install qemu)"
fi

want_vms=0 want_memory_mib=0
check_capacity "$MESHLAB_VMS" "$MESHLAB_IMAGE_BYTES"

if command -v VBoxManage >/dev/null 2>&1; then
  if [ "$(host_only_mode)" = hostonlyif ]; then
    while IFS=$'\t' read -r name ip mask; do
      if same_subnet "$ip" "$MESHLAB_HOST_IP" "$MESHLAB_NETMASK" || same_subnet "$ip" "$MESHLAB_HOST_IP" "$mask"; then
        if [ "$ip" != "$MESHLAB_HOST_IP" ] || [ "$mask" != "$MESHLAB_NETMASK" ]; then
          problem "host-only interface ${name} already uses ${ip}/${mask}, which clashes with ${MESHLAB_HOST_IP}/${MESHLAB_NETMASK}"
        fi
      fi
    done < <(list_host_only_ifs)
  fi
  if command -v ip >/dev/null 2>&1; then
    while read -r destination _ device _; do
      case "$device" in vboxnet*) continue ;; esac
      network=${destination%/*}
      if [ "$destination" != default ] && same_subnet "$network" "$MESHLAB_HOST_IP" "$MESHLAB_NETMASK"; then
        problem "the host already routes ${destination} via ${device}: pick another meshlab:hostOnlyCidr"
      fi
    done < <(ip -4 route show 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i == "dev") print $1, "dev", $(i + 1) }')
  fi
fi

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'meshlab host preflight found %d problem(s):\n' "${#problems[@]}" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "host preflight passed: ${want_vms} VMs, ${want_memory_mib} MiB, VirtualBox ${vbox_version}"
