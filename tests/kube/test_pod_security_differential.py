"""Our policy pack's Pod Security checker against the real PodSecurity admission of kube-apiserver v1.32.7.

Every upstream fixture pod (../shared/reference/psa-fixtures) and every mutation of each pod template
the stacks render goes to the server as a dry-run create in namespaces enforcing privileged, baseline
and restricted at v1.32, and through `evaluate_pod` at the same level. They must agree on the verdict
and on the checks that fail. A difference is legitimate only when the test can name it:

- the server judged another pod than the one sent: a feature gate off in 1.32 reset a field
  (admission.GATED_FIELDS) or defaulting filled one in (admission.DEFAULTED_FIELDS), and our checker,
  given the pod the server stored (a dry-run create in the privileged namespace), agrees again;
- upstream reports one check in place of another (OVERRIDES) where ours reports both: same verdict.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import yaml

import tools.policy  # noqa: F401 - importing it puts policy-pack on sys.path
from tests.conftest import SHARED, STACKS
from tests.kube.admission import (
    DEFAULTED_FIELDS,
    GATED_FIELDS,
    MUTATIONS,
    defaulting_behind,
    denied_checks,
    gates_behind,
    mutated,
)
from tests.kube.apply import StackRun
from tests.kube.controlplane import ControlPlane
from tests.kube.manifests import pod_templates
from tests.kube.report import REPORT

# isort: split
from meshlab_policy.pod_security import Level, evaluate_pod

FIXTURES = SHARED / "reference" / "psa-fixtures"
LEVELS = (Level.PRIVILEGED, Level.BASELINE, Level.RESTRICTED)
# At restricted, upstream's restrictedVolumes check overrides hostPathVolumes
# (psa v0.32.7 policy/check_restrictedVolumes.go, OverrideCheckIDs); our checker reports both.
OVERRIDES = {Level.RESTRICTED: {"hostPathVolumes": "restrictedVolumes"}}
OVERRIDE = "override: at restricted, restrictedVolumes replaces hostPathVolumes upstream; ours reports both"


@dataclass(frozen=True)
class Verdict:
    subject: str
    level: Level
    ours: frozenset[str]  # our checks failing on the pod as sent
    theirs: frozenset[str] | None  # the server's; None: refused before Pod Security judged it
    answer: str
    explanation: tuple[str, ...] = ()  # what makes a difference legitimate; empty if it is not

    @property
    def agrees(self) -> bool:
        return self.theirs is not None and self.ours == self.theirs

    @property
    def legitimate(self) -> bool:
        return not self.agrees and bool(self.explanation)

    def __str__(self) -> str:
        theirs = "not judged" if self.theirs is None else sorted(self.theirs) or "admitted"
        return f"{self.subject} at {self.level}: ours {sorted(self.ours) or 'admitted'}, server {theirs}: {self.answer}"


def _checks(pod: dict[str, Any], level: Level) -> frozenset[str]:
    return frozenset(finding.check for finding in evaluate_pod(pod.get("metadata") or {}, pod["spec"], level))


def _explain(level: Level, sent: dict[str, Any], stored: dict[str, Any], theirs: frozenset[str]) -> tuple[str, ...]:
    """The names that account for our checker's verdict on `sent` differing from the server's, or ()."""
    names = []
    expected = _checks(sent, level)
    if _checks(stored, level) != expected:  # the server judged another pod: name what changed it
        changes = gates_behind(sent["spec"], stored["spec"]) + defaulting_behind(sent["spec"], stored["spec"])
        if not changes:
            return ()
        names += [
            f"feature gate {change} (off in 1.32)" if change in GATED_FIELDS.values() else change for change in changes
        ]
        expected = _checks(stored, level)
    for overridden, by in OVERRIDES.get(level, {}).items():
        if {overridden, by} <= expected and overridden not in theirs:
            expected -= {overridden}
            names.append(OVERRIDE)
    return tuple(names) if expected == theirs else ()


def _server_name(name: str) -> str:
    """A DNS-1123 name for a subject (upstream's fixture pods are named like `base_linux`)."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")


class Judge:
    """Sends pods to the server and our checker, level by level."""

    def __init__(self, plane: ControlPlane, namespaces: dict[Level, str]) -> None:
        self.plane, self.namespaces = plane, namespaces

    def _create(self, level: Level, pod: dict[str, Any]) -> Any:
        return self.plane.api.create(f"/api/v1/namespaces/{self.namespaces[level]}/pods", pod, dry_run=True)

    def verdicts(self, subject: str, pod: dict[str, Any]) -> list[Verdict]:
        sent = copy.deepcopy(pod)
        sent.setdefault("metadata", {}).pop("namespace", None)
        sent["metadata"]["name"] = _server_name(sent["metadata"].get("name") or subject)
        # The pod as the server stores it: in the privileged namespace Pod Security refuses nothing.
        stored_answer = self._create(Level.PRIVILEGED, sent)
        if stored_answer.status != 201:
            answer = f"{stored_answer.status} {stored_answer.message}"
            return [Verdict(subject, level, _checks(sent, level), None, answer) for level in LEVELS]
        stored = stored_answer.body
        found = []
        for level in LEVELS:
            answer = stored_answer if level is Level.PRIVILEGED else self._create(level, sent)
            if answer.status == 201:
                theirs: frozenset[str] | None = frozenset()
            else:
                denial = denied_checks(answer.message) if answer.status == 403 else None
                theirs = None if denial is None else frozenset(denial[1])
            ours = _checks(sent, level)
            text = "admitted" if answer.status == 201 else f"{answer.status} {answer.message}"
            explanation = _explain(level, sent, stored, theirs) if theirs is not None and ours != theirs else ()
            found.append(Verdict(subject, level, ours, theirs, text, explanation))
        return found


@pytest.fixture(scope="module")
def judge(lab_plane: ControlPlane) -> Judge:
    """Namespaces enforcing each level at v1.32 (as meshlab labels its own), each with its default
    ServiceAccount (the ServiceAccount admission plugin runs before Pod Security and needs it)."""
    names = {}
    for level in LEVELS:
        name = f"psa-{level}"
        labels = {f"pod-security.kubernetes.io/{mode}": str(level) for mode in ("enforce", "warn", "audit")}
        labels.update({f"pod-security.kubernetes.io/{mode}-version": "v1.32" for mode in ("enforce", "warn", "audit")})
        namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
        answer = lab_plane.api.create("/api/v1/namespaces", namespace)
        assert answer.status == 201, answer.body
        names[level] = name
    for name in names.values():
        lab_plane.wait_service_account(name)
    return Judge(lab_plane, names)


@cache
def fixture_pods() -> dict[str, dict[str, Any]]:
    return {str(path.relative_to(FIXTURES)): yaml.safe_load(path.read_text()) for path in FIXTURES.glob("*/*/*.yaml")}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod["spec"]
    return [c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]


def _differences(verdicts: list[Verdict]) -> dict[tuple[str, Level], tuple[str, ...]]:
    return {(v.subject, v.level): v.explanation for v in verdicts if not v.agrees}


def _check_and_summarise(title: str, verdicts: list[Verdict]) -> None:
    legitimate = [v for v in verdicts if v.legitimate]
    REPORT.append(
        f"{title}: {len(verdicts)} verdicts, {sum(v.agrees for v in verdicts)} agree, "
        f"{len(legitimate)} differ for a named reason"
    )
    REPORT.extend(f"    {v.subject} at {v.level}: {'; '.join(v.explanation)}" for v in legitimate)
    not_judged = [str(v) for v in verdicts if v.theirs is None]
    assert not not_judged, "the server refused pods before Pod Security judged them:\n" + "\n".join(not_judged)
    unexplained = [str(v) for v in verdicts if not v.agrees and not v.legitimate]
    assert not unexplained, "our checker and the real admission disagree:\n" + "\n".join(unexplained)


def _reports_an_overridden_check(pod: dict[str, Any]) -> bool:
    """Whether our checker reports, at restricted, a check upstream's overriding one replaces (a
    hostPath volume, as long as the policy pack reports hostPathVolumes next to restrictedVolumes)."""
    found = _checks(pod, Level.RESTRICTED)
    return any({overridden, by} <= found for overridden, by in OVERRIDES[Level.RESTRICTED].items())


PROC_MOUNT = f"feature gate {GATED_FIELDS['procMount']} (off in 1.32)"
HOST_USERS = f"feature gate {GATED_FIELDS['hostUsers']} (off in 1.32)"


def test_every_upstream_fixture_gets_the_same_verdict(judge: Judge):
    pods = fixture_pods()
    assert len(pods) == 128, sorted(pods)  # the README's table: 29 + 11 + 69 + 19
    verdicts = [v for name, pod in sorted(pods.items()) for v in judge.verdicts(name, pod)]
    _check_and_summarise("psa-fixtures", verdicts)

    # Every difference is one of two, on exactly the pods that call for it: a procMount other than
    # Default, which 1.32 resets before admission (and the user namespace such pods ask for, dropped
    # with its own gate), and a hostPath volume at restricted.
    expected: dict[tuple[str, Level], tuple[str, ...]] = {}
    for name, pod in pods.items():
        if any((c.get("securityContext") or {}).get("procMount", "Default") != "Default" for c in _containers(pod)):
            gates = (PROC_MOUNT, HOST_USERS) if "hostUsers" in pod["spec"] else (PROC_MOUNT,)
            for level in (Level.BASELINE, Level.RESTRICTED):
                expected[(name, level)] = tuple(sorted(gates))
        if _reports_an_overridden_check(pod):
            expected[(name, Level.RESTRICTED)] = (OVERRIDE,)
    found = {key: tuple(sorted(names)) for key, names in _differences(verdicts).items()}
    assert found == {key: tuple(sorted(names)) for key, names in expected.items()}

    # and the server refuses every upstream failure at its level that no gate lets through
    for v in verdicts:
        folder, outcome = v.subject.split("/")[:2]
        if outcome == "fail" and v.level == folder and PROC_MOUNT not in v.explanation:
            assert v.theirs, v
        if outcome == "pass" and v.level == folder:
            assert v.theirs == frozenset(), v


def rendered_templates(applied: dict[str, StackRun]) -> dict[str, dict[str, Any]]:
    """Each distinct pod template the stacks render, named after its first workload."""
    templates: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for stack in STACKS:
        for manifest, template in pod_templates(applied[stack].manifests):
            key = json.dumps(template, sort_keys=True)
            if key not in seen:
                seen.add(key)
                templates[f"{stack}/{manifest.source}"] = template
    return templates


# The mutations restricted still admits (the rest must be refused): what the policy allows, and procMount,
# which the server resets to Default first (ProcMountType is off in 1.32).
ADMITTED_AT_RESTRICTED = {
    "as-rendered",
    "capability-NET_BIND_SERVICE-added",
    "ephemeral-volume-added",
    "seccomp-unset-on-the-pod-only",
    "seccomp-unset-on-containers-only",
    "seccomp-Localhost",
    "runAsUser-1000",
    "sysctl-safe",
    "appArmor-RuntimeDefault",
    "seLinux-container_engine_t",
    "procMount-Unmasked",
}
EXPECTED_MUTATION_DIFFERENCES = {
    ("procMount-Unmasked", Level.BASELINE): (PROC_MOUNT,),
    ("procMount-Unmasked", Level.RESTRICTED): (PROC_MOUNT,),
    ("hostNetwork", Level.BASELINE): (DEFAULTED_FIELDS["hostPort"],),
    ("hostNetwork", Level.RESTRICTED): (DEFAULTED_FIELDS["hostPort"],),
}


def test_mutations_of_rendered_pods_get_the_same_verdict(applied: dict[str, StackRun], judge: Judge):
    templates = rendered_templates(applied)
    assert templates
    verdicts: list[Verdict] = []
    expected = dict(EXPECTED_MUTATION_DIFFERENCES)
    for index, (source, template) in enumerate(templates.items()):
        for number, mutation in enumerate(MUTATIONS):
            pod = mutated(template, f"rendered-{index}-mutation-{number}", mutation)
            verdicts += judge.verdicts(f"{source} {mutation}", pod)
            if _reports_an_overridden_check(pod):
                expected[(mutation, Level.RESTRICTED)] = (OVERRIDE,)
    _check_and_summarise(f"mutations of {len(templates)} rendered pod template(s)", verdicts)

    def mutation_of(v: Verdict) -> str:
        return v.subject.split(" ", 1)[1]

    # The rendered pods pass restricted as they are; the mutations reach the server's checks.
    admitted = {mutation_of(v) for v in verdicts if v.level is Level.RESTRICTED and v.theirs == frozenset()}
    assert admitted == ADMITTED_AT_RESTRICTED
    differences = {(mutation_of(v), v.level): v.explanation for v in verdicts if not v.agrees}
    assert differences == expected
