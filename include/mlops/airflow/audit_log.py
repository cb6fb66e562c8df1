"""The api-server writes a REST action's audit-log row off its event loop.

Airflow 3.3's public API logs each UI/REST action (``airflow.api_fastapi.logging.decorators.
action_logging``) in an async FastAPI dependency that ends with a blocking ``session.commit()``,
on the api-server's event loop. On SQLite that commit waits for the database's write lock. When
another request holds the lock until its session is closed (a backfill POST, a DAG-run trigger, a
task's Execution API call: their sessions close in dependency teardowns that the same event loop
schedules), neither can go on: the loop is blocked in the commit, the lock holder waits for the
loop. Both stall until SQLite's busy timeout (60 s in this profile) fails the commit: the action
answers 500 after 60 s, the other request 200 after 60 s. The demo saw it whenever it created a
backfill while triggering a run.

:func:`install` wraps ``action_logging`` so that the dependency Airflow defines runs unchanged
(the same row, the same masking) except that its commit runs in the server's thread pool: the
event loop stays free, the lock holder finishes, the commit then takes the lock. Installed by
:func:`mlops.airflow.local_settings.apply` in the api-server process, taking effect when Airflow
imports the decorator's module (before the routes that call it are defined);
``MLOPS_AUDIT_LOG_OFF_LOOP=0`` turns it off. PostgreSQL (the Celery profile) has no
such lock, and the commit off the loop changes nothing there but where it waits.
"""

import logging
from typing import Any

log = logging.getLogger(__name__)


class _DeferredCommit:
    """A session whose ``commit()`` is only noted (everything else is the session's own)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.commit_requested = False

    def commit(self) -> None:
        self.commit_requested = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


#: The module whose ``action_logging`` is wrapped: before the api-server's route modules import it
#: (they call it when they are defined), and not while the local settings run.
DECORATORS_MODULE = "airflow.api_fastapi.logging.decorators"


def install() -> bool:
    """Wrap Airflow's ``action_logging`` (see the module docstring) as soon as Airflow imports its
    module (:func:`mlops.airflow.import_hooks.when_imported`)."""
    from mlops.airflow.import_hooks import when_imported

    when_imported(DECORATORS_MODULE, wrap)
    return True


def wrap(decorators: Any) -> bool:
    """Replace ``decorators.action_logging``; False, with a warning, when the api-server's modules
    are not the ones this was written against (then nothing changes)."""
    try:
        from airflow.api_fastapi.common.db.common import SessionDep
        from airflow.api_fastapi.core_api.security import GetUserDep
        from fastapi import Request
        from starlette.concurrency import run_in_threadpool
    except ImportError as exc:
        log.warning("mlops: audit-log commit off the event loop not installed (%s)", exc)
        return False
    original = getattr(decorators, "action_logging", None)
    if original is None:
        log.warning("mlops: audit-log commit off the event loop not installed: no action_logging")
        return False
    if getattr(original, "mlops_off_loop", False):
        return True

    def action_logging(event: str | None = None) -> Any:
        log_action = original(event)

        # The same parameters as Airflow's dependency (FastAPI resolves them from these annotations).
        async def log_action_off_loop(request: Request, session: SessionDep, user: GetUserDep) -> None:
            deferred = _DeferredCommit(session)
            await log_action(request, deferred, user)
            if deferred.commit_requested:
                await run_in_threadpool(session.commit)

        return log_action_off_loop

    action_logging.mlops_off_loop = True  # type: ignore[attr-defined]
    action_logging.__doc__ = original.__doc__
    decorators.action_logging = action_logging
    return True
