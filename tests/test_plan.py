"""The offline plan CLI: its JSON document, its tree, and its refusal of bad config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    assert "stg-agent1-vm  [command:local:Command]" in "\n".join(lines[vm_line + 1 : vm_line + 5])


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


def _k8s(type_: str, name: str, inputs: dict[str, object]) -> Registration:
    return Registration(
        urn=f"urn:pulumi:lab::meshlab::{type_}::{name}",
        type=type_,
        name=name,
        parent="",
        custom=True,
        dependencies=[],
        property_dependencies={},
        additional_secret_outputs=[],
        inputs=inputs,
        secret_paths=[],
        delete_before_replace=False,
    )


PERMISSIVE_MESH = _k8s(
    "kubernetes:security.istio.io/v1:PeerAuthentication",
    "mesh-default",
    {"metadata": {"name": "default", "namespace": "istio-system"}, "spec": {"mtls": {"mode": "PERMISSIVE"}}},
)
RANGED_CHART = _k8s("kubernetes:helm.sh/v3:Release", "grafana", {"chart": "grafana", "version": "^9.3"})


def _render_adding(monkeypatch, *extra: Registration) -> None:
    def render_with_extra(config, stack):
        rendering = render(config, stack)
        return Rendering(rendering.stack, [*rendering.registrations, *extra])

    monkeypatch.setattr(plan, "render", render_with_extra)


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


def test_plan_policy_groups_violations_and_fails_on_mandatory(monkeypatch, capsys):
    _render_adding(monkeypatch, PERMISSIVE_MESH)
    assert plan.main(["lab", "--policy"]) == plan.EXIT_POLICY_VIOLATIONS
    lines = capsys.readouterr().out.splitlines()
    for policy in ("peer-authentication-strict", "mesh-mtls-strict"):
        group = lines.index(f"{policy} [mandatory]: 1 violation")
        entry = lines[group + 1]
        assert entry.startswith("  kubernetes:security.istio.io/v1:PeerAuthentication mesh-default: ")
        assert "PERMISSIVE" in entry
    assert lines[-1] == "2 mandatory and 0 advisory violations"


def test_plan_policy_json(monkeypatch, capsys):
    _render_adding(monkeypatch, PERMISSIVE_MESH)
    assert plan.main(["lab", "--policy", "--json"]) == plan.EXIT_POLICY_VIOLATIONS
    document = json.loads(capsys.readouterr().out)
    assert document["stack"] == "lab"
    assert {(v["policy"], v["enforcement"], v["urn"]) for v in document["violations"]} == {
        ("peer-authentication-strict", "mandatory", PERMISSIVE_MESH.urn),
        ("mesh-mtls-strict", "mandatory", PERMISSIVE_MESH.urn),
    }


def test_plan_policy_advisories_pass_unless_the_stack_config_makes_them_mandatory(monkeypatch, capsys):
    _render_adding(monkeypatch, RANGED_CHART)
    assert plan.main(["lab", "--policy"]) == 0
    assert "helm-charts-pinned [advisory]: 1 violation" in capsys.readouterr().out.splitlines()
    assert plan.main(["prod", "--policy"]) == plan.EXIT_POLICY_VIOLATIONS
    assert "helm-charts-pinned [mandatory]: 1 violation" in capsys.readouterr().out.splitlines()


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
