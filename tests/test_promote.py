"""Stack promotion (`tools.promote SRC DST`): what moves, what stays, and what is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from meshlab_policy.engine import stack_config_path

from config import versions
from config.settings import built_cluster_fields, config_key, promotable_keys
from tests.conftest import STACKS
from tools import promote
from tools.render import stack_file

MONITORING_EXEMPTION = {"namespace": "monitoring", "level": "privileged", "reason": "node-exporter reads the host"}


@pytest.fixture
def stacks(tmp_path, monkeypatch):
    """Copies of the committed stack files and policy configs, which tools.promote then reads and writes."""
    for stack in STACKS:
        shutil.copy(stack_file(stack), tmp_path / f"Pulumi.{stack}.yaml")
        shutil.copy(stack_config_path(stack), tmp_path / f"{stack}.json")
    monkeypatch.setattr(promote, "stack_file", lambda stack: tmp_path / f"Pulumi.{stack}.yaml")
    monkeypatch.setattr(promote, "stack_config_path", lambda stack: tmp_path / f"{stack}.json")
    return tmp_path


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _config(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())["config"]
    return config


def _comments(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip().startswith("#")]


def test_promotion_copies_promotable_keys_and_keeps_the_environments_own(stacks, capsys):
    lab, staging = stacks / "Pulumi.lab.yaml", stacks / "Pulumi.staging.yaml"
    _append(
        lab,
        "  # The patch release with the ztunnel fix.\n"
        "  meshlab:istioVersion: 1.27.1\n"
        "  meshlab:testAppAllowedMethods:\n"
        "    - GET\n"
        "    - HEAD\n"
        "  meshlab:serverCpus: 8\n",
    )
    _append(staging, "  # Staging keeps a month of metrics.\n  meshlab:prometheusRetention: 30d\n")
    staging_before, comments_before = _config(staging), _comments(staging)

    assert promote.main(["lab", "staging", "--check"]) == 1
    assert "staging lags lab" in capsys.readouterr().out
    assert promote.main(["lab", "staging", "--write"]) == 0
    out = capsys.readouterr().out
    assert "  + meshlab:istioVersion: 1.27.1" in out
    assert '  + meshlab:testAppAllowedMethods: ["GET", "HEAD"]' in out
    assert "  - meshlab:prometheusRetention: 30d (unset: the default from now on)" in out
    assert "serverCpus" not in out

    after, keys = _config(staging), set(promotable_keys())
    lab_config = _config(lab)
    assert {k: v for k, v in after.items() if k in keys} == {k: v for k, v in lab_config.items() if k in keys}
    assert {k: v for k, v in after.items() if k not in keys} == {
        k: v for k, v in staging_before.items() if k not in keys
    }
    assert after["meshlab:serverCpus"] == 2 and after["meshlab:ingressDomain"] == "staging.lab"
    comments_after = _comments(staging)
    assert "# The patch release with the ztunnel fix." in comments_after
    assert "# Staging keeps a month of metrics." not in comments_after
    assert [c for c in comments_before if c != "# Staging keeps a month of metrics."] == [
        c for c in comments_after if c != "# The patch release with the ztunnel fix."
    ]
    assert promote.main(["lab", "staging", "--check"]) == 0


def test_policy_settings_move_and_enforcement_levels_stay(stacks, capsys):
    _append(stacks / "Pulumi.lab.yaml", "  meshlab:nodeExporterEnabled: true\n")
    lab_policy = json.loads((stacks / "lab.json").read_text())
    exemptions = [
        {"namespace": "kube-system", "level": "privileged", "reason": "RKE2 control plane and Cilium"},
        {"namespace": "istio-system", "level": "privileged", "reason": "istio-cni and ztunnel"},
        {"namespace": "metallb-system", "level": "privileged", "reason": "the MetalLB speaker"},
        {"namespace": "nfs-provisioner", "level": "baseline", "reason": "an inline nfs volume"},
        MONITORING_EXEMPTION,
    ]
    for policy in ("pod-security-restricted", "namespace-pod-security-labels"):
        lab_policy[policy] = {"enforcementLevel": "advisory", "exemptNamespaces": exemptions}
    lab_policy["images-pinned"] = "disabled"
    (stacks / "lab.json").write_text(json.dumps(lab_policy, indent=2))
    prod_before = json.loads((stacks / "prod.json").read_text())

    assert promote.main(["lab", "staging", "--write"]) == 0
    assert "  + pod-security-restricted.exemptNamespaces: " in capsys.readouterr().out
    staging = json.loads((stacks / "staging.json").read_text())
    for policy in ("pod-security-restricted", "namespace-pod-security-labels"):
        assert staging[policy] == {"enforcementLevel": "mandatory", "exemptNamespaces": exemptions}
    assert staging["images-pinned"] == "advisory"

    assert promote.main(["staging", "prod", "--write"]) == 0
    prod = json.loads((stacks / "prod.json").read_text())
    assert prod["images-pinned"] == prod_before["images-pinned"] == "mandatory"
    assert prod["pod-security-restricted"]["exemptNamespaces"] == exemptions
    assert _config(stacks / "Pulumi.prod.yaml")["meshlab:nodeExporterEnabled"] is True
    assert promote.main(["lab", "prod", "--check"]) == 0


def test_an_invalid_result_is_refused_and_nothing_written(stacks, capsys):
    # Valid for the lab's six nodes; staging has five.
    _append(stacks / "Pulumi.lab.yaml", "  meshlab:ciliumOperatorReplicas: 6\n")
    before = (stacks / "Pulumi.staging.yaml").read_text()
    assert promote.main(["lab", "staging", "--write"]) == promote.EXIT_REFUSED
    err = capsys.readouterr().err
    assert err.startswith("refused: ")
    assert "meshlab:ciliumOperatorReplicas = 6" in err
    assert (stacks / "Pulumi.staging.yaml").read_text() == before


def test_a_mandatory_policy_violation_is_refused(stacks, capsys):
    # node-exporter makes `monitoring` privileged; staging's policy config does not exempt it.
    _append(stacks / "Pulumi.lab.yaml", "  meshlab:nodeExporterEnabled: true\n")
    before = (stacks / "Pulumi.staging.yaml").read_text()
    assert promote.main(["lab", "staging", "--write"]) == promote.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "violates a mandatory policy" in err
    assert 'namespace "monitoring" enforces privileged' in err
    assert (stacks / "Pulumi.staging.yaml").read_text() == before


def test_an_encrypted_promotable_value_is_refused(stacks, capsys):
    _append(stacks / "Pulumi.lab.yaml", "  meshlab:istioVersion:\n    secure: v1:abc\n")
    assert promote.main(["lab", "staging"]) == promote.EXIT_REFUSED
    assert "cannot be promoted" in capsys.readouterr().err


def test_the_line_editor_updates_removes_and_appends_in_place():
    source = "config:\n  meshlab:a: 1\n  meshlab:list:\n    - x\n    - y\n  # about c\n  meshlab:c: new\n"
    target = (
        "# top comment\n"
        "config:\n"
        "  # about list\n"
        "  meshlab:list:\n"
        "  - old\n"
        "\n"
        "# a column-0 comment inside the block\n"
        "  meshlab:own: 1\n"
        "  # about b\n"
        "  meshlab:b: 2\n"
        "  meshlab:last: |\n"
        "    text\n"
        "\n"
        "    more text\n"
        "encryptionsalt: v1:salt\n"
    )
    result = promote.promoted_stack_text(source, target, ["meshlab:a", "meshlab:list", "meshlab:b", "meshlab:c"])
    assert result == (
        "# top comment\n"
        "config:\n"
        "  # about list\n"
        "  meshlab:list:\n"
        "    - x\n"
        "    - y\n"
        "\n"
        "# a column-0 comment inside the block\n"
        "  meshlab:own: 1\n"
        "  meshlab:last: |\n"
        "    text\n"
        "\n"
        "    more text\n"
        "  meshlab:a: 1\n"
        "  # about c\n"
        "  meshlab:c: new\n"
        "encryptionsalt: v1:salt\n"
    )
    assert yaml.safe_load(result)["config"]["meshlab:last"] == "text\n\nmore text\n"


def test_keys_are_declared_once_next_to_the_settings():
    keys = promotable_keys()
    assert len(keys) == len(set(keys)) >= 15
    assert "meshlab:istioVersion" in keys and "meshlab:rke2Version" in keys
    for own in ("meshlab:servers", "meshlab:apiVip", "meshlab:serverCpus", "meshlab:sshPrivateKey"):
        assert own not in keys


def test_a_value_the_cli_reads_differently_is_a_change():
    """YAML 1.1 would read `off` as false and see no change; the CLI reads the string "off"."""
    source = "config:\n  meshlab:demoAmbient: 'off'\n  meshlab:demoL7Routing: off\n"
    target = "config:\n  meshlab:demoAmbient: 'off'\n  meshlab:demoL7Routing: false\n"
    changes = promote.stack_changes(source, target, ["meshlab:demoAmbient", "meshlab:demoL7Routing"])
    assert [(c.where, c.old, c.new) for c in changes] == [("meshlab:demoL7Routing", False, "off")]


def test_promotion_onto_existing_hosts_keeps_the_backend_and_its_login(stacks, capsys):
    """staging (VMs) -> prod (servers): the versions move, the backend and everything about the servers stay."""
    staging, prod = stacks / "Pulumi.staging.yaml", stacks / "Pulumi.prod.yaml"
    _append(staging, "  meshlab:hubbleEnabled: false\n  meshlab:nodeReadyTimeoutSeconds: 1200\n")
    prod_before = _config(prod)
    assert prod_before["meshlab:hypervisor"] == "existing"
    assert promote.main(["staging", "prod", "--write"]) == 0
    out = capsys.readouterr().out
    assert "  + meshlab:hubbleEnabled: false" in out and "  + meshlab:nodeReadyTimeoutSeconds: 1200" in out
    after = _config(prod)
    assert after == {**prod_before, "meshlab:hubbleEnabled": False, "meshlab:nodeReadyTimeoutSeconds": 1200}
    assert "meshlab:hypervisor" not in out and "meshlab:sshAgent" not in out
    # And back: nothing of prod's backend reaches a VM stack.
    _append(prod, "  meshlab:prometheusRetention: 14d\n")
    assert promote.main(["prod", "staging", "--write"]) == 0
    staging_after = _config(staging)
    assert "meshlab:hypervisor" not in staging_after and "meshlab:nodeInterface" not in staging_after
    assert staging_after["meshlab:prometheusRetention"] == "14d"


# An existing cluster's stack file (meshlab:kubeconfig), its kubeconfig encrypted as `pulumi config set --secret`
# stores it: tools read the placeholder, never the text.
EXISTING_CLUSTER_STACK = """\
# A cluster meshlab did not build: the platform goes onto it.
config:
  meshlab:kubeconfig:
    secure: v1:dGVzdC1ub25jZQ==:a3ViZWNvbmZpZw==
  meshlab:metallbPool: 10.20.0.200-10.20.0.220
  meshlab:ingressDomain: site.example
"""
BUILT_CLUSTER_ONLY = {config_key(name) for _, name in built_cluster_fields()}


@pytest.fixture
def existing_cluster(stacks):
    path = stacks / "Pulumi.mycluster.yaml"
    path.write_text(EXISTING_CLUSTER_STACK)
    return path


def test_the_kubeconfig_is_never_promoted(stacks, existing_cluster, capsys):
    assert "meshlab:kubeconfig" not in promotable_keys()
    _append(existing_cluster, "  meshlab:istioVersion: 1.27.1\n")
    staging_before = _config(stacks / "Pulumi.staging.yaml")
    assert promote.main(["mycluster", "staging", "--write"]) == 0
    out = capsys.readouterr().out
    assert "  + meshlab:istioVersion: 1.27.1" in out and "kubeconfig" not in out
    assert _config(stacks / "Pulumi.staging.yaml") == {**staging_before, "meshlab:istioVersion": "1.27.1"}


def test_promotion_onto_an_existing_cluster_leaves_out_what_only_a_built_cluster_reads(
    stacks, existing_cluster, capsys
):
    left_out = {
        "meshlab:rke2Version": versions.RKE2,
        "meshlab:etcdSnapshotRetention": 24,
        "meshlab:ciliumOperatorReplicas": 3,
    }
    assert set(left_out) <= BUILT_CLUSTER_ONLY & set(promotable_keys())  # each one promote would copy otherwise
    _append(
        stacks / "Pulumi.lab.yaml",
        "".join(f"  {key}: {value}\n" for key, value in left_out.items())
        + "  meshlab:istioVersion: 1.27.1\n  meshlab:hubbleEnabled: false\n",
    )
    before = _config(existing_cluster)

    assert promote.main(["lab", "mycluster", "--write"]) == 0
    out = capsys.readouterr().out
    assert "  + meshlab:istioVersion: 1.27.1" in out and "  + meshlab:hubbleEnabled: false" in out
    noted = [line for line in out.splitlines() if "not promoted" in line]
    assert sorted(key for line in noted for key in left_out if key in line) == sorted(left_out)
    assert all("mycluster" in line and "meshlab:kubeconfig" in line for line in noted)
    # The kubeconfig stays as it was (encrypted), and the file validates: the promotion's own check passed.
    assert _config(existing_cluster) == {**before, "meshlab:istioVersion": "1.27.1", "meshlab:hubbleEnabled": False}
    # Nothing is lagging any more: the settings left out are not the existing cluster's to have.
    assert promote.main(["lab", "mycluster", "--check"]) == 0
    assert "nothing to promote" in capsys.readouterr().out


def test_promotion_from_an_existing_cluster_keeps_the_built_clusters_own(stacks, existing_cluster, capsys):
    """The existing cluster cannot set RKE2's version: promoting from it must not reset staging's to the default."""
    _append(stacks / "Pulumi.staging.yaml", f"  meshlab:rke2Version: {versions.RKE2}\n")
    _append(existing_cluster, "  meshlab:prometheusRetention: 14d\n")
    assert promote.main(["mycluster", "staging", "--write"]) == 0
    out = capsys.readouterr().out
    assert "meshlab:rke2Version" in next(line for line in out.splitlines() if "not promoted" in line)
    after = _config(stacks / "Pulumi.staging.yaml")
    assert after["meshlab:rke2Version"] == versions.RKE2 and after["meshlab:prometheusRetention"] == "14d"
