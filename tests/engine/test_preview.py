"""`pulumi preview --policy-pack` with the real engine on every stack.

The program, the stack config and the policy pack are loaded by the real CLI, meshlab's own language
host, the real Kubernetes provider and the stand-ins for command, random and tls. There is no cluster:
the Kubernetes provider's kubeconfig comes from the cluster layer's outputs, unknown on a first
preview, as on a real first `pulumi up`. `pulumi preview --json` lists no policy packs (its keys are
config, steps, diagnostics, duration, changeSummary), so the pack is shown to run by the text preview.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import replace

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


def variant(engine: toolchain.Engine, stack: str, base: str, edits: dict[str, tuple[str, str]]) -> toolchain.Engine:
    """The engine on a copy of the project with `edits`, and stack `stack` set up as a copy of `base`."""
    project = toolchain.copy_project(engine.project.parent / stack, edits)
    edited = replace(engine, project=project)
    shutil.copyfile(project / f"Pulumi.{base}.yaml", project / f"Pulumi.{stack}.yaml")
    edited.init_stack(stack)
    return edited


def refused_by(engine: toolchain.Engine, stack: str, config_of: str, policy: str) -> str:
    """Preview `stack` with the pack and the policy config of stack `config_of`: it must fail, with a
    mandatory violation of `policy`. Returns the output."""
    done = engine.run(
        "preview",
        "--stack",
        stack,
        "--policy-pack",
        "policy-pack",
        "--policy-pack-config",
        f"policy-pack/config/{config_of}.json",
    )
    text = done.stdout + done.stderr
    assert done.returncode != 0, output(done)
    # The CLI's summary line: "- [mandatory] [severity: critical]  POLICY  (TYPE: NAME)".
    assert re.search(rf"\[mandatory\](?: \[severity: \w+\])?\s+{re.escape(policy)}\s", text), output(done)
    return text


# Variants that must be refused on a first preview, when the Kubernetes objects' outputs are not known
# yet: each by the policy that judges inputs.
def test_a_permissive_mesh_is_refused_on_a_first_preview(engine: toolchain.Engine) -> None:
    permissive = variant(engine, "lab-permissive", "lab", {})
    config = permissive.run("config", "set", "--stack", "lab-permissive", "meshlab:meshMtlsMode", "PERMISSIVE")
    assert config.returncode == 0, output(config)
    text = refused_by(permissive, "lab-permissive", "lab", "peer-authentication-strict")
    assert 'PeerAuthentication "istio-system/default" sets mtls.mode PERMISSIVE' in text


def test_a_privileged_test_app_container_is_refused_on_a_first_preview(engine: toolchain.Engine) -> None:
    marker = '"securityContext": RESTRICTED_CONTAINER,'
    privileged_context = '"securityContext": {**RESTRICTED_CONTAINER, "privileged": True},'
    edits = {"components/apps/web_test.py": (marker, privileged_context)}
    privileged = variant(engine, "lab-privileged", "lab", edits)
    text = refused_by(privileged, "lab-privileged", "lab", "pod-security-restricted")
    assert 'restricted Pod Security (namespace "ns-test")' in text and "privileged" in text


def test_an_unpinned_chart_is_refused_where_pinning_is_mandatory(engine: toolchain.Engine) -> None:
    """prod makes helm-charts-pinned mandatory; a chart version range ("3.5" means 3.5.x) fails it."""
    edits = {"config/versions.py": ('KYVERNO_CHART = "3.5.3"', 'KYVERNO_CHART = "3.5"')}
    unpinned = variant(engine, "prod-unpinned", "prod", edits)
    text = refused_by(unpinned, "prod-unpinned", "prod", "helm-charts-pinned")
    assert 'chart "kyverno" version "3.5" is a range' in text


# The offline plan against the real engine. Expected to match exactly but for engine_only(): the
# Kubernetes provider's kubeconfig is an output of the cluster layer, unknown on a first preview, and
# for a provider whose configuration is not fully known the engine neither calls the provider's Check
# (so a Helm Release fetches no chart) nor its Construct: a kubernetes:yaml/v2:ConfigFile registers as
# the one component the mocks see, without the children a configured provider would add (the
# v3.274 engine's provider plugin code says so). The program creates no resource inside an apply, so
# unknown values hide none. With the full toolchain the two lists are equal both ways on every stack:
# any other difference is a finding to report, not to exclude.
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


def lab_previewed_with(engine: toolchain.Engine, stack: str, key: str, value: str) -> Counter[tuple[str, str]]:
    """A copy of the lab as stack `stack`, `key` set to `value` with `pulumi config set`, previewed
    through the policy pack with the lab's policy config: the (type, name) of every step."""
    edited = variant(engine, stack, "lab", {})
    config = edited.run("config", "set", "--stack", stack, key, value)
    assert config.returncode == 0, output(config)
    done = edited.run(
        "preview", "--stack", stack, "--json", "--policy-pack", "policy-pack",
        "--policy-pack-config", "policy-pack/config/lab.json",
    )  # fmt: skip
    assert done.returncode == 0, output(done)
    return Counter(toolchain.type_and_name(str(step["urn"])) for step in toolchain.preview_steps(done.stdout))


def test_a_qemu_lab_previews_with_the_policy_pack_and_its_own_hosts_components(engine: toolchain.Engine) -> None:
    names = lab_previewed_with(engine, "lab-qemu", "meshlab:hypervisor", "qemu")
    types = Counter(type_ for type_, _ in names.elements())
    assert types["meshlab:hosts:QemuVm"] == 6 and types["meshlab:hosts:QemuBridge"] == 1, types
    assert not {t for t in types if t in {"meshlab:hosts:LabHosts", "meshlab:hosts:VirtualBoxVm"}}, types


def test_a_lab_with_the_mesh_benchmark_previews_with_the_policy_pack(engine: toolchain.Engine) -> None:
    """`pulumi config set meshlab:benchmark on` as the README has it: the CLI takes the word, and the
    four data paths preview through the policy pack."""
    names = lab_previewed_with(engine, "lab-bench", "meshlab:benchmark", "on")
    assert names[("meshlab:apps:MeshBenchmark", "benchmark")] == 1, names
    namespaces = sorted(name for (type_, name) in names if type_ == "kubernetes:core/v1:Namespace" and "bench" in name)
    assert namespaces == [f"benchmark-{case}-namespace" for case in ("ambient", "none", "sidecar", "waypoint")]
