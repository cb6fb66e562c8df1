"""A task's supervisor notices its process's exit at once, not a heartbeat interval later.

Airflow's task supervisor (``airflow.sdk.execution_time.supervisor``, Task SDK 1.3) waits for its
task process in ``select()`` on the process's sockets, for up to ``[workers]
min_heartbeat_interval`` seconds at a time, and checks for the exit after each wake-up. The
sockets close a moment before the exiting process can be reaped; when the supervisor reads the
last EOF inside that moment (a busy machine: the woken supervisor pre-empts the exiting task), its
check finds the process still alive, and the next ``select()`` has no socket left to wake it: the
slot stays taken for the whole interval after the task has ended. In the demo's ingestion
backfills that was 110 of 468 task runs, 20 s each (its interval); the same race with 2 busy
cores and a 2 s interval held 15 of 30 plain child processes for the full 2 s
(``tests/unit/test_supervisor_exit.py`` reproduces it without this fix).

:func:`install` makes that wait end when the process exits: once no socket is left, the
supervisor waits on the process itself (a Linux ``pidfd``; elsewhere it looks again every 50 ms).
Nothing else changes: reaping, exit codes, heartbeats and the socket clean-up stay Airflow's.
Installed by :func:`mlops.airflow.local_settings.apply` in every Airflow process;
``MLOPS_SUPERVISOR_EXIT_WAIT=0`` turns it off.
"""

from __future__ import annotations

import logging
import os
import select
from typing import Any

log = logging.getLogger(__name__)

#: Where no pidfd can be opened: the longest a supervisor sleeps before it looks at the exit again.
POLL_SECONDS = 0.05


def wait_for_exit(pid: int, timeout: float) -> None:
    """Return when process ``pid`` has exited (it stays unreaped) or after ``timeout`` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux >= 5.3, or already reaped: look again soon
        select.select([], [], [], min(timeout, POLL_SECONDS))
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def install() -> bool:
    """Patch the Task SDK's supervisor (see the module docstring); False, with a warning, when its
    internals are not the ones this was written against (then nothing is changed)."""
    try:
        from airflow.sdk.execution_time.supervisor import WatchedSubprocess
    except ImportError as exc:
        log.warning("mlops: supervisor exit wait not installed (%s)", exc)
        return False
    original = getattr(WatchedSubprocess, "_service_subprocess", None)
    if original is None or not hasattr(WatchedSubprocess, "selector"):
        log.warning("mlops: supervisor exit wait not installed: this Task SDK has no _service_subprocess")
        return False
    if getattr(original, "mlops_exit_wait", False):
        return True

    def _service_subprocess(self: Any, max_wait_time: float, *args: Any, **kwargs: Any) -> int | None:
        if self._exit_code is None and not self.selector.get_map():
            # Every socket has reported EOF: the process is exiting. Wait for that, not for the
            # heartbeat interval, then let Airflow reap it and read its exit code.
            wait_for_exit(self.pid, max(0.01, max_wait_time))
            max_wait_time = 0
        return original(self, max_wait_time, *args, **kwargs)

    _service_subprocess.mlops_exit_wait = True  # type: ignore[attr-defined]
    _service_subprocess.__wrapped__ = original  # type: ignore[attr-defined]
    WatchedSubprocess._service_subprocess = _service_subprocess  # type: ignore[method-assign]
    return True


def uninstall() -> None:
    """Undo :func:`install` (for tests that compare both)."""
    from airflow.sdk.execution_time.supervisor import WatchedSubprocess

    current = WatchedSubprocess._service_subprocess
    if getattr(current, "mlops_exit_wait", False):
        WatchedSubprocess._service_subprocess = current.__wrapped__  # type: ignore[method-assign,attr-defined]
