"""Applying manifests to the real API server as the Pulumi Kubernetes provider does.

The provider applies server-side (a PATCH of type application/apply-patch with its field manager,
conflicts refused) and forces conflicts only for *Patch resources (`pulumi.com/patchForce`), which also
require the object to exist already. Each manifest goes first as a dry run (`dryRun=All`, what
`kubectl --dry-run=server` sends: admission, validation, CEL rules, defaulting, all but storage), then
for real: some checks run only on create (a nodePort outside the range passes a dry run). Field
validation is Strict, as kubectl's default: an unknown field is an error, not silently pruned.

The reference CRDs go in with the kubectl built beside the server, in one run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.kube.controlplane import Api, ControlPlane, Response
from tests.kube.manifests import REFERENCE_CRDS, Manifest, reference_crds
from tests.kube.report import TIMINGS

FIELD_MANAGER = "meshlab-kube-tier"
CRD = "CustomResourceDefinition"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    output: str  # the server's answer (status and message), or kubectl's output
    warnings: tuple[str, ...] = ()

    @classmethod
    def of(cls, answer: Response) -> Outcome:
        reason = answer.body.get("reason", "")
        text = f"{answer.status}" if answer.ok else f"{answer.status} {reason}: {answer.message}".replace(" :", ":")
        return cls(answer.ok, text, answer.warnings)


@dataclass(frozen=True)
class Step:
    manifest: Manifest
    dry_run: Outcome
    real: Outcome | None  # not tried when the dry run was refused

    @property
    def ok(self) -> bool:
        return self.dry_run.ok and self.real is not None and self.real.ok

    @property
    def rejection(self) -> str | None:
        """Where and how the server refused the manifest, or None."""
        if not self.dry_run.ok:
            return f"{self.manifest.ref}, refused by the dry run:\n    {self.dry_run.output}"
        if self.real is not None and not self.real.ok:
            return f"{self.manifest.ref}, refused on the real apply (the dry run passed):\n    {self.real.output}"
        return None


def _apply(api: Api, manifest: Manifest, *, dry_run: bool) -> Outcome:
    try:
        answer = api.apply(manifest.body, field_manager=FIELD_MANAGER, dry_run=dry_run, force=manifest.patch)
    except LookupError as error:  # discovery: the server does not serve the kind at all
        return Outcome(False, str(error))
    return Outcome.of(answer)


def wait_exists(api: Api, manifest: Manifest, timeout: float = 30) -> Outcome:
    """A patch's object must exist before the patch (the provider refuses to patch nothing)."""
    deadline = time.monotonic() + timeout
    path = api.object_path(manifest.body)
    while True:
        answer = api.get(path)
        if answer.ok:
            return Outcome.of(answer)
        if time.monotonic() > deadline:
            return Outcome(False, f"the object to patch never appeared: {answer.status} {answer.message}")
        time.sleep(0.2)


def wait_established(api: Api, name: str, timeout: float = 60) -> Outcome:
    deadline = time.monotonic() + timeout
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
    while True:
        answer = api.get(path)
        conditions = answer.body.get("status", {}).get("conditions", []) if answer.ok else []
        if any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
            return Outcome(True, f"{name} Established")
        if time.monotonic() > deadline:
            return Outcome(False, f"{name} not Established after {timeout:.0f}s: {conditions}")
        time.sleep(0.2)


def apply_manifest(api: Api, manifest: Manifest) -> Step:
    if manifest.patch:
        present = wait_exists(api, manifest)
        if not present.ok:
            return Step(manifest, present, None)
    dry_run = _apply(api, manifest, dry_run=True)
    if not dry_run.ok:
        return Step(manifest, dry_run, None)
    real = _apply(api, manifest, dry_run=False)
    if real.ok and manifest.kind == CRD:
        established = wait_established(api, manifest.name)
        real = Outcome(established.ok, f"{real.output}; {established.output}", real.warnings)
    return Step(manifest, dry_run, real)


def apply_in_order(api: Api, manifests: list[Manifest]) -> list[Step]:
    """Apply each manifest in turn; a refused one is recorded and the rest still go."""
    return [apply_manifest(api, manifest) for manifest in manifests]


def apply_reference_crds(plane: ControlPlane) -> tuple[Outcome, Outcome]:
    """All reference CRDs (what the charts, cilium-operator and RKE2 install) with kubectl in one run,
    then each one Established. (`kubectl wait --all` is no help: it fails on a CRD too new to have
    status conditions.)"""
    start = time.monotonic()
    files: list[str] = []
    for folder in sorted(p for p in REFERENCE_CRDS.iterdir() if p.is_dir()):
        files += ["-f", str(folder)]
    applied = plane.kubectl.run("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-o", "name", *files)
    outcome = Outcome(applied.returncode == 0, (applied.stdout + applied.stderr).strip())
    TIMINGS[f"{plane.name}: kubectl apply of the reference CRDs"] = time.monotonic() - start
    if not outcome.ok:
        return outcome, Outcome(False, "not applied")
    waits = [wait_established(plane.api, doc["metadata"]["name"]) for doc in reference_crds()]
    return outcome, Outcome(all(w.ok for w in waits), "\n".join(w.output for w in waits if not w.ok))


def wait_for_pods(api: Api, workload: Manifest, timeout: float = 60) -> tuple[int, list[dict[str, Any]], list[str]]:
    """(pods wanted, pods there, FailedCreate events of its namespace) of a Deployment, ReplicaSet,
    StatefulSet or Job, once all its pods exist or `timeout` has passed."""
    spec = workload.body["spec"]
    wanted = int(spec.get("parallelism", 1)) if workload.kind == "Job" else int(spec.get("replicas", 1))
    selector = ",".join(f"{key}={value}" for key, value in sorted(spec["template"]["metadata"]["labels"].items()))
    namespace = workload.namespace or "default"

    def pods() -> list[dict[str, Any]]:
        answer = api.request("GET", f"/api/v1/namespaces/{namespace}/pods", query={"labelSelector": selector})
        return list(answer.body.get("items", [])) if answer.ok else []

    deadline = time.monotonic() + timeout
    found = pods()
    while len(found) < wanted and time.monotonic() < deadline:
        time.sleep(0.25)
        found = pods()
    events = api.get(f"/api/v1/namespaces/{namespace}/events").body.get("items", [])
    failures = [f"{e['involvedObject']['name']}: {e['message']}" for e in events if e.get("reason") == "FailedCreate"]
    return wanted, found, failures


@dataclass
class StackRun:
    """A stack applied to its own control plane: reference CRDs first, then every rendered object."""

    stack: str
    plane: ControlPlane
    crds: Outcome
    established: Outcome
    manifests: list[Manifest]
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0
