"""The control plane itself: the versions it was built from, and the server settings the other tests
rely on (authentication required, RKE2's CIS Pod Security defaults)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from config import versions
from tests.kube import toolchain
from tests.kube.controlplane import Api, ControlPlane


def test_binaries_are_the_versions_versions_env_names(kube_bin: Path, lab_plane: ControlPlane):
    pinned = toolchain.read_versions()
    assert pinned["KUBERNETES_VERSION"] == versions.KUBERNETES
    client = json.loads(lab_plane.kubectl.run("version", "-o", "json").stdout)
    assert client["clientVersion"]["gitVersion"] == pinned["KUBERNETES_VERSION"]
    assert client["serverVersion"]["gitVersion"] == pinned["KUBERNETES_VERSION"]
    for binary in (toolchain.APISERVER, toolchain.CONTROLLER_MANAGER):
        out = subprocess.run([str(kube_bin / binary), "--version"], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"Kubernetes {pinned['KUBERNETES_VERSION']}"
    etcd = subprocess.run([str(kube_bin / toolchain.ETCD), "--version"], capture_output=True, text=True, check=True)
    assert f"etcd Version: {pinned['ETCD_VERSION'].removeprefix('v')}" in etcd.stdout


def test_requests_without_a_valid_token_are_refused(lab_plane: ControlPlane):
    assert lab_plane.api.get("/api/v1/namespaces").status == 200
    stranger = Api(lab_plane.server, "not-a-token", lab_plane.certs.ca)
    assert stranger.get("/api/v1/namespaces").status == 401


def test_the_server_applies_rke2s_cis_pod_security_defaults(lab_plane: ControlPlane):
    """An unlabelled namespace is restricted at "latest"; kube-system is exempt."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "root-probe"},
        "spec": {"containers": [{"name": "probe", "image": "registry.invalid/probe:1"}]},
    }
    lab_plane.wait_service_account("default")
    refused = lab_plane.api.create("/api/v1/namespaces/default/pods", pod, dry_run=True)
    assert refused.status == 403
    assert 'violates PodSecurity "restricted:latest"' in refused.message
    lab_plane.wait_service_account("kube-system")
    assert lab_plane.api.create("/api/v1/namespaces/kube-system/pods", pod, dry_run=True).status == 201
