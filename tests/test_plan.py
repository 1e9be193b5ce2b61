"""The offline plan CLI: its JSON document, its tree, and its refusal of bad config."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from config import versions
from tests.conftest import ROOT, expected_resource_count
from tools import plan
from tools.render import Registration, Rendering, render

LAB_NODES = {
    "master1": "192.168.56.11",
    "master2": "192.168.56.12",
    "master3": "192.168.56.13",
    "worker1": "192.168.56.21",
    "worker2": "192.168.56.22",
    "worker3": "192.168.56.23",
}


def _lab_with(tmp_path: Path, **overrides: object) -> Path:
    document = yaml.safe_load((ROOT / "Pulumi.lab.yaml").read_text())
    document["config"].update({f"meshlab:{key}": value for key, value in overrides.items()})
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_plan_json_from_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "lab", "--json"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["stack"] == "lab"
    resources = document["resources"]
    assert len(resources) == expected_resource_count(3, 3)
    assert all(set(r) == {"urn", "type", "name", "parent", "dependencies", "inputs"} for r in resources)
    vms = [r for r in resources if r["type"] == "meshlab:hosts:VirtualBoxVm"]
    assert {vm["name"]: vm["inputs"]["ip"] for vm in vms} == LAB_NODES
    vm_urns = {vm["urn"] for vm in vms}
    for vm in vms:
        assert not set(vm["dependencies"]) & vm_urns
    assert [r["urn"] for r in resources] == sorted(r["urn"] for r in resources)
    remotes = [r for r in resources if r["type"] == "command:remote:Command"]
    assert remotes and all(r["inputs"]["connection"] == "[secret]" for r in remotes)


def test_plan_is_deterministic(capsys):
    outputs = []
    for _ in range(2):
        assert plan.main(["lab", "--json"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert len(json.loads(outputs[0])["resources"]) == expected_resource_count(3, 3)


def test_plan_tree_shows_every_resource_under_its_parent(capsys):
    assert plan.main(["staging"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"stack staging: {expected_resource_count(3, 2, plugged_ca=True)} resources"
    assert len(lines) == 1 + expected_resource_count(3, 2, plugged_ca=True)
    assert lines[1] == "├─ cluster  [meshlab:cluster:Rke2Cluster]"
    assert "├─ hosts  [meshlab:hosts:LabHosts]" in lines
    vm_line = next(i for i, line in enumerate(lines) if "stg-agent1  [meshlab:hosts:VirtualBoxVm]" in line)
    assert "stg-agent1-vm  [command:local:Command]" in "\n".join(lines[vm_line + 1 : vm_line + 6])


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"servers": ["master1=192.168.56.11", "master2=192.168.56.12"]}, "meshlab:servers = 2 servers"),
        ({"apiVip": "192.168.99.10"}, "meshlab:apiVip = 192.168.99.10"),
        ({"metallbPool": "192.168.56.20-192.168.56.30"}, "meshlab:metallbPool = 192.168.56.20-192.168.56.30"),
    ],
    ids=["even-servers", "vip-outside-subnet", "pool-overlaps-node"],
)
def test_invalid_config_exits_2_and_names_the_key(tmp_path, capsys, overrides, shown):
    path = _lab_with(tmp_path, **overrides)
    assert plan.main(["lab", "--config-file", str(path)]) == plan.EXIT_INVALID_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert shown in captured.err


def test_invalid_config_from_the_command_line(tmp_path):
    path = _lab_with(tmp_path, apiVip="10.9.9.9")
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "lab", "--json", "--config-file", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert "meshlab:apiVip = 10.9.9.9" in result.stderr


def test_missing_stack_file_is_a_config_error(capsys):
    assert plan.main(["nosuchstack"]) == plan.EXIT_INVALID_CONFIG
    assert "Pulumi.nosuchstack.yaml" in capsys.readouterr().err


# Policy check (--policy) ----------------------------------------------------------------------


PEER_AUTHENTICATION = "kubernetes:security.istio.io/v1:PeerAuthentication"
MTLS_POLICIES = ("peer-authentication-strict", "mesh-mtls-strict")


def _mesh_wide_policy(rendering: Rendering) -> Registration:
    [policy] = [
        r for r in rendering.of_type(PEER_AUTHENTICATION) if r.inputs["metadata"]["namespace"] == "istio-system"
    ]
    assert policy.inputs["metadata"]["name"] == "default"
    return policy


def _render_with_chart_version(monkeypatch, release: str, version: str) -> None:
    """Render the real stack, with the real Helm release `release` asking for another chart version."""

    def render_edited(config, stack):
        rendering = render(config, stack)
        [target] = [r for r in rendering.of_type("kubernetes:helm.sh/v3:Release") if r.name == release]
        edited = replace(target, inputs={**target.inputs, "version": version})
        return Rendering(rendering.stack, [edited if r is target else r for r in rendering.registrations])

    monkeypatch.setattr(plan, "render", render_edited)


def test_plan_policy_passes_on_the_lab_stack_from_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "tools.plan", "lab", "--policy"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("policy check of stack lab (policy-pack/config/lab.json): ")
    assert lines[-1] == "0 mandatory and 0 advisory violations"


def test_plan_policy_counts_every_rendered_resource(rendered, capsys):
    assert plan.main(["staging", "--policy"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert header.endswith(f": {len(rendered['staging'].resources())} resources")


def test_plan_policy_fails_on_a_permissive_mesh_and_names_the_mtls_policies(tmp_path, rendered, capsys):
    # The same config file route passes with the default mode spelled out: only the mode makes the difference.
    strict = _lab_with(tmp_path, meshMtlsMode="STRICT")
    assert plan.main(["lab", "--policy", "--config-file", str(strict)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 mandatory and 0 advisory violations"

    permissive = _lab_with(tmp_path, meshMtlsMode="PERMISSIVE")
    assert plan.main(["lab", "--policy", "--config-file", str(permissive)]) == plan.EXIT_POLICY_VIOLATIONS
    lines = capsys.readouterr().out.splitlines()
    resources = len(rendered["lab"].resources())
    assert lines[0] == f"policy check of stack lab (policy-pack/config/lab.json): {resources} resources"
    real = _mesh_wide_policy(rendered["lab"])
    for policy in MTLS_POLICIES:
        group = lines.index(f"{policy} [mandatory]: 1 violation")
        entry = lines[group + 1]
        assert entry.startswith(f"  {PEER_AUTHENTICATION} {real.name}: ")
        assert 'PeerAuthentication "istio-system/default"' in entry
        assert "PERMISSIVE" in entry
    assert lines[-1] == "2 mandatory and 0 advisory violations"
    assert len(lines) == 1 + 2 * len(MTLS_POLICIES) + 1


def test_plan_policy_json_on_a_permissive_mesh(tmp_path, rendered, capsys):
    config_file = _lab_with(tmp_path, meshMtlsMode="PERMISSIVE")
    assert plan.main(["lab", "--policy", "--json", "--config-file", str(config_file)]) == plan.EXIT_POLICY_VIOLATIONS
    document = json.loads(capsys.readouterr().out)
    assert document["stack"] == "lab"
    real = _mesh_wide_policy(rendered["lab"])
    assert {(v["policy"], v["enforcement"], v["urn"]) for v in document["violations"]} == {
        (policy, "mandatory", real.urn) for policy in MTLS_POLICIES
    }
    assert all("PERMISSIVE" in v["message"] for v in document["violations"])


def test_plan_policy_advisories_pass_unless_the_stack_config_makes_them_mandatory(monkeypatch, capsys):
    _render_with_chart_version(monkeypatch, "grafana-release", "^9.3")
    assert plan.main(["lab", "--policy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    group = lines.index("helm-charts-pinned [advisory]: 1 violation")
    assert lines[group + 1].startswith(
        '  kubernetes:helm.sh/v3:Release grafana-release: chart "grafana" version "^9.3"'
    )
    assert lines[-1] == "0 mandatory and 1 advisory violations"
    assert plan.main(["prod", "--policy"]) == plan.EXIT_POLICY_VIOLATIONS
    lines = capsys.readouterr().out.splitlines()
    assert "helm-charts-pinned [mandatory]: 1 violation" in lines
    assert lines[-1] == "1 mandatory and 0 advisory violations"


def test_plan_policy_refuses_a_bad_policy_config_before_rendering(monkeypatch, tmp_path, capsys):
    def must_not_render(config, stack):
        raise AssertionError("rendered despite a bad policy config")

    monkeypatch.setattr(plan, "render", must_not_render)
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"pod-security-restricted": {"exemptNamespaces": [{"namespace": "x"}]}}))
    assert plan.main(["lab", "--policy", "--policy-config", str(config)]) == plan.EXIT_INVALID_CONFIG
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pod-security-restricted: exemptNamespaces[0]" in captured.err
    missing = tmp_path / "absent.json"
    assert plan.main(["lab", "--policy", "--policy-config", str(missing)]) == plan.EXIT_INVALID_CONFIG
    assert str(missing) in capsys.readouterr().err


def test_plan_policy_falls_back_to_the_pack_defaults_for_a_stack_without_config(tmp_path, capsys):
    stack_file = tmp_path / "Pulumi.sandbox.yaml"
    stack_file.write_text((ROOT / "Pulumi.lab.yaml").read_text())
    assert plan.main(["sandbox", "--policy", "--config-file", str(stack_file)]) == 0
    assert capsys.readouterr().out.startswith("policy check of stack sandbox (the pack's defaults): ")


EXAMPLE_EXISTING_CLUSTER = ROOT / "docs" / "examples" / "Pulumi.mycluster.yaml"


def test_plan_renders_an_existing_cluster_stack_file_offline(tmp_path, capsys):
    """No cluster and no passphrase: the kubeconfig stays encrypted, the cluster preflight is not run."""
    path = tmp_path / "Pulumi.mycluster.yaml"
    text = EXAMPLE_EXISTING_CLUSTER.read_text().replace("meshlab:rolloutPhase: 2", "meshlab:rolloutPhase: 4")
    assert text != EXAMPLE_EXISTING_CLUSTER.read_text()
    path.write_text(text + "  meshlab:kubeconfig:\n    secure: v1:dGVzdC1ub25jZQ==:a3ViZWNvbmZpZw==\n")

    assert plan.main(["mycluster", "--config-file", str(path), "--json"]) == 0
    resources = json.loads(capsys.readouterr().out)["resources"]
    types = [r["type"] for r in resources]
    assert types.count("meshlab:cluster:ExistingCluster") == 1
    assert not [t for t in types if t.startswith(("meshlab:hosts:", "command:")) or t == "meshlab:cluster:Rke2Cluster"]
    [provider] = [r for r in resources if r["type"] == "pulumi:providers:kubernetes"]
    assert provider["inputs"]["kubeconfig"] == "[secret]"
    releases = [r for r in resources if r["type"] == "kubernetes:helm.sh/v3:Release"]
    assert len(releases) == len(versions.CHARTS)  # phase 4 with NFS storage: every pinned chart
    mirror = yaml.safe_load(text)["config"]["meshlab:chartRepository"]
    assert {r["inputs"]["repositoryOpts"]["repo"] for r in releases} == {mirror}

    assert plan.main(["mycluster", "--config-file", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"stack mycluster: {len(resources)} resources"
    assert "├─ cluster  [meshlab:cluster:ExistingCluster]" in lines
    # No policy config of its own: the pack's defaults, and nothing mandatory violated.
    assert plan.main(["mycluster", "--config-file", str(path), "--policy"]) == 0
    assert "0 mandatory" in capsys.readouterr().out
