"""Where the promotion lock lives, and that it excludes (file lock; PostgreSQL when available)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlops.config import get_settings
from mlops.models.registry import lock_url, promotion_lock
from tests.conftest import require_service


def test_lock_url_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_LOCK_URL", raising=False)
    embedded = get_settings({"MLOPS_HOME": str(tmp_path)})
    assert lock_url(embedded) == (tmp_path / "locks").resolve().as_uri()
    direct = get_settings(
        {"MLOPS_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": "postgresql://u@db:5432/mlflow"}
    )
    assert lock_url(direct) == "postgresql://u@db:5432/mlflow"
    monkeypatch.setenv("MLOPS_LOCK_URL", "postgresql://u@lockdb:5432/locks")
    server = get_settings({"MLOPS_HOME": str(tmp_path), "MLFLOW_TRACKING_URI": "http://mlflow:5000"})
    assert lock_url(server) == "postgresql://u@lockdb:5432/locks"


def test_bad_lock_url_says_what_to_use(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_LOCK_URL", "redis://localhost:6379/0")
    with pytest.raises(ValueError, match=r"postgresql://\.\.\. or file:///absolute/dir"):
        with promotion_lock(get_settings({"MLOPS_HOME": str(tmp_path)})):
            pass


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MLOPS_LAKE_URI": "s3://mlops-lake"}, "the lake is s3://mlops-lake"),
        ({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, "MLflow is http://mlflow:5000"),
        (
            {
                "MLFLOW_TRACKING_URI": "https://u:secret@mlflow.internal",
                "MLOPS_LOCK_URL": "file:///tmp/locks",
            },
            "MLflow is https://u:***@mlflow.internal",
        ),
    ],
    ids=["s3-lake", "mlflow-server", "explicit-file-lock-on-shared-mlflow"],
)
def test_promotion_refuses_a_host_local_lock_on_shared_stores(tmp_path, monkeypatch, env, named):
    """Shared stores (an s3:// lake, an MLflow server) with a file lock: promotion (and rollback)
    refuse with the rule the retrain guard uses, before touching any alias."""
    from mlops.models import registry
    from mlops.monitoring import guard

    monkeypatch.delenv("MLOPS_LOCK_URL", raising=False)
    if "MLOPS_LOCK_URL" in env:
        monkeypatch.setenv("MLOPS_LOCK_URL", env["MLOPS_LOCK_URL"])
    settings = get_settings({"MLOPS_HOME": str(tmp_path), **env})
    with pytest.raises(RuntimeError, match="promotion lock of flight_delay_xgb would be a host-local") as exc:
        with promotion_lock(settings):
            pass
    message = str(exc.value)
    assert named in message and "MLOPS_LOCK_URL=postgresql://" in message
    assert "secret" not in message
    with pytest.raises(RuntimeError, match="host-local file lock"):
        registry.rollback(settings, actor="rollback-guard", reason="test")
    with pytest.raises(RuntimeError, match="the retrain guard's lock would be a host-local"):
        with guard.guard_lock(settings):
            pass
    assert not (tmp_path / "locks").exists(), "no file lock was taken"


def test_shared_stores_with_a_postgres_lock_are_accepted(tmp_path, monkeypatch):
    from mlops.models.registry import require_shared_lock

    monkeypatch.setenv("MLOPS_LOCK_URL", "postgresql://u@lockdb:5432/locks")
    settings = get_settings(
        {"MLOPS_HOME": str(tmp_path), "MLOPS_LAKE_URI": "s3://l", "MLFLOW_TRACKING_URI": "http://m:5000"}
    )
    require_shared_lock(lock_url(settings), settings, "the promotion lock")  # no error


HOLD = (
    "import json, time; from mlops.models.registry import promotion_lock\n"
    "with promotion_lock() as info:\n"
    "    time.sleep(1.5)\n"
    "print(json.dumps(info))\n"
)


def _race(env: dict[str, str]) -> list[dict]:
    procs = [
        subprocess.Popen([sys.executable, "-c", HOLD], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    return sorted(
        (json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in procs),
        key=lambda i: i["acquired_at"],
    )


def test_file_lock_excludes_across_processes(tmp_path):
    import os

    env = {**os.environ, "MLOPS_HOME": str(tmp_path)}
    env.pop("MLOPS_LOCK_URL", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    a, b = _race(env)
    assert a["kind"] == b["kind"] == "filelock"
    assert a["released_at"] <= b["acquired_at"]


@pytest.mark.integration
def test_postgres_advisory_lock_excludes_across_processes(tmp_path):
    import os

    require_service("PostgreSQL", "127.0.0.1", 5432)
    env = {
        **os.environ,
        "MLOPS_HOME": str(tmp_path),
        "MLOPS_LOCK_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    }
    a, b = _race(env)
    assert a["kind"] == b["kind"] == "pg_advisory_lock"
    assert a["released_at"] <= b["acquired_at"]
