"""SQLite for the embedded Airflow profile: no ``database is locked`` in normal use.

Referenced by ``[database] sql_alchemy_connect_args`` (and ``..._async``) and installed by
:func:`mlops.airflow.local_settings.apply` in every Airflow process of the embedded profile.

The failure: ``airflow backfill create`` while tasks run died with ``sqlite3.OperationalError:
database is locked`` on ``INSERT INTO dag_run``, within a millisecond, not after any timeout.
Airflow creates each backfill run inside ``session.begin_nested()``, i.e. ``SAVEPOINT``. Python's
``sqlite3`` only opens a transaction implicitly before ``INSERT``/``UPDATE``/``DELETE``, so the
``SAVEPOINT`` starts a *deferred* transaction; the ``SELECT`` that follows takes a WAL snapshot,
and when the ``INSERT`` then needs the write lock while another process (scheduler, task, API
server) has committed since that snapshot, SQLite returns ``SQLITE_BUSY`` at once: waiting cannot
help a stale snapshot, so the busy timeout is never used.

The fix, in two parts:

1. :data:`CONNECT_ARGS`: ``isolation_level="IMMEDIATE"`` makes the driver open its implicit write
   transactions with ``BEGIN IMMEDIATE`` (write lock first, no snapshot yet), and a busy writer
   is waited for up to ``timeout`` seconds (instead of 5).
2. :func:`install_savepoint_guard`: before a ``SAVEPOINT`` that would open a transaction, issue
   ``BEGIN IMMEDIATE`` ourselves, so nested transactions get the same treatment.

Read-only statements keep running without a transaction (readers never block writers).
``benchmarks/sqlite_lock.py`` compares Airflow's defaults with this profile.
"""

from __future__ import annotations

from typing import Any

CONNECT_ARGS: dict[str, object] = {"timeout": 60, "isolation_level": "IMMEDIATE"}

#: Airflow's behaviour without this module (for the comparison in benchmarks/sqlite_lock.py).
NO_ARGS: dict[str, object] = {}


def _begin_immediate_before_savepoint(conn: Any, name: str) -> None:
    if conn.dialect.name != "sqlite":
        return
    dbapi_conn = conn.connection.dbapi_connection
    in_transaction = getattr(dbapi_conn, "in_transaction", None)
    if in_transaction is False:
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
        finally:
            cursor.close()


def install_savepoint_guard(target: Any = None) -> bool:
    """Listen on ``target`` (default: every SQLAlchemy engine; idempotent). True when newly installed."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    target = Engine if target is None else target
    if event.contains(target, "savepoint", _begin_immediate_before_savepoint):
        return False
    event.listen(target, "savepoint", _begin_immediate_before_savepoint)
    return True
