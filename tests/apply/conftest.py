"""Fixtures of the real-apply tier (`make test-apply`): meshlab's own program, unmodified, `pulumi up` with the
real CLI and Kubernetes provider (tests/engine's toolchain) and the policy pack as `make up` passes it, onto
the kube tier's control plane with kube-scheduler and KWOK (tests/kube's toolchain; tests/apply/cluster.py),
with the charts from a Helm repository served on loopback (tests/apply/chart_repository.py).

The whole tier runs in a network namespace of its own that holds only loopback (`make test-apply` starts it
under `unshare --net`): nothing it starts can reach beyond this machine. Nothing skips: a missing toolchain
or a namespace that is not isolated fails the run, naming what is missing.
"""

from __future__ import annotations

import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.apply import stack
from tests.apply.chart_repository import serve
from tests.apply.cluster import ApplyCluster, gateway_api_manifest
from tests.apply.stack import TIMINGS, ApplyEngine
from tests.engine import toolchain as engine_toolchain
from tests.kube import toolchain as kube_toolchain
from tools.chart_repository import build_repository, chart_sources_folder


def _isolated() -> list[str]:
    """The network interfaces this process sees: only `lo` inside the tier's namespace."""
    done = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    return [line.split(":")[1].strip().split("@")[0] for line in done.stdout.splitlines()]


@pytest.fixture(scope="session")
def isolated() -> None:
    interfaces = _isolated()
    if interfaces != ["lo"]:
        pytest.fail(
            f"the apply tier must run in a network namespace with loopback only (it sees {interfaces}): "
            "run it with `make test-apply` (unshare --net, as root)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def toolchains(isolated: None) -> tuple[Path, Path]:
    """(the engine's bin/, the control plane's bin/), or a failure naming every missing binary."""
    engine_dir, kube_dir = engine_toolchain.cache_dir(), kube_toolchain.cache_dir()
    lines = engine_toolchain.missing(engine_dir, engine_toolchain.ALL)
    lines += kube_toolchain.missing(kube_dir, kube_toolchain.APPLY)
    if not (kube_dir / kube_toolchain.KWOK_STAGES).is_dir():
        lines.append(f"{kube_dir / kube_toolchain.KWOK_STAGES} (not built: run `make kube`)")
    if lines:
        pytest.fail(
            "The apply tier lacks what it runs:\n  "
            + "\n  ".join(lines)
            + "\n(`make engine` and `make kube` build them)",
            pytrace=False,
        )
    return engine_dir / "bin", kube_dir / "bin"


@pytest.fixture(scope="session")
def cluster(toolchains: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApplyCluster]:
    print("\napply tier: the webhook admission plugins are OFF on this API server (no webhook serves on fake nodes)")
    built = ApplyCluster.create(toolchains[1], tmp_path_factory.mktemp("cluster"))
    try:
        built.start()
        TIMINGS.update(built.timings)
        yield built
    finally:
        built.stop()
        for name, seconds in built.plane.cpu.items():
            TIMINGS[f"CPU time of {name}"] = seconds


@pytest.fixture(scope="session")
def repository(isolated: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The ten charts and the Gateway API manifest, served on 127.0.0.1 for the whole session."""
    folder = tmp_path_factory.mktemp("charts")
    build_repository(chart_sources_folder(), folder)
    (folder / stack.GATEWAY_MANIFEST).write_text(gateway_api_manifest())
    with serve(folder) as server:
        yield server.url


@pytest.fixture(scope="session")
def engine(
    toolchains: tuple[Path, Path], cluster: ApplyCluster, repository: str, tmp_path_factory: pytest.TempPathFactory
) -> ApplyEngine:
    root = tmp_path_factory.mktemp("engine")
    return ApplyEngine.create(toolchains[0], root, repository=repository, kubeconfig=cluster.kubeconfig)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        TIMINGS["CPU time of pytest itself"] = own.ru_utime + own.ru_stime
        TIMINGS["CPU time of the processes it started"] = children.ru_utime + children.ru_stime
        terminalreporter.section("apply tier")
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.1f}s  {what}")
