"""Reading settings (config/loader.py): what the Pulumi CLI refuses in a stack file, in its words, and
what the program receives; the problems of a stack file, each exactly once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.loader import SECRET_KEYS, StackConfig, load_stack_file, read_stack_file, settings_from_config
from config.validation import SettingsError
from tests.conftest import ROOT

LAB = (ROOT / "Pulumi.lab.yaml").read_text()
CLI_KEY_FORM = "(configuration keys should be of the form `<namespace>:<name>`)"


def lab_without(*keys: str) -> str:
    """The lab stack file without `keys` (and their list items), so a test can set them afresh."""
    kept, skipping = [], False
    for line in LAB.splitlines(keepends=True):
        match = re.match(r"^  (meshlab:\w+):", line)
        if match:
            skipping = match.group(1) in keys
        elif not line.startswith("    "):
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)


def stack_file(tmp_path: Path, extra: str, *replaced: str, text: str | None = None) -> Path:
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(text if text is not None else lab_without(*replaced) + extra)
    return path


def file_problems(tmp_path: Path, extra: str, *replaced: str) -> list[str]:
    """What the CLI would refuse in the lab stack file with `extra` added (`replaced` keys taken out first)."""
    return [str(problem) for problem in read_stack_file(stack_file(tmp_path, extra, *replaced)).problems]


def all_problems(tmp_path: Path, extra: str, *replaced: str, text: str | None = None) -> list[str]:
    try:
        load_stack_file(stack_file(tmp_path, extra, *replaced, text=text))
    except SettingsError as error:
        return [str(problem) for problem in error.problems]
    return []


def type_refusal(key: str, wire: str, type_name: str, hint: str = "") -> str:
    return (
        f"{key} = {wire}: Pulumi.yaml declares it {type_name}: the Pulumi CLI refuses the stack "
        f"(\"Stack 'lab' with configuration key '{key}' must be of type '{type_name}'\"){hint}"
    )


def test_the_lab_stack_file_without_a_key_is_still_a_stack_file(tmp_path):
    """The baseline the cases below change (the lab declares agentCpus; without it the default applies)."""
    assert file_problems(tmp_path, "", "meshlab:agentCpus") == []
    assert "meshlab:agentCpus" not in read_stack_file(stack_file(tmp_path, "", "meshlab:agentCpus")).values


# Integers: the CLI's int64 ------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["9223372036854775807", "-9223372036854775808", "2", "-1"])
def test_integers_inside_int64_are_accepted(tmp_path, written):
    assert file_problems(tmp_path, f"  meshlab:agentCpus: {written}\n", "meshlab:agentCpus") == []


@pytest.mark.parametrize("written", ["9223372036854775808", "-9223372036854775809"])
def test_integers_outside_int64_are_refused(tmp_path, written):
    (problem,) = file_problems(tmp_path, f"  meshlab:agentCpus: {written}\n", "meshlab:agentCpus")
    assert re.fullmatch(r"meshlab:agentCpus = \S+: Pulumi\.yaml declares it integer: .*'integer'\"\)", problem)


# Declared types, in the CLI's words ---------------------------------------------------------------


@pytest.mark.parametrize("written", ["y", "yes", "n", "no", "on", "off"])
def test_a_yaml_1_1_boolean_gets_the_yaml_1_2_hint(tmp_path, written):
    assert file_problems(tmp_path, f"  meshlab:requireHa: {written}\n") == [
        type_refusal(
            "meshlab:requireHa",
            written,
            "boolean",
            f"; write true or false ({written} is a string in YAML 1.2, as the CLI reads it)",
        )
    ]


def test_other_wrong_types_get_their_own_words(tmp_path):
    assert file_problems(tmp_path, "  meshlab:requireHa: maybe\n") == [
        type_refusal("meshlab:requireHa", "maybe", "boolean", "; write true or false")
    ]
    assert file_problems(tmp_path, "  meshlab:ntpServers: pool.ntp.org\n") == [
        type_refusal("meshlab:ntpServers", "pool.ntp.org", "array<string>")
    ]
    assert file_problems(tmp_path, "  meshlab:agentCpus: many\n", "meshlab:agentCpus") == [
        type_refusal("meshlab:agentCpus", "many", "integer")
    ]


def test_a_list_the_cli_refuses_is_reported_once_not_again_per_entry(tmp_path):
    assert all_problems(tmp_path, "  meshlab:agents: [1]\n", "meshlab:agents") == [
        type_refusal("meshlab:agents", "[1]", "array<string>")
    ]
    # A list the CLI accepts still has each bad entry reported, quoting only that entry.
    assert all_problems(tmp_path, '  meshlab:agents: ["worker1:192.168.56.21"]\n', "meshlab:agents") == [
        "meshlab:agents[0] = worker1:192.168.56.21: not of the form NAME=IP (e.g. master1=192.168.56.11)"
    ]


# Keys -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [":config:agentCpus", "meshlab:config:", "meshlab:a:b"])
def test_keys_the_cli_cannot_parse(tmp_path, key):
    assert file_problems(tmp_path, f'  "{key}": 3\n') == [
        f"{key} = 3: the Pulumi CLI refuses the whole file: could not parse {key} as a configuration key {CLI_KEY_FORM}"
    ]


def test_an_unparseable_key_shows_a_secret_value_as_the_placeholder(tmp_path):
    (problem,) = file_problems(tmp_path, '  "meshlab:a:b":\n    secure: AAAA\n')
    assert problem.startswith("meshlab:a:b = [secret]: the Pulumi CLI refuses the whole file")


def test_every_entry_is_read_past_an_unparseable_key(tmp_path):
    extra = '  "meshlab:a:b": 5\n  meshlab:agentCpus: many\n'
    problems = file_problems(tmp_path, extra, "meshlab:agentCpus")
    assert [problem.split(" = ")[0] for problem in problems] == ["meshlab:a:b", "meshlab:agentCpus"]


def test_every_key_is_read_past_an_unknown_one(tmp_path):
    problems = all_problems(tmp_path, "  meshlab:aaa: 1\n  meshlab:agentCpus: 1\n", "meshlab:agentCpus")
    assert problems == [
        "meshlab:aaa = 1: not a meshlab setting",
        "meshlab:agentCpus = 1: an agent needs at least 2 vCPUs",
    ]


def test_a_duplicate_outside_config_is_the_files_problem(tmp_path):
    text = "encryptionsalt: x\nencryptionsalt: y\nconfig:\n  meshlab:agentCpus: 3\n"
    assert [str(p) for p in read_stack_file(stack_file(tmp_path, "", text=text)).problems] == [
        "(file) = (unset): given more than once: the Pulumi CLI refuses the whole file: yaml: unmarshal errors: line "
        '2: mapping key "encryptionsalt" already defined at line 1'
    ]


# Files the CLI cannot read ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "cannot read the stack file: [Errno 2]"),
        ("config:\n  meshlab:a: [\n", "cannot read the stack file: while"),
    ],
)
def test_an_unreadable_stack_file_is_one_problem_naming_the_file(tmp_path, text, reason):
    path = tmp_path / "Pulumi.lab.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SettingsError) as raised:
        read_stack_file(path)
    (problem,) = raised.value.problems
    assert (problem.key, problem.value, raised.value.source) == ("(file)", str(path), str(path))
    assert problem.message.startswith(reason)


def test_a_config_that_is_no_mapping_is_refused(tmp_path):
    with pytest.raises(SettingsError) as raised:
        read_stack_file(stack_file(tmp_path, "", text="config: [1]\n"))
    assert [str(p) for p in raised.value.problems] == [
        "config = (not a mapping): the stack file's config must be a mapping"
    ]


# Secrets ----------------------------------------------------------------------------------------


def test_every_secret_setting_must_be_stored_encrypted():
    assert frozenset({"meshlab:sshPrivateKey", "meshlab:meshCaRootKeyPem"}) <= SECRET_KEYS
    assert "meshlab:sshPublicKey" not in SECRET_KEYS


def test_secure_values_anywhere_in_a_value_are_placeholders(tmp_path):
    extra = "  meshlab:sshPrivateKey:\n    secure: AAAA\n"
    config = read_stack_file(stack_file(tmp_path, extra))
    assert config.values["meshlab:sshPrivateKey"] == "[secret]"
    assert "meshlab:sshPrivateKey" in config.secret_keys


def test_an_empty_secret_setting_may_be_plain(tmp_path):
    assert all_problems(tmp_path, '  meshlab:sshPrivateKey: ""\n') == []
    assert all_problems(tmp_path, "  meshlab:sshPrivateKey: abc\n") == [
        "meshlab:sshPrivateKey = [secret]: must be stored encrypted: pulumi config set --secret meshlab:sshPrivateKey "
        "...",
        "meshlab:sshPublicKey = (empty): set both meshlab:sshPublicKey and meshlab:sshPrivateKey, or neither to "
        "generate a key pair",
        "meshlab:sshPrivateKey = [secret]: not a private key: no '-----BEGIN ... PRIVATE KEY-----' line (a PEM or "
        "OpenSSH key file)",
    ]


# The rollout phase's other spellings --------------------------------------------------------------


@pytest.mark.parametrize("written", ["  meshlab:rollout.phase: 2\n", "  meshlab:rollout:\n    phase: 2\n"])
def test_the_seeds_spellings_of_the_rollout_phase_are_read(tmp_path, written):
    assert load_stack_file(stack_file(tmp_path, written)).apps.rollout_phase == 2


def test_the_rollout_phase_set_twice_differently_is_refused(tmp_path):
    extra = "  meshlab:rollout:\n    phase: 2\n  meshlab:rolloutPhase: 3\n"
    assert all_problems(tmp_path, extra) == [
        "meshlab:rolloutPhase = meshlab:rollout.phase = 2, meshlab:rolloutPhase = 3: the rollout phase is set more "
        "than once, differently"
    ]
    same = "  meshlab:rollout:\n    phase: 3\n  meshlab:rolloutPhase: 3\n"
    assert load_stack_file(stack_file(tmp_path, same)).apps.rollout_phase == 3


@pytest.mark.parametrize("written", ["  meshlab:rollout:\n    phase: 2\n    x: 1\n", "  meshlab:rollout: 2\n"])
def test_a_rollout_object_holds_the_phase_only(tmp_path, written):
    (problem,) = all_problems(tmp_path, written)
    assert problem.startswith("meshlab:rollout = ") and problem.endswith(
        ": expected {phase: 1-4}; or set meshlab:rolloutPhase"
    )


# Keys in other namespaces -------------------------------------------------------------------------


def test_an_unknown_namespace_names_the_namespaces_read():
    config = StackConfig({"meshlb:agentCpus": "2", "zzz:thing": "1"})
    with pytest.raises(SettingsError) as raised:
        settings_from_config(config)
    problems = [str(p) for p in raised.value.problems if not p.key.startswith("meshlab:")]
    read = "meshlab:, pulumi:, kubernetes:, command:, random:, tls:"
    assert problems == [
        f"meshlb:agentCpus = 2: nothing reads the config namespace 'meshlb' (only {read}), so this key would be "
        "ignored; did you mean meshlab:agentCpus?",
        f"zzz:thing = 1: nothing reads the config namespace 'zzz' (only {read}), so this key would be ignored",
    ]


def test_a_key_without_a_namespace_belongs_to_none():
    with pytest.raises(SettingsError) as raised:
        settings_from_config(StackConfig({"agentCpus": "2"}))
    (problem,) = [p for p in raised.value.problems if p.key == "agentCpus"]
    assert "nothing reads the config namespace '' (only meshlab:," in problem.message
    assert problem.message.endswith("did you mean meshlab:agentCpus?")


# The exact wording of three problems a newcomer meets first (mutation testing found them unasserted).


def test_a_missing_required_setting_is_named_with_its_key(tmp_path):
    assert all_problems(tmp_path, "", "meshlab:servers") == [
        "meshlab:servers = (unset): required setting is missing from the stack config"
    ]


def test_a_misspelt_key_gets_the_nearest_setting_as_a_hint(tmp_path):
    text = LAB.replace("  meshlab:serverCpus: 2\n", "  meshlab:serverCpu: 2\n")
    assert text != LAB
    assert all_problems(tmp_path, "", text=text) == [
        "meshlab:serverCpu = 2: not a meshlab setting; did you mean meshlab:serverCpus?"
    ]


def test_a_key_set_twice_names_both_spellings_and_lines(tmp_path):
    path = stack_file(tmp_path, "  serverCpus: 4\n")
    first = next(n for n, line in enumerate(path.read_text().splitlines(), 1) if "meshlab:serverCpus:" in line)
    last = len(path.read_text().splitlines())
    with pytest.raises(SettingsError) as raised:
        load_stack_file(path)
    assert [str(problem) for problem in raised.value.problems] == [
        f"meshlab:serverCpus = 4: set twice, as meshlab:serverCpus (line {first}) and as serverCpus (line {last}): "
        "the Pulumi CLI reads both as this key and silently keeps the last; keep one"
    ]
