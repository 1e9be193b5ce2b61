"""Kubernetes objects from plain documents, so the same dict is what tests validate against its schema.

The provider handles an object by its type token and document, whether it was built through a
typed class or here; the token is the one the typed class would use (`core/v1` for the core
group), so previews, diffs and policies see the same thing.

The core group's typed classes (`pulumi_kubernetes.core.v1`) are not used: importing that package
imports every core kind with its 2.5 MB of input types, a third of a CPU second (half the cost of
registering the whole lab); nor are `pulumi_kubernetes.yaml` and `.helm.v3`, whose packages import
`requests` for the YAML v1 classes (50 ms). `secret`, `service_account_patch`, `config_file` and
`helm_release` register exactly what `k8s.core.v1.Secret`, `k8s.core.v1.ServiceAccountPatch`,
`k8s.yaml.v2.ConfigFile` and `k8s.helm.v3.Release` would: the same token, inputs, secret inputs and
outputs, and the provider version the typed classes name (tests/test_kube_registrations.py compares
the requests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi_kubernetes import _utilities as k8s_utilities

# A container's security context that Pod Security `restricted` accepts, with a read-only root on top.
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def type_token(api_version: str, kind: str) -> str:
    group_version = api_version if "/" in api_version else f"core/{api_version}"
    return f"kubernetes:{group_version}:{kind}"


def kube_object(name: str, document: dict[str, Any], opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """Register `document` (apiVersion, kind, metadata and its other top-level fields) as `name`."""
    return pulumi.CustomResource(type_token(document["apiVersion"], document["kind"]), name, dict(document), opts)


def _typed_class_options(
    opts: pulumi.ResourceOptions, *, secret_outputs: list[str] | None = None
) -> pulumi.ResourceOptions:
    """`opts` as a generated pulumi_kubernetes class passes them on: after the SDK's defaults (its
    provider version), and with the outputs it keeps secret."""
    merged = pulumi.ResourceOptions.merge(k8s_utilities.get_resource_opts_defaults(), opts)
    if secret_outputs:
        merged = pulumi.ResourceOptions.merge(merged, pulumi.ResourceOptions(additional_secret_outputs=secret_outputs))
    return merged


def secret(
    name: str,
    *,
    metadata: Mapping[str, Any],
    type: str,
    string_data: pulumi.Input[Mapping[str, pulumi.Input[str]]],
    opts: pulumi.ResourceOptions,
) -> pulumi.CustomResource:
    """A core/v1 Secret, as `k8s.core.v1.Secret(name, metadata=..., type=..., string_data=...)`:
    `stringData` is a secret input, `data` and `stringData` secret outputs."""
    props = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "stringData": pulumi.Output.secret(string_data),
        "type": type,
    }
    options = _typed_class_options(opts, secret_outputs=["data", "stringData"])
    return pulumi.CustomResource(type_token("v1", "Secret"), name, props, options)


def service_account_patch(
    name: str, *, metadata: Mapping[str, Any], automount_service_account_token: bool, opts: pulumi.ResourceOptions
) -> pulumi.CustomResource:
    """A server-side patch of a ServiceAccount, as `k8s.core.v1.ServiceAccountPatch(...)`."""
    props = {
        "apiVersion": "v1",
        "automountServiceAccountToken": automount_service_account_token,
        "kind": "ServiceAccount",
        "metadata": metadata,
    }
    return pulumi.CustomResource(type_token("v1", "ServiceAccountPatch"), name, props, _typed_class_options(opts))


def config_file(name: str, *, file: str, opts: pulumi.ResourceOptions) -> pulumi.ComponentResource:
    """The objects of a YAML manifest, as `k8s.yaml.v2.ConfigFile(name, file=...)`: a component the
    provider expands (remote)."""
    options = _typed_class_options(opts)
    return pulumi.ComponentResource("kubernetes:yaml/v2:ConfigFile", name, {"file": file}, options, remote=True)


def helm_release(
    name: str,
    *,
    release_name: str,
    chart: str,
    version: str,
    repository: str,
    namespace: str,
    values: pulumi.Input[Mapping[str, Any]],
    timeout: int,
    opts: pulumi.ResourceOptions,
) -> pulumi.CustomResource:
    """`helm upgrade --install`, as `k8s.helm.v3.Release(name, name=release_name, chart=..., version=...,
    repository_opts=RepositoryOptsArgs(repo=repository), namespace=..., values=..., timeout=...)`."""
    props = {
        "chart": chart,
        # The generated class always sends it: the provider reads the release in its current schema.
        "compat": "true",
        "name": release_name,
        "namespace": namespace,
        "repositoryOpts": {"repo": repository},
        "timeout": timeout,
        "values": values,
        "version": version,
    }
    return pulumi.CustomResource("kubernetes:helm.sh/v3:Release", name, props, _typed_class_options(opts))
