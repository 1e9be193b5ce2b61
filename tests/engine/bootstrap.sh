#!/usr/bin/env bash
# Build the Pulumi toolchain the engine tests run from Go modules (no Pulumi download site needed):
# the CLI, the Python language host with its executor script, and the provider plugins. Versions and
# the reason for each are in versions.env; each binary has a wrapper module under modules/.
#
# Binaries are cached outside the repository, keyed by the Go version, versions.env and the wrapper
# templates, in ${MESHLAB_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlab/engine}/<key>/: bin/ holds
# the CLI and the language host (put it on PATH), providers/ the provider plugins (install them with
# `pulumi plugin install resource NAME VERSION --file providers/pulumi-resource-NAME`; on PATH the CLI
# would take them as ambient plugins instead). A second run only re-probes what is missing.
# status.tsv records each component: built, cached,
# unavailable (the Go module proxy does not serve its module: the proxy's answer) or failed (the
# build's error; logs/NAME.log has the whole output).
#
#   bootstrap.sh           build what is missing, print the status, exit 1 if anything is missing
#   bootstrap.sh --dir     print the cache directory for the current versions
#   bootstrap.sh --check   exit 0 only if every component is in the cache; print what is missing
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# versions.env is plain KEY=VALUE lines (see its header).
# shellcheck disable=SC1091
source "$here/versions.env"

export GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"

command -v go >/dev/null || { echo "bootstrap: 'go' is not on PATH; the toolchain is built with Go (1.26 here)" >&2; exit 2; }

cache_root=${MESHLAB_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshlab/engine}
# The key: the Go version, the values of versions.env and the wrapper templates, comments left out.
key=$( {
  go env GOVERSION
  grep -E '^[A-Z_][A-Z0-9_]*=' "$here/versions.env"
  grep -hv '^//' "$here"/modules/*/go.mod.in
} | sha256sum | cut -c1-16)
dir=$cache_root/$key
bin=$dir/bin
providers=$dir/providers

# name -> the file(s) in bin/ that make the component present
components=(pulumi pulumi-language-python pulumi-resource-kubernetes pulumi-resource-command
  pulumi-resource-random pulumi-resource-tls)

# where a component's binary goes
binary() { if [[ $1 == pulumi-resource-* ]]; then echo "$providers/$1"; else echo "$bin/$1"; fi; }

present() {
  local name=$1
  [[ -x $(binary "$name") ]] || return 1
  if [[ $name == pulumi-language-python ]]; then [[ -f $bin/pulumi-language-python-exec ]] || return 1; fi
}

# Our own plugins (tests/engine/plugins) are rebuilt in place whenever their sources change, without
# touching the rest of the cache: a stamp beside each binary holds the hash of the sources it came from.
plugins=$here/plugins
own_module() { # name: the module directory of one of our own plugins, or status 1
  case $1 in
    pulumi-language-python) echo "$plugins/language-host" ;;
    pulumi-resource-command | pulumi-resource-random | pulumi-resource-tls) echo "$plugins/standin-provider" ;;
    *) return 1 ;;
  esac
}
source_key() { # module dir: the hash of its go.mod, go.sum and non-test sources
  local file
  for file in "$1"/go.mod "$1"/go.sum "$1"/*.go; do
    [[ $file == *_test.go ]] || cat "$file"
  done | sha256sum | cut -c1-16
}
stamp() { echo "$(dirname "$(binary "$1")")/.$1.source"; }
current() { # name: present, and built from the current sources if it is one of ours
  local src
  present "$1" || return 1
  src=$(own_module "$1") || return 0
  [[ $(cat "$(stamp "$1")" 2>/dev/null) == "$(source_key "$src")" ]]
}

check() { # print each missing component with bootstrap's reason; status 1 if any
  local missing=0 name why
  for name in "${components[@]}"; do
    if ! current "$name"; then
      missing=1
      why=$(awk -F'\t' -v n="$name" '$1 == n {print $3 ": " $4}' "$dir/status.tsv" 2>/dev/null || true)
      echo "missing: $name (${why:-not built: run make engine})"
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

mkdir -p "$bin" "$providers" "$dir/logs" "$dir/work"
status=$dir/status.tsv.new
: >"$status"

record() { # name state detail...
  local name=$1 state=$2
  shift 2
  local detail
  detail=$(tr '\t\n' '  ' <<<"$*" | tr -s ' ')
  printf '%s\t%s\t%s\t%s\n' "$name" "${plugin_version:--}" "$state" "${detail% }" >>"$status"
  printf '  %-28s %-11s %s\n' "$name" "$state" "${detail% }"
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

# module_dir MODULE@VERSION: download it; print its directory, or the proxy's error on stderr
module_dir() {
  local out err
  out=$(GOPROXY=${proxy_only:-off} go mod download -json "$1" 2>&1 || true)
  err=$(sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' <<<"$out")
  if [[ -n $err || $out != *'"Dir"'* ]]; then
    printf '%b\n' "${err:-$out}" | head -n 2 | tr '\n' ' ' >&2
    return 1
  fi
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$out"
}

# build NAME PACKAGE LDFLAGS: tidy the rendered wrapper in work/NAME and build PACKAGE to its binary
build() {
  local name=$1 pkg=$2 ldflags=$3 work=$dir/work/$1 log=$dir/logs/$1.log out
  out=$(binary "$1")
  (
    cd "$work"
    go mod tidy
    go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$pkg"
    mv "$out.tmp" "$out"
  ) >>"$log" 2>&1
}

fail_detail() { # the last error lines of a log, on one line
  grep -v '^go: downloading' "$1" | tail -n 3 | tr '\n' ' '
}

prepare() { # name: a fresh work dir with the rendered wrapper
  rm -rf "$dir/work/$1"
  mkdir -p "$dir/work/$1"
  render "$here/modules/$1/go.mod.in" "$dir/work/$1/go.mod"
  : >"$dir/logs/$1.log"
}

timed() { # run a component step, print its time
  local start=$SECONDS
  "$@"
  echo "    ($(( SECONDS - start ))s)"
}

echo "bootstrap: toolchain cache $dir"

# --- the CLI
plugin_version=$PULUMI_CLI_VERSION
cli() {
  local err
  if present pulumi; then record pulumi cached "github.com/pulumi/pulumi/pkg/v3@$PULUMI_CLI_VERSION"; return; fi
  if ! module_dir "github.com/pulumi/pulumi/pkg/v3@$PULUMI_CLI_VERSION" >/dev/null 2>"$dir/logs/probe.err"; then
    err=$(cat "$dir/logs/probe.err"); record pulumi unavailable "$err"; return
  fi
  prepare pulumi
  echo "    building pulumi from github.com/pulumi/pulumi/pkg/v3@$PULUMI_CLI_VERSION (about 4 minutes cold on 2 cores)"
  if build pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
    "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_CLI_VERSION"; then
    record pulumi built "github.com/pulumi/pulumi/pkg/v3@$PULUMI_CLI_VERSION"
  else
    record pulumi failed "$(fail_detail "$dir/logs/pulumi.log")"
  fi
}
timed cli

# --- our own plugins: the Python language host and the stand-in providers
# sdk_version module dir: the sdk/v3 its go.mod requires; it must be the CLI's (the protocol it speaks)
sdk_version() { (cd "$1" && go list -m -f '{{.Version}}' github.com/pulumi/pulumi/sdk/v3); }

build_plugin() { # name ldflags detail
  local name=$1 ldflags=$2 detail=$3 src out log=$dir/logs/$1.log sdk
  src=$(own_module "$name")
  out=$(binary "$name")
  if current "$name"; then record "$name" cached "$detail"; return; fi
  : >"$log"
  if ! sdk=$(sdk_version "$src" 2>>"$log") || [[ $sdk != "$PULUMI_CLI_VERSION" ]]; then
    record "$name" failed "$src/go.mod requires sdk/v3 ${sdk:-?}, the CLI is $PULUMI_CLI_VERSION: update both together"
    return
  fi
  echo "    building $name from ${src#"$here"/}"
  if (cd "$src" && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" . && mv "$out.tmp" "$out") >>"$log" 2>&1; then
    source_key "$src" >"$(stamp "$name")"
    record "$name" built "$detail"
  else
    record "$name" failed "$(fail_detail "$log")"
  fi
}

plugin_version=$PULUMI_CLI_VERSION
language_host() {
  local exec_dir err
  if ! exec_dir=$(module_dir "github.com/pulumi/pulumi/sdk/v3@$PYTHON_EXEC_MODULE_VERSION" 2>"$dir/logs/probe.err"); then
    err=$(cat "$dir/logs/probe.err"); record pulumi-language-python unavailable "executor script: $err"; return
  fi
  install -m 0755 "$exec_dir/python/cmd/pulumi-language-python-exec" "$bin/pulumi-language-python-exec"
  build_plugin pulumi-language-python "-X main.version=$PULUMI_CLI_VERSION" \
    "meshlab's own host (tests/engine/plugins/language-host), exec from sdk/v3@$PYTHON_EXEC_MODULE_VERSION"
}
timed language_host

# --- provider plugins: the Kubernetes provider from its module, the others as stand-ins
standin_does() { # what the stand-in under a provider's name does (random also makes RandomPasswords)
  if [[ $1 == random ]]; then echo "previews, and creates RandomPasswords; nothing else"; else echo "previews only, creates nothing"; fi
}
provider() { # short name (kubernetes)
  local short=$1 up name src err
  up=$(tr '[:lower:]' '[:upper:]' <<<"$short")
  name=pulumi-resource-$short
  local module_var=${up}_MODULE module_version_var=${up}_MODULE_VERSION plugin_var=${up}_PLUGIN_VERSION
  local module=${!module_var} module_version=${!module_version_var}
  plugin_version=${!plugin_var}
  if present "$name"; then record "$name" cached "$module@$module_version"; return; fi
  if ! src=$(module_dir "$module@$module_version" 2>"$dir/logs/probe.err"); then
    err=$(cat "$dir/logs/probe.err"); record "$name" unavailable "$err"; return
  fi
  prepare "$name"
  echo "    building $name from $module@$module_version (about 6 minutes cold on 2 cores)"
  # The module's generate step writes the embedded schema; it runs in a writable copy whose own
  # replace (sdk/v4 => ../sdk, a sibling directory of the repository) is dropped.
  cp -r "$src" "$dir/work/$name/src"
  chmod -R u+w "$dir/work/$name/src"
  if ! (
    cd "$dir/work/$name/src"
    go mod edit -dropreplace github.com/pulumi/pulumi-kubernetes/sdk/v4
    cd cmd/pulumi-resource-kubernetes
    VERSION=$KUBERNETES_BINARY_VERSION go run -mod=mod generate.go
  ) >>"$dir/logs/$name.log" 2>&1; then
    record "$name" failed "generate: $(fail_detail "$dir/logs/$name.log")"; return
  fi
  if build "$name" "$module/cmd/$name" "-X $module/pkg/version.Version=$KUBERNETES_BINARY_VERSION"; then
    record "$name" built "$module@$module_version"
  else
    record "$name" failed "$(fail_detail "$dir/logs/$name.log")"
  fi
}
timed provider kubernetes

standin() { # short name (command, random, tls)
  local up plugin_var
  up=$(tr '[:lower:]' '[:upper:]' <<<"$1")
  plugin_var=${up}_PLUGIN_VERSION
  plugin_version=${!plugin_var}
  build_plugin "pulumi-resource-$1" "-X main.name=$1 -X main.version=$plugin_version" \
    "STAND-IN for $1 $plugin_version (tests/engine/plugins/standin-provider): $(standin_does "$1")"
}
for p in command random tls; do timed standin "$p"; done

mv "$status" "$dir/status.tsv"
rm -f "$dir/logs/probe.err"
echo "bootstrap: status in $dir/status.tsv"
if ! incomplete=$(check); then
  echo "bootstrap: the toolchain is incomplete:" >&2
  echo "$incomplete" >&2
  exit 1
fi
echo "bootstrap: the toolchain is complete"
