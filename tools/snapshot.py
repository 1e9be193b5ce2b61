"""A stack's rendering as plain JSON data, for comparing two versions of the program.

    python tools/snapshot.py TREE STACK [--config-file FILE]

Renders STACK with the code and the stack file of the source tree TREE (e.g. a git ref unpacked
into a temporary directory) and prints one JSON document: {"stack", "resources": [{urn, type,
name, parent, custom, dependencies, inputs}]}, or {"stack", "absent": true} when TREE has no
stack file. `tools.diff` runs it in a subprocess per git ref, so each ref is rendered with its
own program, settings models and harness; it calls `snapshot` in-process for the working tree.

Secrets stay secret, yet a changed one is visible: every secret input becomes
"[secret:DIGEST]", DIGEST a hash of the value the program saw (for an encrypted stack-file
value, of its ciphertext). `tools.diff` compares digests and never prints them.

Invalid settings: exit code 2 with the validation message on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import json_format

EXIT_INVALID_CONFIG = 2
SECRET_PREFIX = "[secret:"
# Marker keys of Pulumi's wire format (sdk/python/lib/pulumi/runtime/rpc.py).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def secret_marker(value: Any) -> str:
    return f"{SECRET_PREFIX}{digest(value)}]"


def _secret_digests(value: Any, path: str, found: dict[str, str]) -> None:
    """Digest of every secret in a wire value, keyed by the path the render harness records."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            found[path] = secret_marker(value.get("value"))
            return
        for key, item in value.items():
            _secret_digests(item, f"{path}.{key}" if path else key, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _secret_digests(item, f"{path}[{index}]", found)


def _with_markers(value: Any, path: str, markers: dict[str, str]) -> Any:
    if path in markers:
        return markers[path]
    if isinstance(value, dict):
        return {key: _with_markers(item, f"{path}.{key}" if path else key, markers) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_markers(item, f"{path}[{index}]", markers) for index, item in enumerate(value)]
    return value


def _fingerprinted_secrets(path: Path, values: dict[str, Any], secret_keys: frozenset[str]) -> dict[str, Any]:
    """Encrypted stack-file values, each replaced by a stand-in that differs when its ciphertext does (the
    program knows the form: config.settings.is_secret_placeholder)."""
    raw = (yaml.safe_load(path.read_text()) or {}).get("config") or {}
    return {
        key: (f"[secret {digest(raw[key])}]" if key in secret_keys and key in raw else value)
        for key, value in values.items()
    }


def snapshot(stack: str, config_file: Path | None = None) -> dict[str, Any]:
    """Render `stack` with whatever `config` and `tools` packages are importable, as plain data.

    Raises the tree's SettingsError when the stack's settings are invalid."""
    # Imported here: in a subprocess these must resolve to the tree under comparison.
    from config.loader import StackConfig, read_stack_file, settings_from_config  # noqa: PLC0415
    from tools.render import LabMocks, RecordingMonitor, render, stack_file  # noqa: PLC0415

    path = config_file or stack_file(stack)
    if not path.is_file():
        return {"stack": stack, "absent": True}
    config = read_stack_file(path)
    settings_from_config(config, source=str(path))
    config = StackConfig(_fingerprinted_secrets(path, config.values, config.secret_keys), config.secret_keys)

    markers: dict[str, dict[str, str]] = {}

    class DigestingMonitor(RecordingMonitor):
        def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - gRPC method name
            response = super().RegisterResource(request)
            found: dict[str, str] = {}
            _secret_digests(json_format.MessageToDict(request.object, preserving_proto_field_name=True), "", found)
            markers[response.urn] = found
            return response

    rendering = render(config, stack, monitor=DigestingMonitor(LabMocks()))
    return {
        "stack": stack,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "custom": r.custom,
                "dependencies": r.dependencies,
                "inputs": _with_markers(r.inputs, "", markers.get(r.urn, {})),
            }
            for r in rendering.resources()
        ],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/snapshot.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", type=Path, help="the source tree to render (its own program and stack files)")
    parser.add_argument("stack")
    parser.add_argument("--config-file", type=Path)
    args = parser.parse_args(argv)
    # Run as a script, this file's folder heads sys.path: the tree under comparison must come first.
    tree = str(args.tree.resolve())
    sys.path[:] = [tree, *(entry for entry in sys.path if entry != str(Path(__file__).resolve().parent))]
    from config.validation import SettingsError  # noqa: PLC0415 - only now is the tree importable

    try:
        document = snapshot(args.stack, args.config_file)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID_CONFIG
    json.dump(document, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # The Pulumi runtime's idle worker threads hold up a normal interpreter exit by ~0.4 s.
    os._exit(status)
