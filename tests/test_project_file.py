"""Pulumi.yaml declares every setting with the models' types and defaults."""

from __future__ import annotations

import yaml

from config.loader import settings_from_config
from config.settings import SECTIONS, config_key
from tests.conftest import ROOT
from tools import project_file
from tools.render import with_overrides


def test_pulumi_yaml_is_up_to_date():
    assert project_file.main(["--check"]) == 0, "run: python -m tools.project_file --write"


def test_every_setting_is_declared_with_a_type():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert declared["name"] == "meshlab"
    assert declared["runtime"]["name"] == "python"
    assert declared["runtime"]["options"]["virtualenv"] == "venv"
    fields = [config_key(name) for model in SECTIONS.values() for name in model.model_fields]
    assert sorted(declared["config"]) == sorted(fields)
    for key, declaration in declared["config"].items():
        assert declaration["type"] in {"string", "integer", "boolean", "array"}, key
        if declaration["type"] == "array":
            assert declaration["items"] == {"type": "string"}, key
        assert declaration["description"], key


def test_declared_defaults_are_what_the_program_assumes(stack_configs):
    """Applying Pulumi.yaml's defaults (as the CLI does) must not change the settings."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    defaults = {key: d["default"] for key, d in declared.items() if "default" in d}
    assert len(defaults) >= 15
    for stack, config in stack_configs.items():
        with_cli_defaults = with_overrides(config, {k: v for k, v in defaults.items() if k not in config.values})
        assert settings_from_config(with_cli_defaults) == settings_from_config(config), stack


def test_required_settings_have_no_default():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    required = {key for key, d in declared.items() if "default" not in d}
    # servers, hostOnlyCidr and apiVip are required only of a cluster meshlab builds: validation says so.
    assert required == {"meshlab:metallbPool"}
