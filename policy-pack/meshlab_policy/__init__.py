"""meshlab's CrossGuard rules as plain functions over plain data.

Everything here except `policies` is free of pulumi and pulumi_policy, so the offline tools and the
tests import it without starting anything. `policies` wraps the same validators into CrossGuard
policy objects; only the pack's `__main__.py` turns those into a running `PolicyPack`.
"""
