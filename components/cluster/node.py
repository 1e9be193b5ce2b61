"""`meshlab:cluster:Rke2Node`: one VM, from bare Ubuntu to a Ready RKE2 node.

preflight -> prepare -> (copy RKE2's artifacts ->) install, copy files -> place files -> start ->
upgrade. Start is where the join order is enforced (the cluster passes in what each node starts
after); upgrade does nothing on create and runs only when the RKE2 version changes, one node at a
time. With meshlab:rke2Artifacts the node installs from copies of the workstation's verified
artifacts (components/cluster/artifacts.py) and downloads nothing for RKE2 itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.cluster.artifacts import Rke2Artifacts
from components.cluster.files import JoinRole, NodeFile
from components.cluster.steps import NodeTarget, node_step, staged_copy, staged_file_copy
from config import versions
from config.settings import Settings

TIME_SYNC_TIMEOUT_SECONDS = 120


def staging_dir(ssh_user: str) -> str:
    return f"/home/{ssh_user}/.meshlab-staging"


class Rke2Node(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        target: NodeTarget,
        join_role: JoinRole,
        settings: Settings,
        ssh_user: str,
        files: dict[NodeFile, pulumi.Input[str]],
        start_digest: str,
        files_digest: str,
        endpoints: Sequence[str],
        artifacts: Rke2Artifacts | None,
        start_after: Sequence[pulumi.Resource],
        upgrade_after: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        rke2_type = "agent" if join_role == "agent" else "server"
        super().__init__(
            "meshlab:cluster:Rke2Node",
            name,
            {"node": target.name, "ip": target.ip, "joinRole": join_role, "rke2Version": settings.cluster.rke2_version},
            opts,
        )
        self.target = target
        self.join_role = join_role
        cluster = settings.cluster
        service = f"rke2-{rke2_type}"
        staging = staging_dir(ssh_user)
        timeout = str(cluster.node_ready_timeout_seconds)

        self.preflight = node_step(
            f"{name}-preflight",
            target=target,
            script="node_preflight",
            inputs={
                "MESHLAB_NODE_NAME": target.name,
                "MESHLAB_NODE_IP": target.ip,
                "MESHLAB_INTERFACE": settings.hosts.lab_interface,
                "MESHLAB_PORTS": " ".join(str(port) for port in cluster.rke2_ports(rke2_type)),
                "MESHLAB_ENDPOINTS": " ".join(endpoints),
                "MESHLAB_TIME_SYNC_TIMEOUT_SECONDS": str(TIME_SYNC_TIMEOUT_SECONDS),
                # The preflight reaches https mirrors before the CA file is placed.
                **({"MESHLAB_REGISTRY_CA_PEM": ca} if (ca := settings.sources.registry_ca_pem) else {}),
            },
            parent=self,
        )
        self.prepare = node_step(
            f"{name}-prepare",
            target=target,
            script="node_prepare",
            # Runs only where the machine outlives the stack (existing hosts): a deleted VM skips it.
            delete_script="node_unprepare",
            inputs={"MESHLAB_ROLE": rke2_type, "MESHLAB_SSH_USER": ssh_user, "MESHLAB_STAGING_DIR": staging},
            parent=self,
            depends_on=[self.preflight],
        )
        install_inputs = {"MESHLAB_RKE2_VERSION": cluster.rke2_version, "MESHLAB_RKE2_TYPE": rke2_type}
        artifact_copies: list[pulumi.Resource] = []
        if artifacts is None:
            install_inputs["MESHLAB_RKE2_INSTALL_URL"] = versions.RKE2_INSTALL_URL
        else:
            # One directory per release, so an upgrade's copies never overwrite the installed release's.
            artifact_dir = f"{staging}/rke2-{cluster.rke2_version}"
            install_inputs["MESHLAB_RKE2_ARTIFACTS"] = artifact_dir
            artifact_copies = [
                staged_file_copy(
                    f"{name}-artifact-{path.name}",
                    target=target,
                    local_path=str(path),
                    # The files are complete and verified once the workstation's fetch has printed.
                    ready=artifacts.manifest,
                    remote_path=f"{artifact_dir}/{path.name}",
                    parent=self,
                    depends_on=[self.prepare, artifacts.fetch],
                )
                for path in artifacts.plan.node_files
            ]
        self.install = node_step(
            f"{name}-install",
            target=target,
            script="rke2_install",
            delete_script="rke2_uninstall",
            inputs=install_inputs,
            parent=self,
            depends_on=[self.prepare, *artifact_copies],
            # A new role is a new installation; a new version is the upgrade step's job.
            triggers=[rke2_type],
            ignore_changes=["create"],
        )

        copies = [
            staged_copy(
                f"{name}-copy-{file.name.rsplit('.', 1)[0]}",
                target=target,
                content=content,
                remote_path=f"{staging}/{file.name}",
                parent=self,
                depends_on=[self.prepare],
            )
            for file, content in files.items()
        ]
        file_lines = "\n".join(f"{file.name} {file.destination} {file.mode}" for file in files)
        self.files = node_step(
            f"{name}-files",
            target=target,
            script="files_place",
            delete_script="files_remove",
            inputs={
                "MESHLAB_STAGING_DIR": staging,
                "MESHLAB_FILES": file_lines,
                # Digests of what the files say (secrets aside), so a changed file re-runs the step.
                "MESHLAB_FILES_DIGEST": files_digest,
            },
            parent=self,
            depends_on=copies,
        )

        start_inputs = {
            "MESHLAB_SERVICE": service,
            "MESHLAB_NODE_NAME": target.name,
            "MESHLAB_CONFIG_DIGEST": start_digest,
            "MESHLAB_TIMEOUT_SECONDS": timeout,
        }
        if join_role == "first-server":
            start_inputs |= {
                "MESHLAB_WAIT_FOR_VIP": str(settings.network.vip),
                "MESHLAB_INTERFACE": settings.hosts.lab_interface,
            }
        self.started = node_step(
            f"{name}-start",
            target=target,
            script="rke2_start",
            inputs=start_inputs,
            parent=self,
            depends_on=[self.install, self.files, *start_after],
        )
        self.upgraded = node_step(
            f"{name}-upgrade",
            target=target,
            script="rke2_upgrade",
            update_script="rke2_upgrade",
            # Nothing to do at creation: the install step put this version there.
            create=f"echo 'RKE2 {cluster.rke2_version} was installed by {name}-install'",
            inputs={
                **install_inputs,
                "MESHLAB_SERVICE": service,
                "MESHLAB_NODE_NAME": target.name,
                "MESHLAB_TIMEOUT_SECONDS": timeout,
            },
            parent=self,
            depends_on=[self.started, *upgrade_after, *artifact_copies],
        )
        self.register_outputs({"node": target.name, "joinRole": join_role})
