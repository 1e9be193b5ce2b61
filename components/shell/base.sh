#!/usr/bin/env bash
# The start of every rendered step script, in every layer: strict mode and the two helpers
# every step uses.
set -euo pipefail

die() {
  printf 'meshlab: %s\n' "$*" >&2
  exit 1
}

require_env() {
  local name
  for name in "$@"; do
    [ -n "${!name:-}" ] || die "internal error: $name is not set for this step"
  done
}
