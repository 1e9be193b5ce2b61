"""Policy configuration: the CrossGuard schema and its defaults, the committed per-stack config
files, and enforcement levels, exemptions and allow-lists taking effect."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import jsonschema
import pytest

from tests.conftest import STACKS
from tools.policy import ROOT

# isort: split
from meshlab_policy.catalog import CATALOG, Enforcement
from meshlab_policy.engine import (
    CONFIG_DIR,
    Violation,
    load_pack_config,
    resolve,
    run_policies,
    stack_config_path,
    with_fixed_level,
)
from meshlab_policy.kube import Resource
from meshlab_policy.pod_security import Level
from meshlab_policy.settings import (
    CONFIG_SCHEMA,
    ENFORCE_LABEL,
    REASON_ANNOTATION,
    PolicyConfigError,
    PolicySettings,
    settings_from_config,
)

POLICY_NAMES = [spec.name for spec in CATALOG]
SPECS = {spec.name: spec for spec in CATALOG}


def policy_config_schema(name: str) -> dict[str, Any]:
    """What the Pulumi CLI validates a policy's config entry against: its schema plus enforcementLevel."""
    properties = {key: CONFIG_SCHEMA[key] for key in SPECS[name].config_keys}
    level = {"type": "string", "enum": [e.value for e in Enforcement]}
    return {
        "oneOf": [
            level,
            {"type": "object", "properties": {**properties, "enforcementLevel": level}, "additionalProperties": False},
        ]
    }


def workload(namespace: str, image: str = "app:1.0.0", **pod_spec: Any) -> Resource:
    spec = {"containers": [{"name": "app", "image": image}], **pod_spec}
    props = {"metadata": {"name": "app", "namespace": namespace}, "spec": {"template": {"spec": spec}}}
    return Resource("kubernetes:apps/v1:Deployment", f"app-{namespace}", f"urn:app:{namespace}", props)


def by_policy(violations: list[Violation]) -> dict[str, set[Enforcement]]:
    found: dict[str, set[Enforcement]] = {}
    for violation in violations:
        found.setdefault(violation.policy, set()).add(violation.enforcement)
    return found


def test_the_schema_defaults_are_the_code_defaults():
    from_schema = settings_from_config({key: schema["default"] for key, schema in CONFIG_SCHEMA.items()})
    assert from_schema == settings_from_config({}) == settings_from_config(None) == PolicySettings()
    assert from_schema.level_for("istio-system") is Level.PRIVILEGED
    assert from_schema.level_for("ns-test") is Level.RESTRICTED
    for key, schema in CONFIG_SCHEMA.items():
        jsonschema.validate(schema["default"], schema)
        assert schema["description"], key


BAD_PROPERTIES = [
    {"exemptNamespaces": [{"namespace": "legacy", "level": "baseline"}]},
    {"exemptNamespaces": [{"namespace": "legacy", "level": "restricted", "reason": "r"}]},
    {"exemptNamespaces": [{"namespace": "legacy", "level": "baseline", "reason": ""}]},
    {"exemptNamespaces": [{"namespace": "legacy", "level": "baseline", "reason": "r", "extra": 1}]},
    {"exemptNamespaces": "legacy"},
    {"mtlsMigrationAllowList": [{"namespace": "legacy"}]},
    {"istioRootNamespace": ""},
    {"relaxUserNamespacePods": "yes"},
]


@pytest.mark.parametrize("properties", BAD_PROPERTIES)
def test_the_parser_rejects_what_the_schema_rejects(properties):
    (key,) = properties
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(properties[key], CONFIG_SCHEMA[key])
    with pytest.raises(PolicyConfigError):
        settings_from_config(properties)


def test_duplicate_and_unknown_entries_are_errors():
    twice = [
        {"namespace": "a", "level": "baseline", "reason": "r"},
        {"namespace": "a", "level": "privileged", "reason": "r"},
    ]
    with pytest.raises(PolicyConfigError, match="twice"):
        settings_from_config({"exemptNamespaces": twice})
    with pytest.raises(PolicyConfigError, match="unknown policy config keys"):
        settings_from_config({"exemptNamespace": []})


@pytest.mark.parametrize("stack", STACKS)
def test_each_stack_has_a_valid_policy_config(stack):
    path = stack_config_path(stack)
    assert path.parent == ROOT / "policy-pack" / "config"
    document = load_pack_config(path)
    assert sorted(document) == sorted(POLICY_NAMES), "name every policy's level explicitly"
    for name, entry in document.items():
        jsonschema.validate(entry, policy_config_schema(name))
    assert [policy.spec.name for policy in resolve(document)] == POLICY_NAMES


def test_config_files_belong_to_stacks():
    assert sorted(path.stem for path in CONFIG_DIR.glob("*.json")) == sorted(STACKS)


def test_promotion_never_loosens_enforcement():
    strictness = {Enforcement.DISABLED: 0, Enforcement.ADVISORY: 1, Enforcement.MANDATORY: 2, Enforcement.REMEDIATE: 2}
    levels = {
        stack: {p.spec.name: strictness[p.enforcement] for p in resolve(load_pack_config(stack_config_path(stack)))}
        for stack in STACKS
    }
    for earlier, later in pairwise(STACKS):  # lab -> staging -> prod
        assert all(levels[later][name] >= levels[earlier][name] for name in POLICY_NAMES), (earlier, later)


def test_default_enforcement_levels():
    levels = {policy.spec.name: policy.enforcement for policy in resolve(None)}
    mandatory = {
        "pod-security-restricted",
        "namespace-pod-security-labels",
        "peer-authentication-strict",
        "mesh-mtls-strict",
        "ambient-waypoint-attachment",
        "kiali-anonymous-view-only",
        "ssh-host-keys-pinned",
    }
    assert {name for name, level in levels.items() if level is Enforcement.MANDATORY} == mandatory
    assert {name for name, level in levels.items() if level is Enforcement.ADVISORY} == set(POLICY_NAMES) - mandatory


ROOTFUL_LATEST = workload("ns-test", image="app:latest")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, {"pod-security-restricted": {Enforcement.MANDATORY}, "images-pinned": {Enforcement.ADVISORY}}),
        (
            {"images-pinned": "mandatory"},
            {"pod-security-restricted": {Enforcement.MANDATORY}, "images-pinned": {Enforcement.MANDATORY}},
        ),
        ({"pod-security-restricted": {"enforcementLevel": "disabled"}}, {"images-pinned": {Enforcement.ADVISORY}}),
        (
            {"all": "advisory"},
            {"pod-security-restricted": {Enforcement.ADVISORY}, "images-pinned": {Enforcement.ADVISORY}},
        ),
        (
            {"all": {"enforcementLevel": "advisory"}, "pod-security-restricted": "mandatory"},
            {"pod-security-restricted": {Enforcement.MANDATORY}, "images-pinned": {Enforcement.ADVISORY}},
        ),
        (
            {"images-pinned": "remediate"},
            {"pod-security-restricted": {Enforcement.MANDATORY}, "images-pinned": {Enforcement.MANDATORY}},
        ),
    ],
    ids=["defaults", "raised", "disabled", "all-advisory", "all-then-one", "remediate-reports-mandatory"],
)
def test_enforcement_levels_are_honoured(config, expected):
    assert by_policy(run_policies([ROOTFUL_LATEST], resolve(config))) == expected


EXEMPT_LEGACY = {
    "exemptNamespaces": [{"namespace": "legacy", "level": "baseline", "reason": "vendor chart runs as root"}]
}


def test_a_configured_exemption_list_replaces_the_default_one():
    config = {"pod-security-restricted": EXEMPT_LEGACY, "namespace-pod-security-labels": EXEMPT_LEGACY}
    resolved = resolve(config)
    root_but_baseline = workload("legacy")  # no securityContext at all: fails restricted, passes baseline
    legacy = Resource(
        "kubernetes:core/v1:Namespace",
        "legacy",
        "urn:ns:legacy",
        {
            "metadata": {
                "name": "legacy",
                "labels": {ENFORCE_LABEL: "baseline"},
                "annotations": {REASON_ANNOTATION: "vendor"},
            }
        },
    )
    host_network = workload("istio-system", hostNetwork=True)
    assert run_policies([root_but_baseline, legacy], resolved) == []
    assert by_policy(run_policies([workload("ns-test"), host_network], resolved)) == {
        "pod-security-restricted": {Enforcement.MANDATORY}
    }
    assert run_policies([host_network], resolve(None)) == [], "istio-system is privileged by default"


def test_exemption_lists_must_agree_between_the_policies_that_read_them():
    with pytest.raises(PolicyConfigError, match="must be the same"):
        resolve({"pod-security-restricted": EXEMPT_LEGACY})


def test_a_configured_migration_allow_list_permits_plaintext():
    allow = {"mtlsMigrationAllowList": [{"namespace": "legacy", "reason": "VM workloads still join over plaintext"}]}
    stack = [
        Resource(
            "kubernetes:core/v1:Namespace",
            "legacy",
            "urn:ns",
            {
                "metadata": {
                    "name": "legacy",
                    "labels": {ENFORCE_LABEL: "restricted", "istio.io/dataplane-mode": "ambient"},
                }
            },
        ),
        Resource(
            "kubernetes:security.istio.io/v1:PeerAuthentication",
            "root",
            "urn:root",
            {"metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "STRICT"}}},
        ),
        Resource(
            "kubernetes:security.istio.io/v1:PeerAuthentication",
            "legacy",
            "urn:pa",
            {"metadata": {"name": "legacy", "namespace": "legacy"}, "spec": {"mtls": {"mode": "PERMISSIVE"}}},
        ),
    ]
    assert set(by_policy(run_policies(stack, resolve(None)))) == {"peer-authentication-strict", "mesh-mtls-strict"}
    assert run_policies(stack, resolve({"peer-authentication-strict": allow, "mesh-mtls-strict": allow})) == []


def test_relaxing_user_namespace_pods_is_configurable():
    pod = workload("ns-test", hostUsers=False, securityContext={"seccompProfile": {"type": "RuntimeDefault"}})
    pod.props["spec"]["template"]["spec"]["containers"][0]["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsUser": 0,
    }
    assert "pod-security-restricted" in by_policy(run_policies([pod], resolve(None)))
    relaxed = resolve({"pod-security-restricted": {"relaxUserNamespacePods": True}})
    assert run_policies([pod], relaxed) == []


def test_a_fixed_level_overrides_every_namespace():
    host_network = workload("istio-system", hostNetwork=True)
    assert by_policy(run_policies([host_network], with_fixed_level(resolve(None), Level.BASELINE))) == {
        "pod-security-restricted": {Enforcement.MANDATORY}
    }
    assert run_policies([workload("ns-test")], with_fixed_level(resolve(None), Level.BASELINE)) == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"no-such-policy": "mandatory"}, "unknown policies"),
        ({"images-pinned": "sometimes"}, "enforcement level"),
        ({"all": "often"}, "enforcement level"),
        ({"images-pinned": {"exemptNamespaces": []}}, "unknown config"),
        ({"images-pinned": 3}, "expected an enforcement level"),
        ({"mesh-mtls-strict": {"istioRootNamespace": ""}}, "istioRootNamespace"),
    ],
)
def test_bad_pack_configs_are_refused(config, message):
    with pytest.raises(PolicyConfigError, match=message):
        resolve(config)


def test_unreadable_config_files_are_refused(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PolicyConfigError, match="cannot read"):
        load_pack_config(broken)
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(["images-pinned"]))
    with pytest.raises(PolicyConfigError, match="JSON object"):
        load_pack_config(listed)
