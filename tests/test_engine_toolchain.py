"""The engine tier's toolchain definition, checked offline: the versions it builds agree with the
program's pins, and our own plugins speak the CLI's protocol version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.engine import toolchain

PLUGINS = toolchain.HERE / "plugins"
# requirements.txt package -> the versions.env key of the plugin the engine must find for it
PLUGIN_KEYS = {
    "pulumi-command": "COMMAND_PLUGIN_VERSION",
    "pulumi-kubernetes": "KUBERNETES_PLUGIN_VERSION",
    "pulumi-random": "RANDOM_PLUGIN_VERSION",
    "pulumi-tls": "TLS_PLUGIN_VERSION",
}


def pins() -> dict[str, str]:
    text = (toolchain.REPO / "requirements.txt").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", text, flags=re.M))


def test_each_provider_plugin_is_installed_under_the_version_the_python_sdk_asks_for():
    versions, pinned = toolchain.read_versions(), pins()
    assert set(PLUGIN_KEYS) <= set(pinned)
    for package, key in PLUGIN_KEYS.items():
        assert versions[key] == pinned[package], (key, versions[key], package, pinned[package])


def test_the_executor_script_comes_from_the_python_sdk_pin():
    assert toolchain.read_versions()["PYTHON_EXEC_MODULE_VERSION"] == f"v{pins()['pulumi']}"


@pytest.mark.parametrize("module", sorted(p.name for p in PLUGINS.iterdir() if (p / "go.mod").is_file()))
def test_our_plugins_are_built_against_the_clis_sdk(module: str):
    """Both sides of every gRPC call must be generated from the same protocol version."""
    go_mod = (PLUGINS / module / "go.mod").read_text()
    required = re.search(r"^\s*(?:require\s+)?github\.com/pulumi/pulumi/sdk/v3 (v\S+)", go_mod, flags=re.M)
    assert required, f"{module}/go.mod does not require sdk/v3"
    assert required.group(1) == toolchain.read_versions()["PULUMI_CLI_VERSION"]
    assert (PLUGINS / module / "go.sum").is_file()


def test_every_toolchain_component_has_a_source():
    """A binary the tests need is built from a wrapper module or from one of our own plugins."""
    wrappers = {p.name for p in (toolchain.HERE / "modules").iterdir() if (p / "go.mod.in").is_file()}
    bootstrap = (toolchain.HERE / "bootstrap.sh").read_text()
    for name in toolchain.ALL:
        own = re.search(rf"\b{re.escape(name)}\b[^)]*\) echo \"\$plugins/([\w-]+)\"", bootstrap)
        assert name in wrappers or (own and Path(PLUGINS / own.group(1) / "go.mod").is_file()), name
