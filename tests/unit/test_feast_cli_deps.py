"""The Feast CLI commands the README shows can start: ``feast ui`` and ``feast serve`` import Feast's
registry server, which needs ``grpcio-health-checking`` and ``grpcio-reflection`` (Feast's ``grpcio``
extra, in pyproject.toml). Without them ``feast ui`` fails with ``No module named 'grpc_health'``."""

from __future__ import annotations

import subprocess
import sys


def test_feast_ui_imports_its_registry_server():
    proc = subprocess.run(
        [sys.executable, "-c", "import feast.registry_server, feast.ui_server"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"feast ui cannot start here:\n{proc.stderr[-2000:]}"
