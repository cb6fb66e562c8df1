"""A task that ends in the triggerer no longer costs a parse of its DAG file for nothing.

When a task finishes in the triggerer (a sensor that starts and ends there, as every feed's
``wait_for_landing`` does), Airflow 3.3 (``airflow.models.trigger``, the task-end event) sends a
task callback request of the task's final state to the dag-processor through the database, a
success as well as a failure. The dag-processor then parses the task's DAG file, serializes its
DAGs again, and drops a success request unrun ("Task callback requested but is not a failure
callback": ``airflow.dag_processing.processor._execute_task_callbacks`` runs failure and retry
callbacks only). In the demo that was 122 requests, one per landing sensor, and 50 parses of the
two ingestion DAG files while the ingestion ran, CPU-bound.

:func:`install` makes the database callback sink keep what the dag-processor would run (failure,
retry, and anything that is not a task callback) and leave out the task callback requests it would
drop; nothing the dag-processor does changes but the parses. Installed by
:func:`mlops.airflow.local_settings.apply` in every Airflow process; ``MLOPS_SKIP_NOOP_CALLBACKS=0``
turns it off.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def runs_in_dag_processor(callback: Any) -> bool:
    """Whether the dag-processor would run ``callback`` (False only for a task callback request
    that is not a failure one, which it drops after parsing the file)."""
    from airflow.callbacks.callback_requests import TaskCallbackRequest

    return not isinstance(callback, TaskCallbackRequest) or callback.is_failure_callback


#: The module whose sink is wrapped. It imports Airflow's ORM models, which may not be imported
#: while the local settings run (SQLAlchemy then fails to configure the models' mappers), so the
#: wrap waits until Airflow imports it.
SINK_MODULE = "airflow.callbacks.database_callback_sink"


def install() -> bool:
    """Wrap ``DatabaseCallbackSink.send`` (see the module docstring) now if Airflow has imported
    it, else as soon as it does (:func:`mlops.airflow.import_hooks.when_imported`)."""
    from mlops.airflow.import_hooks import when_imported

    when_imported(SINK_MODULE, wrap)
    return True


def wrap(module: Any) -> bool:
    """Wrap ``module.DatabaseCallbackSink.send``; False, with a warning, when Airflow's classes are
    not the ones this was written against (then nothing changes)."""
    from airflow.callbacks.callback_requests import TaskCallbackRequest

    sink = getattr(module, "DatabaseCallbackSink", None)
    original = getattr(sink, "send", None)
    if original is None:
        log.warning(
            "mlops: no-op callback filter not installed: %s has no DatabaseCallbackSink.send", SINK_MODULE
        )
        return False
    if getattr(original, "mlops_skip_noop", False):
        return True
    if not isinstance(getattr(TaskCallbackRequest, "is_failure_callback", None), property):
        log.warning(
            "mlops: no-op callback filter not installed: TaskCallbackRequest has no is_failure_callback"
        )
        return False

    def send(self: Any, callback: Any, *args: Any, **kwargs: Any) -> None:
        if not runs_in_dag_processor(callback):
            log.debug(
                "mlops: %s callback of %s not sent (the dag-processor runs none)",
                callback.task_callback_type,
                callback.ti.task_id,
            )
            return None
        return original(self, callback, *args, **kwargs)

    send.mlops_skip_noop = True  # type: ignore[attr-defined]
    send.mlops_original = original  # type: ignore[attr-defined]
    send.__doc__ = original.__doc__
    sink.send = send
    return True
