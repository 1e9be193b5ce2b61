"""Fixtures of the engine suite (`make test-engine`): the real Pulumi CLI built by `make engine`.

Nothing here skips: a test whose binaries are not in the toolchain cache fails, naming each missing
binary and the reason bootstrap.sh recorded for it (for example the module proxy's refusal).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.engine import toolchain


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say up front what the tier runs, so nobody takes the stand-ins for the real providers (a report
    header would not show: the suite runs with -q)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        for line in _what_runs():
            reporter.write_line(line)


def _what_runs() -> list[str]:
    versions = toolchain.read_versions()
    standins = ", ".join(f"{p} {versions[f'{p.upper()}_PLUGIN_VERSION']}" for p in toolchain.STANDIN_PROVIDERS)
    return [
        f"engine tier: pulumi {versions['PULUMI_CLI_VERSION']} (real), meshlab's own Python language host, kubernetes "
        f"{versions['KUBERNETES_PLUGIN_VERSION']} (real, built from {versions['KUBERNETES_MODULE_VERSION']})",
        f"engine tier: STAND-IN providers (previews; random also creates RandomPasswords): {standins}",
        f"engine tier: toolchain {toolchain.cache_dir()}",
    ]


@pytest.fixture(scope="session")
def toolchain_dir() -> Path:
    directory = toolchain.cache_dir()
    if not (directory / "bin").is_dir():
        pytest.fail(f"No Pulumi toolchain in {directory}: run `make engine` first (it builds one from Go modules).")
    return directory


@pytest.fixture(scope="session")
def require(toolchain_dir: Path) -> Callable[..., None]:
    """require(*names) fails the test unless each binary is in the toolchain cache."""

    def check(*names: str) -> None:
        lines = toolchain.missing(toolchain_dir, names)
        if lines:
            pytest.fail(
                f"The Pulumi toolchain in {toolchain_dir} lacks what this test runs:\n  "
                + "\n  ".join(lines)
                + "\n(`make engine` builds it; versions and reasons: tests/engine/versions.env)",
                pytrace=False,
            )

    return check


@pytest.fixture(scope="session")
def engine(
    require: Callable[..., None], toolchain_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[toolchain.Engine]:
    """The real CLI with every provider installed, in a copy of the project; one per test session."""
    require(*toolchain.ALL)
    root = tmp_path_factory.mktemp("engine")
    engine = toolchain.Engine(
        bin_dir=toolchain_dir / "bin",
        home=root / "pulumi-home",
        backend=root / "state",
        project=toolchain.copy_project(root / "project"),
    )
    engine.backend.mkdir()
    engine.install_providers()
    yield engine
    shutil.rmtree(root, ignore_errors=True)
