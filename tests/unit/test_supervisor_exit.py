"""The task supervisor notices its process's exit at once (mlops.airflow.supervisor).

Airflow's own supervisor class runs a real forked child. The child closes every socket to its
supervisor and lives on for a moment before it exits: the window in which, on a busy machine, the
supervisor reads the last EOF of a task that is exiting. Without the fix the supervisor then
sleeps the whole wait it was given; with it, it returns when the child exits.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, ClassVar

import pytest
from airflow.sdk.execution_time.supervisor import WatchedSubprocess
from pydantic import TypeAdapter

from mlops.airflow import supervisor

#: What the supervisor is given to wait per look (the heartbeat interval in Airflow's loop).
WAIT = 3.0
#: How long the child lives after closing its sockets.
LINGER = 0.3


class Child(WatchedSubprocess):
    """The Task SDK's watched subprocess with no requests to answer."""

    decoder: ClassVar[TypeAdapter] = TypeAdapter(dict)

    def _handle_request(self, msg: Any, log: Any, req_id: int) -> None:  # pragma: no cover
        raise AssertionError(f"unexpected request {msg!r}")


def _closes_its_sockets_then_exits(code: int) -> None:
    os.closerange(0, 4096)  # stdin/stdout/stderr, the requests and the logs sockets
    time.sleep(LINGER)
    os._exit(code)


def _until_reaped(child: Child) -> tuple[float, int]:
    """Airflow's monitoring loop (without heartbeats): seconds until the exit is known, exit code."""
    t0 = time.monotonic()
    while child._exit_code is None or child._open_sockets:
        child._service_subprocess(max_wait_time=WAIT)
    return time.monotonic() - t0, child._exit_code


def _start(code: int) -> Child:
    return Child.start(target=lambda: _closes_its_sockets_then_exits(code), id=uuid.uuid4())


@pytest.fixture
def without_fix():
    supervisor.uninstall()
    yield
    supervisor.install()


def test_the_race_is_there_without_the_fix(without_fix) -> None:
    """This Task SDK's supervisor sleeps the whole wait after the last EOF (when an upstream release
    fixes that, this fails: then mlops.airflow.supervisor can go)."""
    seconds, code = _until_reaped(_start(3))
    assert code == 3
    assert seconds >= WAIT - 0.05, f"the supervisor noticed the exit after {seconds:.2f}s"


def test_the_supervisor_notices_the_exit_when_it_happens() -> None:
    assert supervisor.install()
    assert supervisor.install()  # idempotent: not wrapped twice
    assert not getattr(WatchedSubprocess._service_subprocess.__wrapped__, "mlops_exit_wait", False)
    for code in (0, 5):
        seconds, got = _until_reaped(_start(code))
        assert got == code
        assert LINGER - 0.05 <= seconds < WAIT - 0.5, f"exit noticed after {seconds:.2f}s"


def test_an_ordinary_task_process_still_ends_as_before() -> None:
    """A child whose sockets close when it exits (every task's case) is reaped with its exit code."""
    supervisor.install()
    child = Child.start(target=lambda: None, id=uuid.uuid4())
    seconds, code = _until_reaped(child)
    assert code == 0
    assert seconds < WAIT - 0.5


def test_waiting_for_a_process_that_is_gone_or_lives_on() -> None:
    t0 = time.monotonic()
    supervisor.wait_for_exit(os.getpid(), 0.2)  # alive: waits the timeout
    assert time.monotonic() - t0 >= 0.19
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    t0 = time.monotonic()
    supervisor.wait_for_exit(pid, 5.0)  # reaped: no pidfd, one short look
    assert time.monotonic() - t0 < 1.0
