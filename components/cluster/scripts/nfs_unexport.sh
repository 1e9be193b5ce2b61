# Stop exporting; the data directory stays (volumes may still hold data someone needs).
rm -f "$ROOT/etc/exports.d/meshlab.exports"
if command -v exportfs >/dev/null; then
  exportfs -ra
fi
log "export removed; data kept in ${MESHLAB_EXPORT_PATH:-the export directory}"
