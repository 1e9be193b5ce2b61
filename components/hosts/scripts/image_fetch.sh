# Download the pinned Ubuntu cloud image once, verify its SHA-256, and convert it to the VDI
# every VM copies. Inputs: MESHLAB_IMAGE_URL, MESHLAB_IMAGE_SHA256, MESHLAB_IMAGE_FORMAT
# (vmdk|qcow2), MESHLAB_BASE_DISK (file name). Prints the base disk path.
require_env MESHLAB_IMAGE_URL MESHLAB_IMAGE_SHA256 MESHLAB_IMAGE_FORMAT MESHLAB_BASE_DISK

images="$(cache_dir)/images"
mkdir -p "$images"
image="$images/${MESHLAB_IMAGE_URL##*/}"
base="$images/$MESHLAB_BASE_DISK"

if [ -f "$base" ]; then
  echo "$base"
  exit 0
fi

if [ ! -f "$image" ] || [ "$(sha256_of "$image")" != "$MESHLAB_IMAGE_SHA256" ]; then
  rm -f "$image"
  curl --fail --location --retry 3 --silent --show-error --output "$image.partial" "$MESHLAB_IMAGE_URL" ||
    die "could not download $MESHLAB_IMAGE_URL"
  actual=$(sha256_of "$image.partial")
  if [ "$actual" != "$MESHLAB_IMAGE_SHA256" ]; then
    rm -f "$image.partial"
    die "SHA-256 mismatch for $MESHLAB_IMAGE_URL: expected $MESHLAB_IMAGE_SHA256, got $actual (download removed)"
  fi
  mv "$image.partial" "$image"
fi

rm -f "$base.partial.vdi"
case "$MESHLAB_IMAGE_FORMAT" in
  vmdk)
    VBoxManage clonemedium disk "$image" "$base.partial.vdi" --format VDI >/dev/null
    # Forget both media again: VMs copy the file, so the registry must not hold its UUID.
    VBoxManage closemedium disk "$base.partial.vdi"
    VBoxManage closemedium disk "$image"
    ;;
  qcow2)
    qemu-img convert -O vdi "$image" "$base.partial.vdi"
    ;;
  *) die "unknown image format $MESHLAB_IMAGE_FORMAT" ;;
esac
mv "$base.partial.vdi" "$base"
echo "$base"
