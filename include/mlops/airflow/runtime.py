"""The runtime rule of every task and operator that touches the lake: one context manager.

:func:`lake_task` does the two things such a task needs before and around its domain call:

1. **S3 through the Airflow connection**: on entry it makes :mod:`mlops.lake` build its S3 client
   from the connection ``conn_id`` (``aws_default``, :func:`mlops.airflow.storage.use_airflow_connection`;
   lazy, so ``file://`` lakes never look the connection up).
2. **Domain errors to task states**: the domain stays Airflow-free and raises plain exceptions.
   :class:`mlops.errors.PermanentError` (a retry cannot fix it: a lake that refuses the write, bytes
   changed after validation...) and any class in ``fail`` become ``AirflowFailException`` (the
   task fails at once, no retries spent on the same failure); any class in ``skip`` becomes
   ``AirflowSkipException``. The message is the exception's own (it says what to do). Any other
   exception is left alone, so Airflow retries it.

The one-line call, first line of a task body (or of an operator's ``execute``), wrapping the rest::

    with lake_task():                         # S3 connection + PermanentError -> fail
    with lake_task(fail=(NoModelToScore,)):   # ... and these domain errors fail too
    with lake_task(self.aws_conn_id, skip=(NoChampion,), fail=(NoCurrentData,)):  # an operator

imported inside the task (``from mlops.airflow.runtime import lake_task``), e.g.::

    @task
    def publish(day: str) -> dict:
        from mlops.airflow.runtime import lake_task
        from mlops.ingest.steps import publish_partition

        with lake_task():
            return publish_partition(day).metadata()
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from mlops.airflow.storage import AWS_CONN_ID, use_airflow_connection

if TYPE_CHECKING:
    from collections.abc import Iterator

ExceptionTypes = tuple[type[BaseException], ...]


@contextlib.contextmanager
def lake_task(
    conn_id: str = AWS_CONN_ID, *, fail: ExceptionTypes = (), skip: ExceptionTypes = ()
) -> Iterator[None]:
    """Use the Airflow connection ``conn_id`` for S3, and map domain errors to fail / skip.

    :param conn_id: the Airflow connection for ``s3://`` lakes.
    :param fail: domain exceptions that fail the task without retry (besides ``PermanentError``).
    :param skip: domain exceptions that skip the task (nothing to do; downstream skipped too).
    """
    from mlops.errors import PermanentError

    use_airflow_connection(conn_id)
    try:
        yield
    except skip as exc:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(str(exc)) from exc
    except (PermanentError, *fail) as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
