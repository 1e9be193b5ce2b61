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

# (YAML written in the stack file, the string the program receives), recorded from the real CLI (pulumi v3.274.0):
# a scratch Python project whose program wrote down the PULUMI_CONFIG its language host received (and the SDK's
# runtime config: the same), each value alone under its own key, one `pulumi preview` each. `pulumi config --json`
# gave the same strings for every one of them.
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
    # leap days: February 29 is a date only in a leap year (1900 is none, 2000 is one); else the text stays a string
    ("2024-02-29", "2024-02-29 00:00:00 +0000 UTC"),
    ("2023-02-29", "2023-02-29"),
    ("2000-02-29", "2000-02-29 00:00:00 +0000 UTC"),
    ("1900-02-29", "1900-02-29"),
    ("2024-02-30", "2024-02-30"),
    ("2024-2-29", "2024-02-29 00:00:00 +0000 UTC"),
    ("2024-02-29T12:00:00Z", "2024-02-29 12:00:00 +0000 UTC"),
    ("2023-02-29T12:00:00Z", "2023-02-29T12:00:00Z"),
    ("[2024-02-29, 2023-02-29]", '["2024-02-29 00:00:00 +0000 UTC","2023-02-29"]'),
    ("{2024-02-29: a, 2023-02-29: b}", '{"2023-02-29":"b","2024-02-29 00:00:00 +0000 UTC":"a"}'),
    ("{2024-02-29: [2024-02-29]}", '{"2024-02-29 00:00:00 +0000 UTC":["2024-02-29 00:00:00 +0000 UTC"]}'),
    ("{2024-02-29: a, 2024-2-29: b}", '{"2024-02-29 00:00:00 +0000 UTC":"b"}'),
    ("!!str 2024-02-29", "2024-02-29"),
    ('"2024-02-29"', "2024-02-29"),
    # the last day of each month, and the day after it
    ("[2001-01-31, 2001-01-32]", '["2001-01-31 00:00:00 +0000 UTC","2001-01-32"]'),
    ("[2001-03-31, 2001-03-32]", '["2001-03-31 00:00:00 +0000 UTC","2001-03-32"]'),
    ("[2001-04-30, 2001-04-31]", '["2001-04-30 00:00:00 +0000 UTC","2001-04-31"]'),
    ("[2001-05-31, 2001-05-32]", '["2001-05-31 00:00:00 +0000 UTC","2001-05-32"]'),
    ("[2001-06-30, 2001-06-31]", '["2001-06-30 00:00:00 +0000 UTC","2001-06-31"]'),
    ("[2001-07-31, 2001-07-32]", '["2001-07-31 00:00:00 +0000 UTC","2001-07-32"]'),
    ("[2001-08-31, 2001-08-32]", '["2001-08-31 00:00:00 +0000 UTC","2001-08-32"]'),
    ("[2001-09-30, 2001-09-31]", '["2001-09-30 00:00:00 +0000 UTC","2001-09-31"]'),
    ("[2001-10-31, 2001-10-32]", '["2001-10-31 00:00:00 +0000 UTC","2001-10-32"]'),
    ("[2001-11-30, 2001-11-31]", '["2001-11-30 00:00:00 +0000 UTC","2001-11-31"]'),
    ("[2001-12-31, 2001-12-32]", '["2001-12-31 00:00:00 +0000 UTC","2001-12-32"]'),
    ("[2001-02-28, 2001-01-01]", '["2001-02-28 00:00:00 +0000 UTC","2001-01-01 00:00:00 +0000 UTC"]'),
    ("[2024-03-01, 2001-1-1]", '["2024-03-01 00:00:00 +0000 UTC","2001-01-01 00:00:00 +0000 UTC"]'),
    # a date or a clock out of range, or a clock without a zone after T, stays a string
    ("2001-12-14T23:60:00Z", "2001-12-14T23:60:00Z"),
    ("2001-12-14T23:59:60Z", "2001-12-14T23:59:60Z"),
    ("2001-12-14 24:00:00", "2001-12-14 24:00:00"),
    ("2001-12-14 23:59:59", "2001-12-14 23:59:59 +0000 UTC"),
    ("2001-13-01", "2001-13-01"),
    ("2001-00-10", "2001-00-10"),
    ("2001-12-00", "2001-12-00"),
    ("2001-12-31", "2001-12-31 00:00:00 +0000 UTC"),
    ("2001-04-31", "2001-04-31"),
    ("2001-04-30", "2001-04-30 00:00:00 +0000 UTC"),
    ("2001-12-14T21:59:43.1234567891+05:30", "2001-12-14 21:59:43.123456789 +0530 +0530"),
    ("2001-12-14T21:59:43.10-00:00", "2001-12-14 21:59:43.1 +0000 UTC"),
    ("2001-12-14t21:59:43Z", "2001-12-14 21:59:43 +0000 UTC"),
    ("2001-12-14T21:59:43", "2001-12-14T21:59:43"),
    ("2001-12-14 21:59:43.5", "2001-12-14 21:59:43.5 +0000 UTC"),
    ("2001-12-14T23:59:61Z", "2001-12-14T23:59:61Z"),
    ("2001-12-14T23:61:00Z", "2001-12-14T23:61:00Z"),
    # numbers around the thresholds of JSON's exponent form (1e-6, 1e21) and of %v's (1e-4, 1e6)
    ("{2001-12-14T21:59:43.1-05:00: a}", '{"2001-12-14 21:59:43.1 -0500 -0500":"a"}'),
    (
        "[1e-6, 1e-5, 0.5e21, 123456.7, 1234567.0, -1e-7]",
        "[0.000001,0.00001,500000000000000000000,123456.7,1234567,-1e-7]",
    ),
    ("{1234567.0: a, 0.5: b, -1e-5: c, 1e-4: d}", '{"-1e-05":"c","0.0001":"d","0.5":"b","1.234567e+06":"a"}'),
    # int64's and uint64's ends: alone, a uint64 keeps its digits; in an array or object, it is a float
    ("-9223372036854775809", "-9223372036854776000"),
    ("[-9223372036854775808, -9223372036854775809]", "[-9223372036854775808,-9223372036854776000]"),
    ("18446744073709551615", "18446744073709551615"),
    ("[18446744073709551615, 9223372036854775807]", "[18446744073709552000,9223372036854775807]"),
    ("{a: , b: 1}", '{"a":null,"b":1}'),
    ("{.NAN: x}", '{"NaN":null}'),
    ("{+.INF: x, -.INF: y}", '{"+Inf":"x","-Inf":"y"}'),
    ("+", "+"),
    ("[+]", '["+"]'),
    ("+0x1F", "31"),
    ("[+0x1F, -0x1F, +0b101, -0o17, 0x, 0b, 0o, +_1, 1_]", '[31,-31,5,-15,"0x","0b","0o",1,1]'),
    ("[NULL, TRUE, False, true, false, Null, null, ~]", "[null,true,false,true,false,null,null,null]"),
    ("[1500000.0, 1.5e21, 2.5e-7]", "[1500000,1.5e+21,2.5e-7]"),
    # keys that are not strings, printed with fmt's %v (a float in exponent form below 1e-4 and from 1e6)
    ("{1: a}", '{"1":"a"}'),
    ("{true: a}", '{"true":"a"}'),
    ("{false: a}", '{"false":"a"}'),
    ("{null: a}", '{"\\u003cnil\\u003e":"a"}'),
    ("{~: a}", '{"\\u003cnil\\u003e":"a"}'),
    ("{1.5: a}", '{"1.5":"a"}'),
    ("{1e21: x}", '{"1e+21":"x"}'),
    ("{1e-7: x}", '{"1e-07":"x"}'),
    ("{1e6: x}", '{"1e+06":"x"}'),
    ("{1e5: x}", '{"100000":"x"}'),
    ("{0.0001: x}", '{"0.0001":"x"}'),
    ("{0.00001: x}", '{"1e-05":"x"}'),
    ("{123456789.0: x}", '{"1.23456789e+08":"x"}'),
    ("{-0.0: x}", '{"0":"x"}'),
    ("{.inf: x}", '{"+Inf":"x"}'),
    ("{-.inf: x}", '{"-Inf":"x"}'),
    ("{017: x}", '{"15":"x"}'),
    ("{0x1F: x}", '{"31":"x"}'),
    ("{-1: x}", '{"-1":"x"}'),
    ("{9223372036854775808: x}", '{"9223372036854775808":"x"}'),
    ("{18446744073709551616: x}", '{"1.8446744073709552e+19":"x"}'),
    ("{a: {2: b}}", '{"a":{"2":"b"}}'),
    ("[{3: c}]", '[{"3":"c"}]'),
    ("{1: a, 01: b}", '{"1":"b"}'),
    ("{~: a, null: b}", '{"\\u003cnil\\u003e":"b"}'),
    ("{1500000.0: a, 2.5e-7: b}", '{"1.5e+06":"a","2.5e-07":"b"}'),
    (
        "[{.Inf: a}, {+.inf: b}, {+.Inf: c}, {.INF: d}, {-.Inf: e}, {+.INF: f}]",
        '[{"+Inf":"a"},{"+Inf":"b"},{"+Inf":"c"},{"+Inf":"d"},{"-Inf":"e"},{"+Inf":"f"}]',
    ),
    ("[_1, _, 1__0]", '["_1","_",10]'),
    ("{-0.0: a, 0: b, c: d}", '{"0":"a","c":"d"}'),
    # explicit tags
    ("!!int 0x1F", "31"),
    ("!!int 017", "15"),
    ("!!int 1_000", "1000"),
    ("!!int -0b101", "-5"),
    ("!!int 9223372036854775808", "9223372036854775808"),
    ("!!bool true", "true"),
    ("!!bool False", "false"),
    ("!!float 1e3", "1000"),
    ("!!float 017", "15"),
    ("!!null ~", ""),
    ("!!timestamp 2001-12-14", "2001-12-14 00:00:00 +0000 UTC"),
    ("!!timestamp 2024-02-29", "2024-02-29 00:00:00 +0000 UTC"),
    ("!!timestamp 2001-12-14T21:59:43.1-05:00", "2001-12-14 21:59:43.1 -0500 -0500"),
    ("{a: !!timestamp 2001-12-14}", '{"a":"2001-12-14 00:00:00 +0000 UTC"}'),
    ("!!binary aGVsbG8=", "hello"),
    ("!!binary w6k=", "é"),
    ("[!!int 0x1F, !!bool true, !!binary aGk=]", '[31,true,"hi"]'),
    ("[!!binary /w==]", '["\ufffd"]'),
    ("[!!binary 5pc=]", '["\ufffd\ufffd"]'),
    ("[!!binary 8J+YgP8=]", '["\U0001f600\ufffd"]'),
    ("[!!binary 4oCo/w==]", '["\\u2028\ufffd"]'),
    ("[!!binary /+KAqA==]", '["\ufffd\\u2028"]'),
    ("[!!binary wg==, !!binary 4oA=, !!binary 8J+Y]", '["\ufffd","\ufffd\ufffd","\ufffd\ufffd\ufffd"]'),
    ("[!!binary w6n/]", '["é\ufffd"]'),
    ("{!!binary /w==: a}", '{"\ufffd":"a"}'),
    ("{a: !!binary /w==}", '{"a":"\ufffd"}'),
    ("[!!binary Yf8=]", '["a\ufffd"]'),
    # text in JSON: encoding/json escapes <, >, &, U+2028, U+2029 and control characters, nothing else
    ("é", "é"),
    ('{a: "é"}', '{"a":"é"}'),
    ('[ü, "日本"]', '["ü","日本"]'),
    ('{"é": 1}', '{"é":1}'),
    ('["<", ">", "&"]', '["\\u003c","\\u003e","\\u0026"]'),
    ('<a href="x">&</a>', '<a href="x">&</a>'),
    ('{"<k>": "&"}', '{"\\u003ck\\u003e":"\\u0026"}'),
    ('"\\u2028"', "\u2028"),
    ('["\\u2028", "\\u2029"]', '["\\u2028","\\u2029"]'),
    ('{a: "\\u2028\\u2029"}', '{"a":"\\u2028\\u2029"}'),
    ('["\\x01\\x7f"]', '["\\u0001\x7f"]'),
    ('["\\b\\f\\t\\n\\r"]', '["\\b\\f\\t\\n\\r"]'),
    ('["\\"\\\\/"]', '["\\"\\\\/"]'),
    ('["\\x85\\xa0"]', '["\x85\xa0"]'),
    ('["\\U0001F600"]', '["\U0001f600"]'),
    # the file written back and read again: a NaN key loses its value; -0.0 and 0 are one key, the float's
    ("{.nan: x}", '{"NaN":null}'),
    ("{.nan: x, b: 1}", '{"NaN":null,"b":1}'),
    ("{a: {.NaN: x}}", '{"a":{"NaN":null}}'),
    ("[{.nan: [1, 2]}]", '[{"NaN":null}]'),
    ("{0: a, -0.0: b}", '{"0":"b"}'),
    ("{-0.0: a, 0: b}", '{"0":"a"}'),
    ('{"<<": {b: 1}}', '{"b":1}'),
    ('{"<<": {b: 1}, c: 2, b: 3}', '{"b":3,"c":2}'),
    ('{"<<": [{b: 1}, {b: 2, d: 4}], c: 3}', '{"b":1,"c":3,"d":4}'),
    # ...a string with a line feed becomes a | block, which loses a first line break (\n, U+2028, U+2029)
    ('"\\n"', ""),
    ('"\\n\\n"', "\n"),
    ('["\\n\\n"]', '["\\n"]'),
    ('"\\n a"', " a"),
    ('"\\n\\ta"', "\ta"),
    ('"\\u2028\\n"', "\n"),
    ('["\\u2029x\\ny"]', '["x\\ny"]'),
    ('["", "\\n", "\\n\\n\\n"]', '["","","\\n\\n"]'),
    ('{"\\n": a}', '{"":"a"}'),
    ('"a\\n\\n"', "a\n\n"),
    ('"a\\n\\tb"', "a\n\tb"),
    ('"\\ta"', "\ta"),
    ('" \\n"', " \n"),
    ('["a \\nb"]', '["a \\nb"]'),
    ('["\\tx\\ny "]', '["\\tx\\ny "]'),
    ('["\\t \\nx"]', '["\\t \\nx"]'),
    ('"\\r\\n"', "\r\n"),
    ('["\\x7f\\nx"]', '["\x7f\\nx"]'),
    ('["\\ufeff\\nx"]', '["\ufeff\\nx"]'),
    ('["\\U0001F600\\n"]', '["\U0001f600\\n"]'),
    ('["\\t\\u0001\\nx"]', '["\\t\\u0001\\nx"]'),
    ('["a\\n"]', '["a\\n"]'),
    ('[" b\\n c"]', '[" b\\n c"]'),
    ('["x\\n\\n"]', '["x\\n\\n"]'),
    ('["\\n"]', '[""]'),
    ('"a\\n "', "a\n "),
    ('"x\\n\\n\\ty"', "x\n\n\ty"),
    ('"\\n\\n\\tb"', "\n\tb"),
    ('"a\\t\\nb"', "a\t\nb"),
    ('"a\\n\\t"', "a\n\t"),
    ('" \\ta\\nb"', " \ta\nb"),
    ('"a\\r\\nb"', "a\r\nb"),
    ('["\\u0085x\\ny"]', '["\x85x\\ny"]'),
    ('["a\\u2028\\nb"]', '["a\\u2028\\nb"]'),
    ('["a\\n\\u2028"]', '["a\\n\\u2028"]'),
    ('"\\u2029"', "\u2029"),
    ('["X\\nY"]', '["X\\nY"]'),
    # which characters go-yaml's emitter writes in a block: after a first line break, they show
    ('["\\n~"]', '["~"]'),
    ('["\\n\\x7f"]', '["\\n\x7f"]'),
    ('["\\n\\x9f"]', '["\\n\x9f"]'),
    ('["\\n\\xa0"]', '["\xa0"]'),
    ('["\\n\\ud7ff"]', '["\ud7ff"]'),
    ('["\\n\\ue000"]', '["\ue000"]'),
    ('["\\n\\ufffd"]', '["\ufffd"]'),
    ('["\\n\\ufeff"]', '["\\n\ufeff"]'),
    ('["\\n\\ufffe"]', '["\\n\ufffe"]'),
    ('["\\n\\U00010000"]', '["\\n\U00010000"]'),
    ('["\\n\\t"]', '["\\t"]'),
    ('["\\n\\u2029"]', '["\\u2029"]'),
    ('["\\n\\r"]', '["\\n\\r"]'),
    ('["\\n\\x85"]', '["\\n\x85"]'),
    ('["\\n\\x1f"]', '["\\n\\u001f"]'),
    # -0.0 is read back as 0
    ("{-0.0: a}", '{"0":"a"}'),
    ("[-0.0, {-0.0: [-0.0]}]", '[0,{"0":[0]}]'),
]


# The recorded files began as `pulumi stack init` left them: the passphrase's salt, then `config:`.
SALT = "encryptionsalt: v1:7wBv+lJPfig=:v1:7e4s84bMmbHiehjb:r8zRfT7b108ZOWwP7lmU+sRaunWktQ==\n"
RECORDED_BASE = SALT + "config:\n"


def test_values_reach_the_program_as_the_cli_passes_them(tmp_path):
    lines = "".join(f"  meshlab:v{index}: {written}\n" for index, (written, _) in enumerate(CLI_READS))
    values = read_stack_file(_stack(tmp_path, lines, base=RECORDED_BASE)).values
    read = {written: values[f"meshlab:v{index}"] for index, (written, _) in enumerate(CLI_READS)}
    assert len(read) == len(CLI_READS)
    assert read == dict(CLI_READS)


# (YAML written in the stack file, the CLI's error), recorded as CLI_READS was (pulumi v3.274.0): `pulumi preview`
# refuses each file before the program runs, with "error: getting stack configuration: invalid YAML file: " and the
# words below (so does `pulumi config`). A !!binary whose bytes are not UTF-8 passes `pulumi config` (shown as U+FFFD)
# and fails the preview, which cannot send it to the language host. The CLI decodes the file, writes it back and
# decodes that again: the line numbers of what it cannot read back are lines of its copy, so they are not compared.
CLI_REFUSES: list[tuple[str, str]] = [
    ("!!int abc", "yaml: cannot decode !!str `abc` as a !!int"),
    ("!!int 1.5", "yaml: cannot decode !!float `1.5` as a !!int"),
    ("!!int .5", "yaml: cannot decode !!float `.5` as a !!int"),
    ("!!int ~", "yaml: cannot decode !!null `~` as a !!int"),
    ("!!int 2001-12-14", "yaml: cannot decode !!str `2001-12-14` as a !!int"),
    ("!!int 18446744073709551616", "yaml: cannot decode !!float `18446744073709551616` as a !!int"),
    ("[!!int abc]", "yaml: cannot decode !!str `abc` as a !!int"),
    ("!!bool 1", "yaml: cannot decode !!int `1` as a !!bool"),
    ("!!bool yes", "yaml: cannot decode !!str `yes` as a !!bool"),
    ("!!bool 0x1", "yaml: cannot decode !!int `0x1` as a !!bool"),
    ("!!float abc", "yaml: cannot decode !!str `abc` as a !!float"),
    ("!!float 2001-12-14", "yaml: cannot decode !!str `2001-12-14` as a !!float"),
    ("!!null x", "yaml: cannot decode !!str `x` as a !!null"),
    ("!!timestamp 2023-02-29", "yaml: cannot decode !!str `2023-02-29` as a !!timestamp"),
    ("!!timestamp abc", "yaml: cannot decode !!str `abc` as a !!timestamp"),
    ("!!timestamp 5", "yaml: cannot decode !!int `5` as a !!timestamp"),
    ("!!timestamp 2024-02-29T25:00:00Z", "yaml: cannot decode !!str `2024-02-29T25:00:00Z` as a !!timestamp"),
    ("!!float .inf", "could not unmarshal map: json: unsupported value: +Inf"),
    (".inf", "could not unmarshal map: json: unsupported value: +Inf"),
    (
        "[.nan]",
        "could not unmarshal map: json: error calling MarshalJSON for type config.object: json: unsupported value: NaN",
    ),
    (
        "{a: .inf}",
        "could not unmarshal map: json: error calling MarshalJSON for type config.object: json: "
        "unsupported value: +Inf",
    ),
    ("!!binary /w==", "error: grpc: error while marshaling: string field contains invalid UTF-8"),
    ("!!binary gA==", "error: grpc: error while marshaling: string field contains invalid UTF-8"),
    ("!!binary w6n/", "error: grpc: error while marshaling: string field contains invalid UTF-8"),
    (
        "{1: a, 1.0: b}",
        'could not unmarshal map: yaml: unmarshal errors:\n  line 4: mapping key "1" already defined at line 3',
    ),
    (
        '{"1": a, 1.0: b}',
        'could not unmarshal map: yaml: unmarshal errors:\n  line 4: mapping key "1" already defined at line 3',
    ),
    (
        "{0: a, 0.0: b}",
        'could not unmarshal map: yaml: unmarshal errors:\n  line 4: mapping key "0" already defined at line 3',
    ),
    (
        "{1e5: a, 100000: b}",
        'could not unmarshal map: yaml: unmarshal errors:\n  line 4: mapping key "100000" already defined at line 3',
    ),
    (
        "{.nan: x, .NaN: y}",
        'could not unmarshal map: yaml: unmarshal errors:\n  line 4: mapping key ".nan" already defined at line 3',
    ),
    (
        '{"2024-02-29T00:00:00Z": a, 2024-02-29: b}',
        "could not unmarshal map: yaml: unmarshal errors:\n  line 4: "
        'mapping key "2024-02-29T00:00:00Z" already defined at line 3',
    ),
    ('{"<<": a}', "could not unmarshal map: yaml: map merge requires map or sequence of maps as the value"),
    ('"\\ta\\n"', "yaml: line 2: found a tab character where an indentation space is expected"),
    ('"\\t\\n"', "yaml: line 2: found a tab character where an indentation space is expected"),
    ('["\\ta\\n"]', "yaml: line 3: found a tab character where an indentation space is expected"),
    ('{k: "\\tx\\ny"}', "yaml: line 3: found a tab character where an indentation space is expected"),
    ('{"\\ta\\nb": a}', "yaml: line 3: found a tab character where an indentation space is expected"),
    ("[!!binary CWEKYg==]", "yaml: line 3: found a tab character where an indentation space is expected"),
    ("!!int true", "yaml: cannot decode !!bool `true` as a !!int"),
    ("!!float false", "yaml: cannot decode !!bool `false` as a !!float"),
    ("!!null true", "yaml: cannot decode !!bool `true` as a !!null"),
    ("-.inf", "could not unmarshal map: json: unsupported value: -Inf"),
    (
        "[-.inf]",
        "could not unmarshal map: json: error calling MarshalJSON for type config.object: json: "
        "unsupported value: -Inf",
    ),
    (
        "[.NAN, +.INF, -.INF]",
        "could not unmarshal map: json: error calling MarshalJSON for type config.object: json: unsupported value: NaN",
    ),
]


def _cli_words(error: str) -> str:
    """The CLI's error without its prefix and its line numbers, spaces collapsed."""
    words = error.removeprefix("error: ")
    return " ".join(re.sub(r"line \d+: | at line \d+", "", words).split())


@pytest.mark.parametrize(("written", "error"), CLI_REFUSES)
def test_a_value_the_cli_refuses_is_refused_in_its_words(tmp_path, written, error):
    path = _stack(tmp_path, f"  meshlab:v: {written}\n", base=RECORDED_BASE)
    with pytest.raises(SettingsError) as raised:
        settings_from_config(read_stack_file(path))
    problems = [" ".join(str(problem).split()) for problem in raised.value.problems]
    assert any(f": {_cli_words(error)}" in problem for problem in problems), problems


def test_keys_the_cli_writes_back_alike_are_named_with_their_lines(tmp_path):
    """The CLI's lines are those of its copy ("line 4: mapping key "1" already defined at line 3"); ours say
    where the two keys are in the file."""
    path = _stack(tmp_path, "  meshlab:v:\n    1: a\n    1.0: b\n", base=RECORDED_BASE)
    with pytest.raises(SettingsError) as raised:
        read_stack_file(path)
    [problem] = raised.value.problems
    assert "the keys `1` (line 4) and `1.0` (line 5) both as 1" in str(problem)


@pytest.mark.parametrize(
    "text",
    ["", "~\n", SALT, RECORDED_BASE, RECORDED_BASE.replace("config:", "config: ~")],
)
def test_a_stack_file_without_config_gives_the_program_none(tmp_path, text):
    """Recorded as CLI_READS: the program receives no key (PULUMI_CONFIG is {})."""
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(text)
    config = read_stack_file(path)
    assert config.values == {}
    assert not config.problems


@pytest.mark.parametrize("written", ["3", "[a]"])
def test_a_config_that_is_no_mapping_is_refused(tmp_path, written):
    """The CLI: "could not unmarshal map: yaml: unmarshal errors: line 2: cannot unmarshal !!int `3` into
    map[string]config.Value"."""
    with pytest.raises(SettingsError) as raised:
        read_stack_file(_stack(tmp_path, "", base=RECORDED_BASE.replace("config:", f"config: {written}")))
    [problem] = raised.value.problems
    assert "config must be a mapping" in str(problem)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("3", "int"),
        ("true", "bool"),
        ("hello", "string"),
        ("1.5", "float64"),
        ("2001-12-14", "time.Time"),
        ("18446744073709551615", "uint64"),
        ("[a]", "[]interface {}"),
    ],
)
def test_a_stack_file_that_is_no_mapping_is_refused_in_the_clis_words(tmp_path, text, found):
    """Recorded as CLI_READS: "getting stack configuration: expected project to be an object, was 'int'"."""
    path = tmp_path / "Pulumi.lab.yaml"
    path.write_text(text + "\n")
    with pytest.raises(SettingsError) as raised:
        read_stack_file(path)
    [problem] = raised.value.problems
    assert f": expected project to be an object, was '{found}'" in str(problem)


def test_a_key_given_twice_is_named_as_the_cli_names_it(tmp_path):
    """Recorded as CLI_READS: "yaml: unmarshal errors: line 5: mapping key "meshlab:a" already defined at line 3"."""
    config = read_stack_file(_stack(tmp_path, "  meshlab:a: 1\n  meshlab:b: 2\n  meshlab:a: 3\n", base=RECORDED_BASE))
    [problem] = [str(problem) for problem in config.problems]
    assert problem.startswith("meshlab:a = ")
    assert 'yaml: unmarshal errors: line 5: mapping key "meshlab:a" already defined at line 3' in problem


def test_config_is_read_wherever_it_is_in_the_file(tmp_path):
    path = _stack(tmp_path, SALT, base="config:\n  meshlab:v: 1\n")
    assert read_stack_file(path).values == {"meshlab:v": "1"}


def test_a_merge_in_the_config_mapping_is_read_as_the_cli_reads_it(tmp_path):
    """Recorded as CLI_READS (pulumi v3.274.0): the merged keys reach the program, a bare one in the project's
    namespace, and a key the mapping gives itself wins over the merged one."""
    path = _stack(tmp_path, "  <<: {meshlab:m: 1, meshlab:v: 0, n: x}\n  meshlab:v: 2\n", base=RECORDED_BASE)
    config = read_stack_file(path)
    assert config.values == {"meshlab:m": "1", "meshlab:n": "x", "meshlab:v": "2"}
    assert not config.problems


@pytest.mark.parametrize("written", ["{[1]: a}", "{? {a: 1} : b}"])
def test_a_key_that_is_an_array_or_an_object_is_refused(tmp_path, written):
    """The CLI: "yaml: invalid map key: []interface {}{1}" and "... map[string]interface {}{"a":1}" (Go's %#v)."""
    with pytest.raises(SettingsError) as raised:
        read_stack_file(_stack(tmp_path, f"  meshlab:v: {written}\n", base="config:\n"))
    [problem] = raised.value.problems
    assert ": yaml: invalid map key" in str(problem)


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
