"""Custom resources from plain documents, so the same dict is what tests validate against the CRD."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s


def custom_resource(
    name: str, document: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """Register `document` (apiVersion, kind, metadata and its other top-level fields) as `name`."""
    fields = {key: value for key, value in document.items() if key not in ("apiVersion", "kind", "metadata")}
    return k8s.apiextensions.CustomResource(
        name,
        api_version=document["apiVersion"],
        kind=document["kind"],
        metadata=document["metadata"],
        opts=opts,
        **fields,
    )
