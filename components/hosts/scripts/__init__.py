"""Step scripts of the hosts layer; they run on the workstation (see components.shell).

Here: `common.sh`, the helpers every hosts step is rendered with (each backend's scripts package
names this one as its `common_package`), and the steps both VM backends run: the image fetch, the
seed ISO and the wait for SSH. Each backend's own steps are in its `scripts` sub-package.
"""

from __future__ import annotations

from components.shell import StepScripts

STEPS = (
    "image_fetch",
    "seed_create",
    "seed_delete",
    "wait_ssh",
)
SCRIPTS = StepScripts("hosts", __name__, STEPS)


def render_script(step: str) -> str:
    """The full bash script of a step: shared helpers, then the step body."""
    return SCRIPTS.render(step)
