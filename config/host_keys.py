"""SSH host keys as the settings give them (meshlab:sshHostKeys, meshlab:sshBastionHostKey) and as the
connections pin them: one OpenSSH public key line, "TYPE BASE64" (a trailing comment is dropped).

Parsing only; validation (config/validation.py) reports problems with key and value.
"""

from __future__ import annotations

import base64
import binascii
import struct
from collections.abc import Iterable

# The host key types a host may present, in the order the command provider's SSH client (Go's
# golang.org/x/crypto/ssh, defaultHostKeyAlgos of v0.58.0) asks for them: a host presents the first
# of these it has, so that is the key to pin. rsa-sha2-256/512 are signatures with an ssh-rsa key.
PROVIDER_HOST_KEY_ORDER = (
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "ssh-ed25519",
)


def host_key_problem(line: str) -> str:
    """Why `line` is not one OpenSSH public host key ("TYPE BASE64 [COMMENT]"), or ''."""
    fields = line.split()
    if len(fields) < 2:
        return "not an OpenSSH public key line: TYPE BASE64 (e.g. ssh-ed25519 AAAAC3Nza...)"
    key_type, encoded = fields[0], fields[1]
    if key_type not in PROVIDER_HOST_KEY_ORDER:
        return f"key type {key_type} is not one of {', '.join(PROVIDER_HOST_KEY_ORDER)}"
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return "the key is not base64"
    # The blob starts with its own type as an SSH string (RFC 4253 section 6.6).
    if len(blob) < 4:
        return "the key is too short"
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length] != key_type.encode():
        return f"the key's data is not a {key_type} key"
    return ""


def pinned(line: str) -> str:
    """The form a connection pins: "TYPE BASE64", without a comment or surrounding space."""
    return " ".join(line.split()[:2])


def parse_host_key_entry(entry: str) -> tuple[str, str]:
    """A `NAME=TYPE BASE64` entry of meshlab:sshHostKeys as (NAME, KEY); ValueError when malformed."""
    name, equals, key = entry.partition("=")
    name, key = name.strip(), key.strip()
    if not equals or not name:
        raise ValueError("not NAME=KEY (a node's name, then its public host key: server1=ssh-ed25519 AAAA...)")
    problem = host_key_problem(key)
    if problem:
        raise ValueError(problem)
    return name, pinned(key)


def parse_host_keys(entries: Iterable[str]) -> dict[str, str]:
    """meshlab:sshHostKeys as {node name: pinned key}; ValueError on the first malformed entry."""
    return dict(parse_host_key_entry(entry) for entry in entries)
