"""Helpers that check generated Kubernetes documents and Helm values against ../shared/reference.

Helm ignores unknown values silently and the API server prunes unknown fields, so a typo in
either would pass every other test; these checks read the upstream files instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.conftest import SHARED

REFERENCE = SHARED / "reference"
CHARTS = REFERENCE / "charts"
CRDS = REFERENCE / "crds"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<comment># ?)?(?P<key>[A-Za-z_][\w.-]*):(?:\s|$)")


def crd_schema(crd_file: Path, kind: str, version: str) -> dict[str, Any]:
    for document in yaml.safe_load_all(crd_file.read_text()):
        if document and document["spec"]["names"]["kind"] == kind:
            for served in document["spec"]["versions"]:
                if served["name"] == version:
                    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
                    return schema
    raise LookupError(f"{kind} {version} is not in {crd_file}")


def validate_against_crd(document: dict[str, Any], crd_file: Path) -> None:
    """Raise jsonschema.ValidationError when `document` breaks its CRD's structural schema,
    including fields the CRD does not define (which the API server would silently drop)."""
    _, _, version = document["apiVersion"].rpartition("/")
    schema = crd_schema(crd_file, document["kind"], version)
    jsonschema.Draft7Validator(_closed(schema)).validate(document)


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
