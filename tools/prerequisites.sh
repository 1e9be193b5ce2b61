#!/usr/bin/env bash
# What `make up`, `make preview` and `make destroy` need on this machine, checked before the dev
# environment is installed: Python 3.11+, the Pulumi CLI, and for up and destroy (which create and
# delete VMs) the tool of the stack's meshlab:hypervisor (virtualbox when the key is not set).
# Lists every missing tool at once. Usage: tools/prerequisites.sh up|preview|destroy STACK_FILE
set -euo pipefail
command=$1
stack_file=$2
python=${PYTHON:-python3}
problems=()

need() { # TOOL HOW-TO-GET-IT
  command -v "$1" >/dev/null 2>&1 || problems+=("$1 is not on PATH: $2")
}

if ! command -v "$python" >/dev/null 2>&1; then
  problems+=("$python is not on PATH: install Python 3.11 or newer (or run make with PYTHON=/path/to/python3)")
elif ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
  problems+=("$python is $("$python" --version 2>&1 || true): meshlab needs Python 3.11 or newer (PYTHON=...)")
fi
need pulumi "install the Pulumi CLI (https://www.pulumi.com/docs/install/)"

if [ "$command" != preview ]; then
  hypervisor=virtualbox
  if [ -f "$stack_file" ]; then
    value=$(sed -n 's/^[[:space:]]*meshlab:hypervisor:[[:space:]]*//p' "$stack_file" | head -n 1)
    value=${value%%#*}
    value=$(printf '%s' "$value" | tr -d "\"' \t")
    [ -z "$value" ] || hypervisor=$value
  fi
  case "$hypervisor" in
    virtualbox) need VBoxManage "install VirtualBox 7.0 or newer (7.1 on Apple Silicon) and put VBoxManage on PATH" ;;
    qemu)
      need qemu-img "install QEMU"
      need "qemu-system-$(uname -m | sed 's/^arm64$/aarch64/')" "install QEMU"
      ;;
    *) ;; # Other backends need no local hypervisor; meshlab's settings check refuses unknown names.
  esac
fi

if [ "${#problems[@]}" -gt 0 ]; then
  printf 'make %s cannot run on this machine yet (%d problem(s)):\n' "$command" "${#problems[@]}" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi
