"""The in-cluster webhook wait (components/cluster/access.py): its objects under mocks, and its pod's script
run by a real POSIX shell against a fake `curl` that answers as the API server would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.cluster.access import WAIT_NAME, WAIT_SCRIPT, wait_objects
from tools.render import Rendering

SH = shutil.which("dash") or shutil.which("sh") or "sh"
METALLB = ("metallb-system", "metallb-webhook-service", "validatingwebhookconfiguration/metallb-webhook-configuration")

# Answers the API server's JSON for the two reads the script makes; the fake API's state is two files.
FAKE_CURL = """#!/bin/sh
for url; do :; done
echo "$*" >> "$STATE/calls"
case "$url" in
  *endpointslices*) cat "$STATE/endpointslices" 2>/dev/null || exit 22 ;;
  *webhookconfigurations*) cat "$STATE/webhook" 2>/dev/null || exit 22 ;;
  *) exit 22 ;;
esac
"""


class FakeApi:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "bin").mkdir()
        (root / "state").mkdir()
        (root / "account").mkdir()
        (root / "account" / "token").write_text("sa-token")
        (root / "account" / "ca.crt").write_text("ca")
        curl = root / "bin" / "curl"
        curl.write_text(FAKE_CURL)
        curl.chmod(0o755)

    def answer(self, what: str, document: dict[str, Any]) -> None:
        # Pretty-printed, as the API server answers with a space after each colon.
        (self.root / "state" / what).write_text(json.dumps(document, indent=2))

    def run(self, timeout: int = 0) -> subprocess.CompletedProcess[str]:
        [job] = [o for o in wait_objects(*METALLB, timeout_seconds=timeout) if o["kind"] == "Job"]
        env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
        env |= {
            "PATH": f"{self.root / 'bin'}:{os.environ['PATH']}",
            "STATE": str(self.root / "state"),
            "ACCOUNT": str(self.root / "account"),
        }
        return subprocess.run([SH, "-c", WAIT_SCRIPT], env=env, capture_output=True, text=True, timeout=30, check=False)

    def calls(self) -> list[str]:
        return (self.root / "state" / "calls").read_text().splitlines()


@pytest.fixture
def api(tmp_path: Path) -> FakeApi:
    return FakeApi(tmp_path)


def slice_with(ready: bool) -> dict[str, Any]:
    return {"items": [{"endpoints": [{"addresses": ["10.42.1.7"], "conditions": {"ready": ready}}]}]}


def test_the_wait_needs_a_ready_endpoint_then_a_ca_bundle(api: FakeApi) -> None:
    done = api.run()
    assert done.returncode == 1
    assert "service metallb-system/metallb-webhook-service has no ready endpoint after 0s" in done.stderr
    api.answer("endpointslices", slice_with(ready=False))
    assert "has no ready endpoint" in api.run().stderr
    api.answer("endpointslices", slice_with(ready=True))
    api.answer("webhook", {"webhooks": [{"clientConfig": {"caBundle": ""}}]})
    done = api.run()
    assert done.returncode == 1
    assert "validatingwebhookconfigurations/metallb-webhook-configuration has no CA bundle after 0s" in done.stderr
    api.answer("webhook", {"webhooks": [{"clientConfig": {"caBundle": "LS0tLS1CRUdJTg=="}}]})
    done = api.run()
    assert done.returncode == 0, done.stderr
    assert "the webhook behind metallb-system/metallb-webhook-service is ready" in done.stdout
    slices, webhook = api.calls()[-2:]
    assert "Authorization: Bearer sa-token" in slices
    assert "/apis/discovery.k8s.io/v1/namespaces/metallb-system/endpointslices" in slices
    assert "labelSelector=kubernetes.io%2Fservice-name%3Dmetallb-webhook-service" in slices
    assert webhook.endswith(
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/metallb-webhook-configuration"
    )


def test_the_wait_polls_until_its_timeout(api: FakeApi) -> None:
    done = api.run(timeout=3)
    assert done.returncode == 1 and "after 3s" in done.stderr
    assert len(api.calls()) >= 2  # asked again after the first miss


def test_the_wait_may_read_only_what_it_waits_for() -> None:
    objects = {o["kind"]: o for o in wait_objects(*METALLB, timeout_seconds=60)}
    assert objects["Role"]["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list"]}
    ]
    [rule] = objects["ClusterRole"]["rules"]
    assert rule["resourceNames"] == ["metallb-webhook-configuration"] and rule["verbs"] == ["get"]
    assert objects["ClusterRoleBinding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": WAIT_NAME, "namespace": "metallb-system"}
    ]
    job = objects["Job"]["spec"]
    assert job["backoffLimit"] == 0 and job["activeDeadlineSeconds"] > 60
    assert job["template"]["spec"]["serviceAccountName"] == WAIT_NAME


def test_every_webhook_of_the_lab_is_awaited_in_cluster_before_what_it_validates(
    rendered: dict[str, Rendering],
) -> None:
    rendering = rendered["lab"]
    jobs = {
        r.inputs["metadata"]["namespace"]: r
        for r in rendering.of_type("kubernetes:batch/v1:Job")
        if r.inputs["metadata"]["name"] == WAIT_NAME
    }
    assert set(jobs) == {"metallb-system", "kyverno"}
    assert not [r for r in rendering.resources() if r.type.startswith("command:") and "webhook" in r.name]
    by_urn = rendering.by_urn()
    pool = rendering.named("metallb-pool")
    assert jobs["metallb-system"].urn in pool.dependencies
    release = rendering.named("metallb-release")
    assert release.urn in by_urn[jobs["metallb-system"].urn].dependencies
