"""The Kubernetes API tier's offline half: what it would apply (manifests in dependency order, secrets
as placeholders, the Gateway API file from the reference data), how it reads the server's Pod Security
verdicts, and its toolchain definition. tests/kube runs these against a real kube-apiserver."""

from __future__ import annotations

import base64
import copy
import json
import re

import pytest
import yaml

import tools.policy  # noqa: F401 - importing it puts policy-pack on sys.path
from config import versions
from tests import kube_reference
from tests.conftest import REFERENCE, STACKS
from tests.kube import manifests as kube_manifests
from tests.kube import toolchain
from tests.kube.admission import (
    DEFAULTED_FIELDS,
    GATED_FIELDS,
    MUTATIONS,
    REASONS,
    defaulting_behind,
    denied_checks,
    gates_behind,
    mutated,
)
from tests.kube.controlplane import PSA_EXEMPT_NAMESPACES, RKE2_CIS_ADMISSION_CONFIG
from tests.kube.manifests import (
    CONFIG_FILE,
    HELM_RELEASE,
    PLACEHOLDER,
    PREEXISTING_NAMESPACES,
    Manifest,
    depends_transitively,
    manifests,
    offline_copy,
    pod_templates,
    with_placeholders,
)
from tools import fetch_reference
from tools.render import SECRET, Registration, Rendering

# isort: split
from meshlab_policy.pod_security import CHECKS

# --- the toolchain definition


def test_the_control_plane_is_the_labs_kubernetes_version():
    pinned = toolchain.read_versions()
    assert pinned["KUBERNETES_VERSION"] == versions.KUBERNETES
    major, minor, patch = pinned["KUBERNETES_VERSION"].removeprefix("v").split(".")
    assert major == "1"
    assert pinned["KUBERNETES_STAGING_VERSION"] == f"v0.{minor}.{patch}"


def test_every_binary_has_a_wrapper_module_and_a_build_in_bootstrap():
    wrappers = {p.name for p in (toolchain.HERE / "modules").iterdir() if (p / "go.mod.in").is_file()}
    assert wrappers == {"kubernetes", "etcd", "kwok"}
    bootstrap = (toolchain.HERE / "bootstrap.sh").read_text()
    listed = re.search(r"^kubernetes_binaries=\(([^)]*)\)", bootstrap, flags=re.M)
    assert listed is not None
    assert {*listed.group(1).split(), "etcd", "kwok"} == set(toolchain.APPLY)
    assert set(toolchain.ALL) < set(toolchain.APPLY)
    for name in ("kubernetes", "etcd", "kwok"):
        lines = (toolchain.HERE / "modules" / name / "go.mod.in").read_text().splitlines()
        template = "\n".join(line for line in lines if not line.startswith("//"))
        for var in re.findall(r"@([A-Z_]+)@", template):
            assert var in toolchain.read_versions(), (name, var)


def test_the_admission_configuration_is_rke2s_cis_one():
    config = yaml.safe_load(RKE2_CIS_ADMISSION_CONFIG)
    [plugin] = config["plugins"]
    assert plugin["name"] == "PodSecurity"
    defaults = plugin["configuration"]["defaults"]
    assert {mode: defaults[mode] for mode in ("enforce", "audit", "warn")} == dict.fromkeys(
        ("enforce", "audit", "warn"), "restricted"
    )
    assert {defaults[f"{mode}-version"] for mode in ("enforce", "audit", "warn")} == {"latest"}
    assert tuple(plugin["configuration"]["exemptions"]["namespaces"]) == PSA_EXEMPT_NAMESPACES


# --- what a stack's rendering becomes


@pytest.fixture(scope="module")
def stack_manifests(rendered: dict[str, Rendering]) -> dict[str, list[Manifest]]:
    return {stack: manifests(rendered[stack]) for stack in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_manifests_follow_the_programs_dependencies(rendered, stack_manifests, stack):
    rendering = rendered[stack]
    after = depends_transitively(rendering)
    position: dict[str, int] = {}
    for index, manifest in enumerate(stack_manifests[stack]):
        position.setdefault(manifest.urn, index)
    for urn, index in position.items():
        for dependency in after[urn]:
            if dependency in position:
                assert position[dependency] < index, (urn, dependency)


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_is_applied_but_no_helm_release(rendered, stack_manifests, stack):
    rendering: Rendering = rendered[stack]
    objects = [
        r
        for r in rendering.resources()
        if r.type.startswith("kubernetes:") and r.type not in (HELM_RELEASE, CONFIG_FILE)
    ]
    items = stack_manifests[stack]
    assert {r.urn for r in objects} | {r.urn for r in rendering.of_type(CONFIG_FILE)} == {m.urn for m in items}
    assert not any(m.type == HELM_RELEASE for m in items)
    assert rendering.of_type(HELM_RELEASE), "the stack renders Helm releases: they must be left out, not missing"


@pytest.mark.parametrize("stack", STACKS)
def test_each_namespace_exists_before_what_goes_in_it(rendered, stack_manifests, stack):
    """A namespaced object must depend on the Namespace it goes in (or the namespace must exist in any
    cluster): `pulumi up` would otherwise race the two."""
    after = depends_transitively(rendered[stack])
    created = {m.name: m.urn for m in stack_manifests[stack] if m.kind == "Namespace"}
    for manifest in stack_manifests[stack]:
        namespace = manifest.namespace
        if namespace is None or namespace in PREEXISTING_NAMESPACES:
            continue
        assert namespace in created, f"{manifest.ref}: no Namespace {namespace} is rendered"
        assert created[namespace] in after[manifest.urn], f"{manifest.ref} does not depend on Namespace {namespace}"


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateway_api_file_is_replaced_by_its_reference_copy(rendered, stack_manifests, stack):
    [config_file] = rendered[stack].of_type(CONFIG_FILE)
    assert config_file.inputs["file"] == versions.GATEWAY_API_CRDS_URL
    [folder] = {path.parent for path in offline_copy(config_file.inputs["file"])}
    assert folder.name == f"gateway-api-{versions.GATEWAY_API}-standard"
    documents = [m for m in stack_manifests[stack] if m.urn == config_file.urn]
    assert {m.kind for m in documents} == {"CustomResourceDefinition"}
    assert {m.name.split(".", 1)[0] for m in documents} == {
        "gatewayclasses",
        "gateways",
        "grpcroutes",
        "httproutes",
        "referencegrants",
    }


def test_the_offline_copies_come_from_the_one_reference_lookup():
    """What this module applies comes from the folder every other reference check reads: ../shared/reference
    beside the clone, else the copy `make reference` fetched into .cache/reference (fetch_reference's
    reference_folder(), through tests/conftest.py), never ../shared alone. tests/test_reference_data.py runs
    this module on a clone that has only the fetched copy."""
    found = fetch_reference.reference_folder()
    assert found is not None  # without it tests/conftest.py stops the run before this module
    assert found == REFERENCE == kube_reference.CHARTS.parent
    assert kube_manifests.REFERENCE_CRDS == found / "crds" == kube_reference.CRDS
    [folder] = {path.parent for path in offline_copy(versions.GATEWAY_API_CRDS_URL)}
    assert folder == found / "crds" / f"gateway-api-{versions.GATEWAY_API}-standard"


def test_a_file_without_an_offline_copy_is_an_error():
    with pytest.raises(ValueError, match="no offline copy"):
        offline_copy("https://example.invalid/install.yaml")


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_get_placeholders(rendered, stack_manifests, stack):
    secrets = [m for m in stack_manifests[stack] if m.kind == "Secret"]
    assert secrets
    assert SECRET not in json.dumps([m.body for m in stack_manifests[stack]])
    for manifest in secrets:
        assert manifest.body["stringData"] == {"value": PLACEHOLDER}


def test_placeholders_fit_where_the_secret_sits():
    body = {"data": {"key": SECRET}, "stringData": SECRET, "spec": {"token": SECRET, "list": [SECRET]}}
    filled = with_placeholders(body)
    assert base64.b64decode(filled["data"]["key"]).decode() == PLACEHOLDER
    assert filled["stringData"] == {"value": PLACEHOLDER}
    assert filled["spec"] == {"token": PLACEHOLDER, "list": [PLACEHOLDER]}
    assert with_placeholders({"data": SECRET}) == {"data": {"value": base64.b64encode(PLACEHOLDER.encode()).decode()}}
    with pytest.raises(ValueError, match="unknown"):
        with_placeholders({"spec": {"x": "[unknown]"}})


def test_an_object_without_a_name_gets_a_stable_one():
    registration = Registration(
        urn="urn:pulumi:lab::meshlab::kubernetes:core/v1:ConfigMap::cm",
        type="kubernetes:core/v1:ConfigMap",
        name="cm",
        parent="",
        custom=True,
        dependencies=[],
        property_dependencies={},
        additional_secret_outputs=[],
        inputs={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}},
        secret_paths=[],
        delete_before_replace=False,
    )
    rendering = Rendering("lab", [registration])
    [manifest] = manifests(rendering)
    assert re.fullmatch(r"cm-[0-9a-f]{8}", manifest.name)
    assert manifests(rendering)[0].name == manifest.name


@pytest.mark.parametrize("stack", STACKS)
def test_rendered_workloads_have_pod_templates(stack_manifests, stack):
    templates = pod_templates(stack_manifests[stack])
    assert templates
    assert all(template["spec"]["containers"] for _, template in templates)


# --- reading the server's verdicts

DENIAL = (
    'pods "p" is forbidden: violates PodSecurity "restricted:v1.32": allowPrivilegeEscalation != false '
    '(container "app" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
    '(container "app" must set securityContext.capabilities.drop=["ALL"]; container "app" must not include '
    '"NET_RAW" in securityContext.capabilities.add), seccompProfile (pod or container "app" must set '
    'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"), forbidden AppArmor profile '
    '(appArmorProfile.type="Unconfined")'
)


def test_a_denial_names_the_failing_checks():
    assert denied_checks(DENIAL) == (
        "restricted",
        {"allowPrivilegeEscalation", "capabilities_restricted", "seccompProfile_restricted", "appArmorProfile"},
    )
    baseline = 'pods "p" is forbidden: violates PodSecurity "baseline:latest": seccompProfile (pod must not set x)'
    assert denied_checks(baseline) == ("baseline", {"seccompProfile_baseline"})
    assert denied_checks('pods "p" is forbidden: error looking up service account ns/default') is None
    with pytest.raises(ValueError, match="unknown PodSecurity reason"):
        denied_checks('pods "p" is forbidden: violates PodSecurity "baseline:v1.32": brand new check (x)')


def test_every_check_of_our_checker_has_a_server_reason():
    ours = {check.id for check in CHECKS}
    assert set(REASONS.values()) | {"seccompProfile_baseline", "seccompProfile_restricted"} == ours


def test_the_gate_behind_a_reset_field_is_named():
    sent = {"containers": [{"name": "c", "securityContext": {"procMount": "Unmasked"}}]}
    stored = {"containers": [{"name": "c", "securityContext": {"procMount": "Default"}}]}
    assert gates_behind(sent, stored) == [GATED_FIELDS["procMount"]] == ["ProcMountType"]
    assert gates_behind(stored, stored) == []
    assert gates_behind({**stored, "hostUsers": False}, stored) == ["UserNamespacesSupport"]


def test_the_defaulting_behind_a_changed_verdict_is_named():
    sent = {"hostNetwork": True, "containers": [{"name": "c", "ports": [{"containerPort": 8080}]}]}
    stored = {"hostNetwork": True, "containers": [{"name": "c", "ports": [{"containerPort": 8080, "hostPort": 8080}]}]}
    assert defaulting_behind(sent, stored) == [DEFAULTED_FIELDS["hostPort"]]
    assert defaulting_behind(stored, stored) == []
    assert defaulting_behind(sent, sent) == []


def test_mutations_change_a_copy_and_each_changes_something(stack_manifests):
    [(_, template), *_] = pod_templates(stack_manifests["lab"])
    before = copy.deepcopy(template)
    pods = {name: mutated(template, f"m-{index}", name) for index, name in enumerate(MUTATIONS)}
    assert template == before
    as_rendered = pods.pop("as-rendered")
    assert as_rendered["spec"] == template["spec"]
    for name, pod in pods.items():
        assert pod["spec"] != template["spec"], name
        assert pod["metadata"]["name"].startswith("m-")
