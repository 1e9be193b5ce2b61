"""The offline plan diff (`tools.plan STACK --diff REF`) in a temporary git repository.

The repository is a copy of this one whose commit carries a lab stack file with a demo namespace and
an encrypted SSH key; the checks change that file and compare with HEAD.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import versions
from tests.conftest import ROOT
from tools import diff as plan_diff
from tools import plan
from tools.snapshot import snapshot

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDiffDiffDiffDiffDiffDiffDiffDiffDiffDiffDiff diff@test"
CIPHERTEXT_BEFORE = "v1:dGVzdC1ub25jZQ==:b2xkLWNpcGhlcnRleHQ="
CIPHERTEXT_AFTER = "v1:dGVzdC1ub25jZQ==:bmV3LWNpcGhlcnRleHQ="
ISTIO_RELEASES = {"istio-base", "istio-istiod", "istio-cni", "istio-ztunnel"}
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
NAMESPACE = "kubernetes:core/v1:Namespace"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def _stack_document(repo: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((repo / "Pulumi.lab.yaml").read_text())
    return document


def _write_stack(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A git repository holding this working tree, whose HEAD's lab has a demo namespace and a secret."""
    repo = tmp_path_factory.mktemp("repo")
    listed = _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    files = [name for name in listed if name and (ROOT / name).is_file()]
    assert len(files) > 100, files
    for name in files:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    document = _stack_document(repo)
    document["config"].update(
        {
            "meshlab:demoAmbient": "before",
            "meshlab:sshPublicKey": PUBLIC_KEY,
            "meshlab:sshPrivateKey": {"secure": CIPHERTEXT_BEFORE},
        }
    )
    _write_stack(repo / "Pulumi.lab.yaml", document)
    _git(repo, "init", "--quiet", "--initial-branch=main")
    _git(repo, "add", "--all")
    _git(repo, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "--quiet", "-m", "base")
    return repo


@pytest.fixture(scope="module")
def sides(repo, tmp_path_factory):
    """HEAD against a lab with a newer Istio, a fourth agent, no demo namespace and a new secret."""
    document = _stack_document(repo)
    config = document["config"]
    config["meshlab:istioVersion"] = "1.27.1"
    config["meshlab:agents"] = [*config["meshlab:agents"], "worker4=192.168.56.24"]
    del config["meshlab:demoAmbient"]
    config["meshlab:sshPrivateKey"] = {"secure": CIPHERTEXT_AFTER}
    changed = _write_stack(tmp_path_factory.mktemp("changed") / "Pulumi.lab.yaml", document)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plan_diff, "ROOT", repo)
        return plan_diff.render_both("lab", "HEAD", changed)


@pytest.fixture(scope="module")
def scenario(sides) -> plan_diff.PlanDiff:
    old, new = sides
    return plan_diff.compare(old, new, "HEAD")


def _named(entries) -> dict[str, plan_diff.Entry]:
    return {entry.name: entry for entry in entries}


def test_a_changed_chart_version_shows_old_and_new(scenario):
    changed = {c.entry.name: c for c in scenario.changed if c.entry.type == HELM_RELEASE}
    assert set(changed) == ISTIO_RELEASES
    for release in changed.values():
        versions = [c for c in release.changes if c.path == "version"]
        assert [(c.old, c.new) for c in versions] == [("1.27.0", "1.27.1")]


def test_an_added_node_shows_its_vm_and_its_rke2_steps(scenario):
    added = _named(scenario.added)
    assert "worker4-vm" in added
    assert added["worker4-vm"].type == "command:local:Command"
    assert any(name.startswith("cluster-worker4") for name in added)
    assert {entry.name for entry in scenario.components_added} == {"worker4", "cluster-worker4"}
    assert not [entry.name for entry in scenario.removed if "worker" in entry.name]


def test_a_removed_namespace_shows_with_what_lived_in_it(scenario):
    removed = _named(scenario.removed)
    namespaces = [entry for entry in removed.values() if entry.type == NAMESPACE]
    assert [entry.name for entry in namespaces] == ["demo-ambient-namespace"]
    assert len(removed) >= 2  # the namespace and the demo's workloads
    assert all("AmbientDemo" in entry.urn for entry in removed.values())
    assert [entry.type for entry in scenario.components_removed] == ["meshlab:apps:AmbientDemo"]


def test_a_changed_secret_shows_as_changed_and_stays_secret(scenario):
    secret_changes = [
        (changed.entry, change)
        for changed in scenario.changed
        for change in changed.changes
        if isinstance(change.old, plan_diff.Secret)
    ]
    assert len(secret_changes) >= 10  # every remote step logs in with the key
    assert all(isinstance(change.new, plan_diff.Secret) and change.old != change.new for _, change in secret_changes)
    assert {entry.type for entry, _ in secret_changes} >= {"command:remote:Command"}
    # The new key does not touch the Istio releases, and the text shows no digest.
    text = plan_diff.markdown(scenario) + json.dumps(plan_diff.diff_document(scenario))
    digests = {change.old.digest for _, change in secret_changes} | {change.new.digest for _, change in secret_changes}
    assert not any(digest in text for digest in digests)
    assert "[secret:" not in text
    assert "`connection`: `[secret]` -> `[secret]` (the secret's value changed)" in plan_diff.markdown(scenario)


def test_markdown_and_json_say_the_same(scenario):
    document = plan_diff.diff_document(scenario)
    text = plan_diff.markdown(scenario)
    assert document["summary"] == {
        "add": len(scenario.added),
        "remove": len(scenario.removed),
        "change": len(scenario.changed),
        "resources": scenario.resources_after,
    }
    counts = f"{len(scenario.added)} to add, {len(scenario.changed)} to change, {len(scenario.removed)} to remove"
    assert f"**{counts}**" in text
    istiod = next(c for c in document["changed"] if c["name"] == "istio-istiod")
    assert {"path": "version", "old": "1.27.0", "new": "1.27.1"} in istiod["changes"]
    assert "  - `version`: `1.27.0` -> `1.27.1`" in text
    # The cluster component's `agents` input grew by worker4; Istio's `version` moved.
    assert [c["name"] for c in document["components"]["changed"]] == ["cluster", "istio"]


def test_the_acceptance_an_istio_bump_in_a_clone_changes_exactly_the_istio_releases(repo, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True)
    stack = clone / "Pulumi.lab.yaml"
    stack.write_text(stack.read_text() + "  meshlab:istioVersion: 1.27.1\n")
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "lab", "--diff", "HEAD", "--json"],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["added"], document["removed"]) == ([], [])
    assert sorted(c["name"] for c in document["changed"]) == sorted(ISTIO_RELEASES)
    for changed in document["changed"]:
        assert changed["type"] == HELM_RELEASE
        assert {"path": "version", "old": "1.27.0", "new": "1.27.1"} in changed["changes"]
        assert {c["path"] for c in changed["changes"]} <= {"version", "values.global.tag", "values.tag"}
    assert document["components"]["changed"] == [
        {
            "name": "istio",
            "type": "meshlab:mesh:IstioAmbient",
            "urn": document["components"]["changed"][0]["urn"],
            "changes": [{"path": "version", "old": "1.27.0", "new": "1.27.1"}],
        }
    ]
    assert document["policy"]["mandatory"] == 0
    assert _git(clone, "status", "--porcelain") == " M Pulumi.lab.yaml\n"


def test_a_no_op_change_shows_nothing(repo, sides, tmp_path):
    """HEAD's lab with reordered keys, a comment and a quoted number: the same inputs, an empty diff."""
    config = _stack_document(repo)["config"]
    config = dict(reversed(list(config.items())))
    config["meshlab:serverCpus"] = str(config["meshlab:serverCpus"])
    reordered = tmp_path / "Pulumi.lab.yaml"
    reordered.write_text("# the same lab, written differently\n" + yaml.safe_dump({"config": config}, sort_keys=False))
    old, new = sides[0], snapshot("lab", reordered)
    assert len(new["resources"]) > 100
    result = plan_diff.compare(old, new, "HEAD")
    assert result.empty
    assert plan_diff.markdown(result).splitlines()[2:5] == ["_hosts backend: virtualbox_", "", "No changes."]
    assert plan_diff.diff_document(result)["summary"] == {
        "add": 0,
        "remove": 0,
        "change": 0,
        "resources": result.resources_after,
    }


def test_a_move_to_existing_hosts_names_both_backends(repo, sides, tmp_path):
    """The pull request that moves a stack onto servers says so before any resource."""
    document = _stack_document(repo)
    config = document["config"]
    for key in ("meshlab:sshPublicKey", "meshlab:sshPrivateKey"):
        config.pop(key, None)
    config.update({"meshlab:hypervisor": "existing", "meshlab:nodeInterface": "eno1", "meshlab:sshAgent": True})
    moved = _write_stack(tmp_path / "Pulumi.lab.yaml", document)
    result = plan_diff.compare(sides[0], snapshot("lab", moved), "HEAD")
    note = (
        "hosts backend: virtualbox -> existing: every node moves to other machines, and every node step runs again "
        "there"
    )
    assert result.notes == [note]
    assert plan_diff.markdown(result).splitlines()[2] == f"_{note}_"
    assert plan_diff.diff_document(result)["notes"] == [note]
    removed = {entry.type for entry in result.components_removed}
    assert {"meshlab:hosts:LabHosts", "meshlab:hosts:VirtualBoxVm"} <= removed
    assert "meshlab:hosts:ExistingHosts" in {entry.type for entry in result.components_added}


def test_an_unknown_ref_is_refused(capsys):
    assert plan.main(["lab", "--diff", "no-such-ref"]) == plan.EXIT_INVALID_CONFIG
    assert "'no-such-ref' is not a commit" in capsys.readouterr().err


def test_input_changes_ignore_key_order_and_report_leaves():
    old = {"b": 1, "a": {"x": [1, 2], "y": "same"}, "gone": True}
    new = {"a": {"y": "same", "x": [1, 3]}, "b": 1, "added": "yes"}
    changes = list(plan_diff.input_changes(old, new))
    assert [(c.path, c.old, c.new) for c in changes] == [
        ("a.x[1]", 2, 3),
        ("added", plan_diff.ABSENT, "yes"),
        ("gone", True, plan_diff.ABSENT),
    ]
    assert list(plan_diff.input_changes({"a": 1, "b": 2}, {"b": 2, "a": 1})) == []
    assert [c.path for c in plan_diff.input_changes({"l": [1]}, {"l": [1, 2]})] == ["l"]


def test_multi_line_text_shows_only_the_changed_lines():
    change = plan_diff.InputChange("create", "set -e\nstep one\nstep two\n", "set -e\nstep one\nstep 2\n")
    lines = plan_diff._change_lines(change, "  ")
    assert "  - `create`: text changed" in lines
    assert "    -step two" in lines
    assert "    +step 2" in lines
    assert not any("step one" in line for line in lines)


def test_a_long_value_shows_where_it_changed():
    old = " ".join(f"node{index}:2:4096" for index in range(12))
    new = old.replace("node7:2:4096", "node7:4:8192")
    old_shown, new_shown = plan_diff.shown_pair(old, new)
    assert "node7:2:4096" in old_shown
    assert "node7:4:8192" in new_shown
    assert old_shown.startswith("`…") and old_shown.endswith("…`")
    assert len(old_shown) < len(old)


def test_a_stack_new_since_the_ref_is_all_additions(sides):
    _, new = sides
    result = plan_diff.compare({"stack": "lab", "absent": True}, new, "HEAD")
    assert result.notes == ["the stack has no stack file at HEAD: everything is new", "hosts backend: virtualbox"]
    assert len(result.added) == result.resources_after > 100
    assert (result.removed, result.changed) == ([], [])
    assert "_the stack has no stack file at HEAD: everything is new_" in plan_diff.markdown(result)


def test_a_ref_from_before_the_renderer_is_refused_with_a_reason(tmp_path):
    (tmp_path / "Pulumi.lab.yaml").write_text((ROOT / "Pulumi.lab.yaml").read_text())
    process = plan_diff.start_snapshot(tmp_path, "lab")
    with pytest.raises(plan_diff.DiffError, match=r"v0\.1 predates the offline renderer"):
        plan_diff.finish_snapshot(process, "v0.1")


MIRROR = "https://charts.example.internal/meshlab"


def test_a_changed_chart_repository_shows_in_every_helm_release(repo, sides, tmp_path):
    """A mirror (meshlab:chartRepository) changes where each release's chart comes from, and nothing else."""
    document = _stack_document(repo)
    document["config"]["meshlab:chartRepository"] = MIRROR
    result = plan_diff.compare(sides[0], snapshot("lab", _write_stack(tmp_path / "Pulumi.lab.yaml", document)), "HEAD")
    upstream = {chart.name: chart.repository for chart in versions.CHARTS.values()}
    releases = [entry for entry in plan_diff.entries(sides[0]).values() if entry.type == HELM_RELEASE]
    assert len(releases) == len(upstream)
    assert sorted(changed.entry.name for changed in result.changed) == sorted(entry.name for entry in releases)
    for changed in result.changed:
        [change] = changed.changes
        assert change.path == "repositoryOpts.repo"
        assert (change.old, change.new) == (upstream[changed.entry.inputs["chart"]], MIRROR)
    assert (result.added, result.removed) == ([], [])
    assert f"`{MIRROR}`" in plan_diff.markdown(result)


EXISTING_CLUSTER_STACK = """\
config:
  meshlab:kubeconfig:
    secure: {ciphertext}
  meshlab:metallbPool: 10.20.0.200-10.20.0.220
  meshlab:nfsServer: nfs.example.internal
"""


def test_an_existing_cluster_stack_diffs_with_its_kubeconfig_encrypted(tmp_path):
    """The diff renders both sides from stack files it cannot decrypt: a new kubeconfig (new credentials) is
    a changed secret of the cluster's provider, and a mirror changes every release."""
    before, after = tmp_path / "before" / "Pulumi.mycluster.yaml", tmp_path / "after" / "Pulumi.mycluster.yaml"
    for path in (before, after):
        path.parent.mkdir()
    before.write_text(EXISTING_CLUSTER_STACK.format(ciphertext=CIPHERTEXT_BEFORE))
    after.write_text(
        EXISTING_CLUSTER_STACK.format(ciphertext=CIPHERTEXT_AFTER) + f"  meshlab:chartRepository: {MIRROR}\n"
    )
    result = plan_diff.compare(snapshot("mycluster", before), snapshot("mycluster", after), "HEAD")
    assert (result.added, result.removed) == ([], [])
    changed = {c.entry.name: c for c in result.changed}
    [provider] = [c for c in result.changed if c.entry.type == "pulumi:providers:kubernetes"]
    [change] = provider.changes
    assert change.path == "kubeconfig"
    assert isinstance(change.old, plan_diff.Secret) and isinstance(change.new, plan_diff.Secret)
    assert change.old != change.new
    releases = [name for name, c in changed.items() if c.entry.type == HELM_RELEASE]
    assert len(releases) == len(versions.CHARTS)
    assert set(changed) == {provider.entry.name, *releases}
    assert CIPHERTEXT_AFTER not in plan_diff.markdown(result)
