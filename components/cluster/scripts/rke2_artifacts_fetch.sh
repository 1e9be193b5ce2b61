# On the workstation: make sure the RKE2 release's artifacts that every node installs from are in
# MESHLAB_ARTIFACT_DIR and match the release's own checksum file, downloading what is missing when
# MESHLAB_ARTIFACT_BASE_URL is set (download mode; empty: the directory is the user's, air gap), and
# write the checksums of what the nodes receive to MESHLAB_ARTIFACT_MANIFEST (sha256sum format).
# Inputs: MESHLAB_RKE2_VERSION, MESHLAB_ARTIFACT_DIR, MESHLAB_ARTIFACT_MANIFEST, MESHLAB_ARTIFACT_CHECKSUMS
# (sha256sum-ARCH.txt), MESHLAB_ARTIFACT_RELEASE_FILES (verified against it), MESHLAB_ARTIFACT_INSTALLER
# (install.sh, which the release does not list), optional MESHLAB_ARTIFACT_BASE_URL and
# MESHLAB_ARTIFACT_INSTALLER_URL. Prints the manifest.
require_env MESHLAB_RKE2_VERSION MESHLAB_ARTIFACT_DIR MESHLAB_ARTIFACT_MANIFEST MESHLAB_ARTIFACT_CHECKSUMS \
  MESHLAB_ARTIFACT_RELEASE_FILES MESHLAB_ARTIFACT_INSTALLER

dir=$MESHLAB_ARTIFACT_DIR
base_url=${MESHLAB_ARTIFACT_BASE_URL:-}

file_sha256() {
  if command -v sha256sum >/dev/null; then
    sha256sum "$1" | awk '{ print $1 }'
  else # macOS
    shasum -a 256 "$1" | awk '{ print $1 }'
  fi
}

# fetch NAME URL: download into the directory through a .partial file, resuming one a broken run left.
fetch() {
  log "downloading $1 ($2)" >&2 # stdout is the manifest
  curl --fail --location --retry 3 --silent --show-error --continue-at - --output "$dir/$1.partial" "$2" ||
    die "could not download $2 (set meshlab:rke2Artifacts to a directory holding the release's files" \
      "to install without the internet; see docs/air-gapped.md)"
  mv "$dir/$1.partial" "$dir/$1"
}

if [ -n "$base_url" ]; then
  mkdir -p "$dir"
elif [ ! -d "$dir" ]; then
  die "meshlab:rke2Artifacts: $dir is not a directory; it must hold the RKE2 $MESHLAB_RKE2_VERSION release files" \
    "$MESHLAB_ARTIFACT_CHECKSUMS $MESHLAB_ARTIFACT_RELEASE_FILES and $MESHLAB_ARTIFACT_INSTALLER"
fi

missing=()
for name in "$MESHLAB_ARTIFACT_CHECKSUMS" $MESHLAB_ARTIFACT_RELEASE_FILES "$MESHLAB_ARTIFACT_INSTALLER"; do
  [ -f "$dir/$name" ] || missing+=("$name")
done
if [ -z "$base_url" ] && [ "${#missing[@]}" -gt 0 ]; then
  die "meshlab:rke2Artifacts: $dir lacks ${missing[*]} of RKE2 $MESHLAB_RKE2_VERSION" \
    "(the release's assets on GitHub, and install.sh of its tag; docs/air-gapped.md lists them)"
fi

# The checksum file comes first: everything else is verified against it.
[ -f "$dir/$MESHLAB_ARTIFACT_CHECKSUMS" ] || fetch "$MESHLAB_ARTIFACT_CHECKSUMS" "$base_url/$MESHLAB_ARTIFACT_CHECKSUMS"

expected_sha256() { # NAME: its line in the release's checksum file ("SHA256  NAME")
  awk -v name="$1" '$2 == name || $2 == "*" name { print $1; exit }' "$dir/$MESHLAB_ARTIFACT_CHECKSUMS"
}

for name in $MESHLAB_ARTIFACT_RELEASE_FILES; do
  expected=$(expected_sha256 "$name")
  [ -n "$expected" ] ||
    die "$dir/$MESHLAB_ARTIFACT_CHECKSUMS does not list $name: it is not RKE2 $MESHLAB_RKE2_VERSION's checksum file"
  if [ -f "$dir/$name" ] && [ "$(file_sha256 "$dir/$name")" = "$expected" ]; then
    continue
  fi
  if [ -z "$base_url" ]; then
    die "$dir/$name does not match RKE2 $MESHLAB_RKE2_VERSION's checksum ($expected, from $MESHLAB_ARTIFACT_CHECKSUMS," \
      "got $(file_sha256 "$dir/$name")): it is damaged or of another release; replace it with the release's file"
  fi
  rm -f "$dir/$name"
  fetch "$name" "$base_url/$name"
  actual=$(file_sha256 "$dir/$name")
  if [ "$actual" != "$expected" ]; then
    rm -f "$dir/$name"
    die "the download of $name does not match RKE2 $MESHLAB_RKE2_VERSION's checksum: expected $expected, got $actual (removed)"
  fi
done

# install.sh is not a release asset: the tag's copy, its checksum recorded on first download and held to.
installer="$dir/$MESHLAB_ARTIFACT_INSTALLER"
recorded="$installer.sha256"
if [ ! -f "$installer" ]; then
  require_env MESHLAB_ARTIFACT_INSTALLER_URL
  fetch "$MESHLAB_ARTIFACT_INSTALLER" "$MESHLAB_ARTIFACT_INSTALLER_URL"
  [ -z "$base_url" ] || file_sha256 "$installer" >"$recorded"
fi
if [ -f "$recorded" ] && [ "$(file_sha256 "$installer")" != "$(cat "$recorded")" ]; then
  die "$installer changed since it was downloaded (recorded SHA-256 $(cat "$recorded")); delete both files to download it again"
fi

mkdir -p "$(dirname "$MESHLAB_ARTIFACT_MANIFEST")"
for name in "$MESHLAB_ARTIFACT_INSTALLER" "$MESHLAB_ARTIFACT_CHECKSUMS" $MESHLAB_ARTIFACT_RELEASE_FILES; do
  printf '%s  %s\n' "$(file_sha256 "$dir/$name")" "$name"
done >"$MESHLAB_ARTIFACT_MANIFEST.new"
mv "$MESHLAB_ARTIFACT_MANIFEST.new" "$MESHLAB_ARTIFACT_MANIFEST"
cat "$MESHLAB_ARTIFACT_MANIFEST"
