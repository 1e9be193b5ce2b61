"""A wait that times out says which image pulls failed and why (429, 401, unreachable, untrusted, missing),
read from containerd's log and RKE2's journal on the node, or the kubelets' events on the first server.
The log and event lines are of the forms containerd 1.7/2.0, the kubelet and RKE2 write."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cluster_scripts import Node


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


CILIUM = "docker.io/rancher/mirrored-cilium-cilium:v1.17.6"
CONTAINERD_429 = (
    'time="2026-12-06T10:00:00Z" level=error msg="PullImage \\"' + CILIUM + '\\" failed" error="failed to pull and '
    'unpack image \\"' + CILIUM + '\\": failed to resolve reference \\"' + CILIUM + '\\": unexpected status from HEAD '
    "request to https://registry-1.docker.io/v2/rancher/mirrored-cilium-cilium/manifests/v1.17.6: 429 Too Many "
    'Requests"'
)
MIRROR_401 = (
    'time="2026-12-06T10:01:00Z" level=error msg="PullImage \\"quay.io/metallb/speaker:v0.15.2\\" failed" '
    'error="failed to resolve reference \\"quay.io/metallb/speaker:v0.15.2\\": unexpected status from HEAD request to '
    'https://mirror.example:5000/v2/metallb/speaker/manifests/v0.15.2?ns=quay.io: 401 Unauthorized"'
)
UNREACHABLE = (
    'time="2026-12-06T10:02:00Z" level=error msg="PullImage \\"registry.k8s.io/kube-state-metrics/kube-state-metrics'
    ':v2.16.0\\" failed" error="failed to do request: Head \\"https://registry.k8s.io/v2/kube-state-metrics/'
    'kube-state-metrics/manifests/v2.16.0\\": dial tcp: lookup registry.k8s.io on 127.0.0.53:53: no such host"'
)
RUNTIME = (
    'rke2[812]: time="2026-12-06T10:03:00Z" level=fatal msg="failed to get runtime image '
    "index.docker.io/rancher/rke2-runtime:v1.32.7-rke2r1: GET https://index.docker.io/v2/rancher/rke2-runtime/"
    'manifests/v1.32.7-rke2r1: TOOMANYREQUESTS: You have reached your pull rate limit."'
)
START = {
    "MESHLAB_SERVICE": "rke2-server",
    "MESHLAB_NODE_NAME": "master1",
    "MESHLAB_CONFIG_DIGEST": "d1",
    "MESHLAB_TIMEOUT_SECONDS": "0",
}


def containerd_log(node: Node, *lines: str) -> None:
    path = node.root / "var/lib/rancher/rke2/agent/containerd/containerd.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def test_a_start_that_times_out_names_each_failed_pull_and_why(node: Node) -> None:
    node.set("never-ready")
    started = 'time="x" level=info msg="PullImage \\"docker.io/x:1\\""'
    containerd_log(node, started, CONTAINERD_429, MIRROR_401, UNREACHABLE)
    message = node.fails("rke2_start", **START)
    assert "timed out after 0s waiting for node master1 to be Ready" in message
    assert "image pulls failed on this node:" in message
    assert f"{CILIUM} from docker.io via registry-1.docker.io: 429 Too Many Requests" in message
    assert "meshlab:registryMirrors" in message
    speaker = "quay.io/metallb/speaker:v0.15.2 from quay.io via mirror.example:5000"
    assert f"{speaker}: the registry refused the credentials" in message
    metrics = "kube-state-metrics:v2.16.0 from registry.k8s.io via registry.k8s.io"
    assert f"{metrics}: the registry is unreachable (no such host)" in message
    # A pull that only started is no failure.
    assert "docker.io/x:1" not in message


def test_rke2s_own_runtime_image_is_read_from_its_journal(node: Node) -> None:
    node.set("fail-start", "rke2-server")
    node.set("journal", RUNTIME)
    message = node.fails("rke2_start", **{**START, "MESHLAB_TIMEOUT_SECONDS": "5"})
    assert "rke2-server failed on master1" in message
    assert "index.docker.io/rancher/rke2-runtime:v1.32.7-rke2r1 from docker.io via index.docker.io: 429" in message


def test_the_same_image_is_named_once_with_its_newest_reason_and_only_the_newest_five(node: Node) -> None:
    node.set("never-ready")
    others = [CONTAINERD_429.replace("v1.17.6", f"v1.17.{minor}") for minor in range(10, 16)]
    containerd_log(node, *others, CONTAINERD_429, CONTAINERD_429.replace("429 Too Many Requests", "manifest unknown"))
    message = node.fails("rke2_start", **START)
    listed = [line for line in message.splitlines() if line.startswith("  - ")]
    assert len(listed) == 5
    assert listed[-1].startswith(f"  - {CILIUM} from docker.io via registry-1.docker.io: not found there")
    assert sum(CILIUM in line for line in listed) == 1


def test_a_timeout_without_failed_pulls_says_only_what_it_did(node: Node) -> None:
    node.set("never-ready")
    message = node.fails("rke2_start", **START)
    assert "image pulls failed" not in message


def test_cluster_ready_reads_the_kubelets_events(node: Node) -> None:
    node.set(
        "events",
        'Failed to pull image "quay.io/cilium/hubble-ui:v0.13.2": failed to pull and unpack image: tls: failed to '
        "verify certificate: x509: certificate signed by unknown authority\n"
        "Error: ImagePullBackOff\n",
    )
    message = node.fails(
        "cluster_ready",
        MESHLAB_NODES="master1",
        MESHLAB_TIMEOUT_SECONDS="0",
        MESHLAB_WORKLOADS="daemonset/cilium",
    )
    assert "not every node is Ready" in message
    assert "image pulls failed in the cluster:" in message
    assert "quay.io/cilium/hubble-ui:v0.13.2 from quay.io: its TLS certificate is not trusted" in message
