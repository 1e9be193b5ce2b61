#!/usr/bin/env bash
# Build the Kubernetes control plane the kube and apply tests run, from Go modules (no release download
# needed): kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from k8s.io/kubernetes,
# etcd from go.etcd.io/etcd/server/v3, and kwok (fake nodes, with the stages its module ships, in
# kwok-stages/) from sigs.k8s.io/kwok, all with CGO_ENABLED=0. Versions and the reason for each are in
# versions.env; each module has a wrapper under modules/.
#
# Binaries are cached outside the repository, keyed by the Go version, versions.env and the wrapper
# templates, in ${MESHLAB_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlab/kube}/<key>/bin. A second
# run only re-checks what is there. status.tsv records each binary: built, cached, unavailable (the Go
# module proxy does not serve its module: the proxy's answer) or failed (the build's error;
# logs/NAME.log has the whole output).
#
#   bootstrap.sh           build what is missing, print the status, exit 1 if anything is missing
#   bootstrap.sh --dir     print the cache directory for the current versions
#   bootstrap.sh --check   exit 0 only if every binary is in the cache; print what is missing
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# versions.env is plain KEY=VALUE lines (see its header).
# shellcheck disable=SC1091
source "$here/versions.env"

export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}" CGO_ENABLED=0

command -v go >/dev/null || { echo "bootstrap: 'go' is not on PATH; the control plane is built with Go (1.26 here)" >&2; exit 2; }

cache_root=${MESHLAB_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlab/kube}
# The key: the Go version, the values of versions.env and the wrapper templates, comments left out.
key=$( {
  go env GOVERSION
  grep -E '^[A-Z_][A-Z0-9_]*=' "$here/versions.env"
  grep -hv '^//' "$here"/modules/*/go.mod.in
} | sha256sum | cut -c1-16)
dir=$cache_root/$key
bin=$dir/bin

kubernetes_binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
components=("${kubernetes_binaries[@]}" etcd kwok)
# The stages bare kwok needs (it has no defaults), relative to the module's kustomize/stage/.
# A pod goes create -> (init containers) -> ready -> complete (Jobs) -> delete: every pod/general stage.
kwok_stages=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/general/pod-create.yaml pod/general/pod-init-container-running.yaml
  pod/general/pod-init-container-completed.yaml pod/general/pod-ready.yaml pod/general/pod-complete.yaml
  pod/general/pod-delete.yaml)

present() { # kwok counts only with its stages
  [[ -x $bin/$1 ]] || return 1
  [[ $1 != kwok ]] || [[ -d $dir/kwok-stages && $(find "$dir/kwok-stages" -name '*.yaml' | wc -l) -eq ${#kwok_stages[@]} ]]
}

check() { # print each missing binary with bootstrap's reason; status 1 if any
  local missing=0 name why
  for name in "${components[@]}"; do
    if ! present "$name"; then
      missing=1
      why=$(awk -F'\t' -v n="$name" '$1 == n {print $3 ": " $4}' "$dir/status.tsv" 2>/dev/null || true)
      echo "missing: $name (${why:-not built: run make kube})"
    fi
  done
  return "$missing"
}

case ${1:-} in
  --dir) echo "$dir"; exit 0 ;;
  --check) check; exit $? ;;
  "") ;;
  *) echo "usage: $0 [--dir|--check]" >&2; exit 2 ;;
esac

mkdir -p "$bin" "$dir/logs" "$dir/work"
status=$dir/status.tsv.new
: >"$status"

record() { # name version state detail...
  local name=$1 version=$2 state=$3
  shift 3
  local detail
  detail=$(tr '\t\n' '  ' <<<"$*" | tr -s ' ')
  printf '%s\t%s\t%s\t%s\n' "$name" "$version" "$state" "${detail% }" >>"$status"
  printf '  %-26s %-11s %s\n' "$name" "$state" "${detail% }"
}

# render TEMPLATE OUT: replace every @NAME@ of versions.env
render() {
  local args=() var
  for var in $(grep -oE '^[A-Z_][A-Z0-9_]*=' "$here/versions.env" | tr -d =); do
    args+=(-e "s|@$var@|${!var}|g")
  done
  sed "${args[@]}" "$1" >"$2"
}

# The module proxy alone: with GOPROXY's ",direct" fallback, a version the proxy does not know (404)
# is fetched from its repository instead, which only says the host cannot be reached.
proxy_only=$(go env GOPROXY | tr '|' ',' | tr ',' '\n' | grep -vxE 'direct|off' | paste -sd, - || true)

# module_field MODULE@VERSION FIELD: download the module; print a field of `go mod download -json`
# (Dir, GoMod), or the proxy's error on stderr
module_field() {
  local out err
  out=$(GOPROXY=${proxy_only:-off} go mod download -json "$1" 2>&1 || true)
  err=$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")
  if [[ -n $err || $out != *"\"$2\""* ]]; then
    printf '%b\n' "${err:-$out}" | head -n 2 | tr '\n' ' ' >&2
    return 1
  fi
  sed -n "s/^[[:space:]]*\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$out"
}

fail_detail() { # the last error lines of a log, on one line
  grep -v '^go: downloading' "$1" | tail -n 3 | tr '\n' ' '
}

prepare() { # name: a fresh work dir with the rendered wrapper, and an empty log
  rm -rf "$dir/work/$1"
  mkdir -p "$dir/work/$1"
  render "$here/modules/$1/go.mod.in" "$dir/work/$1/go.mod"
  : >"$dir/logs/$1.log"
}

# build NAME LDFLAGS TAGS BINARY=PACKAGE...: tidy the wrapper in work/NAME, build the packages into a
# staging directory, then move each binary into bin/ (a binary is in bin/ only once it is whole)
build() {
  local name=$1 ldflags=$2 tags=$3 work=$dir/work/$1 out=$dir/work/$1/out item
  shift 3
  local pkgs=() target=$out/
  for item in "$@"; do pkgs+=("${item#*=}"); done
  [[ $# -gt 1 ]] || target=$out/${1%%=*}  # one package: name the binary; several: go names each
  (
    cd "$work"
    go mod tidy
    mkdir -p "$out"
    go build -trimpath -tags "$tags" -ldflags "-s -w $ldflags" -o "$target" "${pkgs[@]}"
    for item in "$@"; do mv "$out/${item%%=*}" "$bin/${item%%=*}"; done
  ) >>"$dir/logs/$name.log" 2>&1
}

timed() { # run a step, print its time
  local start=$SECONDS
  "$@"
  echo "    ($(( SECONDS - start ))s)"
}

echo "bootstrap: control-plane cache $dir"

# --- kube-apiserver, kube-controller-manager, kubectl: one build of the kubernetes wrapper
kubernetes() {
  local name go_mod err staging count=0 module ldflags=() var value pkgs=() missing=()
  for name in "${kubernetes_binaries[@]}"; do
    if present "$name"; then
      record "$name" "$KUBERNETES_VERSION" cached "k8s.io/kubernetes@$KUBERNETES_VERSION"
    else
      missing+=("$name")
    fi
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  if ! go_mod=$(module_field "k8s.io/kubernetes@$KUBERNETES_VERSION" GoMod 2>"$dir/logs/probe.err"); then
    err=$(cat "$dir/logs/probe.err")
    for name in "${missing[@]}"; do record "$name" "$KUBERNETES_VERSION" unavailable "$err"; done
    return
  fi
  prepare kubernetes
  # Every replace of k8s.io/kubernetes's go.mod must be a staging module (a replace of anything else
  # would have to be repeated by hand); each becomes a replace by the published module.
  if grep -E '=>' "$go_mod" | grep -vqE '^[[:space:]]*k8s\.io/[a-z0-9-]+ => \./staging/src/k8s\.io/[a-z0-9-]+[[:space:]]*$'; then
    for name in "${missing[@]}"; do
      record "$name" "$KUBERNETES_VERSION" failed "$go_mod has a replace that is not a staging module: extend bootstrap.sh"
    done
    return
  fi
  staging=$(sed -n 's|^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/src/.*$|\1|p' "$go_mod")
  for module in $staging; do
    (cd "$dir/work/kubernetes" && go mod edit -replace "$module=$module@$KUBERNETES_STAGING_VERSION")
    count=$(( count + 1 ))
  done
  # The version every binary reports (upstream's hack/lib/version.sh sets the same variables).
  for var in gitVersion:"$KUBERNETES_VERSION" gitMajor:1 gitMinor:"$(cut -d. -f2 <<<"$KUBERNETES_VERSION")"; do
    value=${var#*:}
    ldflags+=("-X k8s.io/component-base/version.${var%%:*}=$value" "-X k8s.io/client-go/pkg/version.${var%%:*}=$value")
  done
  for name in "${missing[@]}"; do pkgs+=("$name=k8s.io/kubernetes/cmd/$name"); done
  echo "    building ${missing[*]} from k8s.io/kubernetes@$KUBERNETES_VERSION ($count staging modules at $KUBERNETES_STAGING_VERSION; about 8 minutes cold on 2 cores)"
  if build kubernetes "${ldflags[*]}" "$KUBERNETES_BUILD_TAGS" "${pkgs[@]}"; then
    for name in "${missing[@]}"; do record "$name" "$KUBERNETES_VERSION" built "k8s.io/kubernetes@$KUBERNETES_VERSION"; done
  else
    err=$(fail_detail "$dir/logs/kubernetes.log")
    for name in "${missing[@]}"; do record "$name" "$KUBERNETES_VERSION" failed "$err"; done
  fi
}
timed kubernetes

# --- etcd
etcd() {
  local err
  if present etcd; then record etcd "$ETCD_VERSION" cached "go.etcd.io/etcd/server/v3@$ETCD_VERSION"; return; fi
  if ! module_field "go.etcd.io/etcd/server/v3@$ETCD_VERSION" Dir >/dev/null 2>"$dir/logs/probe.err"; then
    err=$(cat "$dir/logs/probe.err"); record etcd "$ETCD_VERSION" unavailable "$err"; return
  fi
  prepare etcd
  echo "    building etcd from go.etcd.io/etcd/server/v3@$ETCD_VERSION (about 1 minute cold on 2 cores)"
  if build etcd "" "" etcd=go.etcd.io/etcd/server/v3; then
    record etcd "$ETCD_VERSION" built "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  else
    record etcd "$ETCD_VERSION" failed "$(fail_detail "$dir/logs/etcd.log")"
  fi
}
timed etcd

# --- kwok: the binary and the stage files its module ships
kwok() {
  local module_dir stage
  if present kwok; then record kwok "$KWOK_VERSION" cached "sigs.k8s.io/kwok@$KWOK_VERSION"; return; fi
  if ! module_dir=$(module_field "sigs.k8s.io/kwok@$KWOK_VERSION" Dir 2>"$dir/logs/probe.err"); then
    record kwok "$KWOK_VERSION" unavailable "$(cat "$dir/logs/probe.err")"; return
  fi
  prepare kwok
  echo "    building kwok from sigs.k8s.io/kwok@$KWOK_VERSION (about 5 minutes cold on 2 cores)"
  if ! build kwok "" "" kwok=sigs.k8s.io/kwok/cmd/kwok; then
    record kwok "$KWOK_VERSION" failed "$(fail_detail "$dir/logs/kwok.log")"; return
  fi
  rm -rf "$dir/kwok-stages"
  mkdir -p "$dir/kwok-stages"
  for stage in "${kwok_stages[@]}"; do
    if [[ ! -f $module_dir/kustomize/stage/$stage ]]; then
      record kwok "$KWOK_VERSION" failed "the module has no kustomize/stage/$stage"; return
    fi
    install -m 0644 "$module_dir/kustomize/stage/$stage" "$dir/kwok-stages/"
  done
  record kwok "$KWOK_VERSION" built "sigs.k8s.io/kwok@$KWOK_VERSION (${#kwok_stages[@]} stages in kwok-stages/)"
}
timed kwok

mv "$status" "$dir/status.tsv"
rm -f "$dir/logs/probe.err"
echo "bootstrap: status in $dir/status.tsv"
if ! incomplete=$(check); then
  echo "bootstrap: the control plane is incomplete:" >&2
  echo "$incomplete" >&2
  exit 1
fi
echo "bootstrap: the control plane is complete"
