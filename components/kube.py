"""Kubernetes objects from plain documents, so the same dict is what tests validate against its schema.

The provider handles an object by its type token and document, whether it was built through a
typed class or here; the token is the one the typed class would use (`core/v1` for the core
group), so previews, diffs and policies see the same thing.
"""

from __future__ import annotations

from typing import Any

import pulumi


def type_token(api_version: str, kind: str) -> str:
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def kube_object(name: str, document: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register `document` (apiVersion, kind, metadata and its other top-level fields) as `name`."""
    return pulumi.CustomResource(type_token(document["apiVersion"], document["kind"]), name, dict(document), opts)
