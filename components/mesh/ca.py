"""`meshlab:mesh:MeshCa`: a root and an intermediate CA for Istio, plugged in as `cacerts`.

istiod signs workload certificates with the intermediate. Every stack gets its own root unless
`meshCaRootCertPem`/`meshCaRootKeyPem` give a shared one, so clusters that share a root trust
each other's workloads. Private keys are secrets from birth.

Rotation: the intermediate is re-issued by the first `pulumi up` inside its last
INTERMEDIATE_RENEWAL_HOURS; istiod picks up the new `cacerts` and workloads move to it as their
own certificates renew (every 24 h). Rotating the root is a planned change: see docs/mesh.md.
"""

from __future__ import annotations

import pulumi
import pulumi_tls as tls

from components.cluster.access import ClusterAccess
from components.kube import secret
from components.security.namespaces import ISTIO_SYSTEM
from config.settings import MeshSettings

CACERTS_SECRET = "cacerts"
INTERMEDIATE_RENEWAL_HOURS = 720
KEY_ALGORITHM = "ECDSA"
KEY_CURVE = "P256"


class MeshCa(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        *,
        access: ClusterAccess,
        namespace: pulumi.Resource,
        mesh: MeshSettings,
        cluster_name: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        shared_root = bool(mesh.mesh_ca_root_cert_pem)
        super().__init__(
            "meshlab:mesh:MeshCa",
            name,
            {"sharedRoot": shared_root, "intermediateValidityHours": mesh.mesh_ca_intermediate_validity_hours},
            opts,
        )
        child = pulumi.ResourceOptions(parent=self)
        secret_key = pulumi.ResourceOptions(
            parent=self, additional_secret_outputs=["privateKeyPem", "privateKeyOpenssh"]
        )
        root_cert: pulumi.Output[str]
        root_key: pulumi.Output[str]
        if shared_root:
            root_cert = pulumi.Output.from_input(mesh.mesh_ca_root_cert_pem)
            root_key = pulumi.Output.secret(mesh.mesh_ca_root_key_pem.get_secret_value())
        else:
            root_private = tls.PrivateKey(
                f"{name}-root-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=secret_key
            )
            root = tls.SelfSignedCert(
                f"{name}-root",
                private_key_pem=root_private.private_key_pem,
                subject=tls.SelfSignedCertSubjectArgs(
                    common_name=f"{cluster_name} mesh root CA", organization="meshlab"
                ),
                is_ca_certificate=True,
                validity_period_hours=mesh.mesh_ca_root_validity_hours,
                allowed_uses=["cert_signing", "crl_signing"],
                opts=child,
            )
            root_cert = root.cert_pem
            root_key = pulumi.Output.secret(root_private.private_key_pem)

        intermediate_private = tls.PrivateKey(
            f"{name}-intermediate-key", algorithm=KEY_ALGORITHM, ecdsa_curve=KEY_CURVE, opts=secret_key
        )
        request = tls.CertRequest(
            f"{name}-intermediate-request",
            private_key_pem=intermediate_private.private_key_pem,
            subject=tls.CertRequestSubjectArgs(
                common_name=f"{cluster_name} mesh intermediate CA", organization="meshlab"
            ),
            # istiod serves with certificates from this CA too.
            dns_names=["istiod.istio-system.svc"],
            opts=child,
        )
        intermediate = tls.LocallySignedCert(
            f"{name}-intermediate",
            cert_request_pem=request.cert_request_pem,
            ca_cert_pem=root_cert,
            ca_private_key_pem=root_key,
            is_ca_certificate=True,
            validity_period_hours=mesh.mesh_ca_intermediate_validity_hours,
            early_renewal_hours=INTERMEDIATE_RENEWAL_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature", "key_encipherment"],
            opts=child,
        )
        chain = pulumi.Output.all(intermediate.cert_pem, root_cert).apply(lambda pems: pems[0] + pems[1])
        self.secret = secret(
            f"{name}-cacerts",
            metadata={"name": CACERTS_SECRET, "namespace": ISTIO_SYSTEM},
            type="Opaque",
            string_data=pulumi.Output.secret(
                {
                    "ca-cert.pem": intermediate.cert_pem,
                    "ca-key.pem": intermediate_private.private_key_pem,
                    "root-cert.pem": root_cert,
                    "cert-chain.pem": chain,
                }
            ),
            opts=access.options(self, [namespace]),
        )
        self.root_cert = root_cert
        self.register_outputs({"rootCertPem": root_cert})
