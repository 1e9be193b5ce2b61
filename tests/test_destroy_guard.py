"""`make destroy` asks before it touches machines or a cluster meshlab did not create (tools/destroy_guard.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from config.loader import load_stack_file
from tools import destroy_guard
from tools.render import ROOT, stack_file


def test_vm_stacks_go_on_without_a_question():
    for stack in ("lab", "staging"):
        assert destroy_guard.warning(stack) is None
        assert destroy_guard.main([stack], ask=lambda _: pytest.fail("asked")) == 0


def test_existing_hosts_are_named_and_the_stack_name_must_be_typed(monkeypatch, capsys):
    monkeypatch.delenv(destroy_guard.CONFIRM_VARIABLE, raising=False)
    settings = load_stack_file(stack_file("prod"))
    assert settings.hosts.existing
    said = destroy_guard.warning("prod")
    assert said is not None and "RKE2's uninstaller" in said and "etcd data" in said
    for node in settings.topology.nodes:
        assert f"{node.name} ({node.ip})" in said
    assert destroy_guard.main(["prod"], ask=lambda _: "lab") == 1
    assert "nothing was destroyed" in capsys.readouterr().err
    assert destroy_guard.main(["prod"], ask=lambda _: " prod\n") == 0


def test_the_confirmation_variable_answers_for_a_script(monkeypatch):
    monkeypatch.setenv(destroy_guard.CONFIRM_VARIABLE, "prod")
    assert destroy_guard.main(["prod"], ask=lambda _: pytest.fail("asked")) == 0
    monkeypatch.setenv(destroy_guard.CONFIRM_VARIABLE, "lab")  # another stack's name confirms nothing
    assert destroy_guard.main(["prod"], ask=lambda _: "") == 1


def test_without_a_terminal_it_stops_and_says_how_to_go_on():
    done = subprocess.run(
        [sys.executable, "-m", "tools.destroy_guard", "prod"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
    )
    assert done.returncode == 1
    assert "WARNING:" in done.stderr and "CONFIRM_DESTROY=prod" in done.stderr


def test_an_existing_cluster_is_warned_about_too(monkeypatch, tmp_path):
    stack = tmp_path / "Pulumi.mycluster.yaml"
    stack.write_text(
        "config:\n  meshlab:kubeconfig:\n    secure: AAAA\n  meshlab:metallbPool: 10.20.0.200-10.20.0.220\n"
    )
    monkeypatch.setattr(destroy_guard, "stack_file", lambda name: stack)
    said = destroy_guard.warning("mycluster")
    assert said is not None and "meshlab:kubeconfig" in said and "namespaces" in said
