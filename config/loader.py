"""Load settings from the running stack's Pulumi config, or from a `Pulumi.<stack>.yaml` file.

Both paths go through `settings_from_config` with the same input: the strings the Pulumi language
host hands the program. A stack file is read as the Pulumi CLI reads it (config/stack_yaml.py: its
YAML, its key syntax, its checks of the types Pulumi.yaml declares), so the program and the tools
accept and reject exactly the same input, and the offline plan is the engine's.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin

import pulumi
import yaml
from pulumi.runtime import config as runtime_config
from pydantic import SecretStr, ValidationError

from config.settings import NAMESPACE, SECRET_PLACEHOLDER, SECTIONS, Settings, config_key, field_sections
from config.stack_yaml import GoTime, StackDocument, UnsupportedValueError, go_print, load_stack_document, wire_value
from config.validation import Problem, SettingsError, validate

# Keys whose values must be stored encrypted: every SecretStr field.
SECRET_KEYS = frozenset(
    config_key(name)
    for model in SECTIONS.values()
    for name, info in model.model_fields.items()
    if info.annotation is SecretStr
)
# Config namespaces something reads: the project's own, the engine's (pulumi:tags, ...), and those of
# the provider packages the program uses (requirements.txt pins pulumi-<name> for each). A key in any
# other namespace is passed through by the CLI and read by nothing: a typo such as `meshlb:`.
CONFIG_NAMESPACES = (NAMESPACE, "pulumi", "kubernetes", "command", "random", "tls")
_CLI_KEY_FORM = "(configuration keys should be of the form `<namespace>:<name>`)"


@dataclass(frozen=True)
class StackConfig:
    """A stack's raw config as the program receives it: every key (any namespace), which of them are
    secret, and what the Pulumi CLI would refuse in the stack file it came from."""

    values: dict[str, Any]
    secret_keys: frozenset[str] = field(default_factory=frozenset)
    problems: tuple[Problem, ...] = ()


def declared_types() -> dict[str, str]:
    """The type Pulumi.yaml declares for each key, in the CLI's words (tools/project_file.py writes them)."""
    types = {}
    for model in SECTIONS.values():
        for name, info in model.model_fields.items():
            annotation = info.annotation
            if get_origin(annotation) is list:
                types[config_key(name)] = "array<string>"
            elif annotation is bool:
                types[config_key(name)] = "boolean"
            else:
                types[config_key(name)] = "integer" if annotation is int else "string"
    return types


def _cli_key(key: Any) -> str | None:
    """The config key the CLI makes of a stack-file key, or None where it refuses the file."""
    if not isinstance(key, str):
        return None
    parts = key.split(":")
    if len(parts) == 1:  # a bare key belongs to the project
        return f"{NAMESPACE}:{key}"
    if len(parts) == 2:
        return key
    if len(parts) == 3 and parts[1] == "config" and parts[0] and parts[2]:  # the old `ns:config:name`
        return f"{parts[0]}:{parts[2]}"
    return None


def _has_secure(value: Any) -> bool:
    if isinstance(value, dict):
        return set(value) == {"secure"} or any(_has_secure(item) for item in value.values())
    return isinstance(value, list) and any(_has_secure(item) for item in value)


_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_YAML_11_BOOLEANS = {"y", "yes", "n", "no", "on", "off"}


def _declared_type_refuses(type_name: str, value: Any, wire: str) -> bool:
    """Whether the CLI refuses `value` for a key Pulumi.yaml declares `type_name` (ValidateConfigValue)."""
    structured = isinstance(value, dict | list)
    if type_name == "array<string>":
        return not isinstance(value, list) or not all(isinstance(item, str | GoTime) for item in value)
    if structured:
        return True
    if type_name == "integer":
        return not _INTEGER.match(wire) or not -(2**63) <= int(wire) < 2**63
    if type_name == "boolean":
        return wire not in ("true", "false")
    return False


def _type_problem(stack: str, key: str, value: Any, wire: str, type_name: str) -> Problem:
    words = f"Stack '{stack}' with configuration key '{key}' must be of type '{type_name}'"
    hint = ""
    if type_name == "boolean":
        hint = "; write true or false"
        if isinstance(value, str) and value.lower() in _YAML_11_BOOLEANS:
            hint += f" ({value} is a string in YAML 1.2, as the CLI reads it)"
    return Problem(
        key, wire, f'Pulumi.yaml declares it {type_name}: the Pulumi CLI refuses the stack ("{words}"){hint}'
    )


def _stack_name(path: Path) -> str:
    """The stack a file is for when no one says: the one `Pulumi.<stack>.yaml` names (else its stem)."""
    name = path.name
    return name[len("Pulumi.") : -len(".yaml")] if name.startswith("Pulumi.") and name.endswith(".yaml") else path.stem


def _file_problem(path: Path, message: str) -> SettingsError:
    return SettingsError([Problem("(file)", str(path), message)], str(path))


def read_stack_file(path: Path, stack: str | None = None) -> StackConfig:
    """Read `Pulumi.<stack>.yaml` as the Pulumi CLI does; encrypted values become a placeholder marked secret.

    What the CLI would refuse (a key given twice, a key it cannot parse, a value of the wrong declared
    type) comes back in `problems`, which `settings_from_config` reports with everything else. The CLI's
    words name `stack`, the stack the file is read for (as with `pulumi preview --stack STACK
    --config-file FILE`); unset, the one the file's name says."""
    try:
        document = load_stack_document(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise _file_problem(path, f"cannot read the stack file: {error}") from None
    if not document.config_is_mapping:
        raise SettingsError(
            [Problem("config", "(not a mapping)", "the stack file's config must be a mapping")], str(path)
        )
    return _stack_config(document, stack or _stack_name(path))


def _stack_config(document: StackDocument, stack: str) -> StackConfig:
    values: dict[str, Any] = {}
    secrets: set[str] = set()
    problems: list[Problem] = []
    keys: dict[int, str] = {}
    spelled: dict[str, tuple[str, int]] = {}
    types = declared_types()
    # The CLI stops at a duplicate key: it never gets to check the type of what it could not decode.
    undecoded = {index for index, _ in document.duplicates}
    for index, entry in enumerate(document.entries):
        key = _cli_key(entry.key)
        written = entry.key if isinstance(entry.key, str) else go_print(entry.key)
        if key is None:
            problems.append(
                Problem(
                    written,
                    _shown(entry.value),
                    f"the Pulumi CLI refuses the whole file: could not parse {written} as a configuration key "
                    f"{_CLI_KEY_FORM}",
                )
            )
            continue
        keys[index] = key
        if _has_secure(entry.value):
            values[key] = SECRET_PLACEHOLDER
            secrets.add(key)
        else:
            try:
                wire = wire_value(entry.value)
            except UnsupportedValueError as error:
                problems.append(Problem(key, _shown(entry.value), f"the Pulumi CLI refuses the whole file: {error}"))
                continue
            values[key] = wire
            secrets.discard(key)
            if key in types and index not in undecoded and _declared_type_refuses(types[key], entry.value, wire):
                problems.append(_type_problem(stack, key, entry.value, wire, types[key]))
        if key in spelled and spelled[key][0] != written:
            first, line = spelled[key]
            problems.append(
                Problem(
                    key,
                    _display(key, values[key], frozenset(secrets)),
                    f"set twice, as {first} (line {line}) and as {written} (line {entry.line}): the Pulumi CLI reads "
                    "both as this key and silently keeps the last; keep one",
                )
            )
        spelled[key] = (written, entry.line)
    for at, duplicate in document.duplicates:
        where = (keys.get(at) or duplicate.key) if at is not None else "(file)"
        shown = _display(where, values.get(where, "(unset)"), frozenset(secrets))
        refusal = f"the Pulumi CLI refuses the whole file: yaml: unmarshal errors: {duplicate}"
        problems.append(Problem(where, shown, f"given more than once: {refusal}"))
    return StackConfig(values, frozenset(secrets), tuple(problems))


def _shown(value: Any) -> str:
    """A stack-file value as the problem list shows it (the CLI's text of it; never a secret)."""
    if _has_secure(value):
        return SECRET_PLACEHOLDER
    try:
        return wire_value(value)
    except UnsupportedValueError:
        return go_print(value) if not isinstance(value, dict | list) else str(value)


def runtime_stack_config() -> StackConfig:
    """The running program's config, as the Pulumi language host passes it."""
    values = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    secret_keys = set(runtime_config.get_config_secret_keys_env())
    secret_keys |= {key for key in values if runtime_config.is_config_secret(key)}
    return StackConfig(values, frozenset(secret_keys))


def structured(value: Any) -> Any:
    # The language host passes arrays and objects as JSON text (and read_stack_file does the same).
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
        elif suffix:  # one entry of a list: quote that entry, not the whole list
            value = _display(key, item.get("input"), secret_keys)
        else:
            value = _display(key, structured(raw.get(key, item.get("input"))), secret_keys)
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
        rollout = structured(result.pop(_ROLLOUT_OBJECT))
        if not isinstance(rollout, Mapping) or set(rollout) != {"phase"}:
            problems.append(Problem(_ROLLOUT_OBJECT, rollout, "expected {phase: 1-4}; or set meshlab:rolloutPhase"))
        else:
            spelled[f"{_ROLLOUT_OBJECT}.phase"] = rollout["phase"]
    if ROLLOUT_PHASE in result:
        spelled[ROLLOUT_PHASE] = result[ROLLOUT_PHASE]
    # Compared as text: the stack file hands the object's phase over as a number, the flat keys as strings.
    if len({str(value) for value in spelled.values()}) > 1:
        shown = ", ".join(f"{key} = {value}" for key, value in spelled.items())
        problems.append(Problem(ROLLOUT_PHASE, shown, "the rollout phase is set more than once, differently"))
    elif spelled:
        result[ROLLOUT_PHASE] = next(iter(spelled.values()))
    return result, problems


def _split(key: str) -> tuple[str, str]:
    """(namespace, name) of a config key; a key without a colon has no namespace."""
    namespace, colon, name = key.partition(":")
    return (namespace, name) if colon else ("", key)


def _nearest_key(key: str, owners: Mapping[str, str]) -> str | None:
    """The known key a key in an unknown namespace most likely meant."""
    namespace, name = _split(key)
    namespaces = difflib.get_close_matches(namespace.lower(), CONFIG_NAMESPACES, n=1, cutoff=0.5)
    if name in owners or not namespaces or namespaces[0] == NAMESPACE:
        guess = name if name in owners else next(iter(difflib.get_close_matches(name, owners, n=1)), None)
        if guess:
            return f"{NAMESPACE}:{guess}"
    return f"{namespaces[0]}:{name}" if namespaces else None


def _unknown_namespace(key: str, value: Any, owners: Mapping[str, str], secret_keys: frozenset[str]) -> Problem:
    namespace = _split(key)[0]
    nearest = _nearest_key(key, owners)
    hint = f"; did you mean {nearest}?" if nearest else ""
    read = ", ".join(f"{known}:" for known in CONFIG_NAMESPACES)
    return Problem(
        key,
        _display(key, value, secret_keys),
        f"nothing reads the config namespace {namespace!r} (only {read}), so this key would be ignored{hint}",
    )


def settings_from_config(config: StackConfig, source: str = "stack config") -> Settings:
    """Parse and validate `meshlab:*` keys; raise SettingsError listing every problem."""
    owners = field_sections()
    problems = list(config.problems)
    for key, value in sorted(config.values.items()):
        if _split(key)[0] not in CONFIG_NAMESPACES:
            problems.append(_unknown_namespace(key, value, owners, config.secret_keys))
    ours, canonical_problems = _canonical_keys(
        {key: value for key, value in config.values.items() if key.startswith(f"{NAMESPACE}:")}
    )
    problems.extend(canonical_problems)
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
        sections[owners[name]][name] = structured(value)

    # A key the stack file already fails on (as the CLI would) is not reported a second time.
    reported = {problem.key for problem in config.problems}
    try:
        settings = Settings.model_validate(sections)
    except ValidationError as error:
        found = _problems_from_validation(error, ours, config.secret_keys)
        problems.extend(p for p in found if p.key.split("[", 1)[0] not in reported)
        raise SettingsError(problems, source) from None
    problems.extend(validate(settings))
    if problems:
        raise SettingsError(problems, source)
    return settings


def load_settings() -> Settings:
    """Settings of the stack the Pulumi program is running for."""
    return settings_from_config(runtime_stack_config(), source=f"stack {pulumi.get_stack()}")


def load_stack_file(path: Path, stack: str | None = None) -> Settings:
    """Settings from a stack file, for tools that run without the Pulumi CLI (`stack`: see read_stack_file)."""
    return settings_from_config(read_stack_file(path, stack), source=str(path))
