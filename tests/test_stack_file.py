"""A stack file is read as the Pulumi CLI reads it, and the program sees what the CLI would hand it.

The expected strings below were recorded from the real CLI (pulumi v3.274.0, the engine tier's
toolchain) running a program that printed the config its language host received; they are not
copied from the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pulumi.runtime import config as runtime_config

from components.cluster.files import cilium_values
from config.loader import (
    CONFIG_NAMESPACES,
    StackConfig,
    declared_types,
    read_stack_file,
    runtime_stack_config,
    settings_from_config,
)
from config.settings import SECTIONS, config_key
from config.validation import SettingsError
from tests.conftest import ROOT
from tools.render import with_overrides

LAB = (ROOT / "Pulumi.lab.yaml").read_text()
LAB_SERVERS = ["master1=192.168.56.11", "master2=192.168.56.12", "master3=192.168.56.13"]


def _stack(tmp_path: Path, extra: str, base: str = LAB, name: str = "lab") -> Path:
    path = tmp_path / f"Pulumi.{name}.yaml"
    path.write_text(base + extra)
    return path


def _line(text: str, start: str) -> int:
    """The line number (from 1) of the first line of `text` that starts with `start`."""
    return next(number for number, line in enumerate(text.splitlines(), 1) if line.startswith(start))


APPENDED = LAB.count("\n") + 1  # the line number of the first line _stack appends to the lab


def _problems(path_or_config: Path | StackConfig) -> list[str]:
    config = read_stack_file(path_or_config) if isinstance(path_or_config, Path) else path_or_config
    with pytest.raises(SettingsError) as raised:
        settings_from_config(config)
    return [str(problem) for problem in raised.value.problems]


# --- namespaces -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["Meshlab:agentCpus", "meshlb:agentCpus", "meshlab2:agentCpu"])
def test_a_key_in_a_namespace_nothing_declares_is_refused_naming_the_nearest_key(tmp_path, key):
    problems = _problems(_stack(tmp_path, f"  {key}: 4\n"))
    [problem] = [p for p in problems if p.startswith(key)]
    assert f"{key} = 4" in problem
    assert "did you mean meshlab:agentCpus?" in problem


def test_an_unknown_namespace_is_refused_on_the_runtime_path_too(stack_configs):
    """The CLI passes `Meshlab:agentCpus` through to the program: the program refuses it itself."""
    config = with_overrides(stack_configs["lab"], {"Meshlab:agentCpus": "4"})
    assert any(p.startswith("Meshlab:agentCpus = 4") for p in _problems(config))


def test_a_misspelt_provider_namespace_is_matched_to_the_provider(stack_configs):
    config = with_overrides(stack_configs["lab"], {"kubernets:context": "lab"})
    [problem] = _problems(config)
    assert "did you mean kubernetes:context?" in problem


@pytest.mark.parametrize("key", ["pulumi:disable-default-providers", "kubernetes:context", "tls:proxy"])
def test_keys_of_the_engine_and_of_the_providers_the_program_uses_are_accepted(stack_configs, key):
    plain = settings_from_config(stack_configs["lab"])
    assert settings_from_config(with_overrides(stack_configs["lab"], {key: "x"})) == plain


def test_every_provider_package_the_program_pins_has_its_namespace_accepted():
    pinned = re.findall(r"^pulumi-([a-z0-9-]+)==", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert len(pinned) >= 4
    assert set(pinned) <= set(CONFIG_NAMESPACES)
    assert {"meshlab", "pulumi"} <= set(CONFIG_NAMESPACES)


def test_committed_stacks_use_only_accepted_namespaces(stack_configs):
    for config in stack_configs.values():
        assert {key.split(":", 1)[0] for key in config.values} <= set(CONFIG_NAMESPACES)


# --- keys as the CLI parses them ------------------------------------------------------------------


def test_a_bare_key_is_the_projects_key_as_the_cli_reads_it(tmp_path):
    """The CLI reads `agentCpus:` in a stack file as `meshlab:agentCpus` (the project's namespace)."""
    base = LAB.replace("  meshlab:agentCpus: 2\n", "")
    settings = settings_from_config(read_stack_file(_stack(tmp_path, "  agentCpus: 4\n", base)))
    assert settings.topology.agent_cpus == 4
    problems = _problems(_stack(tmp_path, "  agentCpus: 1\n", base))
    assert any(p.startswith("meshlab:agentCpus = 1") and "at least 2 vCPUs" in p for p in problems), problems


def test_the_old_config_module_spelling_is_the_same_key(tmp_path):
    base = LAB.replace("  meshlab:agentCpus: 2\n", "")
    settings = settings_from_config(read_stack_file(_stack(tmp_path, "  meshlab:config:agentCpus: 4\n", base)))
    assert settings.topology.agent_cpus == 4


@pytest.mark.parametrize("spelling", ["agentCpus", "meshlab:config:agentCpus"])
def test_one_key_spelled_two_ways_is_refused(tmp_path, spelling):
    """The CLI silently keeps the last of the two; the offline reader says so instead of guessing."""
    problems = _problems(_stack(tmp_path, f"  {spelling}: 4\n"))
    [problem] = [p for p in problems if p.startswith("meshlab:agentCpus")]
    assert "meshlab:agentCpus = 4" in problem
    first = _line(LAB, "  meshlab:agentCpus:")
    assert f"as meshlab:agentCpus (line {first}) and as {spelling} (line {APPENDED})" in problem


def test_a_key_given_twice_is_refused_with_the_clis_words(tmp_path):
    """The CLI: `yaml: unmarshal errors: line N: mapping key "K" already defined at line M`."""
    path = _stack(tmp_path, "  meshlab:agentCpus: 3\n  meshlab:ingressDomain: other\n  meshlab:serverCpus: 1\n")
    problems = _problems(path)
    [cpus] = [p for p in problems if p.startswith("meshlab:agentCpus")]
    first = _line(LAB, "  meshlab:agentCpus:")
    assert f'line {APPENDED}: mapping key "meshlab:agentCpus" already defined at line {first}' in cpus
    assert "meshlab:agentCpus = 3" in cpus
    [domain] = [p for p in problems if p.startswith("meshlab:ingressDomain")]
    first = _line(LAB, "  meshlab:ingressDomain:")
    assert f'line {APPENDED + 1}: mapping key "meshlab:ingressDomain" already defined at line {first}' in domain
    # Everything else is still reported at once.
    assert any(p.startswith("meshlab:serverCpus = 1") for p in problems)


def test_a_duplicate_inside_a_value_is_refused(tmp_path):
    path = _stack(tmp_path, "  meshlab:testAppEgressFqdns:\n    x: 1\n    x: 2\n")
    [problem] = [p for p in _problems(path) if p.startswith("meshlab:testAppEgressFqdns")]
    assert f'line {APPENDED + 2}: mapping key "x" already defined at line {APPENDED + 1}' in problem


@pytest.mark.parametrize("key", ["meshlab:a:b", "1", "true"])
def test_a_key_the_cli_cannot_parse_is_refused_with_its_words(tmp_path, key):
    problems = _problems(_stack(tmp_path, f"  {key}: 2\n"))
    assert any(f"could not parse {key} as a configuration key" in p for p in problems), problems


# --- values as the CLI reads them (YAML as go-yaml v3 resolves it) --------------------------------

# (YAML written in the stack file, the string the program receives), recorded from the real CLI.
CLI_READS: list[tuple[str, str]] = [
    ("off", "off"),
    ("yes", "yes"),
    ("No", "No"),
    ("ON", "ON"),
    ("y", "y"),
    ("True", "true"),
    ("FALSE", "false"),
    ("~", ""),
    ("Null", ""),
    ("017", "15"),
    ("08", "8"),
    ("0o17", "15"),
    ("0x1F", "31"),
    ("0b101", "5"),
    ("1_000", "1000"),
    ("+12", "12"),
    ("-0", "0"),
    ("1.0", "1"),
    ("1.", "1"),
    (".5", "0.5"),
    ("-.5", "-0.5"),
    ("1e3", "1000"),
    ("1e20", "100000000000000000000"),
    ("1e21", "1e+21"),
    ("1e-7", "1e-7"),
    ("2.5e-5", "0.000025"),
    ("0.30000000000000004", "0.30000000000000004"),
    ("1e400", "1e400"),
    ("9223372036854775808", "9223372036854775808"),
    ("18446744073709551616", "18446744073709552000"),
    ("12:30:00", "12:30:00"),
    ("0o8", "0o8"),
    ("2001-12-14", "2001-12-14 00:00:00 +0000 UTC"),
    ("2001-1-2 3:4:5", "2001-01-02 03:04:05 +0000 UTC"),
    ("2001-12-14T21:59:43.123456789+00:00", "2001-12-14 21:59:43.123456789 +0000 UTC"),
    ("2001-02-30", "2001-02-30"),
    ('"017"', "017"),
    ("'1e3'", "1e3"),
    ("!!str 017", "017"),
    ('!!int "5"', "5"),
    ("!!float 1", "1"),
    ("[null, ~, 1.0, 017, 1e3, yes, 1_000, -0.0]", '[null,null,1,15,1000,"yes",1000,0]'),
    ("{b: 1, a: [x], 1.5: c, true: d, null: e}", '{"1.5":"c","\\u003cnil\\u003e":"e","a":["x"],"b":1,"true":"d"}'),
    ("[1e21, 100000000000000000000.0, 0.000001, 0.0000001]", "[1e+21,100000000000000000000,0.000001,1e-7]"),
    ("{<<: {a: 1}, b: 2}", '{"a":1,"b":2}'),
    ("|\n    multi\n    line", "multi\nline\n"),
]


def test_values_reach_the_program_as_the_cli_passes_them(tmp_path):
    lines = "".join(f"  meshlab:v{index}: {written}\n" for index, (written, _) in enumerate(CLI_READS))
    values = read_stack_file(_stack(tmp_path, lines, base="config:\n")).values
    read = {written: values[f"meshlab:v{index}"] for index, (written, _) in enumerate(CLI_READS)}
    assert read == dict(CLI_READS)


@pytest.mark.parametrize("written", [".inf", "[.nan]"])
def test_a_value_the_cli_cannot_store_is_refused(tmp_path, written):
    problems = _problems(_stack(tmp_path, f"  meshlab:demoAmbient: {written}\n"))
    assert any(p.startswith("meshlab:demoAmbient") and "json: unsupported value" in p for p in problems), problems


def test_off_is_a_string_as_in_yaml_1_2(tmp_path):
    """`off` is the demo's default setting written out; YAML 1.1 would make it false and refuse it."""
    settings = settings_from_config(read_stack_file(_stack(tmp_path, "  meshlab:demoAmbient: off\n")))
    assert settings.apps.demo_ambient == "off"


@pytest.mark.parametrize(
    ("written", "key", "type_name"),
    [
        ("meshlab:demoL7Routing: yes", "meshlab:demoL7Routing", "boolean"),
        ("meshlab:hubbleEnabled: off", "meshlab:hubbleEnabled", "boolean"),
        ("meshlab:hubbleEnabled: 1", "meshlab:hubbleEnabled", "boolean"),
        ('meshlab:hubbleEnabled: "True"', "meshlab:hubbleEnabled", "boolean"),
        ("meshlab:hubbleEnabled: ~", "meshlab:hubbleEnabled", "boolean"),
        ('meshlab:agentCpus: " 3"', "meshlab:agentCpus", "integer"),
        ("meshlab:agentCpus: true", "meshlab:agentCpus", "integer"),
        ("meshlab:agentCpus: 99999999999999999999", "meshlab:agentCpus", "integer"),
        ("meshlab:ntpServers: [pool.ntp.org, ~]", "meshlab:ntpServers", "array<string>"),
        ("meshlab:agentCpus: 1_0.5", "meshlab:agentCpus", "integer"),
        ('meshlab:agentCpus: "1_0"', "meshlab:agentCpus", "integer"),
        ("meshlab:ntpServers: [1, pool.ntp.org]", "meshlab:ntpServers", "array<string>"),
        ('meshlab:ntpServers: "[\\"pool.ntp.org\\"]"', "meshlab:ntpServers", "array<string>"),
        ("meshlab:ingressDomain: [lab]", "meshlab:ingressDomain", "string"),
    ],
)
def test_a_value_of_the_wrong_declared_type_is_refused_as_the_cli_does(tmp_path, written, key, type_name):
    """Pulumi.yaml declares each key's type; the CLI refuses the stack before the program runs."""
    base = "".join(line for line in LAB.splitlines(keepends=True) if not line.startswith(f"  {key}:"))
    problems = _problems(_stack(tmp_path, f"  {written}\n", base, name="mystack"))
    words = f"Stack 'mystack' with configuration key '{key}' must be of type '{type_name}'"
    assert any(p.startswith(key) and words in p for p in problems), problems


@pytest.mark.parametrize("written", ["true", "True", "TRUE", '"true"'])
def test_booleans_the_cli_accepts_are_accepted(tmp_path, written):
    settings = settings_from_config(read_stack_file(_stack(tmp_path, f"  meshlab:demoL7Routing: {written}\n")))
    assert settings.apps.demo_l7_routing is True


@pytest.mark.parametrize("written", ['"+30"', '"030"', "30.0", "0x1e", "3_0"])
def test_integers_the_cli_accepts_are_accepted(tmp_path, written):
    settings = settings_from_config(read_stack_file(_stack(tmp_path, f"  meshlab:agentDiskGib: {written}\n")))
    assert settings.topology.agent_disk_gib == 30


def test_declared_types_are_the_ones_pulumi_yaml_declares():
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    assert declared_types() == {
        key: "array<string>" if d["type"] == "array" else d["type"] for key, d in declared.items()
    }


def test_the_runtime_path_reads_what_the_file_path_reads(tmp_path):
    """The language host hands the program the CLI's strings; both loaders must build the same settings."""
    tricky = (
        "  meshlab:demoAmbient: off\n  meshlab:etcdSnapshotRetention: 017\n  meshlab:agentDiskGib: 4_0\n"
        "  meshlab:demoL7Routing: True\n  meshlab:ntpServers: [0.pool.ntp.org, 1.pool.ntp.org]\n"
    )
    from_file = read_stack_file(_stack(tmp_path, tricky))
    saved = dict(runtime_config.CONFIG.get())
    try:
        runtime_config.set_all_config(dict(from_file.values), [])
        from_runtime = runtime_stack_config()
    finally:
        runtime_config.set_all_config(saved, [])
    settings = settings_from_config(from_runtime)
    assert settings == settings_from_config(from_file)
    assert (settings.cluster.etcd_snapshot_retention, settings.topology.agent_disk_gib) == (15, 40)
    assert settings.apps.demo_ambient == "off" and settings.apps.demo_l7_routing is True


# --- defaults derived from the topology -----------------------------------------------------------

ONE_NODE = {"meshlab:servers": ["master1=192.168.56.11"], "meshlab:agents": []}


def test_one_server_and_no_agents_is_accepted_with_one_operator_replica(stack_configs):
    settings = settings_from_config(with_overrides(stack_configs["lab"], ONE_NODE))
    assert settings.cluster.cilium_operator_replicas == 1
    assert cilium_values(settings)["operator"]["replicas"] == 1
    assert settings_from_config(stack_configs["lab"]).cluster.cilium_operator_replicas == 2


def test_the_declared_default_lets_the_topology_decide(stack_configs):
    """The CLI applies Pulumi.yaml's default when the stack leaves a key out, and the program sees it."""
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]
    default = declared["meshlab:ciliumOperatorReplicas"]["default"]
    config = with_overrides(stack_configs["lab"], {**ONE_NODE, "meshlab:ciliumOperatorReplicas": default})
    assert settings_from_config(config).cluster.cilium_operator_replicas == 1


@pytest.mark.parametrize("replicas", [2, 0])
def test_an_operator_count_the_user_sets_is_still_checked(stack_configs, replicas):
    config = with_overrides(stack_configs["lab"], {**ONE_NODE, "meshlab:ciliumOperatorReplicas": replicas})
    problems = _problems(config)
    assert any(p.startswith(f"meshlab:ciliumOperatorReplicas = {replicas}") for p in problems), problems


# --- messages -------------------------------------------------------------------------------------


def test_one_bad_entry_quotes_only_that_entry(stack_configs):
    agents = ["worker_1=192.168.56.21", "worker2=192.168.56.22", "worker3=192.168.56.23"]
    [problem] = _problems(with_overrides(stack_configs["lab"], {"meshlab:agents": agents}))
    assert problem.startswith("meshlab:agents[0] = worker_1=192.168.56.21: ")
    assert "worker2" not in problem


def test_one_bad_entry_of_a_secret_free_list_from_a_file_quotes_only_that_entry(tmp_path):
    base = LAB.replace("    - worker1=192.168.56.21\n", "    - worker1=192.168.56.300\n")
    [problem] = _problems(_stack(tmp_path, "", base))
    assert problem.startswith("meshlab:agents[0] = worker1=192.168.56.300: ")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"meshlab:agentCpus": 1}, "meshlab:agentCpus = 1: an agent needs at least 2 vCPUs"),
        ({"meshlab:serverCpus": 1}, "meshlab:serverCpus = 1: a server needs at least 2 vCPUs"),
        (
            {"meshlab:servers": ["master1=192.168.56.11"], "meshlab:requireHa": True},
            "meshlab:servers = 1 server (master1): ",
        ),
        ({"meshlab:servers": LAB_SERVERS[:2]}, "meshlab:servers = 2 servers (master1, master2): "),
        (
            {"meshlab:agents": ["worker1=192.168.56.21"], "meshlab:nfsAllowedCidr": "192.168.56.0/28"},
            "= 192.168.56.0/28: node worker1 could not mount",
        ),
        ({"meshlab:nfsAllowedCidr": "192.168.56.0/28"}, ": nodes worker1, worker2, worker3 could not mount"),
    ],
)
def test_messages_agree_in_number_and_article(stack_configs, overrides, expected):
    problems = _problems(with_overrides(stack_configs["lab"], overrides))
    assert any(expected in problem for problem in problems), problems


def test_every_section_field_has_a_declared_type_the_reader_knows():
    keys = {config_key(name) for model in SECTIONS.values() for name in model.model_fields}
    assert set(declared_types()) == keys
