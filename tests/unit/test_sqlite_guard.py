"""The embedded profile's SQLite settings, on the exact pattern that made `backfill create` fail.

Airflow creates each backfill run inside ``session.begin_nested()``: SAVEPOINT, SELECT, INSERT.
Between the SELECT and the INSERT another process commits. With the driver's defaults the INSERT
fails at once with ``database is locked``; with the profile it waits for the writer and succeeds.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from mlops.airflow import sqlite as guard

if TYPE_CHECKING:
    from pathlib import Path


def _engine(path: Path, connect_args: dict[str, object]):
    engine = create_engine(f"sqlite:///{path}", connect_args=dict(connect_args))

    @event.listens_for(engine, "connect")
    def _wal(dbapi_conn, _record):  # Airflow's SQLite runs in WAL mode
        dbapi_conn.execute("PRAGMA journal_mode=WAL")

    return engine


def _nested_insert_while_another_process_commits(
    path: Path, connect_args: dict[str, object], guarded: bool
) -> None:
    engine = _engine(path, connect_args)
    if guarded:
        assert guard.install_savepoint_guard(engine)
        assert not guard.install_savepoint_guard(engine), "installing twice is a no-op"
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS dag_run (id INTEGER PRIMARY KEY, run_id TEXT)"))
    other = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    with Session(engine) as session:
        session.execute(text("INSERT INTO dag_run (run_id) VALUES ('backfill row')"))
        session.commit()  # _create_backfill commits the Backfill row, then creates runs nested
        with session.begin_nested():
            session.execute(text("SELECT count(*) FROM dag_run")).scalar()
            writer = threading.Thread(
                target=lambda: other.execute("INSERT INTO dag_run (run_id) VALUES ('scheduler')")
            )
            writer.start()
            writer.join(timeout=1)
            session.execute(text("INSERT INTO dag_run (run_id) VALUES ('backfill__2013-01-05')"))
        session.commit()
    writer.join(timeout=30)
    other.close()
    engine.dispose()


@pytest.mark.parametrize(
    "connect_args", [guard.NO_ARGS, guard.CONNECT_ARGS], ids=["airflow-defaults", "connect-args-only"]
)
def test_without_the_guard_a_nested_insert_fails_at_once(tmp_path: Path, connect_args) -> None:
    started = time.monotonic()
    with pytest.raises(OperationalError, match="database is locked"):
        _nested_insert_while_another_process_commits(tmp_path / "a.db", connect_args, guarded=False)
    assert time.monotonic() - started < 4, "failed at once: the busy timeout was never used"


def test_with_the_profile_the_writer_is_waited_for(tmp_path: Path) -> None:
    _nested_insert_while_another_process_commits(tmp_path / "b.db", guard.CONNECT_ARGS, guarded=True)
    rows = sqlite3.connect(tmp_path / "b.db").execute("SELECT run_id FROM dag_run ORDER BY id").fetchall()
    assert [r[0] for r in rows] == ["backfill row", "backfill__2013-01-05", "scheduler"]
