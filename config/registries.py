"""Registry mirrors and logins as the settings write them (meshlab:registryMirrors, registryCredentials).

Parsing only; validation (config/validation.py) reports problems with key and value, and the cluster
layer (components/cluster/files.py) turns the parsed form into RKE2's registries.yaml.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

# Every registry the lab pulls from (config.images.lab_registries()), in a mirror entry.
EVERY_REGISTRY = "*"
# host[:port]: a DNS name or IPv4 address, as image references and registries.yaml name registries.
_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?$")
_ENDPOINT = re.compile(r"^(https?)://([^\s/?#@]+)(/[^\s?#]*)?$")


@dataclass(frozen=True)
class MirrorEntry:
    """One `REGISTRY=URL` entry: pulls from REGISTRY try URL first."""

    registry: str
    endpoint: str

    @property
    def endpoint_host(self) -> str:
        return endpoint_host(self.endpoint)


@dataclass(frozen=True)
class Login:
    username: str
    password: str


def is_host(text: str) -> bool:
    if not _HOST.match(text):
        return False
    _name, _, port = text.partition(":")
    return not port or 0 < int(port) < 65536


def endpoint_host(url: str) -> str:
    match = _ENDPOINT.match(url)
    return match.group(2) if match else ""


def parse_mirror(entry: str) -> MirrorEntry:
    """`REGISTRY=URL`; ValueError says what is wrong."""
    registry, equals, endpoint = (part.strip() for part in entry.partition("="))
    if not equals or not registry or not endpoint:
        raise ValueError("not of the form REGISTRY=URL (e.g. docker.io=https://mirror.example:5000)")
    if registry != EVERY_REGISTRY and not is_host(registry):
        raise ValueError(f"{registry!r} is not a registry host (e.g. docker.io, quay.io, registry.example:5000) or *")
    if not _ENDPOINT.match(endpoint) or not is_host(endpoint_host(endpoint)):
        raise ValueError(f"{endpoint!r} is not an http:// or https:// URL of a registry (no user, query or fragment)")
    return MirrorEntry(registry, endpoint.rstrip("/"))


def expand_mirrors(entries: Iterable[MirrorEntry], lab_registries: Iterable[str]) -> dict[str, list[str]]:
    """Registry -> endpoints in order. `*` becomes every lab registry, after the endpoints a registry names
    itself; a registry named explicitly keeps its own first."""
    parsed = list(entries)
    mirrors: dict[str, list[str]] = {}
    for entry in parsed:
        if entry.registry != EVERY_REGISTRY:
            mirrors.setdefault(entry.registry, []).append(entry.endpoint)
    for entry in parsed:
        if entry.registry == EVERY_REGISTRY:
            for registry in lab_registries:
                endpoints = mirrors.setdefault(registry, [])
                if entry.endpoint not in endpoints:
                    endpoints.append(entry.endpoint)
    return dict(sorted(mirrors.items()))


def parse_credentials(text: str) -> dict[str, Login]:
    """The JSON object of meshlab:registryCredentials; ValueError never quotes a password."""
    if not text:
        return {}
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError('not a JSON object {"HOST": {"username": "...", "password": "..."}}') from None
    if not isinstance(document, dict):
        raise ValueError('not a JSON object {"HOST": {"username": "...", "password": "..."}}')
    logins = {}
    for host, login in document.items():
        if not is_host(host):
            raise ValueError(f"{host!r} is not a registry host (e.g. mirror.example:5000)")
        if not isinstance(login, dict) or set(login) != {"username", "password"}:
            raise ValueError(f"{host}: expected exactly the fields username and password")
        if not all(isinstance(login[field], str) and login[field] for field in ("username", "password")):
            raise ValueError(f"{host}: username and password must be non-empty strings")
        if ":" in login["username"]:
            raise ValueError(f"{host}: a username cannot contain ':' (HTTP basic authentication)")
        logins[host] = Login(login["username"], login["password"])
    return logins
