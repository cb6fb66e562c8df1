"""The service's background work in a child process, off the request path's GIL.

The prediction service answers requests on one event loop; its background threads (the ``@alias``
poll, the prediction-log flush) share that process's GIL. On a 2-core machine a background thread
that runs Python holds the GIL for up to the switch interval (5 ms) each time a request wants it
back (after a socket read, the SQLite read, the XGBoost call), so background CPU shows up in the
request latency tail. Measured per call (``thread_time``, 500 logged rows, load 8): an ``@alias``
lookup through MLflow's SQLAlchemy store 4.4 ms of CPU (two per poll: champion and challenger),
a log flush 18 ms (Arrow table 9 ms, parquet 7 ms).

A :class:`Sidecar` is one child process (a fresh ``python -c``: no fork of the server's threads, no
re-import of its main module) that runs named functions for the service: :meth:`Sidecar.call`
sends ``("module:function", args, kwargs)`` over a socket pair (:mod:`multiprocessing.connection`)
and waits for the answer with the GIL released.
The service uses one for its ``@alias`` lookups (:class:`mlops.serving.model.ModelHolder`) and
its log writes (:class:`mlops.serving.logger.PredictionLogger`); what stays in the server is a
pickle of the arguments (the log rows in small chunks, each well under a millisecond).

The child starts at the first call (its imports are warmed before it reports ready), is restarted
if it died, and is killed after ``timeout`` seconds without an answer (the call fails with
:class:`SidecarError`, the caller's retry logic applies). It ignores ``SIGINT`` (a Ctrl-C in the
terminal reaches the whole process group: the server's shutdown still needs the child to flush
the log) and exits when the server closes the pipe or dies.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

log = logging.getLogger(__name__)

#: Longest wait for the child to start (imports) or to answer one call, in seconds. Generous: the
#: first call of a target pays its imports and set-up there (MLflow's store: over 120 s was seen
#: at load 30 on 2 cores), and a killed child would pay them again at the next call.
START_TIMEOUT = 600.0
CALL_TIMEOUT = 600.0


class SidecarError(RuntimeError):
    """The sidecar could not run a call (it failed there, timed out, or the child died)."""


def _target(name: str) -> Any:
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise ValueError(f"sidecar target {name!r}: expected '<module>:<function>', e.g. 'mlops.lake:exists'")
    return getattr(importlib.import_module(module), attr)


def _main(conn: Connection, warm: tuple[str, ...]) -> None:
    """The child: warm ``warm`` (targets called without arguments), then answer calls until EOF."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in warm:
        try:
            _target(name)()
        except BaseException as exc:
            conn.send(("error", f"warming {name} failed: {type(exc).__name__}: {exc}"))
            return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the server closed the pipe or died
            return
        if message is None:
            return
        name, args, kwargs = message
        try:
            reply = ("ok", _target(name)(*args, **kwargs))
        except BaseException as exc:
            reply = ("error", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. an unpicklable result: say so rather than hang the caller
            conn.send(("error", f"{name} returned a value the pipe cannot carry: {exc}"))


#: The child's command line (``python -c``): its ``sys.path`` is the server's, its end of the socket
#: pair is the fd in ``argv[2]``; no ``multiprocessing`` start method, so the server's main module is
#: never re-imported (a script without a ``__main__`` guard would start a second server).
_CHILD = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from multiprocessing.connection import Connection; from mlops.serving import sidecar; "
    "sidecar._main(Connection(int(sys.argv[2])), tuple(sys.argv[3:]))"
)


class Sidecar:
    """One child process running ``mlops`` functions for the service (see the module docstring).

    Thread-safe: calls from several threads are answered one after the other.
    """

    def __init__(
        self,
        *,
        warm: tuple[str, ...] = (),
        name: str = "serving-sidecar",
        start_timeout: float = START_TIMEOUT,
        call_timeout: float = CALL_TIMEOUT,
    ) -> None:
        self.warm = tuple(warm)
        self.name = name
        self.start_timeout = float(start_timeout)
        self.call_timeout = float(call_timeout)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._closed = False
        self.starts = 0
        self.calls = 0
        self.failures = 0
        self.call_seconds = 0.0
        self.last_error: str | None = None

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the child now (otherwise the first call does)."""
        with self._lock:
            self._ensure()

    def _ensure(self) -> Connection:
        if self._closed:
            raise SidecarError(f"{self.name} is closed")
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            return self._conn
        self._kill()
        import json
        import socket
        import sys
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        try:
            paths = [p for p in sys.path if p]
            proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, json.dumps(paths), str(theirs.fileno()), *self.warm],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        parent = Connection(ours.detach())
        self._proc, self._conn = proc, parent
        self.starts += 1
        if not parent.poll(self.start_timeout):
            self._kill()
            raise SidecarError(f"{self.name} did not start within {self.start_timeout:g} s")
        try:
            status, value = parent.recv()
        except (EOFError, OSError) as exc:
            self._kill()
            raise SidecarError(f"{self.name} exited while starting (exit code {proc.poll()})") from exc
        if status != "ready":
            self._kill()
            raise SidecarError(f"{self.name} failed to start: {value}")
        log.info("%s started (pid %s)", self.name, value)
        return parent

    def call(self, target: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """``target(*args, **kwargs)`` in the child (``"mlops.module:function"``); its result.

        Raises :class:`SidecarError` when it raised there (with its type and message), did not
        answer within ``timeout`` (the child is then killed and restarted at the next call), or
        the child died.
        """
        wait = self.call_timeout if timeout is None else float(timeout)
        with self._lock:
            started = time.perf_counter()
            conn = self._ensure()
            try:
                conn.send((target, args, kwargs))
                if not conn.poll(wait):
                    self._kill()
                    raise SidecarError(f"{target} did not answer within {wait:g} s in {self.name}")
                status, value = conn.recv()
            except (EOFError, OSError) as exc:
                code = self._proc.poll() if self._proc is not None else None
                self._kill()
                self._failed(f"{self.name} died during {target} (exit code {code})")
                raise SidecarError(self.last_error) from exc
            except SidecarError as exc:
                self._failed(str(exc))
                raise
            finally:
                self.calls += 1
                self.call_seconds += time.perf_counter() - started
        if status != "ok":
            self._failed(f"{target} failed in {self.name}: {value}")
            raise SidecarError(self.last_error)
        return value

    def _failed(self, message: str) -> None:
        self.failures += 1
        self.last_error = message

    def _kill(self) -> None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if conn is not None:
            conn.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %s) did not exit after SIGKILL", self.name, proc.pid)

    def close(self, timeout: float = 30.0) -> None:
        """Ask the child to exit (after any call in progress), kill it if it does not."""
        with self._lock:
            self._closed = True
            proc, conn = self._proc, self._conn
            if conn is not None:
                try:
                    conn.send(None)
                except OSError:
                    pass
            if proc is not None:
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not exit within %g s: killed", self.name, timeout)
            self._kill()

    def describe(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "starts": self.starts,
            "calls": self.calls,
            "failures": self.failures,
            "mean_call_ms": round(1e3 * self.call_seconds / self.calls, 2) if self.calls else None,
            "last_error": self.last_error,
        }
