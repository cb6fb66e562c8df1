"""Defaults every DAG shares: owner, retries, timeouts, start date, tags, the failure alert."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum

from mlops.airflow.alerts import task_failed

OWNER = "ml-platform"
#: The replayed year starts here; scheduled runs before it have no upstream data.
START_DATE = pendulum.datetime(2013, 1, 1, tz="UTC")


def _end_date() -> pendulum.DateTime | None:
    value = os.environ.get("MLOPS_SCHEDULE_END", "").strip()
    if not value:
        return None
    try:
        return pendulum.parse(value, tz="UTC")  # type: ignore[return-value]
    except Exception as exc:
        raise ValueError(f"MLOPS_SCHEDULE_END={value!r} is not a date (use YYYY-MM-DD, or unset it)") from exc


#: Last logical date of the time-scheduled DAGs (``MLOPS_SCHEDULE_END``). The embedded profile
#: replays 2013, so it ends there: unpausing a DAG then creates no run for today's date, while
#: backfills, manual triggers and asset-triggered runs work as usual. Unset (scale-out): no end.
END_DATE = _end_date()


def default_args(timeout_minutes: int = 30, retries: int = 2) -> dict[str, object]:
    """``default_args`` for a DAG: owner, retries with backoff, a task execution timeout, and the
    ``task_failed`` alert when a task fails after its retries (:mod:`mlops.airflow.alerts`)."""
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=timeout_minutes),
        "on_failure_callback": task_failed,
    }
