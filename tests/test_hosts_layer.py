"""The hosts layer as the real program registers it, for every stack on VirtualBox VMs, under mocks."""

from __future__ import annotations

import json
import os
import shutil
import sys
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest
import yaml

from components.hosts.virtualbox.network import macos_dhcp_address
from config import versions
from config.loader import settings_from_config
from config.settings import HOST_ONLY_INTERFACE
from tests.conftest import CLOUD_INIT_SITE, VM_STACKS, expected_resource_count
from tools.mock_keys import key_pair
from tools.render import Registration, Rendering, with_overrides

VM = "meshlab:hosts:VirtualBoxVm"
LOCAL = "command:local:Command"
REMOTE = "command:remote:Command"


def _child(rendering: Rendering, vm: Registration, suffix: str) -> Registration:
    [child] = [r for r in rendering.descendants(vm.urn) if r.name == f"{vm.name}-{suffix}"]
    return child


def _single(rendering: Rendering, type_token: str) -> Registration:
    [resource] = rendering.of_type(type_token)
    return resource


@pytest.mark.parametrize("stack", VM_STACKS)
def test_each_stack_registers_one_vm_per_node(rendered, stack_configs, stack):
    settings = settings_from_config(stack_configs[stack])
    rendering = rendered[stack]
    nodes = settings.topology.nodes
    vms = rendering.of_type(VM)
    assert sorted(vm.name for vm in vms) == sorted(node.name for node in nodes)
    assert {vm.name: vm.inputs["ip"] for vm in vms} == {node.name: str(node.ip) for node in nodes}
    assert {vm.name: vm.inputs["role"] for vm in vms} == {node.name: node.role for node in nodes}
    assert len(rendering.resources()) == expected_resource_count(
        len(settings.topology.servers), len(settings.topology.agents), plugged_ca=settings.mesh.mesh_plugged_ca
    )


@pytest.mark.parametrize("stack", VM_STACKS)
def test_no_vm_depends_on_another(rendered, stack):
    rendering = rendered[stack]
    vms = rendering.of_type(VM)
    vm_trees = {vm.urn: {vm.urn, *(d.urn for d in rendering.descendants(vm.urn))} for vm in vms}
    assert len(vm_trees) >= 5
    for vm_urn, tree in vm_trees.items():
        others = set().union(*(t for urn, t in vm_trees.items() if urn != vm_urn))
        for resource in (r for r in rendering.resources() if r.urn in tree):
            referenced = set(resource.dependencies)
            for urns in resource.property_dependencies.values():
                referenced |= set(urns)
            assert not referenced & others, f"{resource.name} waits for another VM"


def _waits_for(rendering: Rendering, resource: Registration, target: Registration) -> bool:
    """The SDK sends a dependency on a component as one on each of its custom resources."""
    targets = {target.urn} | {d.urn for d in rendering.descendants(target.urn) if d.custom}
    assert targets, f"{target.name} has nothing to wait for"
    return bool(targets & set(resource.dependencies))


def test_steps_run_in_order(rendered):
    rendering = rendered["lab"]
    preflight = _single(rendering, "meshlab:hosts:HostPreflight")
    network = _single(rendering, "meshlab:hosts:HostOnlyNetwork")
    image = _single(rendering, "meshlab:hosts:BaseImage")
    assert _waits_for(rendering, network, preflight)
    assert _waits_for(rendering, image, preflight)
    assert not _waits_for(rendering, image, network)
    for vm in rendering.of_type(VM):
        seed, machine = _child(rendering, vm, "seed"), _child(rendering, vm, "vm")
        ssh, cloud_init = _child(rendering, vm, "ssh"), _child(rendering, vm, "cloud-init")
        for before in (seed, network, image):
            assert _waits_for(rendering, machine, before), f"{machine.name} must wait for {before.name}"
        assert _waits_for(rendering, ssh, machine)
        assert _waits_for(rendering, cloud_init, ssh)
        assert not _waits_for(rendering, seed, machine)


def test_children_are_parented_and_named_from_their_component(rendered):
    rendering = rendered["lab"]
    by_urn = rendering.by_urn()
    for resource in rendering.resources():
        parent = by_urn[resource.parent]
        if parent.type == "pulumi:pulumi:Stack":
            assert resource.type.startswith("meshlab:") and resource.type.count(":") == 2  # only components
        elif resource.type == VM:
            assert parent.type == "meshlab:hosts:LabHosts"  # VMs carry their node's name
        else:
            assert resource.name.startswith(parent.name), f"{resource.name} under {parent.name}"
        root = resource
        while by_urn[root.parent].type != "pulumi:pulumi:Stack":
            root = by_urn[root.parent]
        layer = root.type.split(":")[1]
        # Components belong to the layer they are built in.
        assert resource.type.startswith(f"meshlab:{layer}:") or not resource.type.startswith("meshlab:")


def test_external_steps_delete_before_replace_and_clean_up(rendered):
    rendering = rendered["lab"]
    commands = rendering.of_type(LOCAL)
    assert len(commands) == 3 + 3 * 6
    assert all(command.delete_before_replace for command in commands)
    with_delete = {c.name.rsplit("-", 1)[-1] for c in commands if c.inputs.get("delete")}
    assert with_delete == {"network", "seed", "vm"}
    for command in commands:
        assert command.inputs["interpreter"] == ["bash", "-c"]
        create = command.inputs["create"]
        assert create.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in create
        assert "\nhost_only_mode() {" in create  # the hosts layer's own helpers come with every step


def _environment(command: Registration) -> dict[str, str]:
    return dict(command.inputs["environment"])


@pytest.mark.parametrize("stack", VM_STACKS)
def test_vm_steps_get_sizes_macs_and_addresses_from_settings(rendered, stack_configs, stack):
    settings = settings_from_config(stack_configs[stack])
    topology = settings.topology
    rendering = rendered[stack]
    for vm in rendering.of_type(VM):
        node = next(n for n in topology.nodes if n.name == vm.name)
        env = _environment(_child(rendering, vm, "vm"))
        role = node.role
        assert env["MESHLAB_VM_NAME"] == f"meshlab-{stack}-{node.name}"
        assert env["MESHLAB_VM_GROUP"] == f"/meshlab/{stack}"
        assert int(env["MESHLAB_CPUS"]) == getattr(topology, f"{role}_cpus")
        assert int(env["MESHLAB_MEMORY_MIB"]) == getattr(topology, f"{role}_memory_mib")
        assert int(env["MESHLAB_DISK_GIB"]) == getattr(topology, f"{role}_disk_gib")
        assert env["MESHLAB_HOST_IP"] == str(settings.network.host_ip)
        assert env["MESHLAB_NETMASK"] == str(settings.network.subnet.netmask)

        documents = json.loads(_child(rendering, vm, "seed").revealed_inputs["stdin"])
        network = yaml.safe_load(documents["network-config"])
        host_only = network["ethernets"][HOST_ONLY_INTERFACE]
        nat = network["ethernets"]["nat0"]
        # The MACs cloud-init matches must be the ones VBoxManage gives the NICs.
        assert host_only["match"]["macaddress"].replace(":", "") == env["MESHLAB_MAC_HOST_ONLY"]
        assert nat["match"]["macaddress"].replace(":", "") == env["MESHLAB_MAC_NAT"]
        assert host_only["addresses"] == [f"{node.ip}/{settings.network.subnet.prefixlen}"]
        assert "gateway4" not in host_only and "routes" not in host_only
        assert nat["dhcp4"] is True


def test_macs_are_unique_unicast_and_locally_administered(rendered):
    macs = []
    for stack in VM_STACKS:
        for command in rendered[stack].of_type(LOCAL):
            env = _environment(command)
            macs += [env[k] for k in ("MESHLAB_MAC_NAT", "MESHLAB_MAC_HOST_ONLY") if k in env]
    assert len(macs) == 2 * (6 + 5)
    assert len(set(macs)) == len(macs)
    for mac in macs:
        first = int(mac[:2], 16)
        assert len(mac) == 12 and first & 1 == 0 and first & 2 == 2, mac


def _cloud_config_validator() -> Any:
    if not CLOUD_INIT_SITE.is_dir():
        return None
    if str(CLOUD_INIT_SITE) not in sys.path:
        sys.path.insert(0, str(CLOUD_INIT_SITE))
    # Imported here: the package is unpacked into .cache, not installed.
    from cloudinit.config.schema import get_schema, validate_cloudconfig_schema  # noqa: PLC0415

    def validate(document: dict[str, Any]) -> None:
        validate_cloudconfig_schema(document, get_schema(), strict=True)

    return validate


def test_seed_documents_are_valid_cloud_init(rendered):
    validate = _cloud_config_validator()
    if validate is None:
        # `make test-offline` unpacks cloud-init wherever dpkg-deb exists; only elsewhere do the
        # structural checks below stand alone.
        assert not os.environ.get("CI"), "CI must unpack cloud-init (tools/fetch_cloud_init.sh)"
        assert not shutil.which("dpkg-deb"), "run `make cloud-init-validator` first"
    rendering = rendered["lab"]
    seeds = [_child(rendering, vm, "seed") for vm in rendering.of_type(VM)]
    assert len(seeds) == 6
    for seed in seeds:
        assert seed.inputs["stdin"] == "[secret]", "the seed holds the VM's private host key"
        documents = json.loads(seed.revealed_inputs["stdin"])
        assert set(documents) == {"user-data", "meta-data", "network-config"}
        user_data = documents["user-data"]
        assert user_data.startswith("#cloud-config\n")
        config = yaml.safe_load(user_data)
        hostname = seed.name.removesuffix("-seed")
        assert config["hostname"] == hostname
        [user] = config["users"]
        assert user["ssh_authorized_keys"] == [key_pair("hosts-ssh-key").public_openssh.strip()]
        # The VM's one host key, generated for it: the image's keys deleted (cloud-init generates none
        # when ssh_keys gives one).
        host_key = key_pair(f"{hostname}-host-key")
        assert config["ssh_keys"] == {
            "ed25519_private": host_key.private_openssh,
            "ed25519_public": host_key.public_openssh.strip(),
        }
        assert config["ssh_deletekeys"] is True
        assert user["lock_passwd"] is True and config["ssh_pwauth"] is False
        assert config["ntp"]["enabled"] is True
        meta = yaml.safe_load(documents["meta-data"])
        assert meta["local-hostname"] == hostname
        assert meta["instance-id"].startswith(f"meshlab-lab-{hostname}-")
        if validate is not None:
            validate(config)
    if validate is not None:
        from cloudinit.config.schema import SchemaValidationError  # noqa: PLC0415

        broken = yaml.safe_load(json.loads(seeds[0].revealed_inputs["stdin"])["user-data"])
        broken["ntp"]["enabled"] = "yes"
        with pytest.raises(SchemaValidationError):
            validate(broken)


def test_private_key_is_secret_everywhere(rendered):
    for stack in VM_STACKS:
        rendering = rendered[stack]
        [key] = [r for r in rendering.of_type("tls:index/privateKey:PrivateKey") if r.name == "hosts-ssh-key"]
        assert key.inputs["algorithm"] == "ED25519"
        assert {"privateKeyOpenssh", "privateKeyPem"} <= set(key.additional_secret_outputs)
        remotes = rendering.of_type(REMOTE)
        assert remotes and all("connection" in r.secret_paths for r in remotes)
        for resource in rendering.resources():
            assert "BEGIN OPENSSH PRIVATE KEY" not in json.dumps(resource.inputs), resource.name


def test_user_supplied_key_replaces_the_generated_one(render_with):
    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nusers-own\n-----END OPENSSH PRIVATE KEY-----"
    rendering = render_with(
        {"meshlab:sshPublicKey": "ssh-ed25519 AAAAC3NzaUser me@laptop", "meshlab:sshPrivateKey": private},
        secret_keys=frozenset({"meshlab:sshPrivateKey"}),
    )
    # Only the VMs' host keys are generated, none for the login.
    keys = sorted(r.name for r in rendering.of_type("tls:index/privateKey:PrivateKey"))
    assert keys == sorted(f"{vm.name}-host-key" for vm in rendering.of_type(VM))
    assert len(rendering.resources()) == expected_resource_count(3, 3, generated_key=False)
    for resource in rendering.resources():
        assert "users-own" not in json.dumps(resource.inputs)
    seed = next(r for r in rendering.of_type(LOCAL) if r.name == "master1-seed")
    assert "ssh-ed25519 AAAAC3NzaUser me@laptop" in seed.revealed_inputs["stdin"]
    assert all("connection" in r.secret_paths for r in rendering.of_type(REMOTE))


def test_small_host_profile_is_config_only(render_with):
    rendering = render_with({"meshlab:servers": ["master1=192.168.56.11"], "meshlab:agents": ["worker1=192.168.56.21"]})
    assert sorted(vm.name for vm in rendering.of_type(VM)) == ["master1", "worker1"]
    assert len(rendering.resources()) == expected_resource_count(1, 1)


def test_arm64_guests_use_the_qcow2_image_and_efi(render_with):
    rendering = render_with({"meshlab:guestArch": "arm64"})
    image = versions.UBUNTU_IMAGES["arm64"]
    fetch = next(r for r in rendering.of_type(LOCAL) if r.name == "hosts-image-fetch")
    assert _environment(fetch)["MESHLAB_IMAGE_URL"] == image.url
    assert _environment(fetch)["MESHLAB_IMAGE_FORMAT"] == "qcow2"
    preflight = next(r for r in rendering.of_type(LOCAL) if r.name == "hosts-preflight-check")
    assert _environment(preflight)["MESHLAB_GUEST_ARCH"] == "arm64"
    machine = next(r for r in rendering.of_type(LOCAL) if r.name == "master1-vm")
    env = _environment(machine)
    assert (env["MESHLAB_PLATFORM"], env["MESHLAB_FIRMWARE"], env["MESHLAB_OS_TYPE"]) == (
        "arm",
        "efi",
        image.vbox_os_type,
    )


def test_image_and_network_steps_use_pinned_values(rendered, stack_configs):
    settings = settings_from_config(stack_configs["lab"])
    rendering = rendered["lab"]
    fetch = next(r for r in rendering.of_type(LOCAL) if r.name == "hosts-image-fetch")
    image = versions.UBUNTU_IMAGES["amd64"]
    env = _environment(fetch)
    assert (env["MESHLAB_IMAGE_URL"], env["MESHLAB_IMAGE_SHA256"]) == (image.url, image.sha256)
    network = next(r for r in rendering.of_type(LOCAL) if r.name == "hosts-host-only-network")
    env = _environment(network)
    assert env["MESHLAB_HOST_IP"] == "192.168.56.1"
    assert env["MESHLAB_DHCP_IP"] not in {str(n.ip) for n in settings.topology.nodes}
    # On macOS VirtualBox leases the addresses after the host's own (network_create.sh).
    assert IPv4Address(env["MESHLAB_DHCP_IP"]) == settings.network.host_ip + 1
    assert IPv4Network("192.168.56.0/24").netmask.compressed == env["MESHLAB_NETMASK"]
    preflight = next(r for r in rendering.of_type(LOCAL) if r.name == "hosts-preflight-check")
    wanted = _environment(preflight)["MESHLAB_VMS"].split()
    assert "meshlab-lab-master1:2:4096:40" in wanted and "meshlab-lab-worker3:2:6144:40" in wanted
    assert len(wanted) == 6


def test_the_macos_dhcp_address_is_the_one_after_the_host_and_only_when_it_is_free(stack_configs):
    """On macOS the DHCP range starts right after the host's address: that address must be free."""
    lab = settings_from_config(stack_configs["lab"])
    network, nodes = lab.network, lab.topology.nodes
    assert macos_dhcp_address(network, nodes) == IPv4Address("192.168.56.2")
    crowded = with_overrides(stack_configs["lab"], {"meshlab:agents": ["worker1=192.168.56.2"]})
    crowded_settings = settings_from_config(crowded)
    assert macos_dhcp_address(crowded_settings.network, crowded_settings.topology.nodes) is None
    vip_next = settings_from_config(with_overrides(stack_configs["lab"], {"meshlab:hostOnlyHostIp": "192.168.56.9"}))
    assert macos_dhcp_address(vip_next.network, vip_next.topology.nodes) is None  # .10 is the API VIP
    last = settings_from_config(with_overrides(stack_configs["lab"], {"meshlab:hostOnlyHostIp": "192.168.56.254"}))
    assert macos_dhcp_address(last.network, last.topology.nodes) is None  # .255 is the broadcast address


def test_the_network_step_knows_every_address_the_lab_uses_statically(lab, stack_configs):
    """An adopted network's DHCP server must not lease them (network_create refuses one that does)."""
    settings = settings_from_config(stack_configs["lab"])
    environment = lab.named("hosts-host-only-network").inputs["environment"]
    lines = [line.split() for line in environment["MESHLAB_RESERVED"].splitlines()]
    pool = settings.network.metallb_pool
    assert [str(pool.first), str(pool.last), "meshlab:metallbPool"] in lines
    assert [str(settings.network.vip)] * 2 + ["meshlab:apiVip"] in lines
    for node in settings.topology.nodes:
        key = "meshlab:servers" if node.role == "server" else "meshlab:agents"
        assert [str(node.ip), str(node.ip), key] in lines
    assert len(lines) == len(settings.topology.nodes) + 2
