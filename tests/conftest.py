"""Shared fixtures: stack configs, and the real program rendered under Pulumi mocks.

Guards against vacuous passes: every rendering must come from the recording monitor and must
have registered resources; tests assert on counts, never inside `apply`.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLOUD_INIT_SITE = ROOT / ".cache" / "cloud-init" / "usr" / "lib" / "python3" / "dist-packages"
STACKS = ("lab", "staging", "prod")
# The stacks whose nodes are VMs; prod runs on existing hosts (tests/test_existing_backend.py checks both).
VM_STACKS = ("lab", "staging")

# The live-cluster suite (tests/e2e) runs only when pointed at a deployed stack.
collect_ignore = [] if os.environ.get("MESHLAB_E2E_STACK") else ["e2e"]

# The project, and the policy pack's importable validators (its folder name is not a package name).
for path in (ROOT, ROOT / "policy-pack"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from config.loader import StackConfig, read_stack_file  # noqa: E402
from tools import fetch_reference  # noqa: E402
from tools.render import Registration, Rendering, render, stack_file, with_overrides  # noqa: E402

# Every hosts backend's component: a rendering has exactly one (the hosts layer ran).
HOSTS_BACKENDS = {"meshlab:hosts:LabHosts", "meshlab:hosts:QemuHosts", "meshlab:hosts:ExistingHosts"}

# The upstream files many tests check rendered documents against: chart values and schemas, CRDs and
# the Pod Security admission plugin's test pods (a typo in a Helm value or a CRD field passes every
# other test). In the meshlab environment they are ../shared/reference, beside this clone. Elsewhere
# `make reference` downloads the same files, pinned by SHA-256 in tools/reference.manifest, into
# .cache/reference. When neither is there, a run that needs them stops with one message naming both.
_FOUND_REFERENCE = fetch_reference.reference_folder()
REFERENCE = _FOUND_REFERENCE or fetch_reference.SHARED
SHARED = REFERENCE.parent  # tests name SHARED / "reference"


def _uses_reference(module: object) -> bool:
    """Whether a test module reads the reference data (a path inside it, or a tests.kube_reference helper)."""
    for value in vars(module).values():
        if isinstance(value, Path) and (value == SHARED or REFERENCE in (value, *value.parents)):
            return True
        if "tests.kube_reference" in (getattr(value, "__module__", None), getattr(value, "__name__", None)):
            return True
    return False


def _missing_reference_message(modules: list[str]) -> str:
    cache = fetch_reference.CACHE
    stale = " (incomplete, or older than tools/reference.manifest)" if cache.is_dir() else ""
    return "\n".join(
        [
            f"the reference data that {', '.join(modules)} check against is missing. It is read from:",
            f"  {fetch_reference.SHARED}: the shared folder beside this clone in the meshlab environment, or",
            f"  {cache}{stale}: the pinned upstream files `make reference` downloads (internet needed).",
            "Run `make reference`, or deselect those tests.",
        ]
    )


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if _FOUND_REFERENCE is not None:
        return
    modules = sorted(
        {
            str(item.path.relative_to(ROOT))
            for item in items
            if isinstance(item, pytest.Function) and _uses_reference(item.module)
        }
    )
    if modules:
        raise pytest.UsageError(_missing_reference_message(modules))


def pytest_collection_finish(session: pytest.Session) -> None:
    """The garbage collector's passes cost a sixth of the tests' own CPU time: what is imported and
    collected by now lives as long as the session, so it is frozen out of every later pass, and the
    youngest generation is collected after 10,000 allocations instead of 700."""
    gc.freeze()
    gc.set_threshold(10_000)


# Registrations per stack that are not per-node:
# - hosts: LabHosts, the SSH key, and the preflight, network and image components with one command each;
# - cluster: Rke2Cluster, its token, NFS server component and command, readiness and kubeconfig
#   steps, and the Kubernetes provider;
# - the layers on Kubernetes: 5 namespaces with their ServiceAccount patches (+1 component), Gateway
#   API CRDs (2), MetalLB with its in-cluster webhook wait (4 + 6: a ServiceAccount, two grants and their
#   bindings, the Job), Istio (6), the ingress (2), the NFS provisioner (2),
#   Kyverno with its webhook wait (3 + 6);
# - observability: Prometheus (2), Grafana with its password, admin Secret and route (5), Kiali with
#   its Grafana password Secret and route (4), and the Hubble UI's route and NetworkPolicy (3);
# - the test app: WebTest, its namespace and ServiceAccount patch, PeerAuthentication, Deployment,
#   Service, waypoint, AuthorizationPolicy, NetworkPolicy, Cilium egress and probe policies, route (12).
FIXED_RESOURCES = 8 + 7 + 11 + 2 + 10 + 6 + 2 + 2 + 9 + 2 + 5 + 4 + 3 + 12
# The plugged-in mesh CA: its component, root key and certificate, intermediate key, request and
# certificate, and the cacerts Secret.
PLUGGED_CA_RESOURCES = 7
# Per node: the VirtualBoxVm component, its seed, VM, SSH-wait and cloud-init steps, then the
# Rke2Node component with preflight, prepare, install, files, start and upgrade steps and one
# copy per file (config.yaml, registries.yaml for the embedded mirror; servers also the Cilium
# HelmChartConfig and kube-vip).
RESOURCES_PER_SERVER = 5 + 7 + 4
RESOURCES_PER_AGENT = 5 + 7 + 2


def expected_resource_count(servers: int, agents: int, *, generated_key: bool = True, plugged_ca: bool = False) -> int:
    fixed = FIXED_RESOURCES - (0 if generated_key else 1) + (PLUGGED_CA_RESOURCES if plugged_ca else 0)
    return fixed + RESOURCES_PER_SERVER * servers + RESOURCES_PER_AGENT * agents


@pytest.fixture(scope="session")
def stack_configs() -> dict[str, StackConfig]:
    return {stack: read_stack_file(stack_file(stack)) for stack in STACKS}


def _checked(rendering: Rendering) -> Rendering:
    resources = rendering.resources()
    assert resources, "the program registered nothing: are the mocks set?"
    assert any(r.type in HOSTS_BACKENDS for r in resources)
    assert any(r.type == "meshlab:cluster:Rke2Cluster" for r in resources)
    return rendering


def _render_key(stack: str, overrides: Mapping[str, Any], secret_keys: frozenset[str]) -> str:
    return json.dumps([stack, sorted(secret_keys), sorted(overrides.items())], default=str)


@pytest.fixture(scope="session")
def _renderings() -> dict[str, Rendering]:
    """Renderings by their inputs (see _render_key), shared by `rendered` and `render_with`."""
    return {}


@pytest.fixture(scope="session")
def rendered(stack_configs: dict[str, StackConfig], _renderings: dict[str, Rendering]) -> dict[str, Rendering]:
    """Each committed stack, rendered once per session."""
    for stack, config in stack_configs.items():
        key = _render_key(stack, {}, frozenset())
        if key not in _renderings:
            _renderings[key] = _checked(render(config, stack))
    return {stack: _renderings[_render_key(stack, {}, frozenset())] for stack in stack_configs}


# depends(resource, target): whether resource names target among its dependencies.
depends = Registration.depends_on


def waits_for(rendering: Rendering, resource: Registration) -> set[str]:
    """Every URN `resource` waits for, directly or through what it waits for."""
    by_urn = rendering.by_urn()
    seen: set[str] = set()
    pending = list(resource.dependencies)
    while pending:
        urn = pending.pop()
        if urn not in seen:
            seen.add(urn)
            pending.extend(by_urn[urn].dependencies if urn in by_urn else [])
    return seen


@pytest.fixture(scope="session")
def lab(rendered: dict[str, Rendering]) -> Rendering:
    """The committed lab stack, rendered."""
    return rendered["lab"]


RenderWith = Callable[..., Rendering]


@pytest.fixture(scope="session")
def render_with(stack_configs: dict[str, StackConfig], _renderings: dict[str, Rendering]) -> RenderWith:
    """Render a stack (the lab by default) with some keys overridden (None removes a key).

    Renderings are shared across the session: the same overrides render once, and no overrides is
    the `rendered` stack. Tests only read them."""

    def run(overrides: Mapping[str, Any], secret_keys: frozenset[str] = frozenset(), stack: str = "lab") -> Rendering:
        key = _render_key(stack, overrides, secret_keys)
        if key not in _renderings:
            base = stack_configs[stack]
            config = with_overrides(base, overrides)
            config = StackConfig(config.values, config.secret_keys | secret_keys)
            _renderings[key] = _checked(render(config, stack))
        return _renderings[key]

    return run
