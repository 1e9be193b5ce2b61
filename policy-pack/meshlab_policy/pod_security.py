"""The Kubernetes v1.32 Pod Security Standards (baseline and restricted) over a pod spec.

Semantics follow the built-in admission plugin at policy version v1.32 (k8s.io/pod-security-admission
v0.32.x) with default feature gates:

- every check visits initContainers, containers and ephemeralContainers;
- at restricted, `seccompProfile_restricted` and `capabilities_restricted` replace their baseline
  counterparts (they are stricter), every other baseline check still applies;
- pods with `spec.os.name: windows` skip the three Linux-only restricted checks
  (allowPrivilegeEscalation, seccomp, capabilities); nothing else is relaxed for them;
- runAsNonRoot and seccomp may be set once at pod level and inherited by containers that leave
  them unset, but a container's own value wins;
- user-namespace pods (`hostUsers: false`) are relaxed for runAsNonRoot, runAsUser and procMount
  only behind the UserNamespacesPodSecurityStandards feature gate, which is off by default in
  1.32; `relax_user_namespace_pods` mirrors that gate;
- a volume without any source is an emptyDir once the API server defaults it, so it is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from meshlab_policy.kube import items, mapping, quoted, text


class Level(StrEnum):
    PRIVILEGED = "privileged"
    BASELINE = "baseline"
    RESTRICTED = "restricted"

    @property
    def strictness(self) -> int:
        return list(Level).index(self)


BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SAFE_SYSCTLS = frozenset(
    {
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
    }
)
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
# `image` volumes were only allowed from policy version 1.33.
RESTRICTED_VOLUME_TYPES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"}
)
CONFINED_PROFILE_TYPES = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Finding:
    check: str
    level: Level
    detail: str

    def __str__(self) -> str:
        return f"{self.check}: {self.detail}"


@dataclass(frozen=True)
class Pod:
    """The parts of a pod (or pod template) the checks read."""

    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]
    relax_user_namespace: bool

    @property
    def security_context(self) -> Mapping[str, Any]:
        return mapping(self.spec.get("securityContext"))

    @property
    def containers(self) -> list[Mapping[str, Any]]:
        return [mapping(c) for field in CONTAINER_LISTS for c in items(self.spec.get(field))]

    @property
    def is_windows(self) -> bool:
        return text(mapping(self.spec.get("os")).get("name")) == "windows"

    @property
    def in_relaxed_user_namespace(self) -> bool:
        return self.relax_user_namespace and self.spec.get("hostUsers") is False


def _name(container: Mapping[str, Any]) -> str:
    return text(container.get("name")) or "<unnamed>"


def _context(container: Mapping[str, Any]) -> Mapping[str, Any]:
    return mapping(container.get("securityContext"))


def _containers(names: list[str], verb: str = "", plural_verb: str = "") -> str:
    """`container "a" sets` / `containers "a", "b" set`: the subject of a finding."""
    several = len(names) > 1
    subject = f"{'containers' if several else 'container'} {quoted(names)}"
    return f"{subject} {plural_verb if several else verb}" if verb else subject


def _is_zero(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == 0


def _number(value: object) -> str:
    """A number as written: CrossGuard hands every number over as a float."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _offenders(pod: Pod, offends: Callable[[Mapping[str, Any]], bool]) -> list[str]:
    return [_name(c) for c in pod.containers if offends(c)]


# Baseline --------------------------------------------------------------------------------------


def host_namespaces(pod: Pod) -> str | None:
    shared = [field for field in ("hostNetwork", "hostPID", "hostIPC") if pod.spec.get(field) is True]
    if not shared:
        return None
    return (
        f"{', '.join(f'{field}=true' for field in shared)} must not be set (the pod would share the node's namespaces)"
    )


def privileged(pod: Pod) -> str | None:
    names = _offenders(pod, lambda c: _context(c).get("privileged") is True)
    return f"{_containers(names)} must not set securityContext.privileged=true" if names else None


def capabilities_baseline(pod: Pod) -> str | None:
    added: dict[str, list[str]] = {}
    for container in pod.containers:
        extra = [
            text(cap) or repr(cap)
            for cap in items(mapping(_context(container).get("capabilities")).get("add"))
            if text(cap) not in BASELINE_CAPABILITIES
        ]
        if extra:
            added[_name(container)] = extra
    if not added:
        return None
    caps = sorted({cap for extra in added.values() for cap in extra})
    return f"{_containers(list(added))} must not add capabilities beyond the default set: {quoted(caps)}"


def host_path_volumes(pod: Pod) -> str | None:
    volumes = map(mapping, items(pod.spec.get("volumes")))
    names = [text(volume.get("name")) for volume in volumes if volume.get("hostPath") is not None]
    return f"hostPath volumes {quoted(names)} are not allowed" if names else None


def host_ports(pod: Pod) -> str | None:
    used: dict[str, list[str]] = {}
    for container in pod.containers:
        ports = [
            _number(port.get("hostPort"))
            for port in map(mapping, items(container.get("ports")))
            if port.get("hostPort") is not None and not _is_zero(port.get("hostPort"))
        ]
        if ports:
            used[_name(container)] = ports
    if not used:
        return None
    listed = ", ".join(port for found in used.values() for port in found)
    return f"{_containers(list(used))} must not use hostPort ({listed})"


def _apparmor_annotation_allowed(value: object) -> bool:
    profile = text(value)
    return profile in ("", "runtime/default") or profile.startswith("localhost/")


def app_armor(pod: Pod) -> str | None:
    problems: list[str] = []
    profile = pod.security_context.get("appArmorProfile")
    if profile is not None and text(mapping(profile).get("type")) not in CONFINED_PROFILE_TYPES:
        problems.append(f"pod appArmorProfile.type={text(mapping(profile).get('type'))!r}")
    for container in pod.containers:
        profile = _context(container).get("appArmorProfile")
        if profile is not None and text(mapping(profile).get("type")) not in CONFINED_PROFILE_TYPES:
            problems.append(
                f'container "{_name(container)}" appArmorProfile.type={text(mapping(profile).get("type"))!r}'
            )
    for key, value in mapping(pod.metadata.get("annotations")).items():
        if str(key).startswith(APPARMOR_ANNOTATION_PREFIX) and not _apparmor_annotation_allowed(value):
            problems.append(f"annotation {key}={text(value)!r}")
    if not problems:
        return None
    return f"AppArmor must be RuntimeDefault or Localhost, not unconfined: {'; '.join(problems)}"


def _selinux_problems(options: Mapping[str, Any]) -> list[str]:
    problems = []
    if text(options.get("type")) not in SELINUX_TYPES:
        problems.append(f"type={text(options.get('type'))!r}")
    problems.extend(f"{field}={text(options.get(field))!r}" for field in ("user", "role") if text(options.get(field)))
    return problems


def se_linux_options(pod: Pod) -> str | None:
    found: list[str] = []
    pod_problems = _selinux_problems(mapping(pod.security_context.get("seLinuxOptions")))
    if pod_problems:
        found.append(f"pod {', '.join(pod_problems)}")
    for container in pod.containers:
        problems = _selinux_problems(mapping(_context(container).get("seLinuxOptions")))
        if problems:
            found.append(f'container "{_name(container)}" {", ".join(problems)}')
    if not found:
        return None
    return f"seLinuxOptions may only use the container types and no custom user or role: {'; '.join(found)}"


def proc_mount(pod: Pod) -> str | None:
    if pod.in_relaxed_user_namespace:
        return None
    names = _offenders(pod, lambda c: _context(c).get("procMount") not in (None, "Default"))
    return f"{_containers(names)} must not set securityContext.procMount other than Default" if names else None


def _seccomp_type(context: Mapping[str, Any]) -> str | None:
    """The seccomp profile type a security context sets, or None when it sets no profile."""
    profile = context.get("seccompProfile")
    return None if profile is None else text(mapping(profile).get("type"))


def seccomp_baseline(pod: Pod) -> str | None:
    found = []
    pod_type = _seccomp_type(pod.security_context)
    if pod_type is not None and pod_type not in CONFINED_PROFILE_TYPES:
        found.append(f"pod seccompProfile.type={pod_type!r}")
    for container in pod.containers:
        container_type = _seccomp_type(_context(container))
        if container_type is not None and container_type not in CONFINED_PROFILE_TYPES:
            found.append(f'container "{_name(container)}" seccompProfile.type={container_type!r}')
    return f"seccomp must not be unconfined: {'; '.join(found)}" if found else None


def sysctls(pod: Pod) -> str | None:
    names = [text(mapping(s).get("name")) for s in items(pod.security_context.get("sysctls"))]
    unsafe = [name for name in names if name not in SAFE_SYSCTLS]
    return f"sysctls {quoted(unsafe)} are outside the safe set" if unsafe else None


def windows_host_process(pod: Pod) -> str | None:
    def host_process(context: Mapping[str, Any]) -> bool:
        return mapping(context.get("windowsOptions")).get("hostProcess") is True

    found = ["pod"] if host_process(pod.security_context) else []
    found += [f'container "{name}"' for name in _offenders(pod, lambda c: host_process(_context(c)))]
    return f"Windows hostProcess=true is not allowed ({', '.join(found)})" if found else None


# Restricted ------------------------------------------------------------------------------------


def restricted_volumes(pod: Pod) -> str | None:
    found = []
    for volume in map(mapping, items(pod.spec.get("volumes"))):
        sources = {key for key, value in volume.items() if key != "name" and value is not None}
        if sources and not sources & RESTRICTED_VOLUME_TYPES:
            found.append(f'"{text(volume.get("name"))}" ({", ".join(sorted(sources))})')
    if not found:
        return None
    return f"volumes {', '.join(found)} use types outside {', '.join(sorted(RESTRICTED_VOLUME_TYPES))}"


def allow_privilege_escalation(pod: Pod) -> str | None:
    if pod.is_windows:
        return None
    names = _offenders(pod, lambda c: _context(c).get("allowPrivilegeEscalation") is not False)
    return f"{_containers(names)} must set securityContext.allowPrivilegeEscalation=false" if names else None


def run_as_non_root(pod: Pod) -> str | None:
    if pod.in_relaxed_user_namespace:
        return None
    pod_value = pod.security_context.get("runAsNonRoot")
    explicit = _offenders(pod, lambda c: _context(c).get("runAsNonRoot") is False)
    unset = _offenders(pod, lambda c: _context(c).get("runAsNonRoot") is None) if pod_value is not True else []
    problems = []
    if pod_value is False:
        problems.append("the pod sets runAsNonRoot=false")
    if explicit:
        problems.append(f"{_containers(explicit, 'sets', 'set')} runAsNonRoot=false")
    if unset:
        problems.append(
            _containers(
                unset,
                "neither sets runAsNonRoot=true nor inherits it from the pod",
                "neither set runAsNonRoot=true nor inherit it from the pod",
            )
        )
    if not problems:
        return None
    return f"runAsNonRoot must be true on the pod or on every container: {'; '.join(problems)}"


def run_as_user(pod: Pod) -> str | None:
    if pod.in_relaxed_user_namespace:
        return None
    found = ["pod"] if _is_zero(pod.security_context.get("runAsUser")) else []
    found += [f'container "{name}"' for name in _offenders(pod, lambda c: _is_zero(_context(c).get("runAsUser")))]
    return f"runAsUser=0 (root) is not allowed ({', '.join(found)})" if found else None


def seccomp_restricted(pod: Pod) -> str | None:
    if pod.is_windows:
        return None
    pod_type = _seccomp_type(pod.security_context)
    pod_confined = pod_type in CONFINED_PROFILE_TYPES
    problems = []
    if pod_type is not None and not pod_confined:
        problems.append(f"the pod sets seccompProfile.type={pod_type!r}")
    explicit = _offenders(pod, lambda c: _seccomp_type(_context(c)) not in (None, *CONFINED_PROFILE_TYPES))
    unset = [] if pod_confined else _offenders(pod, lambda c: _seccomp_type(_context(c)) is None)
    if explicit:
        problems.append(f"{_containers(explicit, 'sets', 'set')} an unconfined seccompProfile.type")
    if unset:
        problems.append(
            _containers(
                unset,
                "neither sets a profile nor inherits one from the pod",
                "neither set a profile nor inherit one from the pod",
            )
        )
    if not problems:
        return None
    return (
        f"seccompProfile.type must be RuntimeDefault or Localhost on the pod or every container: {'; '.join(problems)}"
    )


def capabilities_restricted(pod: Pod) -> str | None:
    if pod.is_windows:
        return None
    no_drop_all = []
    added: dict[str, list[str]] = {}
    for container in pod.containers:
        capabilities = mapping(_context(container).get("capabilities"))
        if "ALL" not in items(capabilities.get("drop")):
            no_drop_all.append(_name(container))
        extra = [
            text(cap) or repr(cap)
            for cap in items(capabilities.get("add"))
            if text(cap) not in RESTRICTED_ADDABLE_CAPABILITIES
        ]
        if extra:
            added[_name(container)] = extra
    problems = []
    if no_drop_all:
        problems.append(f'{_containers(no_drop_all)} must drop "ALL"')
    if added:
        caps = sorted({cap for extra in added.values() for cap in extra})
        problems.append(f"{_containers(list(added))} may add only NET_BIND_SERVICE, not {quoted(caps)}")
    return "; ".join(problems) if problems else None


@dataclass(frozen=True)
class Check:
    id: str
    level: Level
    run: Callable[[Pod], str | None]
    replaces: str | None = None


CHECKS: tuple[Check, ...] = (
    Check("hostNamespaces", Level.BASELINE, host_namespaces),
    Check("privileged", Level.BASELINE, privileged),
    Check("capabilities_baseline", Level.BASELINE, capabilities_baseline),
    Check("hostPathVolumes", Level.BASELINE, host_path_volumes),
    Check("hostPorts", Level.BASELINE, host_ports),
    Check("appArmorProfile", Level.BASELINE, app_armor),
    Check("seLinuxOptions", Level.BASELINE, se_linux_options),
    Check("procMount", Level.BASELINE, proc_mount),
    Check("seccompProfile_baseline", Level.BASELINE, seccomp_baseline),
    Check("sysctls", Level.BASELINE, sysctls),
    Check("windowsHostProcess", Level.BASELINE, windows_host_process),
    Check("restrictedVolumes", Level.RESTRICTED, restricted_volumes, replaces="hostPathVolumes"),
    Check("allowPrivilegeEscalation", Level.RESTRICTED, allow_privilege_escalation),
    Check("runAsNonRoot", Level.RESTRICTED, run_as_non_root),
    Check("runAsUser", Level.RESTRICTED, run_as_user),
    Check("seccompProfile_restricted", Level.RESTRICTED, seccomp_restricted, replaces="seccompProfile_baseline"),
    Check("capabilities_restricted", Level.RESTRICTED, capabilities_restricted, replaces="capabilities_baseline"),
)


def checks_for(level: Level) -> list[Check]:
    """The checks a namespace at `level` runs: every check up to that level, minus those replaced."""
    if level is Level.PRIVILEGED:
        return []
    active = [check for check in CHECKS if check.level.strictness <= level.strictness]
    replaced = {check.replaces for check in active if check.replaces}
    return [check for check in active if check.id not in replaced]


def evaluate_pod(
    metadata: Mapping[str, Any], spec: Mapping[str, Any], level: Level, *, relax_user_namespace_pods: bool = False
) -> list[Finding]:
    """Every check of `level` the pod fails, in a fixed order."""
    pod = Pod(mapping(metadata), mapping(spec), relax_user_namespace_pods)
    findings = []
    for check in checks_for(level):
        detail = check.run(pod)
        if detail is not None:
            findings.append(Finding(check.id, check.level, detail))
    return findings
