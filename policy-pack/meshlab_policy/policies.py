"""The catalog's validators as CrossGuard policy objects.

Building the objects is side-effect free; only `PolicyPack(...)` (in the pack's `__main__.py`)
starts the analyzer server, so tests call these policies' `validate` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from meshlab_policy.catalog import CATALOG, PolicySpec, ResourceValidator, StackValidator
from meshlab_policy.kube import UNKNOWN, Resource
from meshlab_policy.settings import CONFIG_SCHEMA, settings_from_config


def _config_schema(spec: PolicySpec) -> PolicyConfigSchema | None:
    if not spec.config_keys:
        return None
    return PolicyConfigSchema(properties={key: CONFIG_SCHEMA[key] for key in spec.config_keys})


def resource_validation(validator: ResourceValidator) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        # The engine gives resource policies the inputs, known on a first preview too. Reading an input
        # that is unknown raises, and CrossGuard reports that this policy could not judge this resource.
        resource = Resource(type=args.resource_type, name=args.name, urn=args.urn, props=args.props)
        for message in validator(resource, settings_from_config(args.get_config())):
            report_violation(message, None)

    return validate


def known_values(value: Any) -> Any:
    """A plain copy of CrossGuard's property proxies, each value they refuse as unknown made `UNKNOWN`.

    The proxies raise on reading an unknown value, which would stop a stack policy at the first resource
    still being created and leave every other resource unjudged."""
    if isinstance(value, Mapping):
        copied = {}
        for key in value:
            try:
                copied[key] = known_values(value[key])
            except UnknownValueError:
                copied[key] = UNKNOWN
        return copied
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        listed = []
        for index in range(len(value)):
            try:
                listed.append(known_values(value[index]))
            except UnknownValueError:
                listed.append(UNKNOWN)
        return listed
    return value


def stack_resource(resource: PolicyResource) -> Resource:
    """A resource as stack policies see it: its outputs, which may be empty or partly unknown in a preview."""
    return Resource(resource.resource_type, resource.name, resource.urn, known_values(resource.props))


def stack_validation(validator: StackValidator) -> Callable[[StackValidationArgs, ReportViolation], None]:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [stack_resource(r) for r in args.resources]
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
