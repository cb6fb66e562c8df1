"""Defaults every DAG shares: owner, retries, timeouts, start date, tags."""

from __future__ import annotations

from datetime import timedelta

import pendulum

OWNER = "ml-platform"
#: The replayed year starts here; scheduled runs before it have no upstream data.
START_DATE = pendulum.datetime(2013, 1, 1, tz="UTC")


def default_args(timeout_minutes: int = 30, retries: int = 2) -> dict[str, object]:
    """``default_args`` for a DAG: owner, retries with backoff, and a task execution timeout."""
    return {
        "owner": OWNER,
        "retries": retries,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "execution_timeout": timedelta(minutes=timeout_minutes),
    }
