"""A resource as the validators see it, and tolerant readers for Kubernetes-shaped data.

Values come from three places: Pulumi inputs (CrossGuard wraps them in read-only Mapping and
Sequence proxies, not dict and list), recorded mock registrations, and YAML manifests. The readers
accept any Mapping or non-string Sequence and treat anything else as absent, so a malformed field
is reported by the check that needs it rather than crashing the whole policy.

During a preview the engine does not know every value yet. Stack policies see outputs, and a preview
Create through a provider that is not configured yet (the Kubernetes provider on a first preview: its
kubeconfig is the cluster layer's output) has none at all; computed fields are unknown. Such a value
is `UNKNOWN` here, and `Resource.knows` tells a check whether it may conclude anything from a field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

CORE_GROUP = "core"
DEFAULT_NAMESPACE = "default"


class Unknown:
    """The type of `UNKNOWN`: a value the engine will only know once the resource exists."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = Unknown()
Path = tuple[str, ...]


def unknown_paths(value: object, path: Path = ()) -> list[Path]:
    """Where `UNKNOWN` occurs in a value, as key paths."""
    if isinstance(value, Unknown):
        return [path]
    if isinstance(value, Mapping):
        return [found for key, item in value.items() for found in unknown_paths(item, (*path, str(key)))]
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [found for index, item in enumerate(value) for found in unknown_paths(item, (*path, str(index)))]
    return []


def mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def items(value: object) -> list[Any]:
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return list(value)
    return []


def text(value: object) -> str:
    return value if isinstance(value, str) else ""


def quoted(names: Sequence[str]) -> str:
    return ", ".join(f'"{name}"' for name in names)


@dataclass(frozen=True)
class KubeType:
    """The group, version and kind of a `kubernetes:<group>/<version>:<Kind>` type token."""

    group: str
    version: str
    kind: str

    def token(self) -> str:
        return f"kubernetes:{self.group}/{self.version}:{self.kind}"


def kube_type(token: str) -> KubeType | None:
    provider, _, rest = token.partition(":")
    module, _, kind = rest.partition(":")
    group, _, version = module.rpartition("/")
    if provider != "kubernetes" or not (version and kind):
        return None
    # `kubernetes:v1:Namespace` is what a generic CustomResource of a core kind gets; it is still core.
    return KubeType(group or CORE_GROUP, version, kind)


def type_of_manifest(api_version: str, kind: str) -> KubeType:
    """The type token a Kubernetes object would get in Pulumi: `v1` is the core group."""
    group, _, version = api_version.rpartition("/")
    return KubeType(group or CORE_GROUP, version, kind)


@dataclass(frozen=True)
class Resource:
    """One resource: its Pulumi type token, name, URN and properties (camelCase, as Kubernetes has them)."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]

    @property
    def kube(self) -> KubeType | None:
        return kube_type(self.type)

    @cached_property
    def _unknown(self) -> list[Path]:
        return unknown_paths(self.props)

    def knows(self, *fields: str) -> bool:
        """Whether every dotted field (e.g. "metadata.labels") is known: the resource has properties at
        all, and none of them is unknown at, above or below the field. An absent field is known."""
        if not self.props:
            return False
        for field in fields:
            wanted = tuple(field.split("."))
            if any(unknown[: len(wanted)] == wanted[: len(unknown)] for unknown in self._unknown):
                return False
        return True

    def is_kind(self, group: str, kind: str) -> bool:
        kube = self.kube
        return kube is not None and kube.group == group and kube.kind == kind

    @property
    def metadata(self) -> Mapping[str, Any]:
        return mapping(self.props.get("metadata"))

    @property
    def spec(self) -> Mapping[str, Any]:
        return mapping(self.props.get("spec"))

    @property
    def object_name(self) -> str:
        """metadata.name, or the Pulumi name when Pulumi auto-names the object."""
        return text(self.metadata.get("name")) or self.name

    @property
    def namespace(self) -> str:
        return text(self.metadata.get("namespace")) or DEFAULT_NAMESPACE

    @property
    def labels(self) -> Mapping[str, Any]:
        return mapping(self.metadata.get("labels"))

    @property
    def annotations(self) -> Mapping[str, Any]:
        return mapping(self.metadata.get("annotations"))


def helm_chart_name(resource: Resource) -> str | None:
    """The chart a Helm release or v4 Chart installs, without its repository ("istio/istiod" and
    "oci://registry.example/istio/istiod" are "istiod"); None for anything else."""
    kube = resource.kube
    if kube is None or kube.group != "helm.sh" or kube.kind not in {"Release", "Chart"}:
        return None
    return text(resource.props.get("chart")).rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class StackViolation:
    """A stack policy's finding, attached to a resource when one is to blame."""

    message: str
    urn: str | None = None
