"""The CrossGuard wiring: the policy objects, their validate callbacks under pulumi_policy's own
argument types and property proxies, the analyzer servicer end to end, and the pack's entry point,
all without constructing a PolicyPack (which would start a server and block)."""

from __future__ import annotations

import ast
import runpy
import subprocess
import sys
from typing import Any

import pulumi_policy
import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import policy as crossguard
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from tools.policy import POLICY_PACK_DIR, ROOT

# isort: split
from meshlab_policy.catalog import CATALOG, PACK_NAME
from meshlab_policy.policies import build_policies
from meshlab_policy.settings import CONFIG_SCHEMA

POLICIES = {policy.name: policy for policy in build_policies()}
OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])

ROOT_DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "ns-test"},
    "spec": {
        "template": {
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx", "securityContext": {"privileged": True, "runAsUser": 0.0}}
                ]
            }
        }
    },
}


def resource_args(type_: str, props: dict[str, Any], config: dict[str, Any] | None = None) -> ResourceValidationArgs:
    # CrossGuard hands validators read-only proxies, not dicts and lists.
    return ResourceValidationArgs(type_, unknown_checking_proxy(props), f"urn:{type_}", "web", OPTIONS, None, config)


def reports(policy: Any, args: Any) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    policy.validate(args, lambda message, urn=None: found.append((message, urn)))
    return found


def test_policies_mirror_the_catalog():
    assert list(POLICIES) == [spec.name for spec in CATALOG]
    for spec in CATALOG:
        policy = POLICIES[spec.name]
        expected_type = ResourceValidationPolicy if spec.validate_resource else StackValidationPolicy
        assert isinstance(policy, expected_type)
        assert policy.enforcement_level == EnforcementLevel(spec.enforcement.value)
        assert policy.description and policy.remediation_steps
        schema = policy.config_schema.properties if policy.config_schema else {}
        assert schema == {key: CONFIG_SCHEMA[key] for key in spec.config_keys}


def test_resource_policies_report_through_crossguard_arguments():
    found = reports(
        POLICIES["pod-security-restricted"], resource_args("kubernetes:apps/v1:Deployment", ROOT_DEPLOYMENT)
    )
    messages = [message for message, _ in found]
    assert all(urn is None for _, urn in found), "resource violations belong to the resource itself"
    assert any('privileged: container "web"' in m for m in messages)
    assert any("runAsUser=0" in m for m in messages)
    pinned = reports(POLICIES["images-pinned"], resource_args("kubernetes:apps/v1:Deployment", ROOT_DEPLOYMENT))
    assert len(pinned) == 1 and '"nginx"' in pinned[0][0]


def test_resource_policies_read_their_crossguard_config():
    exempt = {"exemptNamespaces": [{"namespace": "ns-test", "level": "privileged", "reason": "test"}]}
    args = resource_args("kubernetes:apps/v1:Deployment", ROOT_DEPLOYMENT, exempt)
    assert reports(POLICIES["pod-security-restricted"], args) == []


def test_stack_policies_report_with_the_urn_to_blame():
    resources = [
        PolicyResource(
            "kubernetes:helm.sh/v3:Release",
            unknown_checking_proxy({"chart": "istiod", "version": "1.27.0"}),
            "urn:istiod",
            "istiod",
            OPTIONS,
            None,
            None,
            [],
            {},
        ),
        PolicyResource(
            "kubernetes:core/v1:Namespace",
            unknown_checking_proxy({"metadata": {"name": "ns-test", "labels": {"istio.io/dataplane-mode": "ambient"}}}),
            "urn:ns-test",
            "ns-test",
            OPTIONS,
            None,
            None,
            [],
            {},
        ),
    ]
    found = reports(POLICIES["mesh-mtls-strict"], StackValidationArgs(resources, None))
    assert {urn for _, urn in found} == {None, "urn:ns-test"}
    assert reports(POLICIES["ambient-waypoint-attachment"], StackValidationArgs(resources, {})) == []


def test_unknown_values_reach_crossguard_instead_of_passing_silently():
    props = {**ROOT_DEPLOYMENT, "metadata": {"name": "web", "namespace": UNKNOWN_STRING_VALUE}}
    with pytest.raises(UnknownValueError):
        reports(POLICIES["pod-security-restricted"], resource_args("kubernetes:apps/v1:Deployment", props))


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def test_the_analyzer_serves_the_pack_end_to_end():
    """The servicer PolicyPack would start, driven with the engine's own protobuf requests."""
    # The servicer's gRPC methods are untyped; Any keeps strict mypy from refusing each call.
    servicer: Any = crossguard._PolicyAnalyzerServicer(PACK_NAME, "0.1.0", build_policies(), EnforcementLevel.MANDATORY)
    info = servicer.GetAnalyzerInfo(None, None)
    assert [p.name for p in info.policies] == list(POLICIES)
    declared = {p.name: dict(p.configSchema.properties) for p in info.policies}
    assert set(declared["pod-security-restricted"]) == {"exemptNamespaces", "relaxUserNamespacePods"}
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels["mesh-mtls-strict"] == proto.MANDATORY and levels["images-pinned"] == proto.ADVISORY

    raise_images = {"images-pinned": proto.PolicyConfig(enforcementLevel=proto.MANDATORY)}
    servicer.Configure(proto.ConfigureAnalyzerRequest(policyConfig=raise_images), None)
    request = proto.AnalyzeRequest(
        type="kubernetes:apps/v1:Deployment", properties=_struct(ROOT_DEPLOYMENT), urn="urn:web", name="web"
    )
    diagnostics = servicer.Analyze(request, None).diagnostics
    assert {d.policyName for d in diagnostics} == {"pod-security-restricted", "images-pinned"}
    assert {d.enforcementLevel for d in diagnostics} == {proto.MANDATORY}
    assert any("runAsUser=0" in d.message for d in diagnostics), "numbers arrive as floats"

    pa = {"metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "PERMISSIVE"}}}
    stack = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(
                type="kubernetes:security.istio.io/v1:PeerAuthentication",
                properties=_struct(pa),
                urn="urn:pa",
                name="default",
            )
        ]
    )
    (mesh,) = servicer.AnalyzeStack(stack, None).diagnostics
    assert mesh.policyName == "mesh-mtls-strict" and mesh.urn == "urn:pa" and "STRICT" in mesh.message


def test_the_entry_point_builds_exactly_the_pack(monkeypatch):
    built: list[dict[str, Any]] = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kwargs: built.append(kwargs))
    runpy.run_path(str(POLICY_PACK_DIR / "__main__.py"), run_name="__main__")
    (pack,) = built
    assert pack["name"] == PACK_NAME and crossguard._POLICY_PACK_NAME_RE.match(pack["name"])
    assert [policy.name for policy in pack["policies"]] == list(POLICIES)
    assert pack["enforcement_level"] == EnforcementLevel.MANDATORY


def test_only_the_entry_point_constructs_a_policy_pack():
    skipped = {"venv", ".cache", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    sources = [
        path
        for top in ROOT.iterdir()
        if top.name not in skipped
        for path in ([top] if top.suffix == ".py" else sorted(top.rglob("*.py")) if top.is_dir() else [])
    ]
    constructing = [
        path.relative_to(ROOT)
        for path in sources
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "PolicyPack"
    ]
    assert len(sources) > 10
    assert constructing == [POLICY_PACK_DIR.relative_to(ROOT) / "__main__.py"]


def test_the_entry_point_passes_strict_mypy():
    """mypy's main run cannot hold two top-level __main__ modules, so the pack's is checked here."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", str(POLICY_PACK_DIR / "__main__.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
