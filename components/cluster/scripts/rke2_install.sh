# Install the pinned RKE2 release (without starting it) and RKE2's CIS kernel parameters.
# Idempotent, and never downgrades. Later version changes go through the upgrade step.
# Inputs: MESHLAB_RKE2_VERSION, MESHLAB_RKE2_TYPE (server|agent), and MESHLAB_RKE2_ARTIFACTS (the copied
# artifacts' directory: install from them) or MESHLAB_RKE2_INSTALL_URL (download the installer).
require_env MESHLAB_RKE2_VERSION MESHLAB_RKE2_TYPE

ensure_rke2 "$MESHLAB_RKE2_VERSION" "$MESHLAB_RKE2_TYPE"
install_cis_sysctl
log "RKE2 $(installed_rke2_version) is installed ($MESHLAB_RKE2_TYPE)"
