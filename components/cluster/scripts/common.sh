#!/usr/bin/env bash
# Helpers of the cluster-layer steps, rendered after components/shell/base.sh. Steps run as
# root on a lab node (over SSH, through `sudo -n bash -c`). Every path is prefixed with
# $MESHLAB_ROOT (empty on a node) so the tests can run a step against a temporary directory.

ROOT="${MESHLAB_ROOT:-}"
POLL_SECONDS="${MESHLAB_POLL_SECONDS:-5}"
RKE2_DATA="$ROOT/var/lib/rancher/rke2"
KUBECTL="$RKE2_DATA/bin/kubectl"

# What node_prepare created on the machine (one "KIND NAME" a line), for node_unprepare.
CREATED_RECORD="$ROOT/var/lib/meshlab/created"
networkd_dropin() {
  printf '%s' "$ROOT/etc/systemd/networkd.conf.d/60-meshlab-cilium.conf"
}

record_created() { # "KIND NAME"
  install -d -m 0700 "$(dirname "$CREATED_RECORD")"
  grep -qxF "$1" "$CREATED_RECORD" 2>/dev/null || printf '%s\n' "$1" >>"$CREATED_RECORD"
}

# make_dirs DIR [MODE]: like install -d, recording each directory it creates ("dir PATH"), so that
# node_unprepare can take away exactly those, once they are empty.
make_dirs() {
  local dir=$1 mode=${2:-0755} missing=()
  while [ ! -d "$dir" ]; do
    missing=("$dir" "${missing[@]}")
    dir=$(dirname "$dir")
  done
  for dir in "${missing[@]}"; do
    install -d -m "$mode" "$dir"
    record_created "dir ${dir#"$ROOT"}"
  done
}

# remove_created_dirs: every recorded directory that is empty now, the deepest first; a directory
# that still holds something (someone else's files, or data) stays.
remove_created_dirs() {
  local dir
  [ -f "$CREATED_RECORD" ] || return 0
  while read -r dir; do
    rmdir "$ROOT$dir" 2>/dev/null || true
  done < <(sed -n 's/^dir //p' "$CREATED_RECORD" | sort -r)
}

log() {
  printf 'meshlab: %s\n' "$*"
}

# wait_until TIMEOUT COMMAND...: retry COMMAND until it succeeds (0) or TIMEOUT seconds pass (1).
wait_until() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep "$POLL_SECONDS"
  done
}

port_open() { # HOST PORT
  timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# On a VM's first boot Ubuntu's apt-daily and unattended-upgrades hold apt's locks for minutes.
APT_LOCK_SECONDS="${MESHLAB_APT_LOCK_SECONDS:-600}"

# apt_get ARGS...: apt-get that waits up to APT_LOCK_SECONDS for dpkg's lock (DPkg::Lock::Timeout, apt
# >= 1.9.11) and retries while another apt holds the lists or archives lock, which that option does
# not cover. Any other failure, or a lock still held at the deadline, prints apt's errors and fails.
apt_get() {
  local deadline=$((SECONDS + APT_LOCK_SECONDS)) errors
  until errors=$(DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_SECONDS" -q "$@" \
    2>&1 >/dev/null); do
    if [[ "$errors" != *"Could not get lock"* ]] || [ "$SECONDS" -ge "$deadline" ]; then
      printf '%s\n' "$errors" >&2
      return 1
    fi
    sleep "$POLL_SECONDS"
  done
}

install_packages() {
  local missing=() package
  for package in "$@"; do
    package_installed "$package" || missing+=("$package")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  log "installing ${missing[*]}"
  apt_get update
  apt_get install -y "${missing[@]}"
}

# The tarball installer puts RKE2 under /usr/local, or /opt/rke2 when /usr/local is read-only.
rke2_prefix() {
  local prefix
  for prefix in "$ROOT/usr/local" "$ROOT/opt/rke2"; do
    if [ -x "$prefix/bin/rke2" ]; then
      printf '%s' "$prefix"
      return 0
    fi
  done
  return 1
}

installed_rke2_version() {
  local prefix
  prefix=$(rke2_prefix) || return 0
  "$prefix/bin/rke2" --version 2>/dev/null | awk 'NR == 1 { print $3 }'
}

version_number() { # v1.32.7+rke2r1 -> one comparable integer
  [[ $1 =~ ^v([0-9]+)\.([0-9]+)\.([0-9]+)\+rke2r([0-9]+)$ ]] || die "not an RKE2 version: '$1'"
  printf '%d' "$((BASH_REMATCH[1] * 1000000000 + BASH_REMATCH[2] * 1000000 + BASH_REMATCH[3] * 1000 + BASH_REMATCH[4]))"
}

# ensure_rke2 VERSION TYPE: install VERSION unless it is there; never go backwards.
# Sets RKE2_CHANGED=1 when it installed something.
RKE2_CHANGED=0
ensure_rke2() {
  local version=$1 type=$2 current installer
  current=$(installed_rke2_version)
  if [ "$current" = "$version" ]; then
    log "RKE2 $version is already installed"
    return 0
  fi
  if [ -n "$current" ] && [ "$(version_number "$current")" -gt "$(version_number "$version")" ]; then
    die "RKE2 $current is installed on $(hostname); refusing to downgrade to $version" \
      "(RKE2 does not support downgrades: restore an etcd snapshot or rebuild the node)"
  fi
  installer=$(mktemp)
  curl -sfL --retry 5 --retry-delay 5 -o "$installer" "$MESHLAB_RKE2_INSTALL_URL" ||
    die "cannot download the RKE2 installer from $MESHLAB_RKE2_INSTALL_URL"
  log "installing RKE2 $version ($type)${current:+, replacing $current}"
  INSTALL_RKE2_VERSION="$version" INSTALL_RKE2_TYPE="$type" sh "$installer" >/dev/null ||
    die "the RKE2 installer failed for $version; re-run 'pulumi up' to retry"
  rm -f "$installer"
  # shellcheck disable=SC2034 # read by the upgrade step
  RKE2_CHANGED=1
}

# With `profile: cis` RKE2 refuses to start unless these kernel parameters match its own file.
install_cis_sysctl() {
  local prefix source target="$ROOT/etc/sysctl.d/60-rke2-cis.conf"
  prefix=$(rke2_prefix) || die "RKE2 is not installed"
  source="$prefix/share/rke2/rke2-cis-sysctl.conf"
  [ -f "$source" ] || die "$source is missing: the RKE2 install is incomplete"
  if ! cmp -s "$source" "$target"; then
    install -D -m 0644 "$source" "$target"
    systemctl restart systemd-sysctl
    log "applied RKE2's CIS kernel parameters"
  fi
}

# The kubelet's own credentials can read its Node object on servers and agents alike.
node_field() { # NODE JSONPATH
  "$KUBECTL" --kubeconfig "$RKE2_DATA/agent/kubelet.kubeconfig" get node "$1" -o "jsonpath=$2" 2>/dev/null
}

node_ready() { # NODE [KUBELET-VERSION]
  [ "$(node_field "$1" '{.status.conditions[?(@.type=="Ready")].status}')" = True ] || return 1
  [ -z "${2:-}" ] || [ "$(node_field "$1" '{.status.nodeInfo.kubeletVersion}')" = "$2" ]
}

service_failed_or_node_ready() { # SERVICE NODE [KUBELET-VERSION]
  systemctl is-failed --quiet "$1" || node_ready "$2" "${3:-}"
}

# wait_node_ready SERVICE NODE TIMEOUT [KUBELET-VERSION]
wait_node_ready() {
  local service=$1 node=$2 timeout=$3 version=${4:-}
  wait_until "$timeout" service_failed_or_node_ready "$service" "$node" "$version" ||
    die "timed out after ${timeout}s waiting for node $node to be Ready${version:+ on $version};" \
      "see 'journalctl -u $service' on $node"
  if systemctl is-failed --quiet "$service"; then
    die "$service failed on $node: $(journalctl -u "$service" -n 20 --no-pager 2>&1 | tail -n 20)"
  fi
  log "node $node is Ready${version:+ on $version}"
}
