"""Bash step scripts, rendered inline into the commands that run them.

Every rendered script is `base.sh` (strict mode, `die`, `require_env`), then the layer's
`common.sh`, then the step's own file. A layer whose steps live in several packages (the hosts
layer, one per backend) keeps its one `common.sh` in its own scripts package, and each package's
`StepScripts` names that one as `common_package`. Embedding the text (rather than a path) keeps each
delete step in Pulumi state, so `pulumi destroy` works even after the repository changed,
and a changed script shows up in the preview diff.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources


@cache
def _read(package: str, name: str) -> str:
    return resources.files(package).joinpath(f"{name}.sh").read_text()


@dataclass(frozen=True)
class StepScripts:
    """One layer's step scripts: the `.sh` files of `package`, and the `common.sh` of `common_package`
    (by default `package` itself) rendered before each of them."""

    layer: str
    package: str
    steps: tuple[str, ...]
    common_package: str | None = None

    def render(self, step: str, prefix: str = "") -> str:
        """The full script of `step`, after `prefix` (e.g. the step's inputs)."""
        if step not in self.steps:
            raise KeyError(f"unknown {self.layer} step script {step!r}")
        return (
            prefix
            + _read(__name__, "base")
            + _read(self.common_package or self.package, "common")
            + f"\n# --- {step} ---\n"
            + _read(self.package, step)
        )
