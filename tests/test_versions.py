"""Pinned versions agree with the reference charts in ../shared and are well formed."""

from __future__ import annotations

import re

import pytest
import yaml

from config import versions
from tests.conftest import SHARED

CHARTS = SHARED / "reference" / "charts"


def _chart(directory: str) -> dict[str, str]:
    chart: dict[str, str] = yaml.safe_load((CHARTS / directory / "Chart.yaml").read_text())
    return chart


@pytest.mark.parametrize(
    ("directory", "pinned"),
    [
        (f"rke2-cilium-{versions.RKE2_CILIUM_CHART}", versions.RKE2_CILIUM_CHART),
        (f"metallb-{versions.METALLB_CHART}", versions.METALLB_CHART),
        (f"nfs-subdir-external-provisioner-{versions.NFS_PROVISIONER_CHART}", versions.NFS_PROVISIONER_CHART),
        (f"kiali-server-{versions.KIALI_CHART}", versions.KIALI_CHART),
        (f"grafana-{versions.GRAFANA_CHART}", versions.GRAFANA_CHART),
        (f"prometheus-{versions.PROMETHEUS_CHART}", versions.PROMETHEUS_CHART),
        (f"kyverno-{versions.KYVERNO_CHART}", versions.KYVERNO_CHART),
    ],
)
def test_chart_pins_match_the_reference_charts(directory, pinned):
    assert (CHARTS / directory).is_dir(), f"no reference chart for {directory}"
    assert str(_chart(directory)["version"]) == pinned


def test_bundled_cilium_is_the_targeted_cilium():
    assert _chart(f"rke2-cilium-{versions.RKE2_CILIUM_CHART}")["appVersion"] == versions.CILIUM
    assert (CHARTS / f"istio-istiod-{versions.ISTIO}").is_dir()
    assert versions.RKE2.startswith(versions.KUBERNETES + "+rke2")


def test_kyverno_supports_our_kubernetes():
    chart = _chart(f"kyverno-{versions.KYVERNO_CHART}")
    minimum = re.match(r">=\s*(\d+)\.(\d+)", chart["kubeVersion"])
    assert minimum, chart["kubeVersion"]
    major, minor = (int(part) for part in versions.KUBERNETES.lstrip("v").split(".")[:2])
    assert (major, minor) >= (int(minimum[1]), int(minimum[2]))


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_cloud_images_are_pinned_to_a_serial_with_a_sha256(arch):
    image = versions.UBUNTU_IMAGES[arch]
    assert image.arch == arch
    assert re.fullmatch(r"[0-9a-f]{64}", image.sha256)
    assert f"release-{versions.UBUNTU_SERIAL}/" in image.url
    assert image.file_name.startswith(f"ubuntu-{versions.UBUNTU_RELEASE}-server-cloudimg-{arch}.")
    assert image.file_name.endswith({"vmdk": ".vmdk", "qcow2": ".img"}[image.disk_format])
    assert image.size_bytes > 100 * 1024 * 1024
