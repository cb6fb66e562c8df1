"""Shared fixtures: an isolated MLOPS_HOME per test session, and service availability checks."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def service_available(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a local service is absent, but fail under CI=true (CI must exercise it)."""
    if service_available(host, port):
        return
    msg = f"{name} is not reachable on {host}:{port}; start it (see README, Troubleshooting)"
    if IN_CI:
        pytest.fail(f"CI=true and {msg}")
    pytest.skip(msg)


#: Variables that would point a test's home elsewhere (the embedded defaults derive from MLOPS_HOME).
HOME_OVERRIDES = (
    "MLOPS_LANDING_URI",
    "MLOPS_LAKE_URI",
    "MLFLOW_TRACKING_URI",
    # MLflow's set_registry_uri writes it into os.environ (for subprocesses): a test that called
    # mlops.models.tracking.client in-process left its store to every later test's processes.
    "MLFLOW_REGISTRY_URI",
    "AIRFLOW_HOME",
    "MLOPS_LOCK_URL",
)


def use_home(mp: pytest.MonkeyPatch, home: Path) -> Path:
    """Point MLOPS_HOME at ``home`` with every store at its embedded default under it."""
    home.mkdir(parents=True, exist_ok=True)
    mp.setenv("MLOPS_HOME", str(home))
    for var in HOME_OVERRIDES:
        # Set, then removed: the undo then also removes what the test set later (MLflow's
        # set_tracking_uri/set_registry_uri write os.environ), not only what was there before.
        mp.setenv(var, "")
        mp.delenv(var)
    return home


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME with the embedded defaults under it."""
    return use_home(monkeypatch, tmp_path / "mlops")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the parse time of each DAG file (recorded by tests/dags/test_dag_policy.py)."""
    rows = []
    for key in ("passed", "failed"):
        for rep in terminalreporter.stats.get(key, []):
            for name, value in getattr(rep, "user_properties", []):
                if name == "parse_seconds" and rep.when == "call":
                    rows.append((rep.nodeid.split("[")[-1].rstrip("]"), value))
    if rows:
        terminalreporter.section("DAG parse time (fresh interpreter, after airflow.sdk import)")
        for fname, seconds in sorted(rows):
            terminalreporter.write_line(f"  {fname:<36} {seconds:7.3f}s")
