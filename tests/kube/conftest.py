"""Fixtures of the Kubernetes API suite (`make test-kube`): a real control plane per stack, built by
`make kube`, with every rendered object applied to it.

Nothing here skips: without the binaries every test fails, naming each missing one and the reason
bootstrap.sh recorded for it. The three control planes (one per stack, so each stack is applied to a
cluster of its own, holding only what the charts and RKE2 would have installed: the reference CRDs)
start side by side once per session and are stopped by PID.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import STACKS
from tests.kube import toolchain
from tests.kube.apply import Outcome, StackRun, apply_in_order, apply_reference_crds
from tests.kube.controlplane import ControlPlane, start_all
from tests.kube.manifests import manifests
from tests.kube.report import REPORT, TIMINGS
from tools.render import Rendering


@pytest.fixture(scope="session")
def kube_bin() -> Path:
    directory = toolchain.cache_dir()
    lines = toolchain.missing(directory)
    if lines:
        pytest.fail(
            "The Kubernetes control plane lacks what these tests run:\n  "
            + "\n  ".join(lines)
            + "\n(`make kube` builds it from Go modules; versions and reasons: tests/kube/versions.env)",
            pytrace=False,
        )
    return directory / "bin"


@dataclass
class Planes:
    """One control plane per stack, and how the reference CRDs went into the seed cluster they come from."""

    stacks: dict[str, ControlPlane]
    crds: Outcome
    established: Outcome


def _seed(kube_bin: Path, root: Path) -> tuple[ControlPlane, Outcome, Outcome]:
    """etcd + kube-apiserver with the reference CRDs applied and Established, then stopped: its etcd data
    is where every stack's cluster starts (the CRDs, which the server takes most of its time over, go
    in once rather than three times)."""
    start = time.monotonic()
    seed = ControlPlane("seed", kube_bin, root / "seed")
    try:
        seed.start_etcd()
        seed.wait_etcd()
        seed.start_apiserver()
        seed.wait_apiserver()
        crds, established = apply_reference_crds(seed)
    except BaseException:
        seed.stop()
        raise
    seed.stop(keep_data=True)
    TIMINGS["seed cluster: started, reference CRDs applied and Established, stopped"] = time.monotonic() - start
    return seed, crds, established


@pytest.fixture(scope="session")
def planes(kube_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planes]:
    """One control plane per stack, each from the seed's etcd data, ready (etcd healthy, /readyz,
    controllers running), the three started side by side."""
    root = tmp_path_factory.mktemp("kube")
    seed, crds, established = _seed(kube_bin, root)
    started: dict[str, ControlPlane] = {}
    try:
        for stack in STACKS:
            started[stack] = ControlPlane(stack, kube_bin, root / stack, seed_data=seed.data_dir)
        start = time.monotonic()
        start_all(started.values())
        TIMINGS["control planes ready (all three, side by side)"] = time.monotonic() - start
        for stack, plane in started.items():
            for component, seconds in plane.timings.items():
                TIMINGS[f"{stack}: {component} ready after"] = seconds
        yield Planes(started, crds, established)
    finally:
        seed.remove_data()
        for plane in [seed, *started.values()]:
            plane.stop()
            for component, seconds in plane.cpu.items():
                TIMINGS[f"{plane.name}: {component} CPU time"] = seconds


def _run(stack: str, planes: Planes, rendering: Rendering) -> StackRun:
    plane = planes.stacks[stack]
    run = StackRun(stack, plane, planes.crds, planes.established, manifests(rendering))
    start = time.monotonic()
    if run.crds.ok and run.established.ok:
        run.steps = apply_in_order(plane.api, run.manifests)
    run.seconds = time.monotonic() - start
    TIMINGS[f"{stack}: {len(run.manifests)} objects applied (dry run, then for real)"] = run.seconds
    return run


@pytest.fixture(scope="session")
def applied(planes: Planes, rendered: dict[str, Rendering]) -> dict[str, StackRun]:
    """Every stack applied, the three side by side; rejections are recorded, not raised."""
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(STACKS)) as pool:
        futures = {stack: pool.submit(_run, stack, planes, rendered[stack]) for stack in STACKS}
        runs = {stack: future.result() for stack, future in futures.items()}
    TIMINGS["all stacks applied (side by side)"] = time.monotonic() - start
    for run in runs.values():
        run.plane.check_running()
    return runs


@pytest.fixture(scope="session")
def lab_plane(applied: dict[str, StackRun]) -> ControlPlane:
    """The lab's control plane, with the lab applied (the probes and controls run there)."""
    return applied["lab"].plane


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        TIMINGS["CPU time of pytest itself"] = own.ru_utime + own.ru_stime
        TIMINGS["CPU time of the processes it started"] = children.ru_utime + children.ru_stime
    if TIMINGS or REPORT:
        terminalreporter.section("kube tier")
        for line in REPORT:
            terminalreporter.write_line(line)
        for what, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.1f}s  {what}")
