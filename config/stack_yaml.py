"""Read a `Pulumi.<stack>.yaml` as the Pulumi CLI reads it, down to the strings the program receives.

The CLI parses stack files with go-yaml v3 (gopkg.in/yaml.v3), which resolves plain scalars by
YAML 1.2's rules for booleans and nulls (`off`, `yes`, `on`, `y` are strings) but keeps some of
YAML 1.1's numbers: `017` is octal 15, `1_000` is 1000, `0b101` is 5, and a date becomes a
timestamp. Neither pyyaml (YAML 1.1: `off` is false) nor a strict YAML 1.2 reader such as ruamel.yaml
(`017` is 17) reads a stack file the way the CLI does, so this module keeps pyyaml's parser and
replaces only the resolution of plain scalars with go-yaml v3's (`resolve.go`), then turns each
value into the string the language host hands the program: scalars as text, arrays and objects as
JSON. The expected readings in tests/test_stack_file.py were recorded from the real CLI.

Duplicate mapping keys are refused as go-yaml refuses them (the CLI then refuses the whole file).

The CLI does not read the file only once: LoadProjectStackBytes (sdk/go/common/workspace) decodes it,
writes it back with go-yaml's encoder and decodes that text again. The round trip is not lossless, and
what it changes reaches the program (`_read_back`, `_Loader.construct_mapping`): a string with a line
feed is written as a `|` block, which loses a leading line break and cannot be read back when it starts
with a tab; a NaN key loses its value; keys of different kinds written alike (1 and 1.0) become
duplicates; a quoted `"<<"` key is written plain and becomes a merge.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_PLAIN = "tag:meshlab:go-yaml-plain"
_MERGE = "tag:yaml.org,2002:merge"

# go-yaml v3 resolve.go: the strings it looks up in a table. Beyond them only a scalar starting with a
# digit or a sign can be a number or a timestamp, and one starting with "." a float.
_TABLE: dict[str, Any] = {
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_YAML_STYLE_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_DOT_FLOAT = re.compile(r"^\.[0-9]+([eE][-+]?[0-9]+)?$")
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
# The timestamp layouts go-yaml v3 tries (allowedTimestampFormats), as regular expressions.
_DATE = r"(\d{4})-(\d{1,2})-(\d{1,2})"
_TIME = r"(\d{1,2}):(\d{1,2}):(\d{1,2})(?:[.,](\d+))?"
_TIMESTAMPS = (
    re.compile(rf"^{_DATE}[Tt]{_TIME}(Z|[+-]\d{{2}}:\d{{2}})$"),
    re.compile(rf"^{_DATE} {_TIME}()$"),
    re.compile(rf"^{_DATE}()()()()()$"),
)
_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


@dataclass(frozen=True)
class GoTime:
    """A timestamp as Go's time.Time.String() prints it (the CLI formats it so, with the local zone UTC).

    `rfc3339` is how go-yaml's encoder writes it back (time.RFC3339Nano)."""

    text: str
    rfc3339: str = ""


class GoBytes(str):
    """A `!!binary` value whose bytes are not UTF-8. Go keeps the bytes; the text is what encoding/json
    makes of them (each byte that starts no valid character becomes U+FFFD). The CLI cannot hand such a
    string to the program on its own (gRPC refuses it), only inside an array or object (JSON)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> GoBytes:
        text = super().__new__(cls, _go_replaced(raw))
        text.raw = raw
        return text


def _go_replaced(raw: bytes) -> str:
    """bytes as encoding/json writes them: each byte where no valid UTF-8 character starts is U+FFFD."""
    out: list[str] = []
    index = 0
    while index < len(raw):
        for width in (1, 2, 3, 4):
            try:
                out.append(raw[index : index + width].decode("utf-8"))
            except UnicodeDecodeError:
                continue
            index += width
            break
        else:
            out.append("\ufffd")
            index += 1
    return "".join(out)


def _go_int(text: str, *, signed: bool) -> int | None:
    """strconv.ParseInt/ParseUint(text, 0, 64): sign, base prefix (0x, 0o, 0b, or a leading 0), range."""
    sign, digits = 1, text
    if digits[:1] in ("+", "-"):
        if not signed:
            return None
        sign, digits = (-1 if digits[0] == "-" else 1), digits[1:]
    base = 10
    lowered = digits.lower()
    if lowered.startswith(("0x", "0o", "0b")):
        base, digits = {"x": 16, "o": 8, "b": 2}[lowered[1]], digits[2:]
    elif len(digits) > 1 and digits[0] == "0":
        base, digits = 8, digits[1:]
    if not digits or not all(char in "0123456789abcdef"[:base] for char in digits.lower()):
        return None
    value = sign * int(digits, base)
    low, high = _INT64 if signed else _UINT64
    return value if low <= value <= high else None


def _go_timestamp(text: str) -> GoTime | None:
    if not re.match(r"^\d{4}-", text):
        return None
    for pattern in _TIMESTAMPS:
        match = pattern.match(text)
        if not match:
            continue
        year, month, day = (int(part) for part in match.groups()[:3])
        hour, minute, second = (int(part or 0) for part in match.groups()[3:6])
        fraction, zone = match.group(7) or "", match.group(8)
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        days = 28 if month == 2 and not leap else _DAYS[month - 1] if 1 <= month <= 12 else 0
        if not (1 <= day <= days and hour < 24 and minute < 60 and second < 60):
            return None
        nanoseconds = fraction[:9].ljust(9, "0").rstrip("0")
        clock = f"{hour:02d}:{minute:02d}:{second:02d}" + (f".{nanoseconds}" if nanoseconds else "")
        date = f"{year:04d}-{month:02d}-{day:02d}"
        if not zone or zone == "Z" or zone[1:] == "00:00":
            where, suffix = "+0000 UTC", "Z"
        else:
            offset = zone[0] + zone[1:].replace(":", "")
            where, suffix = f"{offset} {offset}", zone
        return GoTime(f"{date} {clock} {where}", f"{date}T{clock}{suffix}")
    return None


def resolve_plain(text: str, *, timestamps: bool = True) -> Any:
    """The value go-yaml v3 gives an untagged plain scalar (resolve.go), as a Python value."""
    hint = text[:1]
    if text in _TABLE:
        return _TABLE[text]
    if hint == "." and _DOT_FLOAT.match(text):
        number = float(text)
        return text if math.isinf(number) else number
    if hint and hint in "0123456789+-":
        if timestamps and (stamp := _go_timestamp(text)) is not None:
            return stamp
        plain = text.replace("_", "")
        for signed in (True, False):
            if (integer := _go_int(plain, signed=signed)) is not None:
                return integer
        if _YAML_STYLE_FLOAT.match(plain):
            number = float(plain)
            if not math.isinf(number):  # strconv.ParseFloat reports an overflow: the text stays a string
                return number
    return text


# --- the round trip: the file written back by go-yaml's encoder and read again ---------------------

_BREAKS = "\r\n\x85\u2028\u2029"  # what go-yaml's emitter and scanner take for a line break (is_break)


def _printable(char: str) -> bool:
    """go-yaml's emitter is_printable (a tab aside): a character it may write as it is in a block."""
    code = ord(char)
    return (
        char == "\n" or 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
    )


def _literal_block(text: str) -> bool:
    """Whether go-yaml's encoder writes a string as a `|` block: it holds a line feed, and the emitter allows
    a block (no space at its end or before a line break, every character but a tab printable)."""
    if "\n" not in text or text.endswith(" "):
        return False
    for index, char in enumerate(text):  # (a space is never last here: text[index + 1] exists)
        if (char != "\t" and not _printable(char)) or (char == " " and text[index + 1] in _BREAKS):
            return False
    return True


class _ReadBackError(Exception):
    """What the CLI cannot read back of what it wrote (load_stack_document raises it as yaml.YAMLError)."""


def _read_back_string(text: str) -> str:
    """A string as the CLI reads it back: in a `|` block, a first line break is written as the end of the
    `|` line (so it is lost), and a first tab meets a block whose indentation the scanner must guess."""
    if not _literal_block(text):
        return text
    if text[0] in _BREAKS:
        return text[1:]
    if text[0] == "\t":
        raise _ReadBackError(
            f"yaml: found a tab character where an indentation space is expected: the Pulumi CLI writes the "
            f"stack file back with {json.dumps(text)} as a `|` block starting with a tab, and cannot read it again"
        )
    return text


def _read_back(value: Any) -> Any:
    """A decoded value as the CLI reads it back (the keys of a mapping were read back by construct_mapping)."""
    if isinstance(value, dict):
        return {key: _read_back(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_read_back(item) for item in value]
    if isinstance(value, str) and not isinstance(value, GoBytes):
        return _read_back_string(value)
    return value


def _go_yaml_float(number: float) -> str:
    """How go-yaml's encoder writes a float64: strconv 'g', shortest (-0 keeps its sign); .inf, -.inf, .nan."""
    if math.isnan(number):
        return ".nan"
    if math.isinf(number):
        return ".inf" if number > 0 else "-.inf"
    return "-0" if number == 0 and math.copysign(1, number) < 0 else _go_print_float(number)


def _go_key(key: Any, position: int) -> tuple[Any, ...]:
    """A key as a Go map[interface{}]interface{} tells keys apart: kind and value (-0.0 is 0.0; a NaN is
    no other key, not even another NaN)."""
    if isinstance(key, GoBytes):
        return ("bytes", key.raw)
    if isinstance(key, float) and math.isnan(key):
        return ("nan", position)
    if isinstance(key, GoTime):
        return ("time", key.text)
    kind = "null" if key is None else "bool" if isinstance(key, bool) else type(key).__name__
    return (kind, key)


def _written_key(key: Any) -> str:
    """The text go-yaml's encoder writes for a key, as its decoder compares keys (without quotes)."""
    if isinstance(key, GoBytes):
        return base64.b64encode(key.raw).decode()
    if isinstance(key, str):
        return _read_back_string(key)
    if isinstance(key, float):
        return _go_yaml_float(key)
    if isinstance(key, GoTime):
        return key.rfc3339 or key.text
    return "null" if key is None else go_print(key)


def _merged(mapping: dict[Any, Any], source: Any) -> None:
    """go-yaml's `<<`: keys already there stay; of several sources, the first to give a key wins."""
    sources = source if isinstance(source, list) else [source]
    if not sources or not all(isinstance(item, dict) for item in sources):
        raise _ReadBackError("could not unmarshal map: yaml: map merge requires map or sequence of maps as the value")
    for item in sources:
        for key, value in item.items():
            mapping.setdefault(key, value)


class _Loader(yaml.SafeLoader):
    """pyyaml's parser with go-yaml v3's resolution of plain scalars."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # What the CLI would fail on when it reads the file back (reported after the first reading's errors).
        self.read_back_errors: list[str] = []

    def resolve(self, kind: type[Node], value: Any, implicit: Any) -> str:
        if kind is ScalarNode and implicit[0]:
            return _MERGE if value == "<<" else _PLAIN
        return str(super().resolve(kind, value, implicit))  # type: ignore[no-untyped-call]

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A nested mapping as the program receives it: the CLI prints a key that is not a string with %v
        (Python would also merge 1 and true), after writing the file back and reading it again."""
        self.flatten_mapping(node)
        decoded: dict[tuple[Any, ...], tuple[Any, Any, str]] = {}  # the Go map: key, value, where it was written
        for position, (key_node, value_node) in enumerate(node.value):
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, dict | list):  # go-yaml's words, without Go's %#v of the key
                raise ConstructorError(None, None, "yaml: invalid map key", key_node.start_mark)
            value = self.construct_object(value_node, deep=deep)
            source = key_node.value if isinstance(key_node, ScalarNode) else go_print(key)
            decoded[_go_key(key, position)] = (key, value, f"`{source}` (line {key_node.start_mark.line + 1})")
        written: dict[str, str] = {}
        mapping: dict[Any, Any] = {}
        floats: set[Any] = set()  # keys of `mapping` a float key gave
        merge: list[Any] = []
        for identity, (key, value, where) in decoded.items():
            try:
                text = _written_key(key)
            except _ReadBackError as error:
                self.read_back_errors.append(f"the key {where}: {error}")
                continue
            if text in written:
                self.read_back_errors.append(
                    f"could not unmarshal map: yaml: unmarshal errors: mapping key {json.dumps(text)} already defined "
                    f"(the Pulumi CLI writes the stack file back with the keys {written[text]} and {where} both as "
                    f"{text})"
                )
                continue
            written[text] = where
            # The encoder looks each value up by its key, and no NaN finds one.
            read_value = None if identity[0] == "nan" else value
            if key == "<<":
                merge.append(read_value)  # even quoted, written plain, so read back as a merge
                continue
            read = key if isinstance(key, GoBytes) else text if isinstance(key, str) else go_print(resolve_plain(text))
            # Read back, -0.0 and 0 are the same key 0: the encoder writes the float after the int.
            if read in floats and not isinstance(key, float):
                continue
            mapping[read] = read_value
            if isinstance(key, float):
                floats.add(read)
        for source in merge:
            try:
                _merged(mapping, source)
            except _ReadBackError as error:
                self.read_back_errors.append(str(error))
        return mapping


def _construct_plain(loader: _Loader, node: ScalarNode) -> Any:
    return resolve_plain(str(loader.construct_scalar(node)))


def _cannot_decode(text: str, tag: str, node: ScalarNode) -> ConstructorError:
    """go-yaml's words for an explicit tag the text is not, naming the tag the text resolves to (not a timestamp:
    only !!timestamp tries that, and it fails)."""
    value = resolve_plain(text, timestamps=False)
    resolved = "!!null" if value is None else "!!bool" if isinstance(value, bool) else f"!!{type(value).__name__}"
    return ConstructorError(None, None, f"yaml: cannot decode {resolved} `{text}` as a !!{tag}", node.start_mark)


def _explicit(tag: str, kinds: tuple[type, ...]) -> Any:
    """An explicit !!int, !!float, !!bool or !!null: resolved as go-yaml does, refused when it is not one."""

    def construct(loader: _Loader, node: ScalarNode) -> Any:
        text = str(loader.construct_scalar(node))
        value = resolve_plain(text, timestamps=False)
        if tag == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if value is None and tag == "null":
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and tag != "bool"):
            raise _cannot_decode(text, tag, node)
        return value

    return construct


def _construct_timestamp(loader: _Loader, node: ScalarNode) -> Any:
    text = str(loader.construct_scalar(node))
    stamp = _go_timestamp(text)
    if stamp is None:
        raise _cannot_decode(text, "timestamp", node)
    return stamp


def _construct_binary(loader: _Loader, node: ScalarNode) -> Any:
    raw = base64.b64decode(str(loader.construct_scalar(node)))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return GoBytes(raw)


_Loader.add_constructor(_PLAIN, _construct_plain)
_Loader.add_constructor("tag:yaml.org,2002:int", _explicit("int", (int,)))
_Loader.add_constructor("tag:yaml.org,2002:float", _explicit("float", (float,)))
_Loader.add_constructor("tag:yaml.org,2002:bool", _explicit("bool", (bool,)))
_Loader.add_constructor("tag:yaml.org,2002:null", _explicit("null", ()))
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)
_Loader.add_constructor("tag:yaml.org,2002:binary", _construct_binary)


@dataclass(frozen=True)
class Entry:
    """One `key: value` of the config mapping, and the line its key is on."""

    key: Any
    value: Any
    line: int


@dataclass(frozen=True)
class Duplicate:
    """go-yaml's error for a mapping key given twice (the CLI then refuses the whole file)."""

    key: str
    line: int
    first_line: int

    def __str__(self) -> str:
        return f"line {self.line}: mapping key {json.dumps(self.key)} already defined at line {self.first_line}"


@dataclass(frozen=True)
class StackDocument:
    """The config entries of a stack file in order, and go-yaml's duplicate-key errors.

    `duplicates` pairs each error with the index of the config entry it is about (None: above `config:`)."""

    entries: list[Entry]
    duplicates: list[tuple[int | None, Duplicate]]
    config_is_mapping: bool = True


def _key_text(node: Node) -> str:
    return str(node.value) if isinstance(node, ScalarNode) else ""


def _level_duplicates(node: MappingNode) -> list[tuple[int, Duplicate]]:
    """go-yaml compares each key with every later one by kind and text (so `"a"` and `a` are the same)."""
    keys = [key for key, _ in node.value]
    return [
        (later_index, Duplicate(_key_text(later), later.start_mark.line + 1, earlier.start_mark.line + 1))
        for index, earlier in enumerate(keys)
        for later_index, later in enumerate(keys[index + 1 :], start=index + 1)
        if type(earlier) is type(later) and _key_text(earlier) == _key_text(later)
    ]


def _nested_duplicates(node: Node) -> list[Duplicate]:
    """A mapping with a duplicate key is reported and not decoded further, as go-yaml does."""
    if isinstance(node, SequenceNode):
        return [found for item in node.value for found in _nested_duplicates(item)]
    if not isinstance(node, MappingNode):
        return []
    level = [duplicate for _, duplicate in _level_duplicates(node)]
    return level or [found for _, value in node.value for found in _nested_duplicates(value)]


def _go_type(value: Any) -> str:
    """The Go type go-yaml decodes a value into (as %T names it)."""
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, GoTime):
        return "time.Time"
    if isinstance(value, bool | str):
        return "bool" if isinstance(value, bool) else "string"
    if isinstance(value, int):
        return "int" if _INT64[0] <= value <= _INT64[1] else "uint64"
    return "float64"


def load_stack_document(text: str) -> StackDocument:
    """Parse a stack file; raises yaml.YAMLError on text that is not YAML."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None or (isinstance(root, ScalarNode) and resolve_plain(root.value) is None):
            return StackDocument([], [])
        if not isinstance(root, MappingNode):  # the CLI's words, with Go's name of what it found
            raise yaml.YAMLError(f"expected project to be an object, was '{_go_type(loader.construct_object(root))}'")
        top: list[tuple[int | None, Duplicate]] = [(None, duplicate) for _, duplicate in _level_duplicates(root)]
        if top:
            return StackDocument([], top)
        config = next((value for key, value in root.value if _key_text(key) == "config"), None)
        if config is None or (isinstance(config, ScalarNode) and resolve_plain(config.value) is None):
            return StackDocument([], [])
        if not isinstance(config, MappingNode):
            return StackDocument([], [], config_is_mapping=False)
        duplicates: list[tuple[int | None, Duplicate]] = list(_level_duplicates(config))
        for index, (_, value) in enumerate(config.value):
            duplicates.extend((index, duplicate) for duplicate in _nested_duplicates(value))
        if not duplicates:
            loader.flatten_mapping(config)  # a `<<:` merge in the config mapping itself
        entries = [
            Entry(
                loader.construct_object(key, deep=True),
                loader.construct_object(value, deep=True),
                key.start_mark.line + 1,
            )
            for key, value in config.value
        ]
        if duplicates:  # the CLI stops at them, before it writes the file back
            return StackDocument(entries, duplicates)
        read_back = []
        for entry in entries:
            try:
                read_back.append(Entry(entry.key, _read_back(entry.value), entry.line))
            except _ReadBackError as error:
                loader.read_back_errors.append(f"the value of the key on line {entry.line}: {error}")
        if loader.read_back_errors:  # the CLI stops at the first
            raise yaml.YAMLError(loader.read_back_errors[0])
        return StackDocument(read_back, [])
    finally:
        loader.dispose()


def config_values(text: str) -> dict[Any, Any]:
    """A stack file's config mapping, its values read as the CLI reads them (`off` is a string)."""
    return {entry.key: entry.value for entry in load_stack_document(text).entries}


# --- the strings the language host hands the program --------------------------------------------


class UnsupportedValueError(ValueError):
    """A value the CLI cannot store: it refuses the whole file, in these words."""


def _digits(number: float) -> tuple[str, str, int]:
    """(sign, shortest significant digits, decimal exponent of the first digit) of a finite float."""
    sign, figures, exponent = Decimal(repr(number)).as_tuple()
    text = "".join(str(figure) for figure in figures).rstrip("0") or "0"
    return ("-" if sign else ""), text, int(exponent) + len(figures) - 1


def _check_finite(number: float) -> None:
    if math.isnan(number):
        raise UnsupportedValueError("json: unsupported value: NaN")
    if math.isinf(number):
        raise UnsupportedValueError(f"json: unsupported value: {'+' if number > 0 else '-'}Inf")


def go_json_float(number: float) -> str:
    """encoding/json's float64: shortest digits, exponent form below 1e-6 and from 1e21 (zero is 0)."""
    _check_finite(number)
    if number == 0:
        return "0"
    if 1e-6 <= abs(number) < 1e21:
        return format(Decimal(repr(number)).normalize(), "f")
    sign, text, power = _digits(number)
    mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
    return f"{sign}{mantissa}e{'+' if power >= 0 else '-'}{abs(power)}"


def _go_print_float(number: float) -> str:
    """fmt's %v of a float64 (strconv 'g', shortest; exponent form below 1e-4 and from 1e6)."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == 0:
        return "0"
    sign, text, power = _digits(number)
    if power < -4 or power >= 6:
        mantissa = text[0] + (f".{text[1:]}" if len(text) > 1 else "")
        return f"{sign}{mantissa}e{'+' if power >= 0 else '-'}{abs(power):02d}"
    return format(Decimal(repr(number)).normalize(), "f")


def go_print(value: Any) -> str:
    """fmt.Sprintf("%v", value) of a decoded scalar: how the CLI turns a non-string key into text."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_print_float(value)
    if isinstance(value, GoTime):
        return value.text
    return str(value)


_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def _go_json_string(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    for char, escaped in _HTML_ESCAPES.items():
        quoted = quoted.replace(char, escaped)
    return quoted


def _go_json(value: Any) -> str:
    """encoding/json of a decoded value: compact, keys sorted, HTML characters escaped, Go's numbers. An integer
    beyond int64 is a float64 (the CLI reads the JSON of an array or object back: json.Number's Int64 fails)."""
    if isinstance(value, dict):
        items = {key if isinstance(key, str) else go_print(key): item for key, item in value.items()}
        return "{" + ",".join(f"{_go_json_string(key)}:{_go_json(items[key])}" for key in sorted(items)) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_go_json(item) for item in value) + "]"
    if isinstance(value, str | GoTime):
        return _go_json_string(value if isinstance(value, str) else value.text)
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float) or not _INT64[0] <= value <= _INT64[1]:
        return go_json_float(float(value))
    return str(value)


def wire_value(value: Any) -> str:
    """The string the language host passes the program for a (non-secret) stack-file value."""
    if value is None:
        return ""  # the CLI warns "No value for configuration key" and passes ""
    if isinstance(value, GoBytes):
        raise UnsupportedValueError("grpc: error while marshaling: string field contains invalid UTF-8")
    if isinstance(value, str):
        return value
    if isinstance(value, GoTime):
        return value.text
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # alone, a uint64 keeps its digits
    try:
        return _go_json(value)  # numbers and booleans print as in JSON; arrays and objects are JSON
    except UnsupportedValueError as error:
        # The CLI makes the JSON while it decodes the file (config.Map), so it refuses the file in these words.
        within = "json: error calling MarshalJSON for type config.object: " if isinstance(value, dict | list) else ""
        raise UnsupportedValueError(f"could not unmarshal map: {within}{error}") from None
