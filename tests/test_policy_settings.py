"""The policy pack's configuration (meshlab_policy.settings): the schema the Pulumi CLI checks a policy
config against and the pack's own parser must agree on every input, and the defaults are the lab's."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

import tools.policy  # noqa: F401 - importing it puts policy-pack on sys.path
from components.security import namespaces as program_namespaces

# isort: split
from meshlab_policy.kube import Resource
from meshlab_policy.namespaces import validate_namespace_labels
from meshlab_policy.pod_security import Level
from meshlab_policy.settings import (
    CONFIG_SCHEMA,
    REASON_ANNOTATION,
    MigrationAllowance,
    NamespaceExemption,
    PolicyConfigError,
    PolicySettings,
    settings_from_config,
)

EXEMPTION = {"namespace": "legacy", "level": "baseline", "reason": "runs an old agent"}
ALLOWANCE = {"namespace": "legacy", "reason": "moving off VMs"}


def without(entry: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != key}


# One key's value each; every invalid one differs from a valid one in a single respect.
VALUES: list[tuple[str, Any]] = [
    ("exemptNamespaces", [EXEMPTION]),
    ("exemptNamespaces", [{**EXEMPTION, "level": "privileged"}]),
    ("exemptNamespaces", []),
    ("exemptNamespaces", [{**EXEMPTION, "level": "restricted"}]),
    ("exemptNamespaces", [{**EXEMPTION, "level": ""}]),
    ("exemptNamespaces", [{**EXEMPTION, "extra": "x"}]),
    ("exemptNamespaces", "legacy"),
    ("exemptNamespaces", {"namespace": "legacy"}),
    ("exemptNamespaces", ["legacy"]),
    *(("exemptNamespaces", [without(EXEMPTION, key)]) for key in EXEMPTION),
    *(("exemptNamespaces", [{**EXEMPTION, key: ""}]) for key in ("namespace", "reason")),
    *(("exemptNamespaces", [{**EXEMPTION, key: 1}]) for key in EXEMPTION),
    ("mtlsMigrationAllowList", [ALLOWANCE]),
    ("mtlsMigrationAllowList", []),
    ("mtlsMigrationAllowList", [{**ALLOWANCE, "level": "baseline"}]),
    ("mtlsMigrationAllowList", "legacy"),
    ("mtlsMigrationAllowList", [["legacy"]]),
    *(("mtlsMigrationAllowList", [without(ALLOWANCE, key)]) for key in ALLOWANCE),
    *(("mtlsMigrationAllowList", [{**ALLOWANCE, key: ""}]) for key in ALLOWANCE),
    *(("mtlsMigrationAllowList", [{**ALLOWANCE, key: ["x"]}]) for key in ALLOWANCE),
    # One character is enough: a namespace may be called "a", and the schema must not refuse it.
    *(("exemptNamespaces", [{**EXEMPTION, key: "a"}]) for key in ("namespace", "reason")),
    *(("mtlsMigrationAllowList", [{**ALLOWANCE, key: "a"}]) for key in ALLOWANCE),
    ("istioRootNamespace", "a"),
    ("istioRootNamespace", "istio-config"),
    ("istioRootNamespace", ""),
    ("istioRootNamespace", 5),
    ("relaxUserNamespacePods", True),
    ("relaxUserNamespacePods", False),
    ("relaxUserNamespacePods", "yes"),
    ("relaxUserNamespacePods", 1),
]


def schema_accepts(key: str, value: Any) -> bool:
    try:
        jsonschema.validate(value, CONFIG_SCHEMA[key])
    except jsonschema.ValidationError:
        return False
    return True


def parser_accepts(key: str, value: Any) -> bool:
    try:
        settings_from_config({key: value})
    except PolicyConfigError:
        return False
    return True


@pytest.mark.parametrize(("key", "value"), VALUES)
def test_the_cli_schema_and_the_parser_agree(key, value):
    assert schema_accepts(key, value) == parser_accepts(key, value), (key, value)


def test_the_cases_include_both_verdicts_for_every_key():
    """Guards the test above against agreeing only because everything passes (or fails)."""
    verdicts: dict[str, set[bool]] = {}
    for key, value in VALUES:
        verdicts.setdefault(key, set()).add(parser_accepts(key, value))
    assert verdicts == {key: {True, False} for key in CONFIG_SCHEMA}


def test_a_parsed_config_takes_effect():
    parsed = settings_from_config(
        {
            "exemptNamespaces": [EXEMPTION],
            "mtlsMigrationAllowList": [ALLOWANCE],
            "istioRootNamespace": "istio-config",
            "relaxUserNamespacePods": True,
            "enforcementLevel": "mandatory",
        }
    )
    assert parsed == PolicySettings(
        exempt_namespaces={"legacy": NamespaceExemption("legacy", Level.BASELINE, "runs an old agent")},
        mtls_migration={"legacy": MigrationAllowance("legacy", "moving off VMs")},
        istio_root_namespace="istio-config",
        relax_user_namespace_pods=True,
    )
    # An exemption list replaces the defaults: kube-system is then restricted like any namespace.
    assert parsed.level_for("kube-system") is Level.RESTRICTED
    assert parsed.level_for("legacy") is Level.BASELINE
    assert PolicySettings(fixed_level=Level.BASELINE).level_for("kube-system") is Level.BASELINE


def test_the_messages_name_the_key_and_the_value():
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"exemptNamespaces": "legacy"},
            "exemptNamespaces must be a list of objects with namespace, level, reason, not 'legacy'",
        ),
        (
            {"mtlsMigrationAllowList": [{"namespace": "a"}]},
            "mtlsMigrationAllowList[0] needs exactly namespace, reason as non-empty strings: {'namespace': 'a'}",
        ),
        ({"mtlsMigrationAllowList": [ALLOWANCE, ALLOWANCE]}, "mtlsMigrationAllowList lists namespace 'legacy' twice"),
        (
            {"exemptNamespaces": [{**EXEMPTION, "level": "restricted"}]},
            "exemptNamespaces: namespace 'legacy' has level 'restricted'; an exemption is privileged or baseline",
        ),
        ({"istioRootNamespace": ""}, "istioRootNamespace must be a namespace name, not ''"),
        ({"relaxUserNamespacePods": "yes"}, "relaxUserNamespacePods must be true or false, not 'yes'"),
        ({"exemptNamespace": [], "other": 1}, "unknown policy config keys: exemptNamespace, other"),
    ]
    for config, message in cases:
        with pytest.raises(PolicyConfigError) as raised:
            settings_from_config(config)
        assert str(raised.value) == message


# The defaults ------------------------------------------------------------------------------------


def test_the_default_exemptions_are_the_lab_namespaces_that_cannot_run_restricted():
    """lab-spec §6: Kubernetes' own control plane, istio-cni and ztunnel, the MetalLB speaker and the NFS
    provisioner's inline nfs volume."""
    defaults = PolicySettings()
    levels = {name: exemption.level for name, exemption in defaults.exempt_namespaces.items()}
    assert levels == {
        "kube-system": Level.PRIVILEGED,
        "istio-system": Level.PRIVILEGED,
        "metallb-system": Level.PRIVILEGED,
        "nfs-provisioner": Level.BASELINE,
    }
    assert all(
        exemption.reason and exemption.namespace == name for name, exemption in defaults.exempt_namespaces.items()
    )
    assert (defaults.istio_root_namespace, defaults.relax_user_namespace_pods) == ("istio-system", False)
    assert dict(defaults.mtls_migration) == {}


def test_the_pack_reads_the_labels_and_annotation_the_program_writes():
    """The enforce label is Kubernetes' own; the reason annotation is the one components/security writes."""
    assert REASON_ANNOTATION == program_namespaces.REASON_ANNOTATION == "meshlab.dev/pod-security-reason"
    labels = {"pod-security.kubernetes.io/enforce": "baseline"}
    annotations = {"meshlab.dev/pod-security-reason": "the NFS provisioner mounts an inline nfs volume"}
    metadata = {"name": "nfs-provisioner", "labels": labels, "annotations": annotations}
    exempt = Resource("kubernetes:core/v1:Namespace", "nfs", "urn:nfs", {"metadata": metadata})
    assert validate_namespace_labels(exempt, PolicySettings()) == []
    unlabelled = Resource("kubernetes:core/v1:Namespace", "nfs", "urn:nfs", {"metadata": {**metadata, "labels": {}}})
    assert validate_namespace_labels(unlabelled, PolicySettings()) != []
