"""A real `pulumi up` of meshlab's own program, in the order a user lives it: up, up again (nothing changes), the
rollout stepped back and forward (4 -> 3 -> 2 -> 4, each step what the offline plan predicted), changes the
policy pack must refuse (nothing touched), destroy (only the Istio CRDs Istio keeps), an up interrupted
part-way and the plain up after it (the same state as an uninterrupted one).

The tests share one stack and run in this file's order; each leaves the stack as the next expects it.
"""

from __future__ import annotations

import json
import time

from config.settings import config_key
from tests.apply.cluster import ApplyCluster
from tests.apply.stack import TIMINGS, ApplyEngine, normal_urn, phase_config, resource_keys, step_ops

RELEASES = 10
# istio-base's CRDs carry helm.sh/resource-policy: keep (Istio keeps them on uninstall on purpose).
KEPT_ISTIO_CRDS = 13
MESHLAB_NAMESPACES_AT_4 = {
    "istio-system", "metallb-system", "nfs-provisioner", "monitoring", "kyverno", "ns-test", "demo",
    "bench-none", "bench-sidecar", "bench-ambient", "bench-waypoint",
}  # fmt: skip
# What changes on its own while nothing is deployed: heartbeats, leader leases, events, KWOK's status writes.
VOLATILE = {"events", "leases", "endpointslices", "endpoints", "nodes", "pods", "componentstatuses"}


def objects(cluster: ApplyCluster) -> dict[str, str]:
    """kind/namespace/name -> resourceVersion of everything listable, but what changes by itself."""
    kubectl = cluster.plane.kubectl
    names = kubectl.run("api-resources", "--verbs=list", "-o", "name").stdout.split()
    wanted = [name for name in names if name.split(".")[0] not in VOLATILE]
    done = kubectl.run("get", ",".join(wanted), "-A", "-o", "json", timeout=300)
    assert done.returncode == 0, done.stderr
    found = {}
    for item in json.loads(done.stdout)["items"]:
        metadata = item["metadata"]
        key = f"{item['kind']}/{metadata.get('namespace', '')}/{metadata['name']}"
        found[key] = metadata.get("resourceVersion", "")
    return found


def crds(cluster: ApplyCluster) -> set[str]:
    answer = cluster.plane.api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    return {item["metadata"]["name"] for item in answer.body.get("items", [])}


def deployed_releases(cluster: ApplyCluster) -> dict[str, str]:
    """release -> Helm's status of its newest revision, from Helm's own Secrets."""
    answer = cluster.plane.api.get("/api/v1/secrets?labelSelector=owner%3Dhelm")
    newest: dict[str, tuple[int, str]] = {}
    for item in answer.body.get("items", []):
        labels = item["metadata"]["labels"]
        revision = int(labels["version"])
        if revision >= newest.get(labels["name"], (0, ""))[0]:
            newest[labels["name"]] = (revision, labels["status"])
    return {name: status for name, (_, status) in newest.items()}


def pod_security_refusals(cluster: ApplyCluster) -> list[str]:
    answer = cluster.plane.api.get("/api/v1/events?fieldSelector=reason%3DFailedCreate")
    return [e["message"] for e in answer.body.get("items", []) if "PodSecurity" in e.get("message", "")]


def test_up_creates_every_planned_resource_and_every_release_deploys(engine: ApplyEngine, cluster: ApplyCluster):
    run = engine.up().check()
    TIMINGS["1. first pulumi up (phase 4, benchmark and demos on)"] = run.seconds
    state = resource_keys(engine.state()["resources"])
    plan = resource_keys(engine.plan(engine.values)["resources"])
    assert len(plan) > 100, "the offline plan is nearly empty: is the stack rendered at phase 4?"
    assert state == plan
    releases = [r for r in engine.state()["resources"] if r["type"] == "kubernetes:helm.sh/v3:Release"]
    assert len(releases) == RELEASES
    for release in releases:
        assert release["outputs"]["status"]["status"] == "deployed", release["urn"]
    helm = deployed_releases(cluster)
    assert len(helm) == RELEASES and set(helm.values()) == {"deployed"}, helm
    # Every pod the controllers made was admitted by the real Pod Security admission, and runs (on KWOK).
    assert pod_security_refusals(cluster) == []
    pods = cluster.plane.api.get("/api/v1/pods").body["items"]
    namespaces = {pod["metadata"]["namespace"] for pod in pods}
    assert namespaces >= MESHLAB_NAMESPACES_AT_4, MESHLAB_NAMESPACES_AT_4 - namespaces
    assert len(pods) > 30


def test_a_second_up_and_a_refreshed_preview_change_nothing(engine: ApplyEngine):
    run = engine.up("--expect-no-changes")
    TIMINGS["2. second pulumi up (no changes)"] = run.seconds
    run.check()
    run = engine.preview("--refresh", "--expect-no-changes")
    TIMINGS["2. pulumi preview --refresh (no changes)"] = run.seconds
    run.check()


def test_the_rollout_steps_back_and_forward_as_the_plan_predicts(engine: ApplyEngine, cluster: ApplyCluster):
    at_four = dict(engine.values)
    previous = at_four
    for phase in (3, 2, 4):
        values = phase_config(at_four, phase)
        predicted = engine.predicted(previous, values)
        engine.write_config(values)
        # docs/rollout.md: phase 2's PERMISSIVE ns-test goes on the pack's migration allow-list, and off again.
        engine.allow_permissive(["ns-test"] if phase == 2 else [])
        # What the engine will do (its preview), then done for real; the state then is the plan's.
        ops = step_ops(engine.preview("--json").check().steps())
        run = engine.up().check()
        TIMINGS[f"3. rollout step to phase {phase} (pulumi up)"] = run.seconds
        for seconds, op, urn in run.slowest[:3]:
            TIMINGS[f"   slowest: {op} {urn.rsplit('::', 1)[-1]}"] = seconds
        assert resource_keys(engine.state()["resources"]) == resource_keys(engine.plan(values)["resources"])
        added = {normal_urn(e.urn) for e in [*predicted.added, *predicted.components_added]}
        removed = {normal_urn(e.urn) for e in [*predicted.removed, *predicted.components_removed]}
        changed = {normal_urn(c.entry.urn) for c in [*predicted.changed, *predicted.components_changed]}
        assert (ops["created"], ops["deleted"], ops["updated"]) == (added, removed, changed), phase
        assert ops["created"] or ops["deleted"], f"phase {phase}: nothing happened"
        previous = values
    assert resource_keys(engine.state()["resources"]) == resource_keys(engine.plan(at_four)["resources"])
    assert len(deployed_releases(cluster)) == RELEASES


def _refused(engine: ApplyEngine, cluster: ApplyCluster, label: str) -> dict[str, list[str]]:
    before = objects(cluster)
    state_before = resource_keys(engine.state()["resources"])
    run = engine.up()
    TIMINGS[f"4. refused: {label}"] = run.seconds
    assert run.returncode != 0, f"{label}: the update went through"
    assert objects(cluster) == before, f"{label}: the cluster changed"
    assert resource_keys(engine.state()["resources"]) == state_before
    return run.violations()


def test_changes_the_pack_must_refuse_leave_the_cluster_as_it_was(engine: ApplyEngine, cluster: ApplyCluster):
    values = dict(engine.values)
    engine.write_config({**values, config_key("mesh_mtls_mode"): "PERMISSIVE"})
    try:
        violations = _refused(engine, cluster, "PERMISSIVE mesh mTLS")
    finally:
        engine.write_config(values)
    assert "peer-authentication-strict" in violations, violations
    assert any("PERMISSIVE" in message for message in violations["peer-authentication-strict"])

    source = engine.engine.project / "components" / "apps" / "web_test.py"
    original = source.read_text()
    marker = '"securityContext": RESTRICTED_CONTAINER,'
    assert original.count(marker) == 1
    source.write_text(original.replace(marker, '"securityContext": {**RESTRICTED_CONTAINER, "privileged": True},'))
    try:
        violations = _refused(engine, cluster, "a privileged container in ns-test")
    finally:
        source.write_text(original)
    assert "pod-security-restricted" in violations, violations
    assert any("privileged" in message for message in violations["pod-security-restricted"])
    engine.up("--expect-no-changes").check()


def test_destroy_leaves_only_the_istio_crds_istio_keeps(engine: ApplyEngine, cluster: ApplyCluster):
    before = crds(cluster)
    run = engine.destroy().check()
    TIMINGS["5. pulumi destroy"] = run.seconds
    for seconds, op, urn in run.slowest[:3]:
        TIMINGS[f"   slowest: {op} {urn.rsplit('::', 1)[-1]}"] = seconds
    assert [r for r in engine.state().get("resources", []) if r["type"] != "pulumi:pulumi:Stack"] == []
    left = crds(cluster)
    istio = {name for name in left if name.endswith(".istio.io")}
    assert len(istio) == KEPT_ISTIO_CRDS, sorted(istio)
    # Cilium's CRDs are the stand-in's (the cluster's own), not meshlab's.
    assert left - istio == {name for name in before if name.endswith(".cilium.io")}
    namespaces = {n["metadata"]["name"] for n in cluster.plane.api.get("/api/v1/namespaces").body["items"]}
    assert namespaces & MESHLAB_NAMESPACES_AT_4 == set()
    assert deployed_releases(cluster) == {}


def test_an_interrupted_up_then_a_plain_up_converge_to_the_uninterrupted_state(
    engine: ApplyEngine, cluster: ApplyCluster
):
    run, created = engine.interrupted_up(after_created=20)
    TIMINGS["6. pulumi up interrupted (SIGINT)"] = run.seconds
    assert created >= 20
    assert run.returncode != 0, "the interrupted up ran to the end: interrupt it earlier"
    state = engine.state()
    pending = state.get("pending_operations") or []
    partial = resource_keys(state["resources"])
    plan = resource_keys(engine.plan(engine.values)["resources"])
    assert 0 < len(partial) < len(plan)
    # docs/troubleshooting.md: an interrupted update is finished by running `make up` again; pending
    # operations (none expected after a SIGINT, which lets started operations finish) would need a refresh.
    assert pending == [], pending
    start = time.monotonic()
    engine.up().check()
    TIMINGS["6. pulumi up after the interrupted one"] = time.monotonic() - start
    assert resource_keys(engine.state()["resources"]) == plan
    engine.up("--expect-no-changes").check()
    assert len(deployed_releases(cluster)) == RELEASES
