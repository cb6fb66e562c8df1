"""SQLite connection arguments for the embedded Airflow profile.

Referenced by ``[database] sql_alchemy_connect_args`` (and ``..._async``).

Why: with Airflow's WAL journal, a transaction that has read (holding a snapshot) and then tries
to write while another process committed in between gets ``SQLITE_BUSY`` at once: SQLite cannot
wait, the snapshot is stale. ``airflow backfill create`` inserting runs while the scheduler and
task processes write hits exactly this and fails with ``database is locked``.

Fix: ``isolation_level="IMMEDIATE"`` makes the driver open each write transaction with
``BEGIN IMMEDIATE`` right before its first write, so the write lock is taken before any snapshot
exists and a busy writer is simply waited for, up to ``timeout`` seconds (instead of 5).
"""

from __future__ import annotations

CONNECT_ARGS: dict[str, object] = {"timeout": 60, "isolation_level": "IMMEDIATE"}

#: Airflow's behaviour without this module (for the comparison in benchmarks/sqlite_lock.py).
NO_ARGS: dict[str, object] = {}
