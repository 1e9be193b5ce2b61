"""Pod Security checks one by one (meshlab_policy.pod_security): what upstream allows that the psa-fixtures
never show, and the words of every finding, which is what a user reads in a refused preview."""

from __future__ import annotations

from typing import Any

import pytest

import tools.policy  # noqa: F401 - importing it puts policy-pack on sys.path

# isort: split
from meshlab_policy.pod_security import Finding, Level, evaluate_pod

# The safe sysctls of policy version v1.32 (k8s.io/pod-security-admission policy/check_sysctls.go,
# lab-spec §6). The upstream fixtures use only tcp_rmem and tcp_wmem.
SAFE_SYSCTLS_1_32 = (
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
)
# The volume sources restricted allows at v1.32 (policy/check_restrictedVolumes.go).
RESTRICTED_VOLUMES_1_32 = {
    "configMap": {"name": "settings"},
    "csi": {"driver": "secrets-store.csi.k8s.io"},
    "downwardAPI": {"items": []},
    "emptyDir": {},
    "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}},
    "persistentVolumeClaim": {"claimName": "data"},
    "projected": {"sources": []},
    "secret": {"secretName": "tls"},
}


def restricted_spec(**overrides: Any) -> dict[str, Any]:
    """A pod spec that meets restricted, with `overrides` on top."""
    spec: dict[str, Any] = {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "app",
                "image": "app:1",
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            }
        ],
    }
    spec.update(overrides)
    return spec


def details(spec: dict[str, Any], level: Level = Level.RESTRICTED, **options: Any) -> dict[str, str]:
    return {
        finding.check: finding.detail for finding in evaluate_pod(options.pop("metadata", {}), spec, level, **options)
    }


def test_the_compliant_pod_passes_so_each_case_below_fails_only_on_what_it_adds():
    assert evaluate_pod({}, restricted_spec(), Level.RESTRICTED) == []


# What upstream allows ----------------------------------------------------------------------------


@pytest.mark.parametrize("sysctl", SAFE_SYSCTLS_1_32)
def test_each_safe_sysctl_passes(sysctl):
    spec = restricted_spec(securityContext={**restricted_spec()["securityContext"], "sysctls": [{"name": sysctl}]})
    assert details(spec, Level.BASELINE) == {}
    assert details(spec) == {}


@pytest.mark.parametrize(
    "sysctl", ["net.ipv4.tcp_mem", "net.ipv4.tcp_rmem_max", "kernel.shm_rmid", "net.core.somaxconn", "kernel.msgmax"]
)
def test_a_sysctl_outside_the_safe_set_fails_and_is_named(sysctl):
    sysctls = [{"name": "net.ipv4.tcp_syncookies"}, {"name": sysctl}, {"name": "net.ipv4.tcp_wmem"}]
    spec = restricted_spec(securityContext={**restricted_spec()["securityContext"], "sysctls": sysctls})
    assert details(spec, Level.BASELINE) == {"sysctls": f'sysctls "{sysctl}" are outside the safe set'}


@pytest.mark.parametrize("source", RESTRICTED_VOLUMES_1_32)
def test_each_restricted_volume_type_passes(source):
    spec = restricted_spec(volumes=[{"name": "v", source: RESTRICTED_VOLUMES_1_32[source]}])
    assert details(spec) == {}


def test_an_annotation_may_name_the_runtime_default_a_localhost_profile_or_nothing():
    prefix = "container.apparmor.security.beta.kubernetes.io/"
    for value in ("runtime/default", "localhost/app", ""):
        assert details(restricted_spec(), metadata={"annotations": {f"{prefix}app": value}}) == {}, value
    unconfined = details(restricted_spec(), metadata={"annotations": {f"{prefix}app": "unconfined"}})
    assert unconfined == {
        "appArmorProfile": "AppArmor must be RuntimeDefault or Localhost, not unconfined: annotation "
        f"{prefix}app='unconfined'"
    }
    # Other annotations are not AppArmor's.
    assert details(restricted_spec(), metadata={"annotations": {"example.com/apparmor": "unconfined"}}) == {}


def test_the_user_namespace_relaxation_needs_host_users_false():
    """With the gate on, a pod without hostUsers (or hostUsers: true) is judged as usual."""
    root = restricted_spec(securityContext={"seccompProfile": {"type": "RuntimeDefault"}, "runAsUser": 0})
    for spec in (root, {**root, "hostUsers": True}):
        assert set(details(spec, relax_user_namespace_pods=True)) == {"runAsNonRoot", "runAsUser"}
    assert details({**root, "hostUsers": False}, relax_user_namespace_pods=True) == {}


def test_levels_are_the_pod_security_label_values_in_order_of_strictness():
    assert [level.value for level in Level] == ["privileged", "baseline", "restricted"]
    assert Level("privileged") is Level.PRIVILEGED
    assert [level.strictness for level in Level] == [0, 1, 2]


# The words of every finding ----------------------------------------------------------------------

UNSAFE: dict[str, Any] = {
    "privileged": True,
    "allowPrivilegeEscalation": True,
    "capabilities": {"add": ["NET_RAW", "SYS_ADMIN", 5.0]},
    "procMount": "Unmasked",
    "seccompProfile": {"type": "Unconfined"},
    "appArmorProfile": {"type": "Unconfined"},
    "seLinuxOptions": {"type": "spc_t", "user": "root", "role": "sysadm_r"},
    "windowsOptions": {"hostProcess": True},
    "runAsNonRoot": False,
    "runAsUser": 0,
}
# Fails every check: two containers that set everything wrong, and one (unnamed) that sets nothing.
EVERYTHING_WRONG: dict[str, Any] = {
    "hostNetwork": True,
    "hostPID": True,
    "hostIPC": False,
    "securityContext": {
        "runAsNonRoot": False,
        "runAsUser": 0,
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
        "seLinuxOptions": {"type": "spc_t", "role": "sysadm_r"},
        "sysctls": [{"name": "kernel.msgmax"}, {"name": "net.ipv4.tcp_rmem"}, {"name": "net.core.somaxconn"}],
        "windowsOptions": {"hostProcess": True},
    },
    "volumes": [
        {"name": "host", "hostPath": {"path": "/"}},
        {"name": "data", "nfs": {"server": "nfs.lab", "path": "/"}},
        {"name": "settings", "configMap": {"name": "settings"}},
        # Two sources in one volume: the API server refuses it, a manifest may still say it.
        {
            "name": "both",
            "nfs": {"server": "nfs.lab", "path": "/"},
            "iscsi": {"targetPortal": "t", "iqn": "i", "lun": 0},
        },
    ],
    "initContainers": [{"name": "setup", "image": "setup:1", "securityContext": UNSAFE}],
    "containers": [
        {
            "name": "app",
            "image": "app:1",
            "securityContext": UNSAFE,
            # CrossGuard hands numbers over as floats.
            "ports": [{"containerPort": 80, "hostPort": 8080.0}, {"containerPort": 81, "hostPort": 81}],
        },
        {"image": "sidecar:1"},
    ],
}
ANNOTATED = {"annotations": {"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}}
BASELINE_WORDS = {
    "hostNamespaces": "hostNetwork=true, hostPID=true must not be set (the pod would share the node's namespaces)",
    "privileged": 'containers "setup", "app" must not set securityContext.privileged=true',
    "capabilities_baseline": 'containers "setup", "app" must not add capabilities beyond the default set: '
    '"5.0", "NET_RAW", "SYS_ADMIN"',
    "hostPathVolumes": 'hostPath volumes "host" are not allowed',
    "hostPorts": 'container "app" must not use hostPort (8080, 81)',
    "appArmorProfile": "AppArmor must be RuntimeDefault or Localhost, not unconfined: pod appArmorProfile.type="
    "'Unconfined'; container \"setup\" appArmorProfile.type='Unconfined'; container \"app\" "
    "appArmorProfile.type='Unconfined'; annotation container.apparmor.security.beta.kubernetes.io/app='unconfined'",
    "seLinuxOptions": "seLinuxOptions may only use the container types and no custom user or role: pod "
    "type='spc_t', role='sysadm_r'; container \"setup\" type='spc_t', user='root', role='sysadm_r'; container \"app\" "
    "type='spc_t', user='root', role='sysadm_r'",
    "procMount": 'containers "setup", "app" must not set securityContext.procMount other than Default',
    "seccompProfile_baseline": "seccomp must not be unconfined: pod seccompProfile.type='Unconfined'; container "
    "\"setup\" seccompProfile.type='Unconfined'; container \"app\" seccompProfile.type='Unconfined'",
    "sysctls": 'sysctls "kernel.msgmax", "net.core.somaxconn" are outside the safe set',
    "windowsHostProcess": 'Windows hostProcess=true is not allowed (pod, container "setup", container "app")',
}
RESTRICTED_WORDS = {
    "restrictedVolumes": 'volumes "host" (hostPath), "data" (nfs), "both" (iscsi, nfs) use types outside configMap, '
    "csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret",
    "allowPrivilegeEscalation": 'containers "setup", "app", "<unnamed>" must set '
    "securityContext.allowPrivilegeEscalation=false",
    "runAsNonRoot": "runAsNonRoot must be true on the pod or on every container: the pod sets runAsNonRoot=false; "
    'containers "setup", "app" set runAsNonRoot=false; container "<unnamed>" neither sets runAsNonRoot=true nor '
    "inherits it from the pod",
    "runAsUser": 'runAsUser=0 (root) is not allowed (pod, container "setup", container "app")',
    "seccompProfile_restricted": "seccompProfile.type must be RuntimeDefault or Localhost on the pod or every "
    'container: the pod sets seccompProfile.type=\'Unconfined\'; containers "setup", "app" set an unconfined '
    'seccompProfile.type; container "<unnamed>" neither sets a profile nor inherits one from the pod',
    "capabilities_restricted": 'containers "setup", "app", "<unnamed>" must drop "ALL"; containers "setup", "app" '
    'may add only NET_BIND_SERVICE, not "5.0", "NET_RAW", "SYS_ADMIN"',
}


def test_every_baseline_finding_in_words():
    assert details(EVERYTHING_WRONG, Level.BASELINE, metadata=ANNOTATED) == BASELINE_WORDS


def test_every_restricted_finding_in_words():
    expected = {
        check: words
        for check, words in {**BASELINE_WORDS, **RESTRICTED_WORDS}.items()
        # The restricted checks that tighten a baseline one replace it, as upstream's admission plugin does.
        if check not in ("capabilities_baseline", "seccompProfile_baseline", "hostPathVolumes")
    }
    assert details(EVERYTHING_WRONG, metadata=ANNOTATED) == expected
    # In the order of the checks (the admission plugin's), each printed as `check: detail`.
    findings = evaluate_pod(ANNOTATED, EVERYTHING_WRONG, Level.RESTRICTED)
    assert [f.check for f in findings] == list(expected)
    assert str(findings[0]) == f"hostNamespaces: {BASELINE_WORDS['hostNamespaces']}"
    assert findings[0] == Finding("hostNamespaces", Level.BASELINE, BASELINE_WORDS["hostNamespaces"])
    assert {f.level for f in findings} == {Level.BASELINE, Level.RESTRICTED}


def test_one_offending_container_is_named_in_the_singular():
    context = {
        "privileged": True,
        "capabilities": {"add": ["NET_RAW"]},
        "runAsNonRoot": False,
        "seccompProfile": {"type": "Unconfined"},
        "procMount": "Unmasked",
    }
    spec = {"containers": [{"name": "app", "image": "app:1", "securityContext": context, "ports": [{"hostPort": 80}]}]}
    assert details(spec) == {
        "privileged": 'container "app" must not set securityContext.privileged=true',
        "hostPorts": 'container "app" must not use hostPort (80)',
        "procMount": 'container "app" must not set securityContext.procMount other than Default',
        "allowPrivilegeEscalation": 'container "app" must set securityContext.allowPrivilegeEscalation=false',
        "runAsNonRoot": 'runAsNonRoot must be true on the pod or on every container: container "app" sets '
        "runAsNonRoot=false",
        "seccompProfile_restricted": "seccompProfile.type must be RuntimeDefault or Localhost on the pod or every "
        'container: container "app" sets an unconfined seccompProfile.type',
        "capabilities_restricted": 'container "app" must drop "ALL"; container "app" may add only NET_BIND_SERVICE, '
        'not "NET_RAW"',
    }


def test_containers_that_inherit_nothing_are_named_in_the_plural():
    bare = [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]
    found = details({"containers": bare})
    assert found["runAsNonRoot"] == (
        'runAsNonRoot must be true on the pod or on every container: containers "a", "b" neither set '
        "runAsNonRoot=true nor inherit it from the pod"
    )
    assert found["seccompProfile_restricted"] == (
        "seccompProfile.type must be RuntimeDefault or Localhost on the pod or every container: containers "
        '"a", "b" neither set a profile nor inherit one from the pod'
    )


def test_a_pod_level_profile_covers_containers_that_set_none():
    spec = restricted_spec(
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}
    )
    assert details(spec) == {}
    unconfined_pod = restricted_spec(securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "Unconfined"}})
    assert details(unconfined_pod) == {
        "seccompProfile_restricted": "seccompProfile.type must be RuntimeDefault or Localhost on the pod or every "
        "container: the pod sets seccompProfile.type='Unconfined'; container \"app\" neither sets a profile nor "
        "inherits one from the pod"
    }


def test_a_pod_level_apparmor_profile_may_be_runtime_default_or_localhost():
    for profile in ({"type": "RuntimeDefault"}, {"type": "Localhost", "localhostProfile": "p"}):
        spec = restricted_spec(securityContext={**restricted_spec()["securityContext"], "appArmorProfile": profile})
        assert details(spec) == {}, profile
