"""The package's layers, held by an ``ast`` walk of ``include/mlops`` (STYLE.md "Folders say the layer").

* Only the adapters (:mod:`mlops.airflow`) and the tooling (:mod:`mlops.dev`) import Airflow: the
  stages (ingest, features, training, models, monitoring, serving) and the root modules run, and
  are tested, without it.
* The stages and the root modules do not import the adapters or the tooling back (imports run one
  way); the ``mlops`` command (:mod:`mlops.cli`), an entrypoint, may start the tooling.

Every import counts, at module level or inside a function, under ``TYPE_CHECKING`` or not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "mlops"
#: Subpackages allowed to import Airflow.
AIRFLOW_LAYERS = ("airflow", "dev")
#: Modules (relative to the package) that may import the adapters and the tooling.
ENTRYPOINTS = ("cli.py",)


def imported_modules(source: str, filename: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in ``source``; relative imports are left out."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            if node.module == "mlops":  # from mlops import airflow, dev
                found += [(node.lineno, f"mlops.{alias.name}") for alias in node.names]
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(root: Path) -> list[str]:
    """Every import in ``root`` (a copy of ``include/mlops``) that crosses a layer the wrong way."""
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        layer = relative.parts[0] if len(relative.parts) > 1 else ""
        for line, name in imported_modules(path.read_text(encoding="utf-8"), str(path)):
            where = f"mlops/{relative.as_posix()}:{line} imports {name}"
            if _under(name, "airflow") and layer not in AIRFLOW_LAYERS:
                found.append(f"{where}: only mlops.airflow and mlops.dev import Airflow")
            elif (
                any(_under(name, f"mlops.{upper}") for upper in AIRFLOW_LAYERS)
                and layer not in AIRFLOW_LAYERS
                and relative.as_posix() not in ENTRYPOINTS
            ):
                found.append(f"{where}: a stage or root module does not import the adapters or the tooling")
    return found


def test_only_the_airflow_adapters_and_the_tooling_import_airflow():
    assert PACKAGE.is_dir(), PACKAGE
    assert violations(PACKAGE) == []


@pytest.mark.parametrize(
    ("module", "source", "reported"),
    [
        ("monitoring/check.py", "def f():\n    from airflow.sdk import Asset\n", True),
        ("lake.py", "import airflow\n", True),
        (
            "training/run.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import airflow.sdk\n",
            True,
        ),
        ("models/lifecycle.py", "from mlops.airflow.links import report_url\n", True),
        ("scaleout.py", "from mlops import dev\n", True),
        ("airflow/runtime.py", "from airflow.exceptions import AirflowFailException\n", False),
        ("dev/stack.py", "from mlops.dev.embedded import Services\nimport airflow\n", False),
        ("cli.py", "from mlops.dev.embedded import environment\n", False),
        ("serving/app.py", "from mlops.airflow_free import x\nimport airflowlike\n", False),
    ],
)
def test_the_walk_reports_a_crossing_import(tmp_path: Path, module: str, source: str, reported: bool):
    """The checker itself: a planted module is reported exactly when it crosses a layer."""
    path = tmp_path / module
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    found = violations(tmp_path)
    assert bool(found) is reported, found
    if reported:
        assert found[0].startswith(f"mlops/{module}:"), found
