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
    assert lines[0] == f"stack staging: {expected_resource_count(3, 2)} resources"
    assert len(lines) == 1 + expected_resource_count(3, 2)
    assert lines[1] == "├─ cluster  [meshlab:cluster:Rke2Cluster]"
    assert "└─ hosts  [meshlab:hosts:LabHosts]" in lines
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
