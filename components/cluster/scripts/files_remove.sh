# Remove the files the files step installed.
# Inputs: MESHLAB_FILES (one "NAME DESTINATION MODE" per line).
require_env MESHLAB_FILES

while read -r name destination _; do
  [ -n "$name" ] || continue
  rm -f "$ROOT$destination"
  log "removed $destination"
done <<<"$MESHLAB_FILES"
