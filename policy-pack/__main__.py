"""The entry point the Pulumi CLI runs (`--policy-pack policy-pack`): build the meshlab pack and serve it.

Constructing `PolicyPack` starts the analyzer's gRPC server and blocks, so nothing may import this
file; the validators and policy objects live in `meshlab_policy`.
"""

from meshlab_policy.catalog import PACK_NAME
from meshlab_policy.policies import build_policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name=PACK_NAME, policies=build_policies(), enforcement_level=EnforcementLevel.MANDATORY)
