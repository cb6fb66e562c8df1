"""Test helper: a fresh MLOPS_HOME for a seeded lake and registry (:mod:`mlops.dev.seed`).

Every store at its embedded default under ``home`` (:func:`tests.conftest.use_home`), no Feast
override from the caller's environment, and no MLflow artifact progress bars in the test output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from mlops.config import Settings


def seeded_home(mp: pytest.MonkeyPatch, home: Path) -> Settings:
    """Point ``mp``'s environment at ``home``; returns its settings."""
    from mlops.config import get_settings
    from mlops.features import feature_store
    from tests.conftest import use_home

    use_home(mp, home)
    for var in feature_store.FEAST_ENV_VARS:
        mp.delenv(var, raising=False)
    mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return get_settings()
