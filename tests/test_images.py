"""The images a lab pulls (tools/images.py) and the chart image lock (config/images.lock, config/images.py).

Offline: no Helm, no network. The real `helm template` path runs in the real-apply tier
(tests/apply/test_images.py), against the pods the real charts create.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile
import textwrap
import urllib.error
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import images as config_images
from config import versions
from config.images import LockError, lab_registries, locked_images, parse_lock, pinned_images, registry_of
from config.loader import read_stack_file, settings_from_config
from config.settings import Settings
from tests.conftest import ROOT, RenderWith
from tests.test_existing_cluster import FULL, existing_config
from tools import images
from tools.images import (
    ChartRelease,
    ChartSource,
    ImagesError,
    manifest_images,
    mirror_destination,
    output_lines,
    qualified,
    spec_images,
)
from tools.render import Rendering, render

RKE2_CORE = "docker.io/rancher/hardened-kubernetes:v1.32.7-rke2r1-build20250716"
RKE2_CILIUM = "docker.io/rancher/mirrored-cilium-cilium:v1.17.6"


def settings_of(config: Any) -> Settings:
    return settings_from_config(config)


# --- the lock -------------------------------------------------------------------------------------------


def test_the_lock_parses_and_names_every_pinned_chart_at_its_pinned_version():
    locked = locked_images()
    assert len(locked) >= 15, "the lock is nearly empty: run `python -m tools.images --write-lock`"
    for entry in locked:
        assert entry.release in versions.CHARTS, entry
        # A chart bumped in config/versions.py without `--write-lock` fails here.
        assert entry.chart_version == versions.CHARTS[entry.release].version, (
            f"{entry.release} is pinned at {versions.CHARTS[entry.release].version} but the lock was rendered "
            f"from {entry.chart_version}: run `python -m tools.images --write-lock`"
        )
        assert qualified(entry.image) == entry.image, entry
    # Every chart runs pods but istio-base (CRDs and cluster resources only).
    assert {entry.release for entry in locked} == set(versions.CHARTS) - {"istio-base"}


def test_the_lock_says_what_it_is_and_is_sorted():
    text = config_images.LOCK_FILE.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert any("python -m tools.images --write-lock" in line for line in header)
    assert any("do not edit" in line for line in header)
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert body == sorted(set(body))
    assert text == images.LOCK_HEADER + "".join(f"{line}\n" for line in body)


def test_the_lock_holds_what_only_a_switched_on_setting_renders():
    """No stack turns node-exporter on: its image is in the lock only because the lock renders the charts
    again with each boolean setting on."""
    stacks = [settings_from_config(read_stack_file(path)) for path in images.stack_files()]
    assert len(stacks) == 3
    assert not any(settings.platform.node_exporter_enabled for settings in stacks)
    assert any(e.release == "prometheus" and "/node-exporter:" in e.image for e in locked_images())


def test_parse_lock_reads_comments_and_blank_lines_and_refuses_other_shapes():
    text = "# header\n\nistiod 1.27.0 docker.io/istio/pilot:1.27.0\n  \n"
    [entry] = parse_lock(text)
    assert (entry.release, entry.chart_version, entry.image) == ("istiod", "1.27.0", "docker.io/istio/pilot:1.27.0")
    with pytest.raises(LockError, match="line 2"):
        parse_lock("# header\nistiod docker.io/istio/pilot:1.27.0\n")


def test_lab_registries_cover_every_registry_the_lock_and_meshlab_pull_from():
    registries = set(lab_registries())
    locked = {registry_of(entry.image) for entry in locked_images()}
    assert locked, "no registry in the lock"
    assert locked <= registries, locked - registries
    assert {registry_of(image) for image in pinned_images()} <= registries
    assert versions.RKE2_IMAGE_REGISTRY in registries
    # The charts alone pull from Docker Hub, Quay, registry.k8s.io and Kyverno's registry.
    assert {"docker.io", "quay.io", "registry.k8s.io", "reg.kyverno.io"} <= locked


def test_lock_text_lists_each_release_image_once_sorted_and_qualified():
    def release(key: str) -> ChartRelease:
        chart = versions.CHARTS[key]
        return ChartRelease(key, chart.name, chart.version, chart.repository, key, "default", "{}")

    manifests = {
        release("metallb"): deployment("quay.io/metallb/speaker:v0.15.2", "quay.io/metallb/controller:v0.15.2"),
        release("grafana"): deployment("curlimages/curl:8.9.1", "grafana/grafana:12.1.0"),
    }
    text = images.lock_text(manifests)
    assert text.startswith(images.LOCK_HEADER)
    assert [str(e.image) for e in parse_lock(text)] == [
        "docker.io/curlimages/curl:8.9.1",
        "docker.io/grafana/grafana:12.1.0",
        "quay.io/metallb/controller:v0.15.2",
        "quay.io/metallb/speaker:v0.15.2",
    ]
    assert parse_lock(text)[0].release == "grafana" and parse_lock(text)[0].chart_version == versions.GRAFANA_CHART


def test_check_lock_prints_a_diff_and_fails_when_the_lock_is_stale(monkeypatch, capsys):
    current = config_images.LOCK_FILE.read_text()
    stale = current + "kiali 2.14.0 quay.io/kiali/kiali:v9.9.9\n"
    monkeypatch.setattr(images, "build_lock", lambda charts, work, helm=None: stale)
    assert images.main(["--check-lock", "--charts", str(ROOT)]) == 1
    out, err = capsys.readouterr()
    assert "+kiali 2.14.0 quay.io/kiali/kiali:v9.9.9" in out
    assert "--write-lock" in err
    assert config_images.LOCK_FILE.read_text() == current
    monkeypatch.setattr(images, "build_lock", lambda charts, work, helm=None: current)
    assert images.main(["--check-lock", "--charts", str(ROOT)]) == 0


def test_lock_variants_turn_on_each_boolean_that_is_off_and_keep_only_valid_settings(stack_configs):
    config = stack_configs["lab"]
    settings = settings_of(config)
    off = images.switched_off(settings)
    assert "node_exporter_enabled" in off
    variants = list(images.lock_variants(config, settings))
    assert variants[0] is config
    switched = [settings_of(variant) for variant in variants[1:]]
    assert any(s.platform.node_exporter_enabled for s in switched)
    assert 1 < len(variants) <= len(off) + 2


# --- image references -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("nginx", "docker.io"),
        ("nginx:1.27", "docker.io"),
        ("library/nginx:1.27", "docker.io"),
        ("curlimages/curl:8.12.1", "docker.io"),
        ("docker.io/istio/pilot:1.27.0", "docker.io"),
        ("index.docker.io/library/busybox:1.36", "docker.io"),
        ("registry-1.docker.io/library/busybox", "docker.io"),
        ("quay.io/metallb/speaker:v0.15.2", "quay.io"),
        ("registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2", "registry.k8s.io"),
        ("reg.kyverno.io/kyverno/kyverno:v1.15.3", "reg.kyverno.io"),
        ("ghcr.io/kube-vip/kube-vip@sha256:" + "a" * 64, "ghcr.io"),
        ("registry.example:5000/team/app:1", "registry.example:5000"),
        ("mirror:5000/app", "mirror:5000"),
        ("localhost/app:dev", "localhost"),
        ("localhost:5000/app:dev", "localhost:5000"),
        ("10.0.0.5:5000/app:1", "10.0.0.5:5000"),
    ],
)
def test_registry_of_real_world_references(image, registry):
    assert registry_of(image) == registry
    assert registry_of(qualified(image)) == registry


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27-alpine", "docker.io/library/nginx:1.27-alpine"),
        ("curlimages/curl:8.12.1", "docker.io/curlimages/curl:8.12.1"),
        ("index.docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"),
        ("registry-1.docker.io/istio/proxyv2:1.27.0", "docker.io/istio/proxyv2:1.27.0"),
        ("quay.io/kiali/kiali:v2.14.0", "quay.io/kiali/kiali:v2.14.0"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("busybox@sha256:" + "b" * 64, "docker.io/library/busybox@sha256:" + "b" * 64),
        ("ghcr.io/a/b:v1@sha256:" + "c" * 64, "ghcr.io/a/b:v1@sha256:" + "c" * 64),
        ("  quay.io/x/y:1  ", "quay.io/x/y:1"),
    ],
)
def test_qualified_names_registry_repository_and_tag_or_digest(image, expected):
    assert qualified(image) == expected
    assert qualified(expected) == expected


@pytest.mark.parametrize("image", ["[secret]", "[unknown]", "", "Nginx:1", "quay.io/x/y:", "x@sha256:12", "a b"])
def test_qualified_refuses_what_is_not_an_image(image):
    with pytest.raises(ImagesError, match="not an image reference"):
        qualified(image)


def test_mirror_pairs_keep_the_repository_path_and_the_tag_or_digest():
    found = {
        "quay.io/metallb/speaker:v0.15.2": {"chart/metallb"},
        "docker.io/library/busybox@sha256:" + "d" * 64: {"meshlab"},
        "docker.io/curlimages/curl:8.12.1": {"meshlab", "chart/grafana"},
    }
    assert output_lines(found, "mirror.example:5000/lab/") == [
        "docker.io/curlimages/curl:8.12.1 mirror.example:5000/lab/curlimages/curl:8.12.1",
        f"docker.io/library/busybox@sha256:{'d' * 64} mirror.example:5000/lab/library/busybox@sha256:{'d' * 64}",
        "quay.io/metallb/speaker:v0.15.2 mirror.example:5000/lab/metallb/speaker:v0.15.2",
    ]
    assert output_lines(found, "", origin=True)[0] == "docker.io/curlimages/curl:8.12.1 chart/grafana,meshlab"
    assert output_lines(found, "m.example", origin=True)[2] == (
        "quay.io/metallb/speaker:v0.15.2 m.example/metallb/speaker:v0.15.2 chart/metallb"
    )
    assert output_lines(found) == sorted(found)
    assert mirror_destination("nginx", "m.example") == "m.example/library/nginx:latest"


@pytest.mark.parametrize("mirror", ["https://m.example", "", "/", "m.example/a b"])
def test_a_mirror_is_host_and_prefix_only(mirror):
    with pytest.raises(ImagesError, match="HOST"):
        images._checked_mirror(mirror)


# --- pod specs in manifests ------------------------------------------------------------------------------


def deployment(*containers: str, kind: str = "Deployment") -> str:
    spec = {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(containers)]}
    return yaml.safe_dump({"apiVersion": "apps/v1", "kind": kind, "spec": {"template": {"spec": spec}}})


WORKLOADS = textwrap.dedent(
    """\
    ---
    # Source: chart/templates/pod.yaml
    apiVersion: v1
    kind: Pod
    metadata: {name: pod}
    spec:
      initContainers: [{name: init, image: "example.test/pod-init:1"}]
      containers: [{name: main, image: example.test/pod:1}]
      ephemeralContainers: [{name: debug, image: example.test/pod-debug:1}]
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: deployment}
    spec:
      template:
        spec:
          initContainers: [{name: init, image: example.test/deployment-init:1}]
          containers: [{name: main, image: example.test/deployment:1}, {name: side, image: example.test/side:1}]
    ---
    apiVersion: apps/v1
    kind: DaemonSet
    spec: {template: {spec: {containers: [{name: main, image: example.test/daemonset:1}]}}}
    ---
    apiVersion: apps/v1
    kind: StatefulSet
    spec: {template: {spec: {containers: [{name: main, image: example.test/statefulset:1}]}}}
    ---
    apiVersion: apps/v1
    kind: ReplicaSet
    spec: {template: {spec: {containers: [{name: main, image: example.test/replicaset:1}]}}}
    ---
    apiVersion: batch/v1
    kind: Job
    metadata:
      name: migrate
      annotations: {helm.sh/hook: "pre-install,pre-upgrade", helm.sh/hook-delete-policy: hook-succeeded}
    spec: {template: {spec: {containers: [{name: main, image: example.test/hook-job:1}]}}}
    ---
    apiVersion: batch/v1
    kind: CronJob
    spec:
      schedule: "*/5 * * * *"
      jobTemplate:
        spec:
          template:
            spec:
              initContainers: [{name: init, image: example.test/cronjob-init:1}]
              containers: [{name: main, image: example.test/cronjob:1}]
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: test-connection
      annotations: {"helm.sh/hook": test}
    spec: {containers: [{name: test, image: example.test/helm-test:1}]}
    ---
    apiVersion: v1
    kind: Pod
    metadata:
      name: legacy-test
      annotations: {"helm.sh/hook": "test-success"}
    spec: {containers: [{name: test, image: example.test/helm-test-legacy:1}]}
    ---
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: not-a-pod}
    data: {image: example.test/in-a-configmap:1}
    ---
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    spec: {template: {spec: {containers: [{name: x, image: example.test/in-a-crd:1}]}}}
    ---
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Pod
      spec: {containers: [{name: listed, image: example.test/listed:1}]}
    ---
    """
)


def test_manifest_images_walk_every_workload_kind_init_and_ephemeral_containers_and_install_hooks():
    assert manifest_images(WORKLOADS) == {
        f"example.test/{name}:1"
        for name in (
            "pod-init", "pod", "pod-debug", "deployment-init", "deployment", "side", "daemonset", "statefulset",
            "replicaset", "hook-job", "cronjob-init", "cronjob", "listed",
        )
    }  # fmt: skip


def test_spec_images_skip_containers_without_an_image():
    spec = {"containers": [{"name": "a"}, {"name": "b", "image": " quay.io/x/y:1 "}], "initContainers": None}
    assert spec_images(spec) == ["quay.io/x/y:1"]


def test_manifest_images_of_nothing_is_nothing():
    assert manifest_images("") == set()
    assert manifest_images("---\n# Source: x\n---\n") == set()


ISTIOD_CONFIG_MAPS = """\
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |-
    defaultConfig:
      image:
        imageType: %(image_type)s
---
apiVersion: v1
kind: ConfigMap
metadata: {name: istio-sidecar-injector, namespace: istio-system}
data:
  values: |-
    {"global": {"hub": "docker.io/istio", "tag": "1.27.0", "variant": "%(variant)s", "proxy": {"image": "proxyv2"}}}
"""


@pytest.mark.parametrize(
    ("image_type", "variant", "proxy"),
    [
        ("distroless", "distroless", "docker.io/istio/proxyv2:1.27.0-distroless"),
        ("default", "distroless", "docker.io/istio/proxyv2:1.27.0"),
        ("''", "debug", "docker.io/istio/proxyv2:1.27.0-debug"),
        ("''", "", "docker.io/istio/proxyv2:1.27.0"),
    ],
)
def test_the_proxy_istiod_starts_follows_its_charts_image_type(image_type, variant, proxy):
    manifest = ISTIOD_CONFIG_MAPS % {"image_type": image_type, "variant": variant}
    assert images.istio_proxy_image_of(manifest) == proxy
    assert images.istio_proxy_image_of(deployment("docker.io/istio/pilot:1.27.0")) is None


# --- meshlab's own workloads, from the real program -----------------------------------------------------


def test_meshlab_images_of_the_lab_stack_come_from_its_registrations(lab: Rendering, stack_configs):
    settings = settings_of(stack_configs["lab"])
    found = images.meshlab_images(settings, lab)
    assert versions.TEST_APP_IMAGE in found  # the test app's Deployment
    assert versions.CURL_IMAGE in found  # the webhook waits' Jobs
    assert versions.KUBE_VIP_IMAGE in found  # the servers' static pod
    assert versions.istio_proxy_image(versions.ISTIO) in found  # the ingress and the waypoint
    assert lab.of_type(images.GATEWAY_TYPE)
    assert images.workload_images(lab) <= found
    assert len(images.workload_images(lab)) >= 2
    # The pinned one is what the ambient profile selects (the distroless variant of the charts' images).
    assert versions.istio_proxy_image(versions.ISTIO) == "docker.io/istio/proxyv2:1.27.0-distroless"
    # istiod's own proxy, when its chart was rendered, replaces the pinned one.
    proxied = images.meshlab_images(settings, lab, "docker.io/istio/proxyv2:1.27.0-debug")
    assert "docker.io/istio/proxyv2:1.27.0-debug" in proxied
    assert versions.istio_proxy_image(versions.ISTIO) not in proxied


def test_the_benchmark_adds_its_load_generator(render_with: RenderWith, stack_configs):
    rendering = render_with({"meshlab:benchmark": "on"})
    assert versions.FORTIO_IMAGE in images.workload_images(rendering)
    assert versions.FORTIO_IMAGE not in images.meshlab_images(settings_of(stack_configs["lab"]), render_with({}))


def test_every_release_the_lab_registers_maps_to_a_pinned_chart(lab: Rendering):
    found = images.releases(lab)
    assert {release.key for release in found} == set(versions.CHARTS)
    for release in found:
        assert release.version == versions.CHARTS[release.key].version
        assert release.repository == versions.CHARTS[release.key].repository
        assert release.namespace and release.name
    istiod = next(release for release in found if release.key == "istiod")
    assert istiod.values["profile"] == "ambient"


def fake_charts(monkeypatch: pytest.MonkeyPatch) -> list[ChartRelease]:
    """render_charts without Helm: each release's manifest is a Deployment of example.test/KEY."""
    rendered: list[ChartRelease] = []

    def render_charts(wanted: Any, source: ChartSource, helm: str) -> dict[ChartRelease, str]:
        assert helm == "/fake/helm"
        rendered.extend(wanted)
        return {release: deployment(f"example.test/{release.key}:{release.version}") for release in wanted}

    monkeypatch.setattr(images, "render_charts", render_charts)
    return rendered


def write_rke2_lists(folder: Path, settings: Settings) -> None:
    artifacts = versions.Rke2Artifacts(settings.cluster.rke2_version, settings.topology.guest_arch)
    folder.mkdir(parents=True, exist_ok=True)
    core, cilium = artifacts.image_lists
    (folder / core).write_text(f"{RKE2_CORE}\n\ndocker.io/rancher/mirrored-coredns-coredns:1.12.2\n")
    (folder / cilium).write_text(f"{RKE2_CILIUM}\n")


def no_download(url: str) -> bytes:
    raise urllib.error.URLError("offline (test)")


def test_a_built_lab_lists_rke2_the_charts_and_meshlab_with_their_origins(
    lab: Rendering, stack_configs, monkeypatch, tmp_path
):
    settings = settings_of(stack_configs["lab"])
    rendered = fake_charts(monkeypatch)
    write_rke2_lists(tmp_path / "rke2" / f"{settings.cluster.rke2_version}-{settings.topology.guest_arch}", settings)
    monkeypatch.setenv("MESHLAB_CACHE_DIR", str(tmp_path))
    found = images.stack_images(settings, lab, ChartSource(tmp_path), lambda: "/fake/helm", fetch=no_download)
    assert found[RKE2_CORE] == {"rke2"} and found[RKE2_CILIUM] == {"rke2"}
    assert found[qualified(versions.KUBE_VIP_IMAGE)] == {"meshlab"}
    assert found[versions.TEST_APP_IMAGE] == {"meshlab"}
    assert found[f"example.test/kyverno:{versions.KYVERNO_CHART}"] == {"chart/kyverno"}
    assert len(rendered) == len(versions.CHARTS)
    assert all(image == qualified(image) for image in found)
    assert {origin for origins in found.values() for origin in origins} == {
        "rke2", "meshlab", *(f"chart/{key}" for key in versions.CHARTS)
    }  # fmt: skip


def test_an_existing_cluster_stack_has_no_rke2_and_no_kube_vip(monkeypatch, tmp_path):
    config = existing_config(FULL)
    settings = settings_of(config)
    assert settings.cluster.existing
    rendering = render(config, "existing")
    assert images.releases(rendering), "the existing-cluster stack installs no chart: nothing was rendered"
    fake_charts(monkeypatch)
    monkeypatch.setenv("MESHLAB_CACHE_DIR", str(tmp_path))
    # No RKE2 lists anywhere and no network: an existing cluster never asks for them.
    found = images.stack_images(settings, rendering, ChartSource(tmp_path), lambda: "/fake/helm", fetch=no_download)
    origins = {origin for origins in found.values() for origin in origins}
    assert "rke2" not in origins
    assert "meshlab" in origins and "chart/istiod" in origins
    assert qualified(versions.KUBE_VIP_IMAGE) not in found
    assert versions.TEST_APP_IMAGE in found
    assert not list(tmp_path.iterdir()), "nothing is downloaded or cached for an existing cluster"


# --- RKE2's lists -----------------------------------------------------------------------------------------


def test_without_rke2_lists_and_offline_the_error_names_the_files_and_both_ways(stack_configs, tmp_path):
    settings = settings_of(stack_configs["lab"])
    with pytest.raises(ImagesError) as missing:
        images.rke2_image_lists(settings, tmp_path, fetch=no_download)
    message = str(missing.value)
    for name in versions.Rke2Artifacts(versions.RKE2, "amd64").image_lists:
        assert name in message
    assert str(tmp_path / "rke2" / f"{versions.RKE2}-amd64") in message
    assert "meshlab:rke2Artifacts" in message
    assert "--skip-rke2" in message
    assert "offline (test)" in message
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence


def test_the_command_fails_with_that_sentence_and_prints_nothing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(images, "fetch_url", no_download)
    monkeypatch.setenv("MESHLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(images, "helm_binary", lambda: pytest.fail("Helm was asked for before RKE2's lists"))
    assert images.main(["lab"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "rke2-images-core.linux-amd64.txt" in err and "meshlab:rke2Artifacts" in err


def test_skip_rke2_says_so_on_stderr(monkeypatch, tmp_path, capsys):
    fake_charts(monkeypatch)
    monkeypatch.setattr(images, "fetch_url", no_download)
    monkeypatch.setattr(images, "helm_binary", lambda: "/fake/helm")
    monkeypatch.setenv("MESHLAB_CACHE_DIR", str(tmp_path))
    assert images.main(["lab", "--skip-rke2", "--origin"]) == 0
    out, err = capsys.readouterr()
    assert "RKE2's system images are left out" in err
    listed = out.splitlines()
    assert listed == sorted(listed) and len(listed) > len(versions.CHARTS)
    assert f"{versions.TEST_APP_IMAGE} meshlab" in listed
    assert not any(line.endswith(" rke2") for line in listed)


def test_rke2_lists_are_read_from_the_artifacts_directory_then_the_cache(stack_configs, tmp_path):
    settings = settings_of(stack_configs["lab"])
    artifacts = tmp_path / "airgap"
    write_rke2_lists(artifacts, settings)
    configured = settings.model_copy(
        update={"sources": settings.sources.model_copy(update={"rke2_artifacts": str(artifacts)})}
    )
    found = images.rke2_images(configured, tmp_path / "cache", fetch=no_download)
    assert found == {RKE2_CORE, RKE2_CILIUM, "docker.io/rancher/mirrored-coredns-coredns:1.12.2"}
    assert {registry_of(image) for image in found} == {versions.RKE2_IMAGE_REGISTRY}


def rke2_release(settings: Settings, lists: Mapping[str, bytes], listed: Mapping[str, bytes]) -> Callable[[str], bytes]:
    """A fake of the release's downloads: the lists, and a sha256sum file listing `listed`'s checksums."""
    artifacts = versions.Rke2Artifacts(settings.cluster.rke2_version, settings.topology.guest_arch)
    sums = "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in listed.items())
    served = {artifacts.url(name): data for name, data in lists.items()}
    served[artifacts.url(artifacts.checksums)] = sums.encode()

    def fetch(url: str) -> bytes:
        if url not in served:
            raise urllib.error.URLError(f"404 {url}")
        return served[url]

    return fetch


def test_rke2_lists_are_downloaded_verified_and_cached(stack_configs, tmp_path):
    settings = settings_of(stack_configs["lab"])
    core, cilium = versions.Rke2Artifacts(versions.RKE2, "amd64").image_lists
    lists = {core: f"{RKE2_CORE}\n".encode(), cilium: f"{RKE2_CILIUM}\n".encode()}
    found = images.rke2_images(settings, tmp_path, fetch=rke2_release(settings, lists, lists))
    assert found == {RKE2_CORE, RKE2_CILIUM}
    cached = tmp_path / "rke2" / f"{versions.RKE2}-amd64"
    assert (cached / core).read_bytes() == lists[core]
    # Cached: no download the second time.
    assert images.rke2_images(settings, tmp_path, fetch=no_download) == found


def test_a_downloaded_rke2_list_that_does_not_match_its_checksum_is_refused(stack_configs, tmp_path):
    settings = settings_of(stack_configs["lab"])
    core, cilium = versions.Rke2Artifacts(versions.RKE2, "amd64").image_lists
    lists = {core: b"docker.io/rancher/evil:1\n", cilium: f"{RKE2_CILIUM}\n".encode()}
    listed = {core: f"{RKE2_CORE}\n".encode(), cilium: lists[cilium]}
    with pytest.raises(ImagesError, match="does not match its SHA-256"):
        images.rke2_images(settings, tmp_path, fetch=rke2_release(settings, lists, listed))
    assert not (tmp_path / "rke2" / f"{versions.RKE2}-amd64" / core).exists()


# --- charts from a folder or a repository ------------------------------------------------------------------


def chart_archive(name: str, version: str) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
        data = yaml.safe_dump({"apiVersion": "v2", "name": name, "version": version}).encode()
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def a_release(repository: str = "https://charts.example.test/repo") -> ChartRelease:
    return ChartRelease("metallb", "metallb", versions.METALLB_CHART, repository, "metallb", "metallb-system", "{}")


def test_a_chart_is_downloaded_once_from_its_repository_and_checked_against_the_index(tmp_path):
    archive = chart_archive("metallb", versions.METALLB_CHART)
    index = {
        "apiVersion": "v1",
        "entries": {
            "metallb": [
                {"version": "0.0.1", "urls": ["metallb-0.0.1.tgz"]},
                {
                    "version": versions.METALLB_CHART,
                    "urls": [f"archives/metallb-{versions.METALLB_CHART}.tgz"],
                    "digest": hashlib.sha256(archive).hexdigest(),
                },
            ]
        },
    }
    served = {
        "https://charts.example.test/repo/index.yaml": yaml.safe_dump(index).encode(),
        f"https://charts.example.test/repo/archives/metallb-{versions.METALLB_CHART}.tgz": archive,
    }
    asked: list[str] = []

    def fetch(url: str) -> bytes:
        asked.append(url)
        return served[url]

    path = ChartSource(tmp_path / "work", cache=tmp_path / "cache", fetch=fetch).archive(a_release())
    assert path.read_bytes() == archive
    assert path.is_relative_to(tmp_path / "cache" / "charts")
    assert len(asked) == 2
    again = ChartSource(tmp_path / "work", cache=tmp_path / "cache", fetch=no_download).archive(a_release())
    assert again == path

    served[f"https://charts.example.test/repo/archives/metallb-{versions.METALLB_CHART}.tgz"] = chart_archive(
        "metallb", "9.9.9"
    )
    with pytest.raises(ImagesError, match="does not match the digest"):
        ChartSource(tmp_path / "work", cache=tmp_path / "other", fetch=fetch).archive(a_release())


def test_an_unreachable_repository_says_how_to_give_the_charts(tmp_path):
    with pytest.raises(ImagesError, match=r"--charts DIR.*meshlab:chartRepository"):
        ChartSource(tmp_path, cache=tmp_path, fetch=no_download).archive(a_release())


def test_a_charts_folder_is_packaged_as_the_apply_tiers_repository_packages_it(tmp_path):
    folder = tmp_path / "sources"
    (folder / f"metallb-{versions.METALLB_CHART}").mkdir(parents=True)
    chart = {"apiVersion": "v2", "name": "metallb", "version": versions.METALLB_CHART}
    (folder / f"metallb-{versions.METALLB_CHART}" / "Chart.yaml").write_text(yaml.safe_dump(chart))
    (folder / "kyverno-3.5.3.tgz").write_bytes(chart_archive("kyverno", "3.5.3"))
    source = ChartSource(tmp_path / "work", charts=folder, fetch=no_download)
    assert images._archive_chart(source.archive(a_release())) == ("metallb", versions.METALLB_CHART)
    with pytest.raises(ImagesError, match="holds no chart grafana"):
        source.archive(ChartRelease("grafana", "grafana", "1.0.0", "", "grafana", "monitoring", "{}"))


# --- tools/helm.sh ------------------------------------------------------------------------------------------


def run_helm_script(tmp_path: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": path, "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache"), **env}
    return subprocess.run(
        ["/bin/bash", str(images.HELM_SCRIPT), versions.HELM],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=30,
    )


def fake_helm(path: Path, short_version: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/bash\n[ \"$1 $2\" = 'version --short' ] && echo {short_version}\n")
    path.chmod(0o755)
    return path


def test_helm_script_takes_meshlab_helm_then_a_helm_3_on_path_then_its_cache(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    given = fake_helm(tmp_path / "given" / "helm", "v3.0.0")
    assert run_helm_script(tmp_path, str(empty), MESHLAB_HELM=str(given)).stdout == f"{given}\n"
    on_path = fake_helm(tmp_path / "bin" / "helm", "v3.17.2+gcc0b42d")
    assert run_helm_script(tmp_path, str(on_path.parent)).stdout == f"{on_path}\n"
    built = fake_helm(tmp_path / "cache" / "meshlab" / "helm" / versions.HELM / "helm", versions.HELM)
    helm_4 = fake_helm(tmp_path / "bin4" / "helm", "v4.0.0+g1234")
    assert run_helm_script(tmp_path, str(helm_4.parent)).stdout == f"{built}\n"


def test_helm_script_without_helm_or_go_says_what_to_install(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_helm_script(tmp_path, str(empty))
    assert done.returncode == 1 and done.stdout == ""
    assert "no Go toolchain" in done.stderr and "MESHLAB_HELM" in done.stderr
    done = run_helm_script(tmp_path, str(empty), MESHLAB_HELM=str(tmp_path / "missing"))
    assert done.returncode == 1 and "not an executable file" in done.stderr


def test_helm_script_refuses_a_version_that_is_not_helm_3(tmp_path):
    done = subprocess.run(
        ["/bin/bash", str(images.HELM_SCRIPT), "latest"], capture_output=True, text=True, check=False, timeout=30
    )
    assert done.returncode == 1 and "usage" in done.stderr
