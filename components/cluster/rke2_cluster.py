"""`meshlab:cluster:Rke2Cluster`: an HA RKE2 cluster (CIS profile) with Cilium, kube-vip and NFS.

Join order: the first server starts first and waits until kube-vip answers on the VIP; the
other servers join through the VIP one at a time; agents join in parallel once the first
server is Ready. Upgrades follow a separate chain: servers one at a time, then agents one at
a time. The layer is done when every node is Ready and Cilium has rolled out; it hands the
layers above a `ClusterAccess`.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
from pulumi_command import remote

from components.cluster.access import ClusterAccess
from components.cluster.artifacts import ArtifactPlan, Rke2Artifacts
from components.cluster.files import (
    ADMIN_KUBECONFIG_PATH,
    CILIUM_FILE,
    CONFIG_FILE,
    KUBE_VIP_FILE,
    REGISTRIES_FILE,
    REGISTRY_CA_FILE,
    JoinRole,
    NodeFile,
    api_endpoint,
    cilium_helm_chart_config,
    digest,
    kube_vip_manifest,
    nfs_export_line,
    registries_digest_text,
    registries_document,
    registries_yaml,
    rewrite_kubeconfig,
    rke2_config,
)
from components.cluster.nfs import NfsServer
from components.cluster.node import Rke2Node
from components.cluster.steps import NodeTarget, node_step
from components.hosts.output import HostsOutput
from components.sources import Sources
from config import images, versions
from config.registries import expand_mirrors, parse_mirror
from config.settings import Settings, cluster_name

TOKEN_LENGTH = 64


def preflight_endpoints(settings: Settings) -> list[str]:
    """What every node must reach before RKE2 is installed, for the stack's sources: RKE2's download (unless
    the workstation brings the artifacts), and for each registry the lab pulls from its mirrors when it has
    any, else the registry itself."""
    endpoints = [] if settings.sources.rke2_artifacts else [versions.RKE2_INSTALL_URL, versions.RKE2_RELEASES_URL]
    lab_registries = images.lab_registries()
    mirrors = expand_mirrors((parse_mirror(entry) for entry in settings.sources.registry_mirrors), lab_registries)
    for registry in lab_registries:
        for endpoint in mirrors.get(registry) or [images.registry_endpoint(registry)]:
            # A mirror URL with a path of its own is reached as written (containerd adds /v2 to bare hosts).
            url = endpoint if endpoint.count("/") > 2 else f"{endpoint}/v2/"
            if url not in endpoints:
                endpoints.append(url)
    return endpoints


def cilium_workloads(settings: Settings) -> list[str]:
    workloads = ["daemonset/cilium", "deployment/cilium-operator"]
    if settings.cluster.hubble_enabled:
        workloads += ["deployment/hubble-relay", "deployment/hubble-ui"]
    return workloads


class Rke2Cluster(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        hosts: HostsOutput,
        settings: Settings,
        stack: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        servers = [vm for vm in hosts.vms if vm.role == "server"]
        agents = [vm for vm in hosts.vms if vm.role == "agent"]
        super().__init__(
            "meshlab:cluster:Rke2Cluster",
            name,
            {
                "rke2Version": settings.cluster.rke2_version,
                "apiEndpoint": api_endpoint(settings),
                "servers": [vm.node.name for vm in servers],
                "agents": [vm.node.name for vm in agents],
            },
            opts,
        )
        self.cluster_name = cluster_name(stack)
        token = random.RandomPassword(
            f"{name}-token", length=TOKEN_LENGTH, special=False, opts=pulumi.ResourceOptions(parent=self)
        )
        server_files = {CILIUM_FILE: cilium_helm_chart_config(settings), KUBE_VIP_FILE: kube_vip_manifest(settings)}
        # Files every node gets, and what a change of them must restart (RKE2 reads them only at start).
        node_files: dict[NodeFile, pulumi.Input[str]] = {}
        restart_text = ""
        registries = registries_document(settings)
        if registries is not None:
            text = registries_yaml(registries)
            node_files[REGISTRIES_FILE] = pulumi.Output.secret(text) if "configs" in registries else text
            restart_text += registries_digest_text(registries)
        if settings.sources.registry_ca_pem:
            node_files[REGISTRY_CA_FILE] = settings.sources.registry_ca_pem
            restart_text += settings.sources.registry_ca_pem
        endpoints = preflight_endpoints(settings)
        plan = ArtifactPlan.of(settings)
        self.artifacts = (
            Rke2Artifacts(f"{name}-rke2-artifacts", plan=plan, opts=pulumi.ResourceOptions(parent=self))
            if plan
            else None
        )

        def node(
            vm_index: int, role: JoinRole, start_after: list[pulumi.Resource], upgrade_after: list[pulumi.Resource]
        ) -> Rke2Node:
            vm = hosts.vms[vm_index]
            config: pulumi.Output[str] = pulumi.Output.secret(
                token.result.apply(lambda secret: rke2_config(vm.node, role, settings, secret))
            )
            own_files: dict[NodeFile, str] = server_files if role != "agent" else {}
            # The token never changes, so a digest of everything else tracks the files.
            start_digest = digest(rke2_config(vm.node, role, settings, "") + restart_text)
            return Rke2Node(
                f"{name}-{vm.node.name}",
                target=NodeTarget.of(vm, hosts.ssh),
                join_role=role,
                settings=settings,
                ssh_user=hosts.ssh.user,
                files={CONFIG_FILE: config, **node_files, **own_files},
                start_digest=start_digest,
                files_digest=digest(start_digest + "".join(digest(text) for text in own_files.values())),
                endpoints=endpoints,
                artifacts=self.artifacts,
                start_after=start_after,
                upgrade_after=upgrade_after,
                opts=pulumi.ResourceOptions(parent=self),
            )

        self.nodes: list[Rke2Node] = []
        start_after: list[pulumi.Resource] = []
        upgrade_after: list[pulumi.Resource] = []
        for index, vm in enumerate(servers):
            server = node(hosts.vms.index(vm), "first-server" if index == 0 else "server", start_after, upgrade_after)
            start_after, upgrade_after = [server.started], [server.upgraded]
            self.nodes.append(server)
        first_server = self.nodes[0]
        for vm in agents:
            agent = node(hosts.vms.index(vm), "agent", [first_server.started], upgrade_after)
            upgrade_after = [agent.upgraded]
            self.nodes.append(agent)

        export_path, allowed_clients = nfs_export_line(settings)
        self.nfs = NfsServer(
            f"{name}-nfs",
            target=first_server.target,
            path=export_path,
            allowed_clients=allowed_clients,
            depends_on=[first_server.prepare],
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.ready = node_step(
            f"{name}-ready",
            target=first_server.target,
            script="cluster_ready",
            inputs={
                "MESHLAB_NODES": " ".join(n.target.name for n in self.nodes),
                "MESHLAB_TIMEOUT_SECONDS": str(settings.cluster.node_ready_timeout_seconds),
                "MESHLAB_WORKLOADS": " ".join(cilium_workloads(settings)),
            },
            parent=self,
            depends_on=[n.started for n in self.nodes],
        )
        # Logging off and stdout secret: the admin kubeconfig holds a client key.
        read_kubeconfig = remote.Command(
            f"{name}-kubeconfig",
            connection=first_server.target.connection,
            create=f"sudo -n cat {ADMIN_KUBECONFIG_PATH}",
            logging=remote.Logging.NONE,
            triggers=[first_server.target.vm.uuid],
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.ready],
                deleted_with=first_server.target.vm.machine,
                additional_secret_outputs=["stdout", "stderr"],
            ),
        )
        endpoint = api_endpoint(settings)
        context = self.cluster_name
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(
            read_kubeconfig.stdout.apply(lambda text: rewrite_kubeconfig(text, endpoint, context))
        )
        # With a cluster identifier, a new kubeconfig (e.g. a rotated client certificate) updates the
        # provider instead of replacing it and everything deployed through it.
        self.provider = k8s.Provider(
            f"{name}-kubernetes",
            kubeconfig=self.kubeconfig,
            cluster_identifier=self.cluster_name,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.ready]),
        )
        self.access = ClusterAccess(
            name=self.cluster_name,
            provider=self.provider,
            api_endpoint=endpoint,
            kubeconfig=self.kubeconfig,
            ready=self.ready,
            nfs=self.nfs.export,
            node_interface=hosts.host_only_interface,
            sources=Sources.of(settings.sources),
            timeout_seconds=settings.cluster.node_ready_timeout_seconds,
        )
        self.register_outputs({"apiEndpoint": endpoint, "kubeconfig": self.kubeconfig, "nodes": len(self.nodes)})
