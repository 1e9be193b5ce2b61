"""Step scripts of the hosts layer, rendered inline into each command.

A rendered script is `common.sh` followed by the step's body. Embedding the text (rather than
a path) keeps each delete step in Pulumi state, so `pulumi destroy` works even after the
repository changed, and a changed script shows up in the preview diff.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

STEPS = (
    "preflight",
    "network_create",
    "network_delete",
    "image_fetch",
    "seed_create",
    "seed_delete",
    "vm_create",
    "vm_delete",
    "wait_ssh",
)


@cache
def _read(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.sh").read_text()


def render_script(step: str) -> str:
    """The full bash script of a step: shared helpers, then the step body."""
    if step not in STEPS:
        raise KeyError(f"unknown hosts step script {step!r}")
    return _read("common") + "\n# --- " + step + " ---\n" + _read(step)
