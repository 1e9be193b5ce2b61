"""Every pinned version and download checksum meshlab uses, in one place.

Change a version here and nowhere else; settings, components and tests read it from
this module. Sources for each figure are in ../shared/reference/lab-spec.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

GuestArch = Literal["amd64", "arm64"]

RKE2 = "v1.32.7+rke2r1"
KUBERNETES = "v1.32.7"
# The Kubernetes minors an existing cluster (meshlab:kubeconfig) may run: where the pinned releases'
# support overlaps. Istio 1.27 supports 1.29 to 1.33 (istio.io supported releases), Kyverno 1.15
# (chart 3.5.3) 1.30 to 1.33.
KUBERNETES_SUPPORTED = ((1, 30), (1, 33))
# The installer reads INSTALL_RKE2_VERSION and checks the release tarball against the release's
# own sha256sum file, so a pinned version is also a verified one.
RKE2_INSTALL_URL = "https://get.rke2.io"
# Where nodes download RKE2 from when they install it themselves (the release tarball and checksums).
RKE2_RELEASES_URL = "https://github.com/rancher/rke2/releases/download"
# RKE2's system images (the control plane, CoreDNS, Cilium as rancher/mirrored-cilium-*) are all on Docker
# Hub: every line of the release's rke2-images-*.linux-<arch>.txt lists starts with docker.io/rancher/.
RKE2_IMAGE_REGISTRY = "docker.io"


@dataclass(frozen=True)
class Rke2Artifacts:
    """The files of one RKE2 release that an air-gapped install needs (rke2-docs install/airgap.md,
    "Tarball Method" with Cilium: the core and the Cilium image archives), by their release asset names."""

    version: str
    arch: GuestArch

    @property
    def tarball(self) -> str:
        return f"rke2.linux-{self.arch}.tar.gz"

    @property
    def checksums(self) -> str:
        return f"sha256sum-{self.arch}.txt"

    @property
    def image_archives(self) -> tuple[str, ...]:
        return (f"rke2-images-core.linux-{self.arch}.tar.zst", f"rke2-images-cilium.linux-{self.arch}.tar.zst")

    @property
    def image_lists(self) -> tuple[str, ...]:
        """The image references in each archive (release assets too; tools.images reads them)."""
        return tuple(name.replace(".tar.zst", ".txt") for name in self.image_archives)

    # The installer of the release's own tag: get.rke2.io serves whatever is newest. It is not in the
    # release's sha256sum file; the workstation records its checksum when it downloads it.
    INSTALLER = "install.sh"

    @property
    def installer_url(self) -> str:
        return f"https://raw.githubusercontent.com/rancher/rke2/{self.version.replace('+', '%2B')}/install.sh"

    def url(self, name: str) -> str:
        return f"{RKE2_RELEASES_URL}/{self.version.replace('+', '%2B')}/{name}"

    @property
    def node_files(self) -> tuple[str, ...]:
        """What every node receives: the installer, the tarball, the checksums and the image archives."""
        return (self.INSTALLER, self.checksums, self.tarball, *self.image_archives)


# RKE2 v1.32.7+rke2r1 bundles rke2-cilium 1.17.600, whose appVersion is Cilium 1.17.6.
RKE2_CILIUM_CHART = "1.17.600"
CILIUM = "1.17.6"
ISTIO = "1.27.0"
GATEWAY_API = "v1.3.0"
# kube-vip runs as a static pod on each server (control-plane VIP only); see lab-spec §2.5.
KUBE_VIP = "v1.0.4"
KUBE_VIP_IMAGE = f"ghcr.io/kube-vip/kube-vip:{KUBE_VIP}"
METALLB_CHART = "0.15.2"
NFS_PROVISIONER_CHART = "4.0.18"
KIALI_CHART = "2.14.0"
GRAFANA_CHART = "9.3.2"
PROMETHEUS_CHART = "27.31.0"
# Kyverno 1.15 supports Kubernetes 1.30 to 1.33; chart 3.5.3 ships app v1.15.3.
KYVERNO_CHART = "3.5.3"
# The Gateway API release manifest (standard channel) that Istio 1.27 is built against.
GATEWAY_API_CRDS_URL = (
    f"https://github.com/kubernetes-sigs/gateway-api/releases/download/{GATEWAY_API}/standard-install.yaml"
)

# The hardened test app: NGINX's unprivileged image (uid 101, port 8080), pinned to a release.
TEST_APP_IMAGE = "docker.io/nginxinc/nginx-unprivileged:1.27.4-alpine"
# Demo and check clients: curl in a non-root image. Its user is named (curl_user), so pods state
# the uid for runAsNonRoot to be verifiable.
CURL_IMAGE = "docker.io/curlimages/curl:8.12.1"
CURL_UID = 100
# The mesh benchmark's load generator and echo server (tools.bench_mesh): a static binary in a
# scratch image with no user of its own, so pods name a uid for runAsNonRoot.
FORTIO_IMAGE = "docker.io/fortio/fortio:1.69.5"
FORTIO_UID = 1000

# Istio's images, named explicitly rather than trusting what the release process wrote into the charts.
ISTIO_HUB = "docker.io/istio"


def istio_proxy_image(version: str) -> str:
    """The proxy istiod starts for every Gateway (the ingress gateway and each waypoint): global.proxy.image
    of the istiod chart ("proxyv2") under our hub and tag, of the distroless variant that the ambient
    profile selects (global.variant; the charts' own images carry the same suffix, see config/images.lock)."""
    return f"{ISTIO_HUB}/proxyv2:{version}-distroless"


@dataclass(frozen=True)
class GrafanaDashboard:
    """A dashboard from grafana.com, pinned to a revision."""

    gnet_id: int
    revision: int
    title: str


# Istio publishes one revision per release; 259 is the newest publicly pinned one before 1.27
# (1.26.1). Cilium's 1.12-era dashboards have a single revision.
# The ztunnel dashboard (Istio's id 21306, published since 1.22) is pinned to revision 1, its first
# upload: the only revision known to exist without reaching grafana.com (every dashboard there has a
# revision 1), and the chart's download script fails the Grafana pod on a missing one. Which later
# revision matches Istio 1.27 was NOT verified offline: read
# https://grafana.com/api/dashboards/21306/revisions and raise the pin.
GRAFANA_DASHBOARDS: dict[str, dict[str, GrafanaDashboard]] = {
    "istio": {
        "istio-mesh": GrafanaDashboard(7639, 259, "Istio Mesh Dashboard"),
        "istio-service": GrafanaDashboard(7636, 259, "Istio Service Dashboard"),
        "istio-workload": GrafanaDashboard(7630, 259, "Istio Workload Dashboard"),
        "istio-performance": GrafanaDashboard(11829, 259, "Istio Performance Dashboard"),
        "istio-control-plane": GrafanaDashboard(7645, 259, "Istio Control Plane Dashboard"),
        "istio-ztunnel": GrafanaDashboard(21306, 1, "Istio Ztunnel Dashboard"),
    },
    "cilium": {
        "cilium-agent": GrafanaDashboard(16611, 1, "Cilium Agent Metrics"),
        "cilium-operator": GrafanaDashboard(16612, 1, "Cilium Operator Metrics"),
        "hubble": GrafanaDashboard(16613, 1, "Hubble Metrics"),
    },
}


@dataclass(frozen=True)
class HelmChart:
    """A chart pinned to an exact version, and the repository it comes from."""

    name: str
    version: str
    repository: str


ISTIO_REPOSITORY = "https://istio-release.storage.googleapis.com/charts"
CHARTS: dict[str, HelmChart] = {
    "istio-base": HelmChart("base", ISTIO, ISTIO_REPOSITORY),
    "istiod": HelmChart("istiod", ISTIO, ISTIO_REPOSITORY),
    "istio-cni": HelmChart("cni", ISTIO, ISTIO_REPOSITORY),
    "ztunnel": HelmChart("ztunnel", ISTIO, ISTIO_REPOSITORY),
    "metallb": HelmChart("metallb", METALLB_CHART, "https://metallb.github.io/metallb"),
    "nfs-provisioner": HelmChart(
        "nfs-subdir-external-provisioner",
        NFS_PROVISIONER_CHART,
        "https://kubernetes-sigs.github.io/nfs-subdir-external-provisioner/",
    ),
    "kyverno": HelmChart("kyverno", KYVERNO_CHART, "https://kyverno.github.io/kyverno/"),
    "prometheus": HelmChart("prometheus", PROMETHEUS_CHART, "https://prometheus-community.github.io/helm-charts"),
    "grafana": HelmChart("grafana", GRAFANA_CHART, "https://grafana.github.io/helm-charts"),
    "kiali": HelmChart("kiali-server", KIALI_CHART, "https://kiali.org/helm-charts"),
}


@dataclass(frozen=True)
class CloudImage:
    """One Ubuntu cloud image file, pinned to a release serial and its published SHA-256."""

    arch: GuestArch
    url: str
    sha256: str
    size_bytes: int
    # "vmdk" is read by VBoxManage directly; "qcow2" is converted with qemu-img first.
    disk_format: Literal["vmdk", "qcow2"]
    # VirtualBox --ostype for the guest.
    vbox_os_type: str

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[1]


UBUNTU_RELEASE = "24.04"
UBUNTU_SERIAL = "20260911"
_UBUNTU_BASE = f"https://cloud-images.ubuntu.com/releases/noble/release-{UBUNTU_SERIAL}"

UBUNTU_IMAGES: dict[GuestArch, CloudImage] = {
    # Canonical publishes a streamOptimized VMDK for amd64 only; VirtualBox reads it as is.
    "amd64": CloudImage(
        arch="amd64",
        url=f"{_UBUNTU_BASE}/ubuntu-{UBUNTU_RELEASE}-server-cloudimg-amd64.vmdk",
        sha256="c1655a37ff4141e4f16effb7364a640188cc17ec7dfc869a1283aa724dcd6bc1",
        size_bytes=594127360,
        disk_format="vmdk",
        vbox_os_type="Ubuntu_64",
    ),
    # arm64 (Apple Silicon hosts) has only the qcow2 image.
    "arm64": CloudImage(
        arch="arm64",
        url=f"{_UBUNTU_BASE}/ubuntu-{UBUNTU_RELEASE}-server-cloudimg-arm64.img",
        sha256="7b682958a67ff5de068e36de6af8b75fa645d296af5a70d6500527f6a33781db",
        size_bytes=619621888,
        disk_format="qcow2",
        vbox_os_type="Ubuntu_arm64",
    ),
}

# VirtualBox 7.0 introduced `hostonlynet` (required on macOS); older hosts are not supported.
VIRTUALBOX_MIN = (7, 0)


# --- Tools -------------------------------------------------------------------------------------------
# Helm renders the pinned charts for `python -m tools.images` (the images a lab pulls, config/images.lock);
# tools/helm.sh builds this release from Go modules when no Helm 3 is at hand.
HELM = "v3.18.6"
