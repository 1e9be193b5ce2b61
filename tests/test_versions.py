"""Pinned versions agree with the reference charts in ../shared and are well formed."""

from __future__ import annotations

import re

import pytest
import yaml

from config import versions
from tests.conftest import SHARED
from tests.kube_reference import reference_chart

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


@pytest.mark.parametrize("key", sorted(versions.CHARTS))
def test_every_helm_chart_is_pinned_to_its_reference_chart(key):
    chart = versions.CHARTS[key]
    reference = yaml.safe_load((reference_chart(chart.name, chart.version) / "Chart.yaml").read_text())
    assert reference["name"] == chart.name
    # Istio's charts are read from the source tag, where Chart.yaml says 1.0.0 until release
    # tooling stamps the version; their reference folder is named for the release instead.
    expected = "1.0.0" if chart.repository == versions.ISTIO_REPOSITORY else chart.version
    assert str(reference["version"]) == expected
    assert chart.repository.startswith("https://")


def test_istio_images_are_pinned_to_the_chart_version():
    for key in ("istio-base", "istiod", "istio-cni", "ztunnel"):
        assert versions.CHARTS[key].version == versions.ISTIO
    assert versions.ISTIO_HUB == "docker.io/istio"


def test_gateway_api_manifest_is_the_pinned_standard_channel():
    assert versions.GATEWAY_API_CRDS_URL.endswith(f"/download/{versions.GATEWAY_API}/standard-install.yaml")
    crds = SHARED / "reference" / "crds" / f"gateway-api-{versions.GATEWAY_API}-standard"
    assert crds.is_dir()


def test_grafana_dashboards_are_pinned():
    dashboards = [d for folder in versions.GRAFANA_DASHBOARDS.values() for d in folder.values()]
    assert len(dashboards) >= 6
    assert all(d.gnet_id > 0 and d.revision >= 1 and d.title for d in dashboards)
    assert len({d.gnet_id for d in dashboards}) == len(dashboards)
