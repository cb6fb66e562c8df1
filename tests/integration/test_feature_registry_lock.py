"""``mlops.features.feature_store.registry_lock`` on a SQL (PostgreSQL) registry, against the local server.

Regression: ``SET lock_timeout = %s`` cannot take a bound parameter under psycopg 3 (server-side
binding), so the lock failed before it was ever taken; ``set_config('lock_timeout', ...)`` can.
Runs on 127.0.0.1:5432 (trust auth, user postgres) in a uniquely named database, dropped afterwards;
skips when PostgreSQL is absent (fails under CI=true).
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from mlops.config import get_settings
from mlops.features import feature_store
from tests.conftest import require_service

pytestmark = pytest.mark.integration

PG = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture
def sql_registry(tmp_path, monkeypatch):
    require_service("PostgreSQL", "127.0.0.1", 5432)
    import psycopg

    db = f"mlops_lock_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
        monkeypatch.setenv("MLOPS_FEAST_PROJECT", f"lock_{uuid.uuid4().hex[:8]}")
        monkeypatch.setenv(
            "MLOPS_FEAST_REGISTRY",
            json.dumps(
                {"registry_type": "sql", "path": f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"}
            ),
        )
        yield get_settings()
    finally:
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_registry_lock_sets_its_timeout_and_excludes(sql_registry):
    import psycopg

    outcome: list[tuple[str, float]] = []

    def contender() -> None:
        started = time.monotonic()
        try:
            with feature_store.registry_lock(sql_registry, timeout=1):
                outcome.append(("acquired", time.monotonic() - started))
        except psycopg.errors.LockNotAvailable:
            outcome.append(("timed out", time.monotonic() - started))

    with feature_store.registry_lock(sql_registry, timeout=5):
        thread = threading.Thread(target=contender)
        thread.start()
        thread.join(30)
    assert len(outcome) == 1 and outcome[0][0] == "timed out", outcome
    # lock_timeout (set with set_config) bounded the wait: about 1 s, not until the holder let go.
    assert outcome[0][1] < 10, outcome
    with feature_store.registry_lock(sql_registry, timeout=1):  # released: free again
        pass


def test_registry_lock_rejects_non_postgres_sql_registries(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    monkeypatch.setenv(
        "MLOPS_FEAST_REGISTRY", json.dumps({"registry_type": "sql", "path": f"sqlite:///{tmp_path}/r.db"})
    )
    with pytest.raises(ValueError, match="only PostgreSQL"):
        with feature_store.registry_lock(get_settings(), timeout=1):
            pass
