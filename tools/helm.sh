#!/usr/bin/env bash
# Print the path of a Helm 3 binary, building it from Go modules when there is none.
#
#   tools/helm.sh VERSION          e.g. tools/helm.sh v3.18.6 (config/versions.py HELM)
#
# In order: $MESHLAB_HELM when set; `helm` on PATH when it is Helm 3; else the binary built with
# `go install helm.sh/helm/v3/cmd/helm@VERSION` into ${XDG_CACHE_HOME:-$HOME/.cache}/meshlab/helm/VERSION/
# (static, -trimpath; about a minute when the modules are in the Go module cache, instant afterwards).
# Only the path goes to stdout; what went wrong goes to stderr, with exit status 1.
set -euo pipefail

version=${1:-}
if [[ ! $version =~ ^v3\.[0-9]+\.[0-9]+$ ]]; then
  echo "usage: tools/helm.sh VERSION (a Helm 3 release such as v3.18.6), got '${version}'" >&2
  exit 1
fi

if [[ -n ${MESHLAB_HELM:-} ]]; then
  if [[ ! -x $MESHLAB_HELM || -d $MESHLAB_HELM ]]; then
    echo "MESHLAB_HELM=${MESHLAB_HELM} is not an executable file" >&2
    exit 1
  fi
  printf '%s\n' "$MESHLAB_HELM"
  exit 0
fi

if on_path=$(command -v helm 2>/dev/null); then
  if [[ $("$on_path" version --short 2>/dev/null || true) == v3.* ]]; then
    printf '%s\n' "$on_path"
    exit 0
  fi
fi

dir="${XDG_CACHE_HOME:-$HOME/.cache}/meshlab/helm/${version}"
if [[ -x $dir/helm ]]; then
  printf '%s\n' "$dir/helm"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "No Helm 3 found (MESHLAB_HELM is unset, no Helm 3 on PATH, nothing in ${dir}) and no Go toolchain to" \
    "build Helm ${version} with: install Go, or Helm 3 (set MESHLAB_HELM to its path)." >&2
  exit 1
fi

mkdir -p "$dir"
# Built into a folder of its own, then moved: a concurrent run never sees half a binary.
staging=$(mktemp -d "${dir}/.build.XXXXXX")
trap 'rm -rf "$staging"' EXIT
echo "building Helm ${version} from Go modules into ${dir} (once)" >&2
# The version goes into the binary as Helm's own release builds put it there (`helm version` reports it).
if ! CGO_ENABLED=0 GOBIN="$staging" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${version}" \
  "helm.sh/helm/v3/cmd/helm@${version}" >"$staging/build.log" 2>&1; then
  echo "building Helm ${version} failed (go install helm.sh/helm/v3/cmd/helm@${version}):" >&2
  cat "$staging/build.log" >&2
  exit 1
fi
mv -f "$staging/helm" "$dir/helm"
printf '%s\n' "$dir/helm"
