"""Pod Security v1.32: upstream conformance over every psa-fixtures pod (bare and wrapped in each
controller's pod template), and the semantics the fixtures do not pin down."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

import tools.policy  # noqa: F401 - importing it puts policy-pack on sys.path
from tests.conftest import SHARED
from tools import fetch_reference

# isort: split
from meshlab_policy.kube import Resource
from meshlab_policy.pod_security import Level, evaluate_pod
from meshlab_policy.settings import PolicySettings
from meshlab_policy.workloads import validate_pod_security

FIXTURES = SHARED / "reference" / "psa-fixtures"
FOLDERS = ("baseline/fail", "baseline/pass", "restricted/fail", "restricted/pass")
Pod = dict[str, Any]


def fixture_files(folder: str) -> list[Path]:
    return sorted((FIXTURES / folder).glob("*.yaml"))


@cache
def fixture_pod(path: Path) -> Pod:
    document = yaml.safe_load(path.read_text())
    assert document["kind"] == "Pod", path
    return dict(document)


def upstream_counts() -> dict[str, str]:
    """Fixtures per folder: the shared folder's README table, or, for the copy `make reference` fetched
    (which has no README), the files tools/reference.manifest pins."""
    if FIXTURES.parent == fetch_reference.CACHE:
        paths = [entry.path for entry in fetch_reference.read_manifest()]
        return {folder: str(sum(path.startswith(f"psa-fixtures/{folder}/") for path in paths)) for folder in FOLDERS}
    return dict(re.findall(r"^\| (\w+/\w+) \| (\d+) \|$", (FIXTURES / "README.md").read_text(), re.MULTILINE))


def test_every_fixture_folder_is_read_in_full():
    """The README's table is the upstream count; a missing or unreadable file must fail here."""
    table = upstream_counts()
    assert set(table) == set(FOLDERS)
    for folder in FOLDERS:
        files = fixture_files(folder)
        assert len(files) == int(table[folder]) > 0, folder
        assert len([fixture_pod(path) for path in files]) == len(list((FIXTURES / folder).iterdir()))


def _template(pod: Pod) -> dict[str, Any]:
    return {"metadata": pod.get("metadata", {}), "spec": pod["spec"]}


def _controller(api_version: str, kind: str, spec: Callable[[Pod], dict[str, Any]]) -> Callable[[Pod, str], Resource]:
    def wrap(pod: Pod, namespace: str) -> Resource:
        name = pod["metadata"]["name"]
        props = {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec(pod),
        }
        group, _, version = api_version.rpartition("/")
        return Resource(f"kubernetes:{group or 'core'}/{version}:{kind}", name, f"urn:{kind}:{name}", props)

    return wrap


def _bare_pod(pod: Pod, namespace: str) -> Resource:
    props = {**pod, "metadata": {**pod.get("metadata", {}), "namespace": namespace}}
    return Resource("kubernetes:core/v1:Pod", pod["metadata"]["name"], "urn:pod", props)


WRAPPERS: dict[str, Callable[[Pod, str], Resource]] = {
    "Pod": _bare_pod,
    "Deployment": _controller("apps/v1", "Deployment", lambda pod: {"template": _template(pod)}),
    "ReplicaSet": _controller("apps/v1", "ReplicaSet", lambda pod: {"template": _template(pod)}),
    "StatefulSet": _controller("apps/v1", "StatefulSet", lambda pod: {"template": _template(pod)}),
    "DaemonSet": _controller("apps/v1", "DaemonSet", lambda pod: {"template": _template(pod)}),
    "Job": _controller("batch/v1", "Job", lambda pod: {"template": _template(pod)}),
    "CronJob": _controller(
        "batch/v1", "CronJob", lambda pod: {"schedule": "@daily", "jobTemplate": {"spec": {"template": _template(pod)}}}
    ),
    "ReplicationController": _controller("v1", "ReplicationController", lambda pod: {"template": _template(pod)}),
}

# (level, folder, rejected): restricted includes baseline, so baseline failures fail restricted too.
VERDICTS = [
    (Level.RESTRICTED, "restricted/fail", True),
    (Level.RESTRICTED, "baseline/fail", True),
    (Level.RESTRICTED, "restricted/pass", False),
    (Level.BASELINE, "baseline/fail", True),
    (Level.BASELINE, "baseline/pass", False),
]


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize(("level", "folder", "rejected"), VERDICTS)
def test_upstream_verdicts_at_a_fixed_level(wrapper, level, folder, rejected):
    files = fixture_files(folder)
    settings = PolicySettings(fixed_level=level)
    wrong = [
        path.name
        for path in files
        if bool(validate_pod_security(WRAPPERS[wrapper](fixture_pod(path), "default"), settings)) != rejected
    ]
    assert files
    assert wrong == []


# The pack's default config exempts nfs-provisioner at baseline; every other namespace is restricted.
@pytest.mark.parametrize(
    ("namespace", "level"),
    [("ns-test", Level.RESTRICTED), ("default", Level.RESTRICTED), ("nfs-provisioner", Level.BASELINE)],
)
def test_namespace_level_comes_from_the_exemption_list(namespace, level):
    settings = PolicySettings()
    assert settings.level_for(namespace) is level
    for check_level, folder, rejected in VERDICTS:
        if check_level is not level:
            continue
        for path in fixture_files(folder):
            violations = validate_pod_security(WRAPPERS["Deployment"](fixture_pod(path), namespace), settings)
            assert bool(violations) == rejected, (namespace, path.name, violations)
            assert all(f'{level} Pod Security (namespace "{namespace}")' in v for v in violations)


def test_privileged_namespaces_check_nothing():
    settings = PolicySettings()
    for path in fixture_files("baseline/fail") + fixture_files("restricted/fail"):
        assert validate_pod_security(WRAPPERS["DaemonSet"](fixture_pod(path), "istio-system"), settings) == []


# Upstream names each fixture after the check it exercises. At restricted, the restricted seccomp,
# capabilities and volumes checks take over from their baseline counterparts.
CHECK_OF_FIXTURE = {
    "allowprivilegeescalation": "allowPrivilegeEscalation",
    "apparmorprofile": "appArmorProfile",
    "capabilities_baseline": "capabilities_baseline",
    "capabilities_restricted": "capabilities_restricted",
    "hostnamespaces": "hostNamespaces",
    "hostpathvolumes": "hostPathVolumes",
    "hostports": "hostPorts",
    "privileged": "privileged",
    "procmount": "procMount",
    "restrictedvolumes": "restrictedVolumes",
    "runasnonroot": "runAsNonRoot",
    "runasuser": "runAsUser",
    "seccompprofile_baseline": "seccompProfile_baseline",
    "seccompprofile_restricted": "seccompProfile_restricted",
    "selinuxoptions": "seLinuxOptions",
    "sysctls": "sysctls",
    "windowshostprocess": "windowsHostProcess",
}
REPLACED_AT_RESTRICTED = {
    "capabilities_baseline": "capabilities_restricted",
    "hostPathVolumes": "restrictedVolumes",
    "seccompProfile_baseline": "seccompProfile_restricted",
}


@pytest.mark.parametrize(
    ("level", "folders"),
    [(Level.BASELINE, ["baseline/fail"]), (Level.RESTRICTED, ["baseline/fail", "restricted/fail"])],
)
def test_each_failing_fixture_is_rejected_by_its_own_check(level, folders):
    checked = 0
    for folder in folders:
        for path in fixture_files(folder):
            expected = CHECK_OF_FIXTURE[path.stem.rstrip("0123456789")]
            if level is Level.RESTRICTED:
                expected = REPLACED_AT_RESTRICTED.get(expected, expected)
            pod = fixture_pod(path)
            found = {finding.check for finding in evaluate_pod(pod.get("metadata", {}), pod["spec"], level)}
            assert expected in found, (path.name, found)
            checked += 1
    assert checked == sum(len(fixture_files(folder)) for folder in folders)


# Semantics beyond the fixtures -----------------------------------------------------------------

COMPLIANT_CONTEXT: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def container(name: str = "app", **context: Any) -> dict[str, Any]:
    """A container that meets restricted on its own, with `context` added to its securityContext."""
    return {
        "name": name,
        "image": "nginxinc/nginx-unprivileged:1.27",
        "securityContext": {**COMPLIANT_CONTEXT, **context},
    }


def compliant_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container()],
    }
    spec.update(overrides)
    return spec


def checks(
    spec: dict[str, Any], level: Level = Level.RESTRICTED, metadata: dict[str, Any] | None = None, **kw: Any
) -> set[str]:
    return {finding.check for finding in evaluate_pod(metadata or {}, spec, level, **kw)}


def test_a_compliant_pod_passes_restricted():
    assert checks(compliant_spec()) == set()


def test_ephemeral_containers_are_checked():
    debug = container("debug", privileged=True)
    assert checks(compliant_spec(ephemeralContainers=[debug]), Level.BASELINE) == {"privileged"}
    bare = {"name": "debug", "image": "busybox:1.36"}
    assert checks(compliant_spec(ephemeralContainers=[bare])) == {"allowPrivilegeEscalation", "capabilities_restricted"}


def test_a_container_setting_overrides_the_pod_setting():
    assert checks(compliant_spec(containers=[container(runAsNonRoot=False)])) == {"runAsNonRoot"}
    unconfined = container(seccompProfile={"type": "Unconfined"})
    assert checks(compliant_spec(containers=[unconfined])) == {"seccompProfile_restricted"}
    assert checks(compliant_spec(containers=[unconfined]), Level.BASELINE) == {"seccompProfile_baseline"}


def test_container_level_settings_without_a_pod_level_one_pass():
    own = container(runAsNonRoot=True, seccompProfile={"type": "Localhost", "localhostProfile": "app.json"})
    spec = compliant_spec(securityContext={}, containers=[own])
    assert checks(spec) == set()
    spec["initContainers"] = [container("init")]
    assert checks(spec) == {"runAsNonRoot", "seccompProfile_restricted"}


def test_windows_pods_skip_only_the_linux_only_restricted_checks():
    windows = {
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "app", "image": "app:1"}],
    }
    assert checks(windows) == set()
    assert checks({**windows, "securityContext": {}}) == {"runAsNonRoot"}
    assert checks({**windows, "hostNetwork": True}) == {"hostNamespaces"}
    linux = {**windows, "os": {"name": "linux"}}
    assert checks(linux) == {"allowPrivilegeEscalation", "seccompProfile_restricted", "capabilities_restricted"}


def test_restricted_replaces_the_baseline_checks_it_tightens_even_for_windows():
    """At restricted the baseline seccomp and capabilities checks do not run; their restricted
    replacements skip Windows pods, so such a pod passes with values baseline alone would refuse."""
    loose = {
        "os": {"name": "windows"},
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}},
        "containers": [{"name": "app", "image": "app:1", "securityContext": {"capabilities": {"add": ["NET_RAW"]}}}],
    }
    assert checks(loose) == set()
    assert checks(loose, Level.BASELINE) == {"seccompProfile_baseline", "capabilities_baseline"}


def test_restricted_volumes_replace_the_host_path_check():
    """Upstream's restrictedVolumes overrides hostPathVolumes (psa v0.32.7 OverrideCheckIDs): a hostPath
    volume is one finding at restricted, found by the real admission plugin's differential test."""
    host_path = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumes": [{"name": "host", "hostPath": {"path": "/var/run"}}],
        "containers": [container()],
    }
    assert checks(host_path) == {"restrictedVolumes"}
    assert checks(host_path, Level.BASELINE) == {"hostPathVolumes"}


def test_user_namespace_pods_are_relaxed_only_behind_the_feature_gate():
    unmasked = container(procMount="Unmasked", runAsUser=0)
    spec = compliant_spec(
        hostUsers=False, containers=[unmasked], securityContext={"seccompProfile": {"type": "RuntimeDefault"}}
    )
    assert checks(spec) == {"procMount", "runAsNonRoot", "runAsUser"}
    assert checks(spec, relax_user_namespace_pods=True) == set()
    assert checks({**spec, "hostUsers": True}, relax_user_namespace_pods=True) == {
        "procMount",
        "runAsNonRoot",
        "runAsUser",
    }


def test_apparmor_fields_and_annotations():
    pod_unconfined = compliant_spec(
        securityContext={**compliant_spec()["securityContext"], "appArmorProfile": {"type": "Unconfined"}}
    )
    assert checks(pod_unconfined, Level.BASELINE) == {"appArmorProfile"}
    localhost = container(appArmorProfile={"type": "Localhost", "localhostProfile": "x"})
    assert checks(compliant_spec(containers=[localhost])) == set()
    annotated = {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}}
    assert checks(compliant_spec(), metadata=annotated) == set()


def test_selinux_engine_type_is_allowed_from_1_31():
    engine = container(seLinuxOptions={"type": "container_engine_t"})
    assert checks(compliant_spec(containers=[engine])) == set()


def test_volumes_image_is_not_yet_restricted_and_a_bare_volume_is_an_emptydir():
    image = compliant_spec(volumes=[{"name": "model", "image": {"reference": "models:1"}}])
    assert checks(image) == {"restrictedVolumes"}
    assert checks(image, Level.BASELINE) == set()
    assert checks(compliant_spec(volumes=[{"name": "scratch"}])) == set()


def test_host_port_zero_is_no_host_port():
    ports = {**container(), "ports": [{"containerPort": 8080, "hostPort": 0}]}
    assert checks(compliant_spec(containers=[ports])) == set()
    ports["ports"] = [{"containerPort": 8080, "hostPort": 8080}]
    assert checks(compliant_spec(containers=[ports])) == {"hostPorts"}


def test_privileged_level_runs_no_check():
    assert (
        checks(
            {"hostNetwork": True, "containers": [{"name": "x", "securityContext": {"privileged": True}}]},
            Level.PRIVILEGED,
        )
        == set()
    )


def test_findings_name_the_offending_containers():
    spec = compliant_spec(initContainers=[{"name": "setup", "image": "busybox:1.36"}])
    details = {finding.check: finding.detail for finding in evaluate_pod({}, spec, Level.RESTRICTED)}
    assert '"setup"' in details["allowPrivilegeEscalation"]
    assert '"app"' not in details["allowPrivilegeEscalation"]
