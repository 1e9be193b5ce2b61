# Download the cloud image once (a file:// URL is a local image), verify its SHA-256, and convert it
# to the base disk every VM copies (VirtualBox, .vdi) or backs onto (QEMU, .qcow2), by the base
# disk's extension. Inputs: MESHLAB_IMAGE_URL, MESHLAB_IMAGE_SHA256, MESHLAB_IMAGE_FORMAT
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

base_format=${base##*.}
partial="$base.partial.$base_format"
rm -f "$partial"
case "$MESHLAB_IMAGE_FORMAT/$base_format" in
  vmdk/vdi)
    VBoxManage clonemedium disk "$image" "$partial" --format VDI >/dev/null
    # Forget both media again: VMs copy the file, so the registry must not hold its UUID.
    VBoxManage closemedium disk "$partial"
    VBoxManage closemedium disk "$image"
    ;;
  qcow2/vdi | vmdk/qcow2 | qcow2/qcow2)
    qemu-img convert -f "$MESHLAB_IMAGE_FORMAT" -O "$base_format" "$image" "$partial"
    ;;
  *) die "cannot turn a $MESHLAB_IMAGE_FORMAT image into a .$base_format base disk" ;;
esac
mv "$partial" "$base"
echo "$base"
