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

# Where RKE2 imports image archives from when it starts (rke2-docs install/airgap.md, tarball method).
AGENT_IMAGES="$RKE2_DATA/agent/images"
# The manifest the workstation wrote: "SHA256  NAME" of every artifact a node receives.
ARTIFACT_MANIFEST=meshlab-artifacts.sha256

# verify_artifacts DIR: every file of DIR's manifest is there and matches it (copies are checked again on
# the node: a transfer can break, and the installer checks only the tarball).
verify_artifacts() {
  local dir=$1 name expected actual
  [ -f "$dir/$ARTIFACT_MANIFEST" ] ||
    die "$dir/$ARTIFACT_MANIFEST is missing on $(hostname): the RKE2 artifacts were not copied here;" \
      "re-run 'pulumi up' (or replace this node's artifact copies: pulumi up --replace URN, from pulumi stack --show-urns)"
  while read -r expected name; do
    [ -f "$dir/$name" ] ||
      die "$dir/$name is missing on $(hostname): re-copy it (pulumi up --replace the URN of its copy, from pulumi stack --show-urns)"
    actual=$(sha256sum "$dir/$name" | awk '{ print $1 }')
    [ "$actual" = "$expected" ] ||
      die "$dir/$name on $(hostname) does not match the workstation's checksum (expected $expected, got $actual):" \
        "the copy is damaged; re-copy it (pulumi up --replace the URN of its copy, from pulumi stack --show-urns)"
  done <"$dir/$ARTIFACT_MANIFEST"
}

# place_image_archives DIR: RKE2's image archives (the manifest's *.tar.zst) where RKE2 imports them at
# start; a hard link when the directories share a file system, so the archives take their space once.
place_image_archives() {
  local dir=$1 name
  install -d -m 0755 "$AGENT_IMAGES"
  while read -r _ name; do
    case $name in
      *.tar.zst | *.tar.gz)
        [[ $name == rke2.linux-* ]] && continue # the release tarball is the installer's
        cmp -s "$dir/$name" "$AGENT_IMAGES/$name" && continue
        ln -f "$dir/$name" "$AGENT_IMAGES/$name" 2>/dev/null || cp -f "$dir/$name" "$AGENT_IMAGES/$name"
        ;;
    esac
  done <"$dir/$ARTIFACT_MANIFEST"
}

# run_installer VERSION TYPE: the RKE2 installer, from the artifacts when MESHLAB_RKE2_ARTIFACTS names
# their directory on this node (nothing is downloaded), else downloaded from MESHLAB_RKE2_INSTALL_URL.
run_installer() {
  local version=$1 type=$2 installer artifacts=${MESHLAB_RKE2_ARTIFACTS:+$ROOT$MESHLAB_RKE2_ARTIFACTS}
  if [ -n "$artifacts" ]; then
    verify_artifacts "$artifacts"
    place_image_archives "$artifacts"
    INSTALL_RKE2_ARTIFACT_PATH="$artifacts" INSTALL_RKE2_VERSION="$version" INSTALL_RKE2_TYPE="$type" \
      sh "$artifacts/install.sh" >/dev/null ||
      die "the RKE2 installer failed for $version with the artifacts in $artifacts; re-run 'pulumi up' to retry"
    return
  fi
  require_env MESHLAB_RKE2_INSTALL_URL
  installer=$(mktemp)
  curl -sfL --retry 5 --retry-delay 5 -o "$installer" "$MESHLAB_RKE2_INSTALL_URL" ||
    die "cannot download the RKE2 installer from $MESHLAB_RKE2_INSTALL_URL"
  INSTALL_RKE2_VERSION="$version" INSTALL_RKE2_TYPE="$type" sh "$installer" >/dev/null ||
    die "the RKE2 installer failed for $version; re-run 'pulumi up' to retry"
  rm -f "$installer"
}

# ensure_rke2 VERSION TYPE: install VERSION unless it is there; never go backwards.
# Sets RKE2_CHANGED=1 when it installed something.
RKE2_CHANGED=0
ensure_rke2() {
  local version=$1 type=$2 current
  current=$(installed_rke2_version)
  if [ "$current" = "$version" ]; then
    log "RKE2 $version is already installed"
    return 0
  fi
  if [ -n "$current" ] && [ "$(version_number "$current")" -gt "$(version_number "$version")" ]; then
    die "RKE2 $current is installed on $(hostname); refusing to downgrade to $version" \
      "(RKE2 does not support downgrades: restore an etcd snapshot or rebuild the node)"
  fi
  log "installing RKE2 $version ($type)${current:+, replacing $current}${MESHLAB_RKE2_ARTIFACTS:+ from the copied artifacts}"
  run_installer "$version" "$type"
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

# describe_pull_failures: reads lines that report failed image pulls (containerd's log, RKE2's journal,
# the kubelet's events) and prints "IMAGE from REGISTRY: WHY" for the newest five images, so a wait that
# times out says why instead of only that it did.
describe_pull_failures() {
  local line image registry why seen=()
  while IFS= read -r line; do
    # containerd: PullImage \"IMAGE\" failed; kubelet: Failed to pull image "IMAGE"; RKE2: runtime image IMAGE:
    line=${line//\\\"/\"}
    if [[ $line =~ (PullImage|pull image)\ \"([^\"]+)\" ]]; then
      image=${BASH_REMATCH[2]}
    elif [[ $line =~ runtime\ image\ ([^ :]+:[^ :]+) ]]; then
      image=${BASH_REMATCH[1]}
    else
      continue
    fi
    registry=${image%%/*}
    [[ $image == */* && ( $registry == *.* || $registry == *:* ) ]] || registry=docker.io
    [[ $registry == index.docker.io ]] && registry=docker.io
    # The host the failing request went to (a mirror's, when one is configured).
    [[ $line =~ https?://([^/ \"]+)/v2/ ]] && registry="$registry via ${BASH_REMATCH[1]}"
    case $line in
      *"429 Too Many Requests"* | *"toomanyrequests"* | *"TOOMANYREQUESTS"*)
        why="429 Too Many Requests: the registry's pull limit (Docker Hub: 100 pulls per 6 hours per address"
        why+=" for anonymous clients); wait, log in (meshlab:registryCredentials) or use a mirror (meshlab:registryMirrors)"
        ;;
      *"401 Unauthorized"* | *"403 Forbidden"* | *"unauthorized"* | *"denied"*)
        why="the registry refused the credentials (401/403): check meshlab:registryCredentials for this host" ;;
      *"no such host"* | *"i/o timeout"* | *"connection refused"* | *"network is unreachable"* | *"no route to host"* | *"TLS handshake timeout"*)
        why="the registry is unreachable ($(grep -oE 'no such host|i/o timeout|connection refused|network is unreachable|no route to host|TLS handshake timeout' <<<"$line" | head -n 1))" ;;
      *"x509:"* | *"certificate"*)
        why="its TLS certificate is not trusted (meshlab:registryCaPem for a mirror's own CA)" ;;
      *"not found"* | *"manifest unknown"*)
        why="not found there (a mirror without this image? python -m tools.images STACK lists what it must hold)" ;;
      *) why="the pull failed: ${line: -200}" ;;
    esac
    seen=("${seen[@]/#"$image from "*/}")
    seen+=("$image from $registry: $why")
  done
  local entry count=0
  for entry in "${seen[@]}"; do
    [ -n "$entry" ] && count=$((count + 1))
  done
  for entry in "${seen[@]}"; do
    [ -n "$entry" ] || continue
    [ "$count" -le 5 ] && printf '  - %s\n' "$entry"
    count=$((count - 1))
  done
}

# node_pull_failures SERVICE: the failed pulls containerd (and RKE2, for its runtime image) logged here.
node_pull_failures() {
  local containerd_log="$RKE2_DATA/agent/containerd/containerd.log"
  {
    [ ! -f "$containerd_log" ] || grep -F 'PullImage' "$containerd_log" | grep -F 'failed' | tail -n 200
    journalctl -u "$1" -n 500 --no-pager 2>/dev/null | grep -F 'runtime image' || true
  } | describe_pull_failures
}

# with_pull_failures MESSAGE SERVICE: MESSAGE, and the failed pulls when there are any.
with_pull_failures() {
  local failures
  failures=$(node_pull_failures "$2")
  if [ -n "$failures" ]; then
    printf '%s\nimage pulls failed on this node:\n%s' "$1" "$failures"
  else
    printf '%s' "$1"
  fi
}

# wait_node_ready SERVICE NODE TIMEOUT [KUBELET-VERSION]
wait_node_ready() {
  local service=$1 node=$2 timeout=$3 version=${4:-}
  wait_until "$timeout" service_failed_or_node_ready "$service" "$node" "$version" ||
    die "$(with_pull_failures "timed out after ${timeout}s waiting for node $node to be Ready${version:+ on $version}; see 'journalctl -u $service' on $node" "$service")"
  if systemctl is-failed --quiet "$service"; then
    die "$(with_pull_failures "$service failed on $node: $(journalctl -u "$service" -n 20 --no-pager 2>&1 | tail -n 20)" "$service")"
  fi
  log "node $node is Ready${version:+ on $version}"
}
