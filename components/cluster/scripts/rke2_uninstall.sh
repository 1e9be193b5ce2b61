# Remove RKE2 from a node that stays (e.g. its role changed). A deleted VM skips this step.
if prefix=$(rke2_prefix) && [ -x "$prefix/bin/rke2-uninstall.sh" ]; then
  "$prefix/bin/rke2-uninstall.sh" >/dev/null
  log "RKE2 uninstalled"
fi
rm -f "$ROOT/etc/sysctl.d/60-rke2-cis.conf"
