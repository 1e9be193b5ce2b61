"""Shared fixtures: stack configs, and the real program rendered under Pulumi mocks.

Guards against vacuous passes: every rendering must come from the recording monitor and must
have registered resources; tests assert on counts, never inside `apply`.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import CodeType, FunctionType, ModuleType
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
# `make reference` (or `make test-offline` itself) downloads the same files, pinned by SHA-256 in
# tools/reference.manifest, into .cache/reference. One lookup says which, fetch_reference.reference_folder();
# every test and helper takes its paths from REFERENCE (or SHARED / "reference", the same folder). The whole
# charts (../shared/chart-sources, else .cache/chart-sources: `make reference` fetches both) have theirs,
# fetch_reference.chart_sources_folder(). When a run needs either and it is not there, it stops with one message.
_FOUND_REFERENCE = fetch_reference.reference_folder()
_FOUND_CHART_SOURCES = fetch_reference.chart_sources_folder()
_CHART_SOURCES_LOOKUP = fetch_reference.chart_sources_folder
REFERENCE = _FOUND_REFERENCE or fetch_reference.SHARED
SHARED = REFERENCE.parent  # tests name SHARED / "reference"
_DATA_MISSING = _FOUND_REFERENCE is None or _FOUND_CHART_SOURCES is None
# The modules that say where the data is: importing them (for STACKS, ROOT, ...) is not reading it.
_LOOKUP_MODULES = frozenset({__name__, fetch_reference.__name__})


def _is_reference_path(value: object) -> bool:
    return isinstance(value, Path) and (value == SHARED or REFERENCE in (value, *value.parents))


def _is_chart_sources_lookup(value: object) -> bool:
    return value is _CHART_SOURCES_LOOKUP


def _is_ours(module: ModuleType | None) -> bool:
    """Whether a module is this project's (not the standard library's or an installed package's)."""
    file = getattr(module, "__file__", None)
    path = Path(file).resolve() if file else None
    return path is not None and ROOT in path.parents and "site-packages" not in path.parts


def _in_project(value: ModuleType | type | FunctionType) -> bool:
    """Whether `value` is, or is defined in, a module of this project other than the modules that only say where
    the data is."""
    module = value if isinstance(value, ModuleType) else sys.modules.get(value.__module__)
    return module is not None and module.__name__ not in _LOOKUP_MODULES and _is_ours(module)


def _global_names(code: CodeType) -> Iterator[str]:
    yield from code.co_names
    for constant in code.co_consts:  # nested functions, lambdas, comprehensions
        if isinstance(constant, CodeType):
            yield from _global_names(constant)


def _used_by(value: object) -> list[object]:
    """What using `value` uses in turn: a container's items, a wrapper's function (functools.cache, wraps), a
    property's accessors; and for a module, class or function of this project its globals (a function's: those its
    code names, and what it names of the lookup modules, fetch_reference.chart_sources_folder). Nothing for other
    objects: instances, the standard library's and packages' code."""
    wrapped = getattr(value, "__dict__", {}).get("__wrapped__") if callable(value) else None
    if isinstance(value, dict):
        used = list(value.values())
    elif isinstance(value, tuple | list | set | frozenset):
        used = list(value)
    elif isinstance(value, staticmethod | classmethod):
        used = [value.__func__]
    elif isinstance(value, property):
        used = [value.fget, value.fset, value.fdel]
    elif wrapped is not None:
        used = [wrapped]
    elif not isinstance(value, ModuleType | type | FunctionType) or not _in_project(value):
        used = []
    elif isinstance(value, FunctionType):
        globals_, names = value.__globals__, set(_global_names(value.__code__))
        used = [globals_[name] for name in names if name in globals_]
        # What it names of a module it uses (tests.kube_reference.crd_file, fetch_reference.chart_sources_folder).
        modules = [module for module in used if isinstance(module, ModuleType) and _is_ours(module)]
        used += [getattr(module, name) for module in modules for name in names if hasattr(module, name)]
    else:
        # A package's submodules are attributes once anything imported them: only what uses them names them.
        package = f"{value.__name__}." if isinstance(value, ModuleType) else None
        used = [
            item
            for item in vars(value).values()
            if not (package and isinstance(item, ModuleType) and item.__name__.startswith(package))
        ]
    return used


def _reads(value: object, is_data: Callable[[object], bool], seen: set[int]) -> bool:
    """Whether using `value` reads the data `is_data` recognises, however indirectly (_used_by):
    tests.kube_reference's helpers, tests.kube.manifests' offline copies, a test module's helper imported by
    another, tools.chart_repository's chart sources."""
    if is_data(value):
        return True
    if id(value) in seen:
        return False
    seen.add(id(value))
    return any(_reads(used, is_data, seen) for used in _used_by(value))


def _uses_reference(module: ModuleType) -> bool:
    """Whether a test module reads the reference data: derived from what it holds and uses, so a new module, or
    one that uses a helper of another, is covered without a list to keep."""
    return _reads(module, _is_reference_path, set())


def _uses_chart_sources(module: ModuleType) -> bool:
    """Whether a test module reads the chart sources (through fetch_reference.chart_sources_folder)."""
    return _reads(module, _is_chart_sources_lookup, set())


def _needs_missing_data(module: ModuleType) -> bool:
    return (_FOUND_REFERENCE is None and _uses_reference(module)) or (
        _FOUND_CHART_SOURCES is None and _uses_chart_sources(module)
    )


def _missing_reference_message(modules: list[str]) -> str:
    missing = [
        (shared, cache)
        for found, shared, cache in (
            (_FOUND_REFERENCE, fetch_reference.SHARED, fetch_reference.CACHE),
            (_FOUND_CHART_SOURCES, fetch_reference.CHART_SHARED, fetch_reference.CHART_CACHE),
        )
        if found is None
    ]
    stale = " (incomplete, or older than its manifest)" if any(cache.is_dir() for _, cache in missing) else ""
    return "\n".join(
        [
            f"the reference data that {', '.join(modules)} check against is missing. It is read from:",
            f"  {' and '.join(str(shared) for shared, _ in missing)}: beside this clone in the meshlab environment, or",
            f"  {' and '.join(str(cache) for _, cache in missing)}{stale}: the pinned upstream files",
            "  `make reference` downloads (internet needed, or a mirror: MESHLAB_REFERENCE_MIRROR=URL make reference).",
            "Run `make reference` (`make test-offline` runs it when the data is missing), or leave those modules",
            f"out of this run: {' '.join(f'--deselect {module}' for module in modules)}",
        ]
    )


_WITHOUT_WORKERS = pytest.StashKey[bool]()
_NEEDS_NONE = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    """Without the reference data, no pytest-xdist workers: the guard below stops a run that needs the data
    with a UsageError, which a worker cannot pass on to the controller (pytest-xdist#109: the run ends in
    INTERNALERROR lines instead). So the controller turns distribution off before any worker starts (xdist's
    own pytest_configure, which starts them, runs last), and the run is a serial one: the guard stops it with
    its message, or, when the selected tests need none of the missing data, they run on one core."""
    if _DATA_MISSING and not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no":
        config.option.dist = "no"
        config.stash[_WITHOUT_WORKERS] = True


@pytest.hookimpl(trylast=True)  # after -k, -m and --deselect: only the tests that will run count
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _DATA_MISSING:
        return
    selected = {item.module: item.path for item in items if isinstance(item, pytest.Function)}
    modules = sorted(str(path.relative_to(ROOT)) for module, path in selected.items() if _needs_missing_data(module))
    if modules:
        raise pytest.UsageError(_missing_reference_message(modules))
    config.stash[_NEEDS_NONE] = True


def pytest_report_collectionfinish(config: pytest.Config) -> list[str]:
    if config.stash.get(_WITHOUT_WORKERS, False) and config.stash.get(_NEEDS_NONE, False):
        return ["no reference data (`make reference`): these tests need none, and run without pytest-xdist workers"]
    return []


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
# Per node: the VirtualBoxVm component, its SSH host key, seed, VM, SSH-wait and cloud-init steps, then the
# Rke2Node component with preflight, prepare, install, files, start and upgrade steps and one
# copy per file (config.yaml, registries.yaml for the embedded mirror; servers also the Cilium
# HelmChartConfig and kube-vip).
RESOURCES_PER_SERVER = 6 + 7 + 4
RESOURCES_PER_AGENT = 6 + 7 + 2


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
