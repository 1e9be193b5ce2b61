"""What a stack asks Kubernetes to hold, from its offline rendering: manifests in dependency order.

Every Kubernetes object the program registers, except Helm releases (their charts are not rendered
offline); a `kubernetes:yaml/v2:ConfigFile` is replaced by the documents of its file, which must have
an offline copy in the reference data. Values that are Pulumi secrets (recorded as "[secret]") get
placeholders. The order is a topological order of the program's own dependencies (a dependency on a
component is one on everything under it), ties broken by URN: what `pulumi up` may do
first is exactly what has no dependency left, so a manifest that needs an earlier one it does not
depend on fails here as it could in a real run.

Pure functions of a Rendering: no server. tests/test_kube_manifests.py checks them offline.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import SHARED
from tools.render import SECRET, UNKNOWN, Registration, Rendering

REFERENCE_CRDS = SHARED / "reference" / "crds"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CONFIG_FILE = "kubernetes:yaml/v2:ConfigFile"
# Types that stand for many objects this module cannot expand (yet): fail rather than leave them out.
UNEXPANDED_PREFIXES = ("kubernetes:yaml", "kubernetes:kustomize", "kubernetes:helm.sh/v4")
PREEXISTING_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
PLACEHOLDER = "meshlab-kube-tier-placeholder"
# Offline copies of the manifests a ConfigFile names by URL (no URL can be fetched here).
GATEWAY_API_INSTALL = re.compile(
    r"https://github\.com/kubernetes-sigs/gateway-api/releases/download/(v\d+\.\d+\.\d+)/standard-install\.yaml"
)


@dataclass(frozen=True)
class Manifest:
    source: str  # the registration it comes from: its Pulumi name (a ConfigFile's name for its documents)
    urn: str
    type: str  # the Pulumi type token
    body: dict[str, Any]
    patch: bool  # a Pulumi *Patch resource: applied over the live object, which must exist

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def api_version(self) -> str:
        return str(self.body["apiVersion"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        namespace = self.body["metadata"].get("namespace")
        return None if namespace is None else str(namespace)

    @property
    def ref(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name} ({self.source})"


def is_object(registration: Registration) -> bool:
    """A Kubernetes object the program registers itself (not a release, file or provider)."""
    kind = registration.type
    if not registration.custom or not kind.startswith("kubernetes:") or kind in (HELM_RELEASE, CONFIG_FILE):
        return False
    if kind.startswith(UNEXPANDED_PREFIXES):
        raise ValueError(f"{registration.name}: {kind} stands for objects this tier cannot expand offline")
    return True


def _closure(rendering: Rendering) -> dict[str, set[str]]:
    """Each registration's direct dependencies, a component standing for everything under it."""
    by_urn = rendering.by_urn()
    children: dict[str, list[str]] = {}
    for registration in rendering.registrations:
        children.setdefault(registration.parent, []).append(registration.urn)

    def expand(urn: str) -> Iterator[str]:
        if urn not in by_urn:
            raise ValueError(f"a dependency names {urn}, which the program never registered")
        yield urn
        if not by_urn[urn].custom:
            for child in children.get(urn, []):
                yield from expand(child)

    return {r.urn: {d for dep in r.dependencies for d in expand(dep)} for r in rendering.registrations}


def dependency_order(rendering: Rendering) -> list[Registration]:
    """Every registration after all it depends on; ties in URN order (registration order under mocks
    follows the event loop, which need not repeat)."""
    dependencies = _closure(rendering)
    placed: set[str] = set()
    order: list[Registration] = []
    pending = sorted(rendering.registrations, key=lambda r: r.urn)
    while pending:
        ready = next((r for r in pending if dependencies[r.urn] <= placed), None)
        if ready is None:
            raise ValueError(f"dependency cycle among {sorted(r.name for r in pending)}")
        pending.remove(ready)
        placed.add(ready.urn)
        order.append(ready)
    return order


def depends_transitively(rendering: Rendering) -> dict[str, set[str]]:
    """Each registration's dependencies, direct or not (components expanded)."""
    direct = _closure(rendering)
    result: dict[str, set[str]] = {}

    def walk(urn: str) -> set[str]:
        if urn not in result:
            result[urn] = set()
            found = set(direct[urn])
            for dep in direct[urn]:
                found |= walk(dep)
            result[urn] = found
        return result[urn]

    for urn in direct:
        walk(urn)
    return result


def _placeholder(path: tuple[str, ...]) -> Any:
    """A stand-in for a secret at `path`: base64 under a Secret's `data`, a map where a whole map is secret."""
    if path in (("data",), ("stringData",)):
        return {"value": _placeholder((*path, "value"))}
    if path[:1] == ("data",) and len(path) == 2:
        return base64.b64encode(PLACEHOLDER.encode()).decode()
    return PLACEHOLDER


def with_placeholders(value: Any, path: tuple[str, ...] = ()) -> Any:
    """`value` with every "[secret]" replaced by a placeholder; an "[unknown]" is an error."""
    if value == SECRET:
        return _placeholder(path)
    if value == UNKNOWN:
        raise ValueError(f"{'.'.join(path)} is unknown in the offline rendering")
    if isinstance(value, Mapping):
        return {key: with_placeholders(item, (*path, str(key))) for key, item in value.items()}
    if isinstance(value, list):
        return [with_placeholders(item, (*path, str(index))) for index, item in enumerate(value)]
    return value


def object_body(registration: Registration) -> dict[str, Any]:
    """The object as the provider sends it: the inputs, secrets as placeholders, a name if none is set
    (the provider auto-names an object after its resource, with a random suffix; here a stable one)."""
    body: dict[str, Any] = with_placeholders(copy.deepcopy(registration.inputs))
    metadata = body.setdefault("metadata", {})
    if not metadata.get("name"):
        metadata["name"] = f"{registration.name}-{hashlib.sha256(registration.urn.encode()).hexdigest()[:8]}"
    for required in ("apiVersion", "kind"):
        if not body.get(required):
            raise ValueError(f"{registration.name}: no {required} in its inputs")
    return body


# libyaml's loader when PyYAML has it: the reference CRDs are 5 MB of YAML.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@cache
def _documents(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.load_all(path.read_text(), Loader=_LOADER) if doc)


def load_documents(paths: list[Path]) -> list[dict[str, Any]]:
    """Every document of the files, parsed once per session (callers must not change them)."""
    return [doc for path in paths for doc in _documents(path)]


def offline_copy(url: str) -> list[Path]:
    """The reference files that hold what `url` serves."""
    found = GATEWAY_API_INSTALL.fullmatch(url)
    folder = REFERENCE_CRDS / f"gateway-api-{found.group(1)}-standard" if found else None
    if folder is None or not folder.is_dir():
        raise ValueError(f"no offline copy of {url} in {REFERENCE_CRDS}")
    return sorted(folder.glob("*.yaml"))


def config_file_manifests(registration: Registration) -> list[Manifest]:
    url = str(registration.inputs.get("file", ""))
    return [
        Manifest(
            f"{registration.name}: {doc['kind']} {doc['metadata']['name']}", registration.urn, CONFIG_FILE, doc, False
        )
        for doc in load_documents(offline_copy(url))
    ]


def manifests(rendering: Rendering) -> list[Manifest]:
    """Every Kubernetes object of the stack, in dependency order."""
    result: list[Manifest] = []
    for registration in dependency_order(rendering):
        if registration.type == CONFIG_FILE:
            result.extend(config_file_manifests(registration))
        elif is_object(registration):
            body = object_body(registration)
            patch = registration.type.endswith("Patch")
            result.append(Manifest(registration.name, registration.urn, registration.type, body, patch))
    return result


def reference_crds() -> list[dict[str, Any]]:
    """Every CustomResourceDefinition of the reference data (what the charts and RKE2 install)."""
    documents = load_documents(sorted(REFERENCE_CRDS.glob("*/*.yaml")))
    return [doc for doc in documents if doc.get("kind") == "CustomResourceDefinition"]


POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def pod_templates(items: list[Manifest]) -> list[tuple[Manifest, dict[str, Any]]]:
    """(manifest, pod template) of every workload among `items`; a bare Pod is its own template."""
    found = []
    for manifest in items:
        if manifest.kind == "Pod" and manifest.api_version == "v1":
            found.append((manifest, {"metadata": manifest.body["metadata"], "spec": manifest.body["spec"]}))
        elif manifest.kind in POD_TEMPLATE_PATHS:
            template: Any = manifest.body
            for key in POD_TEMPLATE_PATHS[manifest.kind]:
                template = template[key]
            found.append((manifest, template))
    return found
