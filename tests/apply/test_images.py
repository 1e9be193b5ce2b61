"""`python -m tools.images` against what the real charts run: every image of every pod and pod template in the
tier's cluster, once the stack is up, is one the tool lists (each chart rendered with the real `helm template`,
tools/helm.sh's Helm), and every registry they come from is one the lab mirrors (config/images.lab_registries()).

pytest runs this file after test_apply.py, whose last test leaves the stack up at phase 4 with the benchmark and
the demos on; run alone, it brings the stack up itself. The tier's cluster runs no pods of its own (its control
plane, scheduler and KWOK are processes; the Cilium stand-in is a ConfigMap and CRDs), so every pod here is one
meshlab's program or its charts made. The stack is an existing cluster to meshlab: no RKE2, no kube-vip
(--skip-rke2 is only there to say so).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from config import versions
from config.images import lab_registries, registry_of
from config.settings import config_key
from tests.apply.cluster import ApplyCluster
from tests.apply.stack import STACK, TIMINGS, ApplyEngine, resource_keys
from tools import images
from tools.chart_repository import chart_sources_folder
from tools.render import ROOT

# Every kind that holds a pod spec, as kubectl names them.
WORKLOADS = "pods,podtemplates,replicationcontrollers,deployments,daemonsets,statefulsets,replicasets,jobs,cronjobs"


def cluster_images(cluster: ApplyCluster) -> dict[str, set[str]]:
    """image -> the objects (kind/namespace/name) whose pod spec runs it."""
    done = cluster.plane.kubectl.run("get", WORKLOADS, "--all-namespaces", "-o", "json", timeout=300)
    assert done.returncode == 0, done.stderr
    found: dict[str, set[str]] = {}
    for item in json.loads(done.stdout)["items"]:
        metadata = item["metadata"]
        where = f"{item['kind']}/{metadata.get('namespace', '')}/{metadata['name']}"
        for spec in images.pod_specs(item):
            for image in images.spec_images(spec):
                found.setdefault(image, set()).add(where)
    return found


def listed(config_file: Path, *extra: str, cache: Path) -> list[str]:
    """`python -m tools.images lab --skip-rke2 ...` for the tier's stack, its lines."""
    argv = [sys.executable, "-m", "tools.images", STACK, "--config-file", str(config_file), "--skip-rke2", *extra]
    environment = {**os.environ, "MESHLAB_CACHE_DIR": str(cache)}
    done = subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, check=False, timeout=1800)
    assert done.returncode == 0, f"{' '.join(argv[1:])} failed ({done.returncode}):\n{done.stderr}"
    assert "RKE2's system images are left out" not in done.stderr, "an existing cluster has no RKE2 to leave out"
    return done.stdout.splitlines()


def test_every_image_the_cluster_runs_is_listed_and_its_registry_mirrored(
    engine: ApplyEngine, cluster: ApplyCluster, tmp_path: Path
):
    plan = resource_keys(engine.plan(engine.values)["resources"])
    if resource_keys(engine.state().get("resources", [])) != plan:
        engine.up().check()  # run alone, or after a test that left the stack elsewhere
    assert resource_keys(engine.state()["resources"]) == plan

    found = cluster_images(cluster)
    pods = [o for objects in found.values() for o in objects if o.startswith("Pod/")]
    assert len(found) >= 15 and len(pods) > 30, f"the cluster runs next to nothing: {sorted(found)}"

    # The stack the engine runs, as the offline tools read it (the kubeconfig an encrypted placeholder).
    config_file = tmp_path / f"Pulumi.{STACK}.yaml"
    document = {"config": {**engine.values, config_key("kubeconfig"): {"secure": "AAAA"}}}
    config_file.write_text(yaml.safe_dump(document, sort_keys=False))

    start = time.monotonic()
    with_origin = listed(config_file, "--charts", str(chart_sources_folder()), "--origin", cache=tmp_path / "cache")
    TIMINGS["tools.images with --charts (helm template of every release)"] = time.monotonic() - start
    tool = {line.split()[0] for line in with_origin}
    origins = {origin for line in with_origin for origin in line.split()[1].split(",")}
    assert origins == {"meshlab", *(f"chart/{key}" for key in versions.CHARTS if key != "istio-base")}, origins
    assert qualified_all(tool) == tool

    missing = {image: sorted(where) for image, where in found.items() if images.qualified(image) not in tool}
    assert missing == {}, f"images the cluster runs that tools.images does not list: {missing}"
    registries = {registry_of(image) for image in found}
    assert registries - set(lab_registries()) == set(), registries
    # kube-vip is the servers' static pod: not on a cluster meshlab did not build.
    assert images.qualified(versions.KUBE_VIP_IMAGE) not in tool

    # The same list from the tier's chart repository (meshlab:chartRepository): index, download, digest, cache.
    start = time.monotonic()
    assert set(listed(config_file, cache=tmp_path / "cache")) == tool
    TIMINGS["tools.images from the chart repository (download)"] = time.monotonic() - start
    assert len(list((tmp_path / "cache" / "charts").rglob("*.tgz"))) == len(versions.CHARTS)


def qualified_all(references: set[str]) -> set[str]:
    return {images.qualified(reference) for reference in references}
