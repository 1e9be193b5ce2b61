"""Helpers that check generated Kubernetes documents and Helm values against the reference data.

That is ../shared/reference in the meshlab environment, else the pinned copy `make reference` downloads
into .cache/reference: tests/conftest.py's REFERENCE, the one lookup (tools/fetch_reference.py's
reference_folder()) every test and helper uses; it stops a run that has neither.

Helm ignores unknown values silently and the API server prunes unknown fields, so a typo in
either would pass every other test; these checks read the upstream files instead.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.conftest import REFERENCE

CHARTS = REFERENCE / "charts"
CRDS = REFERENCE / "crds"

# libyaml's loader: the reference CRDs are megabytes of YAML.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SECURITY_CONTEXT = re.compile(r"security_?context$", re.IGNORECASE)
_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<comment># ?)?(?P<key>[A-Za-z_][\w.-]*):(?:\s|$)")


@cache
def _crd_documents(crd_file: Path) -> tuple[dict[str, Any], ...]:
    return tuple(document for document in yaml.load_all(crd_file.read_text(), Loader=_LOADER) if document)


def crd_schema(crd_file: Path, kind: str, version: str) -> dict[str, Any]:
    for document in _crd_documents(crd_file):
        if document["spec"]["names"]["kind"] == kind:
            for served in document["spec"]["versions"]:
                if served["name"] == version:
                    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
                    return schema
    raise LookupError(f"{kind} {version} is not in {crd_file}")


@cache
def _crd_validator(crd_file: Path, kind: str, version: str) -> jsonschema.Draft7Validator:
    schema = _closed(crd_schema(crd_file, kind, version))
    # Some CRDs describe only spec and status; every object also has these three.
    schema["properties"] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {},
        **schema.get("properties", {}),
    }
    return jsonschema.Draft7Validator(schema)


def validate_against_crd(document: dict[str, Any], crd_file: Path) -> None:
    """Raise jsonschema.ValidationError when `document` breaks its CRD's structural schema,
    including fields the CRD does not define (which the API server would silently drop)."""
    _, _, version = document["apiVersion"].rpartition("/")
    _crd_validator(crd_file, document["kind"], version).validate(document)


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with unknown properties forbidden wherever the CRD lists its properties
    (metadata is left open: its schema lives in the API server, not the CRD)."""
    closed = dict(schema)
    if "properties" in closed and not closed.get("x-kubernetes-preserve-unknown-fields"):
        closed["properties"] = {
            key: value if key == "metadata" else _closed(value) for key, value in closed["properties"].items()
        }
        closed.setdefault("additionalProperties", False)
    if isinstance(closed.get("items"), dict):
        closed["items"] = _closed(closed["items"])
    return closed


def documented_value_paths(values_file: Path) -> set[str]:
    """Every dotted key path a chart's values.yaml defines or documents as a commented-out key.

    Charts document optional keys as comments (`# hostNamespaceOnly: false`); those are as
    valid to set as the uncommented ones."""
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in values_file.read_text().splitlines():
        match = _KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([*(key for _, key in stack), match["key"]])
        paths.add(path)
        if not match["comment"]:
            stack.append((indent, match["key"]))
    return paths


def value_paths(values: dict[str, Any], prefix: str = "") -> set[str]:
    """The dotted paths of every leaf (and every mapping) in a values tree."""
    paths: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        paths.add(path)
        if isinstance(value, dict) and value:
            paths |= value_paths(value, f"{path}.")
    return paths


def merged(defaults: Any, overrides: Any) -> Any:
    """Helm's value merge: mappings merge key by key, everything else is replaced."""
    if isinstance(defaults, dict) and isinstance(overrides, dict):
        return {**defaults, **{key: merged(defaults.get(key), value) for key, value in overrides.items()}}
    return overrides


# Istio's charts are published as base, istiod, cni and ztunnel; the reference folders say istio-*.
_REFERENCE_PREFIX = {"base": "istio-", "istiod": "istio-", "cni": "istio-", "ztunnel": "istio-"}
# Istio charts keep their defaults under this key and read user values from the top level.
ISTIO_DEFAULTS_KEY = "_internal_defaults_do_not_set"


def reference_chart(chart: str, version: str) -> Path:
    """The reference folder of a pinned chart, e.g. ("cni", "1.27.0") -> charts/istio-cni-1.27.0."""
    folder = CHARTS / f"{_REFERENCE_PREFIX.get(chart, '')}{chart}-{version}"
    if not folder.is_dir():
        raise LookupError(f"no reference chart for {chart} {version} in {CHARTS}")
    return folder


def chart_defaults(folder: Path) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((folder / "values.yaml").read_text()) or {}
    return values.get(ISTIO_DEFAULTS_KEY, values) if set(values) == {ISTIO_DEFAULTS_KEY} else values


def chart_value_paths(folder: Path) -> set[str]:
    """Dotted paths a chart's values.yaml defines or documents (Istio's wrapper key removed)."""
    prefix = f"{ISTIO_DEFAULTS_KEY}."
    return {path.removeprefix(prefix) for path in documented_value_paths(folder / "values.yaml")}


def _crd_index() -> dict[tuple[str, str], Path]:
    index: dict[tuple[str, str], Path] = {}
    for path in sorted(CRDS.rglob("*.yaml")):
        for document in _crd_documents(path):
            if isinstance(document, dict) and document.get("kind") == "CustomResourceDefinition":
                index[(document["spec"]["group"], document["spec"]["names"]["kind"])] = path
    return index


_CRD_INDEX: dict[tuple[str, str], Path] = {}


def crd_file(api_version: str, kind: str) -> Path:
    """The reference CRD file that defines `kind` in the API group of `api_version`."""
    if not _CRD_INDEX:
        _CRD_INDEX.update(_crd_index())
    group = api_version.rpartition("/")[0]
    try:
        return _CRD_INDEX[(group, kind)]
    except KeyError:
        raise LookupError(f"no reference CRD for {kind} in {group}") from None


def open_value_paths(folder: Path) -> set[str]:
    """Paths where the chart takes a whole object (an empty map by default, or a security context),
    so the keys below are the object's, not the chart's. Security contexts are checked as
    Kubernetes objects by the pod-model tests instead."""

    def walk(values: Any, prefix: str) -> set[str]:
        found: set[str] = set()
        if isinstance(values, dict):
            for key, value in values.items():
                path = f"{prefix}{key}"
                if value == {} or _SECURITY_CONTEXT.search(str(key)):
                    found.add(path)
                found |= walk(value, f"{path}.")
        return found

    return walk(chart_defaults(folder), "")
