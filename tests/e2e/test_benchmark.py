"""The mesh benchmark on a live lab (`meshlab:benchmark: on`): the four data paths are what the
offline plan says they are, and a short `tools.bench_mesh` run writes its report from real answers.
On a stack without the benchmark these checks do not apply and are reported as such."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.apps.benchmark import CASES, CLIENT, SERVER
from tests.e2e.conftest import LiveLab
from tools import bench_analysis, bench_mesh


@pytest.fixture(scope="module")
def bench(live: LiveLab) -> Iterator[LiveLab]:
    if live.kubectl("get", "namespace", CASES[0].namespace).returncode != 0:
        pytest.skip("meshlab:benchmark is off on this stack")
    yield live


def pods(live: LiveLab, namespace: str, selector: str) -> list[dict[str, Any]]:
    result = live.kubectl("-n", namespace, "get", "pods", "-l", selector, "-o", "json")
    assert result.returncode == 0, result.stderr
    items: list[dict[str, Any]] = json.loads(result.stdout)["items"]
    return items


def test_benchmark_pods_run_on_two_pinned_nodes(bench: LiveLab) -> None:
    nodes: dict[str, set[str]] = {SERVER: set(), CLIENT: set()}
    for case in CASES:
        for app in (SERVER, CLIENT):
            found = pods(bench, case.namespace, f"app={app}")
            assert [p["status"]["phase"] for p in found] == ["Running"], (case.namespace, app)
            nodes[app].add(found[0]["spec"]["nodeName"])
    assert len(nodes[SERVER]) == len(nodes[CLIENT]) == 1


def test_sidecar_case_pods_get_istio_cni_sidecars(bench: LiveLab) -> None:
    """istiod injects istio-proxy with istio-validation (istio-cni), never the root istio-init."""
    [case] = [c for c in CASES if c.key == "sidecar"]
    for app in (SERVER, CLIENT):
        [pod] = pods(bench, case.namespace, f"app={app}")
        names = {c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]}
        assert {"istio-proxy", "istio-validation"} <= names and "istio-init" not in names, names


def test_only_the_ambient_cases_have_no_sidecar(bench: LiveLab) -> None:
    for case in CASES:
        if case.key == "sidecar":
            continue
        [pod] = pods(bench, case.namespace, f"app={SERVER}")
        assert {c["name"] for c in pod["spec"]["containers"]} == {"fortio"}, case.namespace


def test_waypoint_case_has_its_waypoint_on_the_server_node(bench: LiveLab) -> None:
    [case] = [c for c in CASES if c.key == "waypoint"]
    [waypoint] = pods(bench, case.namespace, "gateway.networking.k8s.io/gateway-name=waypoint")
    [server] = pods(bench, case.namespace, f"app={SERVER}")
    assert waypoint["status"]["phase"] == "Running"
    assert waypoint["spec"]["nodeName"] == server["spec"]["nodeName"]


def test_a_short_benchmark_writes_its_report(bench: LiveLab, tmp_path: Path) -> None:
    code = bench_mesh.main(
        [
            *(bench.stack, "--kubeconfig", str(bench.kubeconfig)),
            *("--duration", "15", "--repetitions", "1", "--warmup", "0", "--out", str(tmp_path)),
        ]
    )
    assert code == 0
    report = (tmp_path / "report.md").read_text()
    for case in CASES:
        answer = (tmp_path / "raw" / f"fortio-{case.key}-1.json").read_text()
        result = bench_analysis.parse_fortio(answer, case.key, 1)
        assert result.errors == 0 and result.count > 0, case.key
        assert bench_analysis.CASE_TITLES[case.key] in report
    assert (tmp_path / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
