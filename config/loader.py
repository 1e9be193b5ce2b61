"""Load settings from the running stack's Pulumi config, or from a `Pulumi.<stack>.yaml` file.

Both paths go through `settings_from_config`, so the program and the tools accept and
reject exactly the same input.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import config as runtime_config
from pydantic import SecretStr, ValidationError

from config.settings import NAMESPACE, SECTIONS, Settings, config_key, field_sections
from config.validation import Problem, SettingsError, validate

# Stands in for a value that is encrypted in the stack file (tools cannot decrypt it).
SECRET_PLACEHOLDER = "[secret]"
# Keys whose values must be stored encrypted: every SecretStr field.
SECRET_KEYS = frozenset(
    config_key(name)
    for model in SECTIONS.values()
    for name, info in model.model_fields.items()
    if info.annotation is SecretStr
)


@dataclass(frozen=True)
class StackConfig:
    """A stack's raw config: every key (any namespace) and which of them are secret."""

    values: dict[str, Any]
    secret_keys: frozenset[str] = field(default_factory=frozenset)


def read_stack_file(path: Path) -> StackConfig:
    """Read `Pulumi.<stack>.yaml`; encrypted values become a placeholder marked secret."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise SettingsError([Problem("(file)", str(path), f"cannot read the stack file: {error}")], str(path)) from None
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise SettingsError([Problem("config", raw, "the stack file's config must be a mapping")], str(path))
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            values[key] = SECRET_PLACEHOLDER
            secrets.add(key)
        else:
            values[key] = value
    return StackConfig(values, frozenset(secrets))


def runtime_stack_config() -> StackConfig:
    """The running program's config, as the Pulumi language host passes it."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys |= {key for key in values if runtime_config.is_config_secret(key)}
    return StackConfig(values, frozenset(secret_keys))


def _coerce(value: Any) -> Any:
    # The language host passes arrays and objects as JSON text; stack files give native YAML.
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _display(key: str, value: Any, secret_keys: frozenset[str]) -> Any:
    return SECRET_PLACEHOLDER if key in secret_keys or key in SECRET_KEYS else value


def _problems_from_validation(
    error: ValidationError, raw: Mapping[str, Any], secret_keys: frozenset[str]
) -> list[Problem]:
    problems = []
    for item in error.errors():
        location = [part for part in item["loc"] if part not in SECTIONS]
        if not location:
            continue
        name = str(location[0])
        key = f"{NAMESPACE}:{name}"
        suffix = "".join(f"[{part}]" for part in location[1:] if isinstance(part, int))
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required setting is missing from the stack config"
            value: Any = "(unset)"
        else:
            value = _display(key, raw.get(key, item.get("input")), secret_keys)
        problems.append(Problem(key + suffix, value, message))
    return problems


# The seed's roadmap calls the phase `rollout.phase`. Pulumi reads a dot in a config key as a path
# (`pulumi config set --path meshlab:rollout.phase 2` stores `meshlab:rollout: {phase: 2}`), so the
# setting is the flat `meshlab:rolloutPhase`, and both spellings of the seed's name are read as it.
ROLLOUT_PHASE = f"{NAMESPACE}:rolloutPhase"
_ROLLOUT_DOTTED = f"{NAMESPACE}:rollout.phase"
_ROLLOUT_OBJECT = f"{NAMESPACE}:rollout"


def _canonical_keys(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """`values` with the seed's spellings of the rollout phase turned into meshlab:rolloutPhase."""
    result, problems = dict(values), []
    spelled: dict[str, Any] = {}
    if _ROLLOUT_DOTTED in result:
        spelled[_ROLLOUT_DOTTED] = result.pop(_ROLLOUT_DOTTED)
    if _ROLLOUT_OBJECT in result:
        rollout = _coerce(result.pop(_ROLLOUT_OBJECT))
        if not isinstance(rollout, Mapping) or set(rollout) != {"phase"}:
            problems.append(Problem(_ROLLOUT_OBJECT, rollout, "expected {phase: 1-4}; or set meshlab:rolloutPhase"))
        else:
            spelled[f"{_ROLLOUT_OBJECT}.phase"] = rollout["phase"]
    if ROLLOUT_PHASE in result:
        spelled[ROLLOUT_PHASE] = result[ROLLOUT_PHASE]
    if len({json.dumps(value, default=str) for value in spelled.values()}) > 1:
        shown = ", ".join(f"{key} = {value}" for key, value in spelled.items())
        problems.append(Problem(ROLLOUT_PHASE, shown, "the rollout phase is set more than once, differently"))
    elif spelled:
        result[ROLLOUT_PHASE] = next(iter(spelled.values()))
    return result, problems


def settings_from_config(config: StackConfig, source: str = "stack config") -> Settings:
    """Parse and validate `meshlab:*` keys; raise SettingsError listing every problem."""
    owners = field_sections()
    ours, problems = _canonical_keys(
        {key: value for key, value in config.values.items() if key.startswith(f"{NAMESPACE}:")}
    )
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}

    for key, value in sorted(ours.items()):
        name = key.split(":", 1)[1]
        if name not in owners:
            guess = difflib.get_close_matches(name, owners, n=1)
            hint = f"; did you mean {NAMESPACE}:{guess[0]}?" if guess else ""
            problems.append(Problem(key, _display(key, value, config.secret_keys), f"not a meshlab setting{hint}"))
            continue
        if key in SECRET_KEYS and value not in ("", None) and key not in config.secret_keys:
            problems.append(
                Problem(key, SECRET_PLACEHOLDER, f"must be stored encrypted: pulumi config set --secret {key} ...")
            )
        sections[owners[name]][name] = _coerce(value)

    try:
        settings = Settings.model_validate(sections)
    except ValidationError as error:
        problems.extend(_problems_from_validation(error, ours, config.secret_keys))
        raise SettingsError(problems, source) from None
    problems.extend(validate(settings))
    if problems:
        raise SettingsError(problems, source)
    return settings


def load_settings() -> Settings:
    """Settings of the stack the Pulumi program is running for."""
    return settings_from_config(runtime_stack_config(), source=f"stack {pulumi.get_stack()}")


def load_stack_file(path: Path) -> Settings:
    """Settings from a stack file, for tools that run without the Pulumi CLI."""
    return settings_from_config(read_stack_file(path), source=str(path))
