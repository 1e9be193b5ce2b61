"""The live suite itself, checked without a cluster: it stays out of the default run, covers
every expected behaviour, and the pods it creates are admitted where they must be."""

from __future__ import annotations

import ast
from pathlib import Path

import kubernetes_validate
from meshlab_policy.pod_security import Level, evaluate_pod

from config import versions
from tests import conftest
from tests.e2e import conftest as e2e_conftest
from tests.e2e.test_live_lab import curl_pod, reached

SUITE = Path(__file__).parent / "e2e" / "test_live_lab.py"
KUBERNETES_MINOR = ".".join(versions.KUBERNETES.lstrip("v").split(".")[:2])


def test_live_suite_is_not_collected_by_default(monkeypatch):
    monkeypatch.delenv("MESHLAB_E2E_STACK", raising=False)
    assert conftest.collect_ignore == ["e2e"]


def test_live_suite_checks_every_expected_behaviour():
    names = {node.name for node in ast.walk(ast.parse(SUITE.read_text())) if isinstance(node, ast.FunctionDef)}
    checks = {name for name in names if name.startswith("test_")}
    for behaviour in (
        "get_root",
        "post_root",
        "get_foo",
        "allowed_name",
        "other_names",
        "plaintext_from_outside",
        "nodeport",
        "privileged_pod",
        "healthy",
    ):
        assert any(behaviour in check for check in checks), behaviour


def test_its_client_pods_are_admitted_under_restricted_and_its_privileged_pod_is_not():
    pod = curl_pod("ns-test", {"app": "web-test"})
    kubernetes_validate.validate(pod, KUBERNETES_MINOR, strict=True)
    assert evaluate_pod(pod["metadata"], pod["spec"], Level.RESTRICTED) == []  # type: ignore[arg-type]
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}  # type: ignore[index]
    findings = {f.check for f in evaluate_pod(pod["metadata"], pod["spec"], Level.RESTRICTED)}  # type: ignore[arg-type]
    assert "privileged" in findings


def test_live_suite_runs_the_benchmark_checks():
    """tests/e2e/test_benchmark.py is collected with the live suite and covers each benchmark part."""
    suite = SUITE.parent / "test_benchmark.py"
    names = {node.name for node in ast.walk(ast.parse(suite.read_text())) if isinstance(node, ast.FunctionDef)}
    for behaviour in ("pinned_nodes", "istio_cni_sidecars", "waypoint", "report"):
        assert any(behaviour in name for name in names if name.startswith("test_")), behaviour
    assert "test_benchmark.py" not in getattr(e2e_conftest, "collect_ignore", [])


def test_any_http_answer_counts_as_reaching_the_allowed_name():
    """httpbin.org answers 502/503 often; the egress policy is about the connection, not its status."""
    for status in ("200", "502", "503", "404"):
        assert reached(0, status), status
    # curl's "000": no HTTP answer (refused, reset, timed out), and any failed curl run.
    assert not reached(0, "000")
    assert not reached(7, "000")
    assert not reached(28, "")
