"""Reading the real PodSecurity admission's verdicts, and the pods the differential test sends it.

Pure functions: tests/test_kube_manifests.py checks them offline.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from typing import Any

# The ForbiddenReason of each check of k8s.io/pod-security-admission v0.32.7 (policy/check_*.go), as the
# check id our policy pack uses. "seccompProfile" is the reason of both seccomp checks: at restricted
# the restricted one runs instead of the baseline one.
REASONS = {
    "allowPrivilegeEscalation != false": "allowPrivilegeEscalation",
    "forbidden AppArmor profile": "appArmorProfile",
    "forbidden AppArmor profiles": "appArmorProfile",
    "non-default capabilities": "capabilities_baseline",
    "unrestricted capabilities": "capabilities_restricted",
    "host namespaces": "hostNamespaces",
    "hostPath volumes": "hostPathVolumes",
    "hostPort": "hostPorts",
    "privileged": "privileged",
    "procMount": "procMount",
    "restricted volume types": "restrictedVolumes",
    "runAsNonRoot != true": "runAsNonRoot",
    "runAsUser=0": "runAsUser",
    "seLinuxOptions": "seLinuxOptions",
    "forbidden sysctls": "sysctls",
    "hostProcess": "windowsHostProcess",
}
SECCOMP_REASON = "seccompProfile"
DENIAL = re.compile(r'violates PodSecurity "(?P<level>[a-z]+):(?P<version>[^"]+)": (?P<reasons>.*)$', re.DOTALL)

# Pod fields the API server resets before admission while a feature gate is off (Kubernetes v1.32
# defaults, pkg/api/pod/util.go dropDisabledPodFields): the gate that explains a verdict the real
# server reaches on a pod other than the one sent.
GATED_FIELDS = {
    "procMount": "ProcMountType",  # beta, off by default in 1.32: a non-Default procMount becomes Default
    "hostUsers": "UserNamespacesSupport",  # beta, off by default in 1.32: hostUsers is dropped
}


# Defaulting of pod fields a Pod Security check reads (Kubernetes v1.32, pkg/apis/core/v1/defaults.go).
DEFAULTED_FIELDS = {
    "hostPort": "defaulting: with hostNetwork, every container port's hostPort becomes its containerPort "
    "(defaultHostNetworkPorts)",
}


def _top_level(text: str, separator: str = ", ") -> list[str]:
    """`text` split at `separator` outside brackets and quotes."""
    parts, depth, quoted, start, index = [], 0, False, 0, 0
    while index < len(text):
        char = text[index]
        if char == '"':
            quoted = not quoted
        elif not quoted and char in "([{":
            depth += 1
        elif not quoted and char in ")]}":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(separator, index):
            parts.append(text[start:index])
            start = index + len(separator)
            index = start
            continue
        index += 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def denied_checks(message: str) -> tuple[str, set[str]] | None:
    """(level, check ids) of a PodSecurity denial's message, or None if it is no such denial.
    A reason this table does not know is an error: the server's wording changed."""
    found = DENIAL.search(message)
    if not found:
        return None
    level = found.group("level")
    checks = set()
    for part in _top_level(found.group("reasons")):
        reason = part.split(" (", 1)[0].strip()
        if reason == SECCOMP_REASON:
            checks.add("seccompProfile_restricted" if level == "restricted" else "seccompProfile_baseline")
        elif reason in REASONS:
            checks.add(REASONS[reason])
        else:
            raise ValueError(f"unknown PodSecurity reason {reason!r} in: {message}")
    return level, checks


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or []


def gates_behind(sent: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """The feature gates (GATED_FIELDS) whose fields the server changed between the pod spec `sent`
    and the spec it `stored` (or would have, on a dry run)."""
    gates = set()
    sent_containers = {c.get("name"): c for c in _containers(sent)}
    for container in _containers(stored):
        before = (sent_containers.get(container.get("name")) or {}).get("securityContext") or {}
        after = container.get("securityContext") or {}
        if before.get("procMount", "Default") != after.get("procMount", "Default"):
            gates.add(GATED_FIELDS["procMount"])
    if "hostUsers" in sent and sent.get("hostUsers") != stored.get("hostUsers"):
        gates.add(GATED_FIELDS["hostUsers"])
    return sorted(gates)


def _ports(spec: dict[str, Any]) -> dict[tuple[str, int], int]:
    """(container, containerPort) -> hostPort (0 when unset) of every port in a pod spec."""
    return {
        (str(c.get("name")), int(port.get("containerPort", 0))): int(port.get("hostPort") or 0)
        for c in _containers(spec)
        for port in c.get("ports") or []
    }


def defaulting_behind(sent: dict[str, Any], stored: dict[str, Any]) -> list[str]:
    """The API server's defaulting that changed what Pod Security checks, between the pod spec `sent`
    and the one it `stored` (DEFAULTED_FIELDS)."""
    before = _ports(sent)
    if any(before.get(key) == 0 and host for key, host in _ports(stored).items()):
        return [DEFAULTED_FIELDS["hostPort"]]
    return []


# --- mutations of a rendered pod spec: each makes one change a chart, a value or a hand edit could make


def _each_context(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for container in _containers(spec):
        yield container.setdefault("securityContext", {})


def _set_in_containers(**values: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        for context in _each_context(spec):
            context.update(copy.deepcopy(values))

    return mutate


def _drop_in_containers(*keys: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        for context in _each_context(spec):
            for key in keys:
                context.pop(key, None)

    return mutate


def _drop_in_pod(*keys: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        for key in keys:
            (spec.get("securityContext") or {}).pop(key, None)

    return mutate


def _both(*steps: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        for step in steps:
            step(spec)

    return mutate


def _add_capability(capability: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        for context in _each_context(spec):
            context.setdefault("capabilities", {}).setdefault("add", []).append(capability)

    return mutate


def _drop_capability_rule(spec: dict[str, Any]) -> None:
    for context in _each_context(spec):
        context.setdefault("capabilities", {}).pop("drop", None)


def _add_volume(volume: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        spec.setdefault("volumes", []).append(copy.deepcopy(volume))

    return mutate


def _pod_field(**values: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        spec.update(copy.deepcopy(values))

    return mutate


def _pod_context(**values: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        spec.setdefault("securityContext", {}).update(copy.deepcopy(values))

    return mutate


def _host_port(spec: dict[str, Any]) -> None:
    for container in spec.get("containers") or []:
        for port in container.setdefault("ports", [{"containerPort": 8080}]):
            port["hostPort"] = port["containerPort"]


def _bare_init_container(spec: dict[str, Any]) -> None:
    image = (spec.get("containers") or [{}])[0].get("image", "registry.invalid/init:1")
    spec.setdefault("initContainers", []).append({"name": "init", "image": image})


MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    "as-rendered": lambda spec: None,
    "capabilities-drop-rule-removed": _drop_capability_rule,
    "capability-NET_RAW-added": _add_capability("NET_RAW"),
    "capability-SYS_ADMIN-added": _add_capability("SYS_ADMIN"),
    "capability-CHOWN-added": _add_capability("CHOWN"),
    "capability-NET_BIND_SERVICE-added": _add_capability("NET_BIND_SERVICE"),
    "hostPath-volume-added": _add_volume({"name": "host", "hostPath": {"path": "/var/run"}}),
    "nfs-volume-added": _add_volume({"name": "export", "nfs": {"server": "nfs.invalid", "path": "/export"}}),
    "ephemeral-volume-added": _add_volume(
        {
            "name": "scratch",
            "ephemeral": {
                "volumeClaimTemplate": {
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                }
            },
        }
    ),
    "seccomp-unset": _both(_drop_in_pod("seccompProfile"), _drop_in_containers("seccompProfile")),
    "seccomp-unset-on-the-pod-only": _drop_in_pod("seccompProfile"),
    "seccomp-unset-on-containers-only": _drop_in_containers("seccompProfile"),
    "seccomp-Unconfined": _set_in_containers(seccompProfile={"type": "Unconfined"}),
    "seccomp-Unconfined-on-the-pod": _both(
        _drop_in_containers("seccompProfile"), _pod_context(seccompProfile={"type": "Unconfined"})
    ),
    "seccomp-Localhost": _set_in_containers(seccompProfile={"type": "Localhost", "localhostProfile": "meshlab.json"}),
    "runAsUser-0": _pod_context(runAsUser=0),
    "runAsUser-0-in-containers": _set_in_containers(runAsUser=0),
    "runAsUser-1000": _pod_context(runAsUser=1000),
    "runAsNonRoot-false": _set_in_containers(runAsNonRoot=False),
    "runAsNonRoot-unset": _both(_drop_in_pod("runAsNonRoot"), _drop_in_containers("runAsNonRoot")),
    "allowPrivilegeEscalation-true": _set_in_containers(allowPrivilegeEscalation=True),
    "allowPrivilegeEscalation-unset": _drop_in_containers("allowPrivilegeEscalation"),
    # privileged implies privilege escalation: the API refuses allowPrivilegeEscalation=false with it
    "privileged": _both(_drop_in_containers("allowPrivilegeEscalation"), _set_in_containers(privileged=True)),
    "hostNetwork": _pod_field(hostNetwork=True),
    "hostPID": _pod_field(hostPID=True),
    "hostIPC": _pod_field(hostIPC=True),
    "hostPort": _host_port,
    "procMount-Unmasked": _set_in_containers(procMount="Unmasked"),
    "sysctl-unsafe": _pod_context(sysctls=[{"name": "kernel.msgmax", "value": "65536"}]),
    "sysctl-safe": _pod_context(sysctls=[{"name": "net.ipv4.ip_local_port_range", "value": "1024 65535"}]),
    "appArmor-Unconfined": _set_in_containers(appArmorProfile={"type": "Unconfined"}),
    "appArmor-RuntimeDefault": _set_in_containers(appArmorProfile={"type": "RuntimeDefault"}),
    "seLinux-spc_t": _set_in_containers(seLinuxOptions={"type": "spc_t"}),
    "seLinux-custom-user": _set_in_containers(seLinuxOptions={"user": "sysadm_u"}),
    "seLinux-container_engine_t": _set_in_containers(seLinuxOptions={"type": "container_engine_t"}),
    "init-container-without-securityContext": _bare_init_container,
}


def mutated(template: dict[str, Any], name: str, mutation: str) -> dict[str, Any]:
    """A Pod named `name` from a pod template, with one mutation applied to a copy of its spec."""
    spec = copy.deepcopy(template["spec"])
    # The pod goes to the judge's namespace, which has only its `default` ServiceAccount: the ServiceAccount
    # admission plugin would refuse another before Pod Security looks (an identity Pod Security ignores).
    spec.pop("serviceAccountName", None)
    MUTATIONS[mutation](spec)
    metadata = {key: copy.deepcopy(value) for key, value in (template.get("metadata") or {}).items()}
    metadata["name"] = name
    metadata.pop("namespace", None)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
