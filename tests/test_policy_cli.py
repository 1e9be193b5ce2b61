"""tools.policy: YAML manifests in, one line per violation out, exit 1 on a mandatory violation."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import SHARED
from tools import policy
from tools.policy import ROOT

FIXTURES = SHARED / "reference" / "psa-fixtures"
# Stack-wide findings with no resource to blame read "(all files): stack: ...".
LINE = re.compile(
    r"^(?P<file>.+?): (?:(?P<kind>\w+)/(?P<name>\S+)|stack): "
    r"(?P<policy>[a-z-]+) \[(?P<enforcement>mandatory|advisory)\]: .+$"
)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.policy", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def parsed(output: str) -> list[dict[str, str | None]]:
    lines = output.splitlines()
    matches = [LINE.match(line) for line in lines]
    assert all(matches), [line for line, match in zip(lines, matches, strict=True) if not match]
    return [match.groupdict() for match in matches if match]


def fixtures(folder: str) -> list[str]:
    files = sorted(str(path) for path in (FIXTURES / folder).glob("*.yaml"))
    assert files
    return files


def test_restricted_failures_exit_1_and_report_every_file():
    files = fixtures("restricted/fail")
    result = run_cli("--level", "restricted", *files)
    assert result.returncode == 1, result.stderr
    lines = parsed(result.stdout)
    mandatory = {line["file"] for line in lines if line["enforcement"] == "mandatory"}
    assert mandatory == set(files)
    assert {line["policy"] for line in lines if line["enforcement"] == "mandatory"} == {"pod-security-restricted"}
    assert f"{len(files)} objects in {len(files)} files" in result.stderr


def test_the_summary_counts_in_the_singular_too():
    result = run_cli("--level", "restricted", fixtures("restricted/fail")[0])
    assert "\n1 object in 1 file: 1 mandatory and " in f"\n{result.stderr}", result.stderr


def test_restricted_passes_exit_0_with_only_advisories():
    result = run_cli("--level", "restricted", *fixtures("restricted/pass"))
    assert result.returncode == 0, result.stdout
    lines = parsed(result.stdout)
    assert lines, "the fixtures' untagged pause image is an advisory finding"
    assert {(line["policy"], line["enforcement"]) for line in lines} == {("images-pinned", "advisory")}


@pytest.mark.parametrize(
    ("level", "folder", "status"),
    [
        ("baseline", "baseline/fail", 1),
        ("baseline", "baseline/pass", 0),
        ("restricted", "baseline/fail", 1),
        ("privileged", "baseline/fail", 0),
    ],
)
def test_level_option(capsys, level, folder, status):
    files = fixtures(folder)
    assert policy.main(["--level", level, *files]) == status
    reported = {line["file"] for line in parsed(capsys.readouterr().out) if line["enforcement"] == "mandatory"}
    assert reported == (set(files) if status else set())


def test_the_namespace_decides_the_level_without_the_option(capsys):
    """baseline/pass pods run as root: fine in the lab's baseline namespace, not in a restricted one."""
    files = fixtures("baseline/pass")
    assert policy.main(files) == 1
    assert len({line["file"] for line in parsed(capsys.readouterr().out) if line["enforcement"] == "mandatory"}) == len(
        files
    )


def _pod(name: str, namespace: str) -> dict[str, object]:
    pod = yaml.safe_load((FIXTURES / "baseline" / "pass" / "base.yaml").read_text())
    pod["metadata"] = {"name": name, "namespace": namespace}
    return dict(pod)


def test_multi_document_files_and_lists(tmp_path, capsys):
    manifest = tmp_path / "app.yaml"
    listed = {"apiVersion": "v1", "kind": "List", "items": [_pod("in-list", "ns-test"), _pod("nfs", "nfs-provisioner")]}
    manifest.write_text(yaml.safe_dump_all([_pod("first", "ns-test"), None, listed]))
    assert policy.main([str(manifest)]) == 1
    mandatory = {line["name"] for line in parsed(capsys.readouterr().out) if line["enforcement"] == "mandatory"}
    assert mandatory == {"first", "in-list"}, "nfs-provisioner is a baseline namespace"


def test_stack_policies_only_on_request(tmp_path, capsys):
    selector_l7 = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "web", "namespace": "ns-test"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "rules": [{"to": [{"operation": {"methods": ["GET"]}}]}]},
    }
    manifest = tmp_path / "policy.yaml"
    manifest.write_text(yaml.safe_dump(selector_l7))
    assert policy.main([str(manifest)]) == 0
    assert capsys.readouterr().out == ""
    assert policy.main(["--stack-policies", str(manifest)]) == 1
    mesh, ambient = parsed(capsys.readouterr().out)
    assert (ambient["kind"], ambient["name"], ambient["policy"]) == (
        "AuthorizationPolicy",
        "web",
        "ambient-waypoint-attachment",
    )
    # An Istio resource means Istio runs, so the files alone lack the mesh-wide STRICT policy.
    assert (mesh["file"], mesh["kind"], mesh["policy"]) == ("(all files)", None, "mesh-mtls-strict")


def test_a_stack_policy_config_applies(capsys):
    prod = ROOT / "policy-pack" / "config" / "prod.json"
    assert policy.main(["--level", "restricted", "--policy-config", str(prod), *fixtures("restricted/pass")]) == 1
    assert {line["enforcement"] for line in parsed(capsys.readouterr().out)} == {"mandatory"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind: [unclosed", "while parsing"),
        ("- just\n- a list\n", "expected a Kubernetes object"),
        ("metadata: {}\n", "without apiVersion or kind"),
    ],
)
def test_unreadable_manifests_exit_2(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    assert policy.main([str(bad)]) == policy.EXIT_UNREADABLE
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err


def test_missing_files_and_bad_policy_config_exit_2(tmp_path, capsys):
    assert policy.main([str(tmp_path / "absent.yaml")]) == policy.EXIT_UNREADABLE
    config = tmp_path / "config.json"
    config.write_text('{"no-such-policy": "mandatory"}')
    assert policy.main(["--policy-config", str(config), *fixtures("restricted/pass")]) == policy.EXIT_UNREADABLE
    assert "unknown policies" in capsys.readouterr().err


def test_read_manifests_names_objects_by_kind_and_name(tmp_path):
    manifest = tmp_path / "ns.yaml"
    manifest.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns-test"}}))
    (read,) = policy.read_manifests(Path(manifest))
    assert (read.label, read.resource.type) == ("Namespace/ns-test", "kubernetes:core/v1:Namespace")
