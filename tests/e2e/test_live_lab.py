"""The seed's expected behaviour, checked on a deployed lab (see tests/e2e/conftest.py)."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator

import pytest

from config import versions
from tests.e2e.conftest import LiveLab

NS = "ns-test"
RBAC_DENIED = "RBAC: access denied"


def through_ingress(live: LiveLab, method: str, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection(live.ingress, 80, timeout=15)
    try:
        connection.request(method, path, headers={"Host": live.test_host})
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def curl_pod(namespace: str, labels: dict[str, str]) -> dict[str, object]:
    """A restricted pod with curl that idles, for exec."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"e2e-curl-{uuid.uuid4().hex[:6]}", "namespace": namespace, "labels": labels},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": versions.CURL_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "curl",
                    "image": versions.CURL_IMAGE,
                    "command": ["sleep", "3600"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


class Pod:
    def __init__(self, live: LiveLab, manifest: dict[str, object]) -> None:
        self.live, self.manifest = live, manifest
        metadata = manifest["metadata"]
        assert isinstance(metadata, dict)
        self.name, self.namespace = metadata["name"], metadata["namespace"]

    def __enter__(self) -> Pod:
        created = self.live.kubectl("apply", "-f", "-", stdin=json.dumps(self.manifest))
        assert created.returncode == 0, created.stderr
        ready = self.live.kubectl(
            "-n", self.namespace, "wait", "--for=condition=Ready", f"pod/{self.name}", "--timeout=120s"
        )
        assert ready.returncode == 0, ready.stderr
        return self

    def __exit__(self, *_: object) -> None:
        self.live.kubectl("-n", self.namespace, "delete", "pod", self.name, "--wait=false")

    def curl(self, *args: str) -> tuple[int, str]:
        """curl's exit code and the HTTP status it printed."""
        result = self.live.kubectl(
            "-n", self.namespace, "exec", self.name, "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
            "--max-time", "15", *args,
        )  # fmt: skip
        return result.returncode, result.stdout.strip()


@pytest.fixture(scope="module")
def outside_namespace(live: LiveLab) -> Iterator[str]:
    """A namespace outside the mesh (restricted, not ambient)."""
    name = f"meshlab-e2e-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    created = live.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    assert created.returncode == 0, created.stderr
    yield name
    live.kubectl("delete", "namespace", name, "--wait=false")


# --- through the ingress (L7 on the waypoint) -----------------------------------------------------


def test_get_root_through_the_ingress_returns_the_nginx_page(live: LiveLab) -> None:
    status, body = through_ingress(live, "GET", "/")
    assert status == 200 and "nginx" in body.lower(), (status, body[:200])


def test_post_root_through_the_ingress_is_denied_by_the_mesh(live: LiveLab) -> None:
    status, body = through_ingress(live, "POST", "/")
    # 405 would mean nginx answered: the ingress skipped the waypoint.
    assert (status, body.strip()) == (403, RBAC_DENIED)


def test_get_foo_through_the_ingress_is_denied_by_the_mesh(live: LiveLab) -> None:
    status, body = through_ingress(live, "GET", "/foo")
    assert (status, body.strip()) == (403, RBAC_DENIED)


# --- egress from ns-test (Cilium FQDN policy) -------------------------------------------------------


@pytest.fixture(scope="module")
def app_pod(live: LiveLab) -> Iterator[Pod]:
    # Labelled like the app, so the app's Cilium egress policy applies to it.
    with Pod(live, curl_pod(NS, {"app": "web-test", "meshlab.dev/role": "e2e"})) as pod:
        yield pod


def reached(code: int, status: str) -> bool:
    """A connection that got an HTTP answer: the policy under test is about the connection, and httpbin.org
    often answers 502 or 503 itself."""
    return code == 0 and len(status) == 3 and status.isdigit() and status != "000"


def test_app_reaches_the_allowed_name(app_pod: Pod) -> None:
    attempts = []
    for _ in range(3):  # the allowed name's own hiccups (DNS, a dropped connection) are retried
        attempts.append(app_pod.curl("https://httpbin.org/get"))
        if reached(*attempts[-1]):
            return
        time.sleep(5)
    pytest.fail(f"no HTTP answer from httpbin.org in 3 attempts (curl exit code, status): {attempts}")


def test_app_cannot_reach_other_names(app_pod: Pod) -> None:
    code, status = app_pod.curl("https://example.com/")
    assert code != 0 or not status.startswith("2"), (code, status)


# --- from outside the mesh (STRICT mTLS, NetworkPolicy) ---------------------------------------------


def test_plaintext_from_outside_the_mesh_to_the_app_pod_is_refused(live: LiveLab, outside_namespace: str) -> None:
    pod_ip = live.kubectl(
        "-n", NS, "get", "pods", "-l", "app=web-test,version=v1", "-o", "jsonpath={.items[0].status.podIP}"
    )
    assert pod_ip.returncode == 0 and pod_ip.stdout, pod_ip.stderr
    with Pod(live, curl_pod(outside_namespace, {"meshlab.dev/role": "e2e"})) as pod:
        code, status = pod.curl(f"http://{pod_ip.stdout}:8080/")
    assert code != 0 or not status.startswith("2"), (code, status)


def test_nodeport_from_the_workstation_is_blocked(live: LiveLab) -> None:
    try:
        connection = http.client.HTTPConnection(live.node_ip, 30000, timeout=5)
        connection.request("GET", "/")
        status = connection.getresponse().status
    except (TimeoutError, OSError, http.client.HTTPException):
        return
    assert not 200 <= status < 300, f"NodePort 30000 on {live.node_ip} answered {status}"


# --- Pod Security and health ------------------------------------------------------------------------


def test_a_privileged_pod_is_rejected_in_ns_test(live: LiveLab) -> None:
    manifest = curl_pod(NS, {"meshlab.dev/role": "e2e"})
    containers = manifest["spec"]["containers"]  # type: ignore[index]
    containers[0]["securityContext"] = {"privileged": True}
    result = live.kubectl("apply", "--dry-run=server", "-f", "-", stdin=json.dumps(manifest))
    assert result.returncode != 0 and "violates PodSecurity" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "workload",
    [
        ("istio-system", "daemonset/ztunnel"),
        ("istio-system", "daemonset/istio-cni-node"),
        ("istio-system", "deployment/istiod"),
        ("kube-system", "daemonset/cilium"),
        ("kube-system", "deployment/cilium-operator"),
        ("kube-system", "deployment/hubble-relay"),
    ],
    ids=lambda workload: workload[1],
)
def test_mesh_and_cilium_are_healthy(live: LiveLab, workload: tuple[str, str]) -> None:
    namespace, name = workload
    if name == "deployment/hubble-relay" and not live.hubble:
        pytest.skip("the stack runs without Hubble (meshlab:hubbleEnabled: false)")
    result = live.kubectl("-n", namespace, "rollout", "status", name, "--timeout=60s")
    assert result.returncode == 0, result.stderr
