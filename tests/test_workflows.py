"""The GitHub Actions workflows: actionlint (with shellcheck on every `run:` block) finds nothing, and
each workflow does what docs/pr-previews.md and docs/promotion.md say it does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent
ACTIONLINT = BIN / "actionlint"
SHELLCHECK = BIN / "shellcheck"
EXACT_VERSION = re.compile(r"^[\w.-]+/[\w.-]+@v\d+\.\d+\.\d+$")


def _actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.is_file(), "actionlint is missing: make venv (requirements-dev.txt)"
    assert SHELLCHECK.is_file(), "shellcheck is missing: make venv (requirements-dev.txt)"
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", "-shellcheck", str(SHELLCHECK), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


def _workflow(name: str) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as true.
    document["on"] = document.pop(True, document.get("on"))
    return document


def _steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def _uses(document: dict[str, Any]) -> list[str]:
    return [step["uses"] for job in document["jobs"].values() for step in _steps(job) if "uses" in step]


@pytest.fixture(scope="module")
def workflow_files() -> list[Path]:
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert [f.name for f in files] == ["promote.yml", "pull-request.yml", "tests.yml"]
    return files


def test_actionlint_and_shellcheck_find_nothing(workflow_files):
    result = _actionlint(*workflow_files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_inputs_are_those_the_actions_declare(workflow_files, tmp_path):
    """actionlint knows the inputs of popular actions by major version; an exact pin hides them from it."""
    for path in workflow_files:
        relaxed = re.sub(r"@v(\d+)\.[\d.]+", r"@v\1", path.read_text())
        (tmp_path / path.name).write_text(relaxed)
    result = _actionlint(*sorted(tmp_path.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_linter_does_catch_mistakes(tmp_path):
    """Guards the two tests above against passing vacuously."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\n"
        "jobs:\n"
        "  job:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          fetch-dept: 0\n"
        "      - run: echo $UNQUOTED\n"
        "      - run: echo '${{ github.event.pull_request.title }}'\n"
    )
    result = _actionlint(broken)
    assert result.returncode == 1
    assert 'input "fetch-dept" is not defined' in result.stdout
    assert "SC2086" in result.stdout
    assert "potentially untrusted" in result.stdout


def test_every_action_is_pinned_to_an_exact_version(workflow_files):
    uses = [use for path in workflow_files for use in _uses(_workflow(path.name))]
    assert len(uses) >= 10
    assert [use for use in uses if not EXACT_VERSION.match(use)] == []


def test_the_offline_tests_run_on_every_push_and_pull_request_as_on_a_users_clone():
    """No ../shared, nothing configured: `make reference`, then `make test-offline`, as the README says. The
    job used to need a repository holding ../shared, and ran the linters only without one."""
    workflow = _workflow("tests.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    job = workflow["jobs"]["offline"]
    assert "if" not in job
    steps = _steps(job)
    checkouts = [step for step in steps if step.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == 1 and "with" not in checkouts[0]  # the project alone, at the workspace's root
    runs = [step["run"] for step in steps if "run" in step and "if" not in step]
    assert runs == ["make reference", "make test-offline"]
    assert all("working-directory" not in step and "continue-on-error" not in step for step in steps)
    [cache] = [step for step in steps if step.get("uses", "").startswith("actions/cache@")]
    assert cache["with"]["path"].split() == [".cache/reference", ".cache/chart-sources"]
    assert "tools/reference.manifest" in cache["with"]["key"] and "tools/chart-sources.manifest" in cache["with"]["key"]
    assert steps.index(cache) < next(i for i, step in enumerate(steps) if step.get("run") == "make reference")
    [notice] = [step for step in steps if "::notice" in step.get("run", "")]
    assert notice["if"] == "vars.MESHLAB_SHARED_REPOSITORY == ''"


def test_every_tier_runs_with_the_shared_folder_beside_the_checkout_where_one_is_configured():
    job = _workflow("tests.yml")["jobs"]["all-tiers"]
    assert job["if"] == "vars.MESHLAB_SHARED_REPOSITORY != ''"
    steps = _steps(job)
    checkouts = [step for step in steps if step.get("uses", "").startswith("actions/checkout@")]
    assert [step["with"]["path"] for step in checkouts] == ["meshlab", "shared"]
    assert checkouts[1]["with"]["repository"] == "${{ vars.MESHLAB_SHARED_REPOSITORY }}"
    [test] = [step for step in steps if "run" in step]
    assert test["run"] == "bash .ci/run" and test["working-directory"] == "meshlab"


def test_pull_requests_get_the_plan_diff_of_every_stack_as_one_comment():
    workflow = _workflow("pull-request.yml")
    assert set(workflow["on"]) == {"pull_request"}
    job = workflow["jobs"]["plan-diff"]
    assert job["permissions"]["pull-requests"] == "write"
    steps = _steps(job)
    assert steps[0]["with"]["fetch-depth"] == 0
    diff = next(step for step in steps if step.get("id") == "diff")
    assert 'tools.plan "$stack" --diff "$BASE_SHA"' in diff["run"]
    assert "for file in Pulumi.*.yaml" in diff["run"]
    assert diff["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    [comment] = [step for step in steps if step.get("uses", "").startswith("marocchino/sticky-pull-request-comment@")]
    assert comment["with"] == {"header": "meshlab-plan-diff", "path": "${{ steps.diff.outputs.body }}"}


def test_pull_requests_get_a_pulumi_preview_per_configured_stack():
    workflow = _workflow("pull-request.yml")
    job = workflow["jobs"]["preview"]
    stacks = [entry["stack"] for entry in job["strategy"]["matrix"]["include"]]
    assert sorted(stacks) == sorted(path.name.split(".")[1] for path in ROOT.glob("Pulumi.*.yaml"))
    steps = _steps(job)
    [preview] = [step for step in steps if step.get("uses", "").startswith("pulumi/actions@")]
    assert preview["if"] == "steps.backend.outputs.configured == 'true'"
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["comment-on-pr"] is True
    assert preview["with"]["policyPacks"] == "policy-pack"
    assert preview["with"]["policyPackConfigs"] == "policy-pack/config/${{ matrix.stack }}.json"
    assert "::notice" in steps[0]["run"]
    sdk = re.search(r"^pulumi==(\S+)$", (ROOT / "requirements.txt").read_text(), flags=re.MULTILINE)
    assert sdk is not None
    assert workflow["env"]["PULUMI_VERSION"] == sdk[1]


def test_promotion_is_a_manual_workflow_that_opens_a_pull_request():
    workflow = _workflow("promote.yml")
    assert set(workflow["on"]) == {"workflow_dispatch"}
    inputs = workflow["on"]["workflow_dispatch"]["inputs"]
    assert inputs["source"]["options"] == ["lab", "staging"]
    assert inputs["target"]["options"] == ["staging", "prod"]
    steps = _steps(workflow["jobs"]["promote"])
    promote = next(step for step in steps if step.get("id") == "promote")
    assert 'tools.promote "$SOURCE" "$TARGET" --write' in promote["run"]
    [pull_request] = [step for step in steps if step.get("uses", "").startswith("peter-evans/create-pull-request@")]
    assert pull_request["with"]["add-paths"].splitlines() == [
        "Pulumi.${{ inputs.target }}.yaml",
        "policy-pack/config/${{ inputs.target }}.json",
    ]


def test_the_step_scripts_run_under_bash_with_pipefail(workflow_files):
    """`shell: bash` runs `bash -eo pipefail`; the default shell has no pipefail (a failing promotion
    piped into tee would pass)."""
    for path in workflow_files:
        assert _workflow(path.name)["defaults"]["run"]["shell"] == "bash", path.name
