"""`pulumi preview --policy-pack` with the real engine on every stack (issue 8).

The program, the stack config and the policy pack are loaded by the real CLI, language host and
providers. There is no cluster: the Kubernetes provider's kubeconfig comes from the cluster layer's
outputs, unknown on a first preview, as on a real first `pulumi up`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from tests.engine import toolchain

STACKS = ("lab", "staging", "prod")
_initialised: set[str] = set()


def stack_ready(engine: toolchain.Engine, stack: str) -> str:
    if stack not in _initialised:
        engine.init_stack(stack)
        _initialised.add(stack)
    return stack


def output(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit code {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


@pytest.mark.parametrize("stack", STACKS)
def test_preview_with_the_policy_pack_passes(engine: toolchain.Engine, stack: str) -> None:
    done = engine.preview(stack_ready(engine, stack))
    assert done.returncode == 0, output(done)
    # The pack ran: the summary lists it under Policies.
    assert re.search(r"Policies:\s*\n.*\bmeshlab@v0\.1\.0\b", done.stdout), output(done)


def test_permissive_mtls_fails_the_preview_naming_the_mtls_policies(engine: toolchain.Engine) -> None:
    stack = "lab-permissive"
    shutil.copyfile(engine.project / "Pulumi.lab.yaml", engine.project / f"Pulumi.{stack}.yaml")
    stack_ready(engine, stack)
    config = engine.run("config", "set", "--stack", stack, "meshlab:meshMtlsMode", "PERMISSIVE")
    assert config.returncode == 0, output(config)

    done = engine.run(
        "preview",
        "--stack",
        stack,
        "--policy-pack",
        "policy-pack",
        "--policy-pack-config",
        "policy-pack/config/lab.json",
    )
    text = done.stdout + done.stderr
    assert done.returncode != 0, output(done)
    # Both mTLS policies are mandatory in config/lab.json; the mesh-wide PeerAuthentication breaks each.
    assert "peer-authentication-strict" in text, output(done)
    assert "mesh-mtls-strict" in text, output(done)


# Pod Security on a privileged test-app container: pending on issue 5. No program setting can make a
# container of the stack privileged today (the test app is restricted by construction, and the one
# privileged namespace, monitoring with node-exporter, holds only Helm-chart pods, which are not stack
# resources), so there is nothing the real engine could be shown to reject yet.


# The offline plan against the real engine. Expected to match exactly but for engine_only(): the
# Kubernetes provider's kubeconfig is an output of the cluster layer, unknown on a first preview, and
# for a provider whose configuration is not fully known the engine neither calls the provider's Check
# (so a Helm Release fetches no chart) nor its Construct: a kubernetes:yaml/v2:ConfigFile registers as
# the one component the mocks see, without the children a configured provider would add (the
# v3.274 engine's provider plugin code says so). The program creates no resource inside an apply, so
# unknown values hide none. Not yet run against a full toolchain (versions.env): any other difference
# is a finding to report, not to exclude.
def engine_only(type_: str, name: str) -> bool:
    """Resources the engine adds that a program under mocks never registers: the root Stack, and a
    default provider for each package used without an explicit provider (default_<version>)."""
    return type_ == "pulumi:pulumi:Stack" or (type_.startswith("pulumi:providers:") and name.startswith("default"))


@pytest.mark.parametrize("stack", STACKS)
def test_preview_lists_the_resources_of_the_offline_plan(engine: toolchain.Engine, stack: str) -> None:
    done = engine.preview(stack_ready(engine, stack), "--json")
    assert done.returncode == 0, output(done)
    real = Counter(
        pair
        for step in toolchain.preview_steps(done.stdout)
        if not engine_only(*(pair := toolchain.type_and_name(str(step["urn"]))))
    )

    plan = subprocess.run(
        [sys.executable, "-m", "tools.plan", stack, "--json"],
        cwd=toolchain.REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    offline = Counter((r["type"], r["name"]) for r in json.loads(plan.stdout)["resources"])

    only_real = sorted((real - offline).elements())
    only_offline = sorted((offline - real).elements())
    assert not only_real and not only_offline, (
        f"only in `pulumi preview --json`: {only_real}\nonly in `tools.plan {stack} --json`: {only_offline}"
    )
