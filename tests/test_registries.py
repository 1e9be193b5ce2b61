"""Registry mirrors, logins, the embedded mirror and RKE2's artifacts: the settings, registries.yaml as RKE2
documents it (rke2-docs install/private_registry.md, install/registry_mirror.md), and how the program wires
them into the node steps (under mocks)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components.cluster.files import registries_digest_text, registries_document, rke2_config
from config import images, versions
from config.loader import StackConfig, settings_from_config
from config.registries import MirrorEntry, expand_mirrors, parse_mirror
from config.settings import EMBEDDED_REGISTRY_PORT, Settings
from config.validation import SettingsError
from tests.test_cluster_layer import copied_text, script_inputs, step
from tools.render import SECRET, with_overrides

MIRRORS = "meshlab:registryMirrors"
CREDENTIALS = "meshlab:registryCredentials"
CA = "meshlab:registryCaPem"
ARTIFACTS = "meshlab:rke2Artifacts"
LOGIN = {"mirror.example:5000": {"username": "robot", "password": "s3cret:with colon"}}
PEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2FsYWIgdGVzdCBDQQ==\n-----END CERTIFICATE-----\n"


def settings_with(stack_configs: dict[str, StackConfig], overrides: dict[str, Any], secret: bool = False) -> Settings:
    config = with_overrides(stack_configs["lab"], overrides)
    if secret:
        config = StackConfig(config.values, config.secret_keys | {CREDENTIALS})
    return settings_from_config(config)


def problems(stack_configs: dict[str, StackConfig], overrides: dict[str, Any], secret: bool = True) -> list[str]:
    try:
        settings_with(stack_configs, overrides, secret)
    except SettingsError as error:
        return [str(problem) for problem in error.problems]
    return []


# --- the registries the lab pulls from ----------------------------------------------------------


def test_the_lab_pulls_from_the_registries_of_its_pinned_and_locked_images():
    registries = images.lab_registries()
    # Not vacuous: the lock is read, and every registry of it and of meshlab's own pins is there.
    assert len(images.locked_images()) > 10
    for image in [*images.pinned_images(), *(locked.image for locked in images.locked_images())]:
        assert images.registry_of(image) in registries, image
    assert "docker.io" in registries and "ghcr.io" in registries  # RKE2's and kube-vip's
    assert list(registries) == sorted(set(registries))


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("nginx:1.27", "docker.io"),
        ("rancher/hardened-etcd:v3.5.21", "docker.io"),
        ("docker.io/istio/proxyv2:1.27.0", "docker.io"),
        ("index.docker.io/library/busybox:1.37.0", "docker.io"),
        ("quay.io/prometheus/prometheus:v3.5.0", "quay.io"),
        ("registry.example:5000/team/app@sha256:" + "a" * 64, "registry.example:5000"),
        ("localhost/app:1", "localhost"),
    ],
)
def test_registry_of_an_image_reference(image, registry):
    assert images.registry_of(image) == registry


# --- registries.yaml ----------------------------------------------------------------------------


def test_by_default_the_embedded_mirror_serves_every_lab_registry_and_nothing_else(stack_configs):
    settings = settings_with(stack_configs, {})
    document = registries_document(settings)
    assert document == {"mirrors": {registry: {} for registry in images.lab_registries()}}
    first = settings.topology.servers[0]
    assert yaml.safe_load(rke2_config(first, "first-server", settings, "t"))["embedded-registry"] is True
    # A server flag: agents do not get it (RKE2 refuses unknown agent flags).
    agent = settings.topology.agents[0]
    assert "embedded-registry" not in yaml.safe_load(rke2_config(agent, "agent", settings, "t"))


def test_without_the_embedded_mirror_and_mirrors_there_is_no_registries_file(stack_configs):
    settings = settings_with(stack_configs, {"meshlab:embeddedRegistry": False})
    assert registries_document(settings) is None
    first = settings.topology.servers[0]
    assert "embedded-registry" not in yaml.safe_load(rke2_config(first, "first-server", settings, "t"))


def test_a_mirror_for_every_registry_keeps_a_registrys_own_first(stack_configs):
    settings = settings_with(
        stack_configs,
        {
            MIRRORS: json.dumps(["*=https://mirror.example:5000", "quay.io=http://quay-cache.example"]),
            CREDENTIALS: json.dumps(LOGIN),
            CA: PEM,
        },
        secret=True,
    )
    document = registries_document(settings)
    assert document is not None
    mirrors = document["mirrors"]
    assert set(mirrors) == set(images.lab_registries())
    assert mirrors["quay.io"] == {"endpoint": ["http://quay-cache.example", "https://mirror.example:5000"]}
    assert mirrors["docker.io"] == {"endpoint": ["https://mirror.example:5000"]}
    # The login and the CA are for the host containerd talks to; the http mirror gets no TLS settings.
    assert document["configs"] == {
        "mirror.example:5000": {
            "auth": {"username": "robot", "password": "s3cret:with colon"},
            "tls": {"ca_file": "/etc/rancher/rke2/meshlab-registry-ca.pem"},
        }
    }


def test_the_digest_text_tracks_a_new_password_without_holding_it(stack_configs):
    def text(password: str) -> str:
        login = {"mirror.example:5000": {"username": "robot", "password": password}}
        settings = settings_with(
            stack_configs,
            {MIRRORS: json.dumps(["docker.io=https://mirror.example:5000"]), CREDENTIALS: json.dumps(login)},
            secret=True,
        )
        document = registries_document(settings)
        assert document is not None
        return registries_digest_text(document)

    first, second = text("first-password"), text("second-password")
    assert first != second
    assert "first-password" not in first and "second-password" not in second
    assert "robot" in first


def test_expand_mirrors_adds_no_endpoint_twice():
    entries = [parse_mirror("*=https://m.example"), parse_mirror("docker.io=https://m.example")]
    assert expand_mirrors(entries, ["docker.io", "quay.io"]) == {
        "docker.io": ["https://m.example"],
        "quay.io": ["https://m.example"],
    }
    assert parse_mirror(" ghcr.io = https://m.example/ ") == MirrorEntry("ghcr.io", "https://m.example")


# --- validation: key and value named ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {ARTIFACTS: "relative/dir"},
            "meshlab:rke2Artifacts = relative/dir: expected empty (nodes download RKE2), download (the workstation "
            "downloads it once), or an absolute directory holding the release's artifacts",
        ),
        (
            {MIRRORS: json.dumps(["docker.io"])},
            "meshlab:registryMirrors[0] = docker.io: not of the form REGISTRY=URL",
        ),
        (
            {MIRRORS: json.dumps(["docker.io=ftp://mirror.example"])},
            "meshlab:registryMirrors[0] = docker.io=ftp://mirror.example: 'ftp://mirror.example' is not an http:// or",
        ),
        (
            {MIRRORS: json.dumps(["Docker_Hub=https://mirror.example"])},
            "meshlab:registryMirrors[0] = Docker_Hub=https://mirror.example: 'Docker_Hub' is not a registry host",
        ),
        (
            {MIRRORS: json.dumps(["quay.io=https://m.example", "quay.io=https://m.example"])},
            "meshlab:registryMirrors[1] = quay.io=https://m.example: listed twice",
        ),
        (
            {MIRRORS: json.dumps(["docker.io=https://mirror.example:99999"])},
            "meshlab:registryMirrors[0] = docker.io=https://mirror.example:99999: 'https://mirror.example:99999' is",
        ),
        (
            {CREDENTIALS: "not json"},
            'meshlab:registryCredentials = [secret]: not a JSON object {"HOST": {"username": "...", "password": "',
        ),
        (
            {CREDENTIALS: json.dumps({"mirror.example:5000": {"username": "robot"}})},
            "meshlab:registryCredentials = [secret]: mirror.example:5000: expected exactly the fields username and",
        ),
        (
            {CREDENTIALS: json.dumps({"typo.example": {"username": "u", "password": "p"}})},
            "meshlab:registryCredentials = [secret]: typo.example is neither a mirror endpoint's host nor a registry "
            "the lab pulls from",
        ),
        (
            {CA: "not a certificate"},
            "meshlab:registryCaPem = not a certificate...: not a PEM certificate",
        ),
        (
            {CA: PEM, MIRRORS: json.dumps(["docker.io=http://plain.example"])},
            "meshlab:registryCaPem = -----BEGIN CERTIFICATE-----",
        ),
    ],
)
def test_bad_registry_and_artifact_settings_are_refused_with_key_and_value(stack_configs, overrides, expected):
    found = problems(stack_configs, overrides)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]


def test_a_password_never_appears_in_a_problem(stack_configs):
    login = {"typo.example": {"username": "u", "password": "hunter2-password"}}
    found = problems(stack_configs, {CREDENTIALS: json.dumps(login)})
    assert found and not any("hunter2" in line for line in found)


def test_credentials_must_be_stored_encrypted(stack_configs):
    mirror = json.dumps(["docker.io=https://mirror.example:5000"])
    found = problems(stack_configs, {MIRRORS: mirror, CREDENTIALS: json.dumps(LOGIN)}, secret=False)
    assert found == [
        "meshlab:registryCredentials = [secret]: must be stored encrypted: "
        "pulumi config set --secret meshlab:registryCredentials ..."
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        {ARTIFACTS: "download"},
        {ARTIFACTS: "/srv/rke2-artifacts"},
        {MIRRORS: json.dumps(["*=https://mirror.example:5000"]), CREDENTIALS: json.dumps(LOGIN), CA: PEM},
        {MIRRORS: json.dumps(["docker.io=http://10.1.2.3:5000", "my.registry:8443=https://m.example/v2/x"])},
        {CREDENTIALS: json.dumps({"docker.io": {"username": "me", "password": "token"}})},
        {"meshlab:embeddedRegistry": False},
    ],
)
def test_valid_registry_and_artifact_settings_are_accepted(stack_configs, overrides):
    assert problems(stack_configs, overrides) == []


# --- the program (under mocks) ---------------------------------------------------------------------


def test_by_default_nodes_download_rke2_and_the_preflight_checks_every_registry(lab):
    preflight = script_inputs(step(lab, "master1", "preflight").inputs["create"])
    endpoints = preflight["MESHLAB_ENDPOINTS"].split()
    assert endpoints[:2] == ["https://get.rke2.io", "https://github.com/rancher/rke2/releases/download"]
    assert {images.registry_endpoint(registry) for registry in images.lab_registries()} == set(endpoints[2:])
    assert str(EMBEDDED_REGISTRY_PORT) in preflight["MESHLAB_PORTS"].split()
    install = script_inputs(step(lab, "worker1", "install").inputs["create"])
    assert install["MESHLAB_RKE2_INSTALL_URL"] == "https://get.rke2.io" and "MESHLAB_RKE2_ARTIFACTS" not in install
    assert not lab.of_type("meshlab:cluster:Rke2Artifacts")
    # registries.yaml reaches every node, and is not secret without logins.
    for node in ("master1", "worker3"):
        assert yaml.safe_load(copied_text(lab, node, "registries"))["mirrors"]["docker.io"] == {}


def test_artifact_mode_copies_the_verified_set_to_every_node_and_downloads_nothing_there(render_with):
    rendering = render_with({ARTIFACTS: "/srv/rke2"})
    [artifacts] = rendering.of_type("meshlab:cluster:Rke2Artifacts")
    assert artifacts.inputs["directory"] == "/srv/rke2"
    fetch = rendering.named("cluster-rke2-artifacts-fetch")
    assert fetch.inputs["environment"]["MESHLAB_ARTIFACT_DIR"] == "/srv/rke2"
    assert "MESHLAB_ARTIFACT_BASE_URL" not in fetch.inputs["environment"]  # air gap: nothing downloaded
    for node in ("master1", "master2", "master3", "worker1", "worker2", "worker3"):
        install = script_inputs(step(rendering, node, "install").inputs["create"])
        assert "MESHLAB_RKE2_INSTALL_URL" not in install
        directory = install["MESHLAB_RKE2_ARTIFACTS"]
        copies = [
            registration
            for registration in rendering.of_type("command:remote:CopyToRemote")
            if registration.name.startswith(f"cluster-{node}-artifact-")
        ]
        assert sorted(copy.inputs["remotePath"] for copy in copies) == sorted(
            f"{directory}/{name}"
            for name in (*versions.Rke2Artifacts("v1.32.7+rke2r1", "amd64").node_files, "meshlab-artifacts.sha256")
        )
        # The install waits for every copy, and each copy for the workstation's verification.
        install_step = step(rendering, node, "install")
        assert all(install_step.depends_on(copy) for copy in copies)
        assert all(copy.depends_on(fetch) for copy in copies)
    preflight = script_inputs(step(rendering, "master1", "preflight").inputs["create"])
    assert not any("rke2" in url or "github.com" in url for url in preflight["MESHLAB_ENDPOINTS"].split())


def test_download_mode_fills_a_per_version_cache(render_with):
    rendering = render_with({ARTIFACTS: "download", "meshlab:imageCacheDir": "/var/cache/meshlab"})
    environment = rendering.named("cluster-rke2-artifacts-fetch").inputs["environment"]
    assert environment["MESHLAB_ARTIFACT_DIR"] == "/var/cache/meshlab/rke2/v1.32.7+rke2r1-amd64"
    assert environment["MESHLAB_ARTIFACT_BASE_URL"] == (
        "https://github.com/rancher/rke2/releases/download/v1.32.7%2Brke2r1"
    )
    assert environment["MESHLAB_ARTIFACT_INSTALLER_URL"].endswith("/rancher/rke2/v1.32.7%2Brke2r1/install.sh")


def test_logins_make_registries_yaml_secret_and_mirrors_steer_the_preflight(render_with):
    rendering = render_with(
        {MIRRORS: json.dumps(["*=https://mirror.example:5000"]), CREDENTIALS: json.dumps(LOGIN)},
        secret_keys=frozenset({CREDENTIALS}),
    )
    source = step(rendering, "worker2", "copy-registries").inputs["source"]
    assert source == SECRET
    preflight = script_inputs(step(rendering, "worker2", "preflight").inputs["create"])
    endpoints = preflight["MESHLAB_ENDPOINTS"].split()
    assert "https://mirror.example:5000/v2/" in endpoints
    assert not any(url.startswith("https://registry-1.docker.io") for url in endpoints)
    # A new password restarts RKE2 (its start digest changes); the password is in no plain input.
    other = render_with(
        {
            MIRRORS: json.dumps(["*=https://mirror.example:5000"]),
            CREDENTIALS: json.dumps({"mirror.example:5000": {"username": "robot", "password": "another"}}),
        },
        secret_keys=frozenset({CREDENTIALS}),
    )
    digest = script_inputs(step(rendering, "worker2", "start").inputs["create"])["MESHLAB_CONFIG_DIGEST"]
    assert digest != script_inputs(step(other, "worker2", "start").inputs["create"])["MESHLAB_CONFIG_DIGEST"]
    for registration in rendering.resources():
        assert "s3cret" not in json.dumps(registration.inputs)


def test_without_the_embedded_mirror_its_port_need_not_be_free(render_with):
    rendering = render_with({"meshlab:embeddedRegistry": False})
    preflight = script_inputs(step(rendering, "worker1", "preflight").inputs["create"])
    assert preflight["MESHLAB_PORTS"].split() == ["10250"]
    existing = render_with({"meshlab:embeddedRegistry": False}, stack="prod")
    [check] = [r for r in existing.of_type("command:local:Command") if r.name == "hosts-preflight-check"]
    assert "5001" not in check.inputs["environment"]["MESHLAB_AGENT_PORTS"].split()
