"""The live-cluster suite: the seed's checks against a deployed stack.

    MESHLAB_E2E_STACK=lab venv/bin/python -m pytest tests/e2e

It reads the stack's outputs with `pulumi stack output` (the same backend and passphrase as
`make up`), or takes MESHLAB_E2E_KUBECONFIG / MESHLAB_E2E_INGRESS / MESHLAB_E2E_NODE_IP when set.
It needs `kubectl` on PATH. At the end it prints one line per check: PASS or FAIL.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

RESULTS: list[tuple[str, str]] = []


@dataclass(frozen=True)
class LiveLab:
    stack: str
    kubeconfig: Path
    ingress: str
    test_host: str
    node_ip: str
    hubble: bool

    def kubectl(self, *args: str, stdin: str | None = None, timeout: int = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args],
            input=stdin,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def _stack_outputs(stack: str) -> dict[str, Any]:
    result = subprocess.run(
        ["pulumi", "stack", "output", "--stack", stack, "--json", "--show-secrets"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.exit(f"cannot read the outputs of stack {stack}: {result.stderr.strip()}", returncode=2)
    outputs: dict[str, Any] = json.loads(result.stdout)
    return outputs


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveLab]:
    stack = os.environ["MESHLAB_E2E_STACK"]
    kubeconfig = os.environ.get("MESHLAB_E2E_KUBECONFIG")
    outputs = {} if kubeconfig and os.environ.get("MESHLAB_E2E_INGRESS") else _stack_outputs(stack)
    if not kubeconfig:
        path = tmp_path_factory.mktemp("kube") / "config"
        path.write_text(outputs["kubeconfig"])
        path.chmod(0o600)
        kubeconfig = str(path)
    urls = outputs.get("urls", {})
    first_server = next((node["ip"] for node in outputs.get("nodes", {}).values() if node["role"] == "server"), "")
    yield LiveLab(
        stack=stack,
        kubeconfig=Path(kubeconfig),
        ingress=os.environ.get("MESHLAB_E2E_INGRESS") or outputs["ingressAddress"],
        test_host=urls.get("testApp", "http://test.test/").removeprefix("http://").rstrip("/"),
        node_ip=os.environ.get("MESHLAB_E2E_NODE_IP") or first_server,
        hubble="hubble" in urls or not outputs,
    )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        doc = report.head_line or report.nodeid
        outcome = {"passed": "PASS", "skipped": "SKIP (does not apply to this stack)"}.get(report.outcome, "FAIL")
        RESULTS.append((doc, outcome))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    width = max(len(name) for name, _ in RESULTS)
    terminalreporter.write_sep("=", "meshlab live checks")
    for name, outcome in RESULTS:
        terminalreporter.write_line(f"{name.ljust(width)}  {outcome}")
