# Install the staged files (copied over SSH as the login user) into their root-owned places.
# Inputs: MESHLAB_STAGING_DIR, MESHLAB_FILES (one "NAME DESTINATION MODE" per line).
require_env MESHLAB_STAGING_DIR MESHLAB_FILES

while read -r name destination mode; do
  [ -n "$name" ] || continue
  source="$ROOT$MESHLAB_STAGING_DIR/$name"
  [ -f "$source" ] || die "staged file $source is missing; re-run 'pulumi up' to copy it again"
  if cmp -s "$source" "$ROOT$destination"; then
    log "$destination is up to date"
  else
    make_dirs "$(dirname "$ROOT$destination")"
    install -m "$mode" "$source" "$ROOT$destination"
    log "installed $destination"
  fi
done <<<"$MESHLAB_FILES"
