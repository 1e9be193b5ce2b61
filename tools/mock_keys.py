"""Real, deterministic ED25519 key pairs for renderings under mocks: a VM's seed installs its host
key, and sshd on a guest of the VM tier refuses a key that is not one. Never for a real stack (the
seed is a name, not a secret); pulumi-tls makes those.

The public key is derived as RFC 8032 section 5.1.5 describes; the files are OpenSSH's formats
(an `authorized_keys` line, and the unencrypted "openssh-key-v1" private key of OpenSSH's PROTOCOL.key).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import struct
from dataclasses import dataclass

# Edwards25519 (RFC 8032 section 5.1): the field prime, the curve constant d, the group order and the base point.
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_BASE_Y = 4 * pow(5, _P - 2, _P) % _P
KEY_TYPE = "ssh-ed25519"


def _recover_x(y: int, sign: int) -> int:
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P) % _P
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * pow(2, (_P - 1) // 4, _P) % _P
    return _P - x if x & 1 != sign else x


_Point = tuple[int, int, int, int]  # extended coordinates X, Y, Z, T with x = X/Z, y = Y/Z, xy = T/Z
_BASE: _Point = (_recover_x(_BASE_Y, 0), _BASE_Y, 1, _recover_x(_BASE_Y, 0) * _BASE_Y % _P)


def _add(p: _Point, q: _Point) -> _Point:
    a = (p[1] - p[0]) * (q[1] - q[0]) % _P
    b = (p[1] + p[0]) * (q[1] + q[0]) % _P
    c = 2 * p[3] * q[3] * _D % _P
    d = 2 * p[2] * q[2] % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _multiply(scalar: int, point: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte private key (its seed)."""
    if len(seed) != 32:
        raise ValueError("an ED25519 private key is 32 bytes")
    digest = bytearray(hashlib.sha512(seed).digest()[:32])
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    x, y, z, _ = _multiply(int.from_bytes(digest, "little"), _BASE)
    inverse = pow(z, _P - 2, _P)
    x, y = x * inverse % _P, y * inverse % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


@dataclass(frozen=True)
class KeyPair:
    public_openssh: str  # "ssh-ed25519 BASE64 COMMENT", as pulumi-tls's publicKeyOpenssh (with a newline)
    private_openssh: str  # "-----BEGIN OPENSSH PRIVATE KEY-----" ...


@functools.cache
def key_pair(name: str) -> KeyPair:
    """The key pair a mock gives the resource `name`: the same for the same name (so computed once)."""
    seed = hashlib.sha256(f"meshlab mock key {name}".encode()).digest()
    public = public_key(seed)
    blob = _string(KEY_TYPE.encode()) + _string(public)
    check = hashlib.sha256(seed).digest()[:4]
    private = check + check + blob + _string(seed + public) + _string(name.encode())
    private += bytes(range(1, 1 + (-len(private) % 8)))
    body = b"openssh-key-v1\0" + _string(b"none") + _string(b"none") + _string(b"")
    body += struct.pack(">I", 1) + _string(blob) + _string(private)
    encoded = base64.b64encode(body).decode()
    lines = [encoded[i : i + 70] for i in range(0, len(encoded), 70)]
    return KeyPair(
        public_openssh=f"{KEY_TYPE} {base64.b64encode(blob).decode()}\n",
        private_openssh="-----BEGIN OPENSSH PRIVATE KEY-----\n"
        + "\n".join(lines)
        + "\n-----END OPENSSH PRIVATE KEY-----\n",
    )
