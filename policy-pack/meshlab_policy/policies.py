"""The catalog's validators as CrossGuard policy objects.

Building the objects is side-effect free; only `PolicyPack(...)` (in the pack's `__main__.py`)
starts the analyzer server, so tests call these policies' `validate` directly.
"""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

from meshlab_policy.catalog import CATALOG, PolicySpec, ResourceValidator, StackValidator
from meshlab_policy.kube import Resource
from meshlab_policy.settings import CONFIG_SCHEMA, settings_from_config


def _config_schema(spec: PolicySpec) -> PolicyConfigSchema | None:
    if not spec.config_keys:
        return None
    return PolicyConfigSchema(properties={key: CONFIG_SCHEMA[key] for key in spec.config_keys})


def resource_validation(validator: ResourceValidator) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        resource = Resource(type=args.resource_type, name=args.name, urn=args.urn, props=args.props)
        for message in validator(resource, settings_from_config(args.get_config())):
            report_violation(message, None)

    return validate


def stack_validation(validator: StackValidator) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [Resource(type=r.resource_type, name=r.name, urn=r.urn, props=r.props) for r in args.resources]
        for violation in validator(resources, settings_from_config(args.get_config())):
            report_violation(violation.message, violation.urn)

    return validate


def build_policy(spec: PolicySpec) -> Policy:
    enforcement = EnforcementLevel(spec.enforcement.value)
    severity = Severity(spec.severity.value)
    if spec.validate_resource is not None:
        return ResourceValidationPolicy(
            name=spec.name,
            description=spec.description,
            validate=resource_validation(spec.validate_resource),
            enforcement_level=enforcement,
            config_schema=_config_schema(spec),
            severity=severity,
            remediation_steps=spec.remediation,
        )
    if spec.validate_stack is not None:
        return StackValidationPolicy(
            name=spec.name,
            description=spec.description,
            validate=stack_validation(spec.validate_stack),
            enforcement_level=enforcement,
            config_schema=_config_schema(spec),
            severity=severity,
            remediation_steps=spec.remediation,
        )
    raise ValueError(f"policy {spec.name} has no validator")


def build_policies() -> list[Policy]:
    """Every policy of the pack, in catalog order."""
    return [build_policy(spec) for spec in CATALOG]
