"""The Pulumi CLI calls lab checkpoints make (tools/checkpoint.PulumiStack), with the real CLI: the
stack's state exported, imported back, and its outputs read, with the flags the tool passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine import toolchain
from tools.checkpoint import PulumiStack, last_update


def test_the_checkpoint_state_calls_work_with_the_real_cli(
    engine: toolchain.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.init_stack("checkpoint")
    for name, value in engine.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(engine.project)
    stack = PulumiStack("checkpoint", cli=str(engine.bin_dir / toolchain.CLI))
    exported = stack.export()
    assert exported["version"] >= 3 and "deployment" in exported, exported
    assert isinstance(last_update(exported), str)
    # What a restore does with a checkpoint's copy: import it, and the stack exports it again.
    copy = tmp_path / "state.json"
    exported["deployment"].setdefault("resources", [])
    copy.write_text(json.dumps(exported))
    stack.import_state(copy)
    again = stack.export()
    assert again["deployment"].get("resources") in (None, []), again
    assert stack.outputs() == {}
