"""Map the domain's :class:`mlops.errors.PermanentError` to Airflow's fail-without-retry.

The domain stays Airflow-free: it raises ``PermanentError`` (a lake write that a retry cannot fix,
a landing export that changed after validation...). A task or operator wraps its domain call in
:func:`fail_without_retry`, which re-raises it as ``AirflowFailException`` with the same message:
the task fails at once (no retries spent on the same failure) and the log says what to do. Any
other exception is left alone, so Airflow retries it.

    @task
    def publish(day: str) -> dict:
        from mlops.airflow.errors import fail_without_retry

        with fail_without_retry():
            return publish_partition(day).metadata()
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@contextlib.contextmanager
def fail_without_retry() -> Iterator[None]:
    """Re-raise a :class:`mlops.errors.PermanentError` as ``AirflowFailException`` (same message)."""
    from mlops.errors import PermanentError

    try:
        yield
    except PermanentError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
