"""What the kube suite measured and found, printed at the end of the session (tests/kube/conftest.py)."""

from __future__ import annotations

TIMINGS: dict[str, float] = {}  # what took how long, in seconds (docs/kube-tier.md quotes them)
REPORT: list[str] = []  # lines of findings, e.g. the differential test's agreements
