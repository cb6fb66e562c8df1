"""Run the embedded Airflow (SQLite + LocalExecutor) from Python: the demo, tests, benchmarks.

Everything goes through the real components: ``airflow db migrate``, an api-server (which also
serves the Execution API that task processes talk to), scheduler, dag-processor and triggerer as
separate processes, and ``airflow backfill create`` / ``airflow dags trigger``. Nothing here calls
``dag.test()``.

Each component runs in a session of its own, and :class:`Services` watches them: when one dies
(SIGKILL, OOM), everything it started is stopped at once, whatever its process group (the
LocalExecutor's workers, which ignore SIGTERM once the scheduler is gone, and the task processes,
which Airflow puts in groups of their own). Nothing listens beyond loopback: the api-server binds
127.0.0.1, and the scheduler and triggerer run without Airflow's log servers (see
:data:`DEFAULT_COMMANDS`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import Settings, airflow_env, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

log = logging.getLogger(__name__)

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_STATES = frozenset({"success", "failed"})
#: ``airflow`` arguments of a component when :attr:`Services.commands` does not name them. The
#: scheduler (LocalExecutor) and the triggerer would each start Airflow's log server, which listens
#: on every interface (``0.0.0.0`` and ``[::]``, ports 8793 and 8794: Airflow 3.3 has no host
#: setting for it) and, left behind by a killed scheduler, keeps the port from its successor. On one
#: machine the api-server reads task and trigger logs from the files under ``$AIRFLOW_HOME/logs``
#: itself, so the embedded profile runs without them.
DEFAULT_COMMANDS: dict[str, tuple[str, ...]] = {
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "triggerer": ("triggerer", "--skip-serve-logs"),
}


def wait_http(url: str, timeout: float, what: str, alive: Any = None) -> None:
    """Poll ``url`` until it answers 200; ``alive()`` (if given) raises when the server died."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        time.sleep(1)
    raise TimeoutError(f"{what} not healthy at {url} after {timeout}s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _secret(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def environment(settings: Settings | None = None, port: int | None = None) -> dict[str, str]:
    """The full process environment for embedded Airflow commands."""
    s = settings or get_settings()
    env = {**os.environ, **airflow_env(s)}
    if port is not None:
        env["AIRFLOW__API__PORT"] = str(port)
    port_s = env["AIRFLOW__API__PORT"]
    env.setdefault("AIRFLOW__API__BASE_URL", f"http://127.0.0.1:{port_s}")
    env.setdefault("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", f"http://127.0.0.1:{port_s}/execution/")
    # api-server, scheduler and workers must share the secrets that sign task tokens.
    env.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", _secret(s.airflow_home / ".jwt_secret"))
    env.setdefault("AIRFLOW__API__SECRET_KEY", _secret(s.airflow_home / ".api_secret"))
    env.setdefault("AIRFLOW__CORE__FERNET_KEY", _fernet(s.airflow_home / ".fernet_key"))
    env.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def _fernet(path: Path) -> str:
    if not path.exists():
        from cryptography.fernet import Fernet

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
    return path.read_text().strip()


def airflow(
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    check: bool = True,
    capture: bool = True,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``airflow ARGS`` with the embedded environment."""
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    proc = subprocess.run(
        cmd,
        env=dict(env or environment()),
        text=True,
        capture_output=capture,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"`airflow {' '.join(args)}` failed with exit code {proc.returncode}:\n"
            f"{(proc.stderr or '')[-4000:]}\n{(proc.stdout or '')[-2000:]}"
        )
    return proc


LOCAL_SETTINGS = """\
# Written by mlops.dev.embedded: the project's Airflow local settings (see that module's docstring).
from mlops.airflow.local_settings import apply as _mlops_apply

_mlops_apply()
"""


def write_local_settings(airflow_home: Path) -> Path:
    """Install ``$AIRFLOW_HOME/config/airflow_local_settings.py`` (idempotent)."""
    path = airflow_home / "config" / "airflow_local_settings.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != LOCAL_SETTINGS:
        path.write_text(LOCAL_SETTINGS)
    return path


def init_db(env: Mapping[str, str] | None = None) -> None:
    """Create or upgrade the metadata database and install the local settings (idempotent)."""
    env = env or environment()
    write_local_settings(Path(env["AIRFLOW_HOME"]))
    airflow(["db", "migrate"], env=env)


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when the thread that started it dies
    (Linux ``PR_SET_PDEATHSIG``), so a killed demo, test or benchmark never leaves an orphaned
    Airflow behind. libc is loaded here, in the parent: the child, forked beside the watchdog
    thread, only makes the one call."""
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except OSError:
        return None
    return lambda: prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


# --- process sessions -----------------------------------------------------------------------------


def session_processes(sid: int) -> list[int]:
    """The live processes of session ``sid`` (Linux ``/proc``; zombies left out), sorted.

    A component started with ``start_new_session`` leads a session that every process it starts
    stays in, whatever its process group (Airflow runs each task in a group of its own) and even
    once orphaned. A session id is not reused while any process holds it.
    """
    pids: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # After "(comm)": state ppid pgrp session ...; comm may itself contain ") ".
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 3 and int(fields[3]) == sid and fields[0] not in (b"Z", b"X"):
            pids.append(int(name))
    return sorted(pids)


def kill_session(sid: int, timeout: float = 10) -> list[int]:
    """SIGKILL every process of session ``sid`` (see :func:`session_processes`) until none is left;
    returns the pids killed. SIGKILL, not SIGTERM: this is for a session whose leader is already
    gone or did not stop, and the LocalExecutor's workers ignore SIGTERM and SIGINT.

    Call it only while the leader is alive or its session still has members: a session id is
    reserved as long as a process holds it, not after (see :meth:`Services._stop_session`).
    """
    import signal

    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        alive = session_processes(sid)
        if not alive:
            return sorted(killed)
        if time.monotonic() > deadline:
            raise RuntimeError(f"session {sid}: processes {alive} survived SIGKILL for {timeout}s")
        for pid in alive:  # one pass: a child forked meanwhile inherits the session, seen next pass
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` and of every child it has reaped (Linux
    ``/proc/<pid>/stat``: utime, stime, cutime, cstime); 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(b")") + 2 :].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


#: Seconds a REST call may take (longer than SQLite's 60 s busy timeout, so a locked database
#: answers with its error rather than the client giving up first), and the attempts of a call
#: that failed with a server error or timed out.
REST_TIMEOUT, REST_ATTEMPTS = 180.0, 3

#: Seconds a new backfill of a DAG waits, once every run of the DAG's previous backfill has ended,
#: for the scheduler to mark that backfill complete: it looks every 30 s
#: (``SchedulerJobRunner._mark_backfills_complete``), and until then ``POST /backfills`` answers
#: 409 "There is already a running backfill". The demo's second simulator backfill came 28 s
#: after its first one's last run on a quiet machine, and failed on it.
BACKFILL_COMPLETE_WAIT = 90.0


@dataclass(frozen=True)
class _ResponseOf:
    """A found object standing in for the response of a request that created it."""

    body: dict[str, Any]
    status_code: int = 200

    @property
    def text(self) -> str:
        return json.dumps(self.body)

    def json(self) -> dict[str, Any]:
        return self.body


@dataclass(frozen=True)
class ComponentExit:
    """A component that died on its own (not stopped by :meth:`Services.stop`), as the watchdog saw it."""

    name: str
    pid: int
    returncode: int
    #: Processes it left behind that the watchdog killed (its whole session).
    killed: tuple[int, ...]
    #: ``time.monotonic()`` when the watchdog noticed.
    noticed: float


@dataclass
class Services:
    """The embedded Airflow components running as child processes, each in a session of its own.

    A watchdog thread checks them every :attr:`watch_interval` seconds: when a component has died,
    it kills what the component left behind (its session: e.g. the scheduler's LocalExecutor
    workers, task supervisors and task processes) and records a :class:`ComponentExit` in
    :attr:`exits`; :meth:`check_alive` then raises, and :meth:`restart` starts the component again.
    """

    env: dict[str, str]
    components: Sequence[str] = COMPONENTS
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: ``airflow`` arguments per component when not :data:`DEFAULT_COMMANDS` or just its name.
    commands: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: Extra environment per component, on top of ``env``.
    component_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: The program each component's arguments are given to (default: this environment's ``airflow``).
    program: str = field(default_factory=lambda: str(Path(sys.executable).parent / "airflow"))
    watch_interval: float = 1.0
    exits: list[ComponentExit] = field(default_factory=list)

    def __post_init__(self) -> None:
        import threading

        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._handled: set[int] = set()  # pids whose exit the watchdog has dealt with

    @property
    def log_dir(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "services"

    @property
    def url(self) -> str:
        return self.env["AIRFLOW__API__BASE_URL"]

    def argv(self, name: str) -> list[str]:
        """The command line of component ``name``."""
        args = self.commands.get(name) or DEFAULT_COMMANDS.get(name) or (name,)
        return [self.program, *args]

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{name}.log").open("ab") as out:
            return subprocess.Popen(
                self.argv(name),
                env={**self.env, **self.component_env.get(name, {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_parent_death_signal(),
            )

    def start(self) -> Services:
        import threading

        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            for name in self.components:
                self.procs[name] = self._spawn(name)
        self._stopping.clear()
        self._watchdog = threading.Thread(target=self._watch, name="mlops-services-watchdog", daemon=True)
        self._watchdog.start()
        if "api-server" in self.components:
            self.wait_healthy()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(self.watch_interval):
            with self._lock:
                if self._stopping.is_set():
                    return
                for name, proc in list(self.procs.items()):
                    if proc.poll() is None or proc.pid in self._handled:
                        continue
                    self._handled.add(proc.pid)
                    try:
                        killed = self._stop_session(proc)
                    except Exception:  # the watchdog must outlive one failure; say what is left
                        log.exception("airflow %s exited; stopping what it left running failed", name)
                        killed = []
                    self.exits.append(
                        ComponentExit(name, proc.pid, int(proc.returncode), tuple(killed), time.monotonic())
                    )
                    log.error(
                        "airflow %s (pid %d) exited with %s; stopped the %d processes it left behind; "
                        "log: %s",
                        name,
                        proc.pid,
                        proc.returncode,
                        len(killed),
                        self.log_dir / f"{name}.log",
                    )

    @staticmethod
    def _stop_session(proc: subprocess.Popen[bytes]) -> list[int]:
        """Kill what is left of ``proc``'s session once ``proc`` has exited (and been reaped)."""
        members = session_processes(proc.pid)
        if proc.pid in members:
            # The leader was reaped, so a process with its pid is a newcomer that reused a free
            # pid, and the session it leads is not ours (ours was empty, or the pid was still taken).
            return []
        return kill_session(proc.pid) if members else []

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Stop component ``name`` if it still runs (its whole session), and start it again."""
        import signal

        with self._lock:
            old = self.procs.get(name)
            if old is not None:
                if old.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(old.pid, signal.SIGTERM)
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        old.wait(timeout=30)
                    if old.poll() is None:
                        kill_session(old.pid)
                        old.wait()
                if old.pid not in self._handled:
                    self._handled.add(old.pid)
                    self._stop_session(old)
            self.procs[name] = proc = self._spawn(name)
            return proc

    def wait_healthy(self, timeout: float = 180) -> None:
        url = f"{self.url}/api/v2/monitor/health"
        wait_http(url, timeout, f"Airflow api-server (logs in {self.log_dir})", alive=self.check_alive)

    def api(self) -> Any:
        """An ``httpx`` client of the api-server's REST API (``/api/v2``), logged in as ``admin``
        (what the UI's buttons call; a request costs milliseconds, an ``airflow`` CLI call seconds)."""
        import httpx

        pw_file = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        password = json.loads(pw_file.read_text())["admin"]
        resp = httpx.post(
            f"{self.url}/auth/token", json={"username": "admin", "password": password}, timeout=60
        )
        resp.raise_for_status()
        token = resp.json()["access_token"]
        return httpx.Client(
            base_url=f"{self.url}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=REST_TIMEOUT
        )

    def trigger_run(
        self, dag_id: str, logical_date: str | None, conf: Mapping[str, object] | None = None
    ) -> str:
        """Trigger ``dag_id`` for ``logical_date`` (``YYYY-MM-DD``, midnight UTC; None: no logical
        date, as for an asset-scheduled DAG) like the UI's Trigger form; returns the run id."""
        when = f"{logical_date}T00:00:00Z" if logical_date else None
        with self.api() as client:
            resp = client.post(
                f"/dags/{dag_id}/dagRuns", json={"logical_date": when, "conf": dict(conf or {})}
            )
        if resp.status_code >= 400:
            raise RuntimeError(
                f"triggering {dag_id} for {logical_date} failed ({resp.status_code}): {resp.text}"
            )
        return str(resp.json()["dag_run_id"])

    def unpause_dags(self, dag_ids: Sequence[str], parse_timeout: float = 300) -> None:
        """Unpause ``dag_ids`` through the REST API (the UI's toggle), waiting (up to
        ``parse_timeout`` seconds) for the dag-processor to have parsed each: what ``airflow dags
        reserialize`` forces, at the cost of an ``airflow`` CLI start and a parse of every file."""
        self._each_dag(
            dag_ids,
            lambda c, d: c.patch(f"/dags/{d}", json={"is_paused": False}),
            "unpausing",
            timeout=parse_timeout,
        )

    def create_backfill(
        self,
        dag_id: str,
        start: str,
        end: str,
        max_active_runs: int = 10,
        conf: Mapping[str, object] | None = None,
        reprocess: str = "none",
        parse_timeout: float = 300,
    ) -> dict[str, Any]:
        """``POST /backfills`` for the logical dates of the days ``[start, end]`` (``YYYY-MM-DD``,
        the whole last day: a schedule at 02:00, like ``train_air_time``'s, has its run of ``end``),
        like :func:`backfill` without an ``airflow`` CLI start (seconds each on a loaded machine)."""
        body: dict[str, Any] = {
            "dag_id": dag_id,
            "from_date": f"{start}T00:00:00Z",
            "to_date": f"{end}T23:59:59Z",
            "max_active_runs": max_active_runs,
            "reprocess_behavior": reprocess,
        }
        if conf:
            body["dag_run_conf"] = dict(conf)
        out: list[dict[str, Any]] = []
        self._each_dag(
            [dag_id], lambda c, _d: _post_backfill(c, body), "backfilling", out, timeout=parse_timeout
        )
        return out[0]

    def _each_dag(
        self,
        dag_ids: Sequence[str],
        call: Callable[[Any, str], Any],
        what: str,
        out: list[dict[str, Any]] | None = None,
        timeout: float = 300,
    ) -> None:
        """``call(client, dag_id)`` for each DAG, retrying a 404 (not parsed yet) until ``timeout``,
        and a server error or a timed-out request (SQLite's write lock held past its 60 s busy
        timeout on a loaded machine: a ``POST /backfills`` failed so at load 36) up to
        :data:`REST_ATTEMPTS` times. A retried backfill that the failed attempt did create answers
        409: the DAG's newest backfill is then the answer."""
        import httpx

        deadline = time.monotonic() + timeout
        with self.api() as client:
            for dag_id in dag_ids:
                attempt = 1
                while True:
                    try:
                        resp = call(client, dag_id)
                    except httpx.TimeoutException:
                        if attempt >= REST_ATTEMPTS:
                            raise
                        attempt += 1
                        log.warning("%s %s: request timed out; attempt %d", what, dag_id, attempt)
                        continue
                    if resp.status_code == 409 and attempt > 1 and what == "backfilling":
                        resp = client.get("/backfills", params={"dag_id": dag_id, "order_by": "-id"})
                        if resp.status_code < 400:
                            resp = _ResponseOf(resp.json()["backfills"][0])
                        break
                    if resp.status_code >= 500 and attempt < REST_ATTEMPTS:
                        attempt += 1
                        log.warning("%s %s failed (%d); attempt %d", what, dag_id, resp.status_code, attempt)
                        time.sleep(5)
                        continue
                    if resp.status_code != 404 or time.monotonic() > deadline:
                        break
                    self.check_alive()
                    time.sleep(1)
                if resp.status_code >= 400:
                    raise RuntimeError(
                        f"{what} {dag_id} failed ({resp.status_code}): {resp.text[:2000]}"
                        + (
                            f" (not parsed after {timeout:.0f}s: see {self.log_dir}/dag-processor.log)"
                            if resp.status_code == 404
                            else ""
                        )
                    )
                if out is not None:
                    out.append(resp.json())

    def check_alive(self) -> None:
        """Raise, with the tail of its log, if a component has exited."""
        for name, proc in list(self.procs.items()):
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(
                    f"airflow {name} exited with {proc.returncode} (what it left running was stopped; "
                    f"Services.restart({name!r}) starts it again):\n{tail}"
                )

    def processes(self) -> dict[str, list[int]]:
        """The live processes of each component's session."""
        with self._lock:
            return {name: session_processes(proc.pid) for name, proc in self.procs.items()}

    def cpu(self) -> dict[str, float]:
        """CPU seconds each component has used so far, with everything it started: the live
        processes of its session, each with the children it reaped (the scheduler's includes the
        LocalExecutor's workers and every task process). Load-independent, unlike wall time."""
        return {
            name: round(sum(cpu_seconds(pid) for pid in pids), 1) for name, pids in self.processes().items()
        }

    def listening(self) -> list[tuple[str, int, str, int]]:
        """``(component, pid, address, port)`` of every TCP socket the components listen on."""
        owner = {pid: name for name, pids in self.processes().items() for pid in pids}
        return [(owner[pid], pid, addr, port) for pid, addr, port in listening_sockets(owner)]

    def stop(self) -> None:
        """SIGTERM each component's process group, wait up to 30 s, then kill what is left of every
        session (a component that did not stop, workers or tasks it left behind)."""
        import signal
        import threading

        self._stopping.set()
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=60)
        with self._lock:
            for proc in self.procs.values():
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + 30
            for proc in self.procs.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            for proc in self.procs.values():
                if proc.poll() is None:
                    kill_session(proc.pid)
                    proc.wait()
                elif proc.pid not in self._handled:
                    self._handled.add(proc.pid)
                    self._stop_session(proc)
            self.procs.clear()


def _post_backfill(client: Any, body: Mapping[str, Any]) -> Any:
    """``POST /backfills``; while it answers 409 because the DAG's previous backfill is not marked
    complete although none of the DAG's backfill runs is queued or running any more, ask again
    (up to :data:`BACKFILL_COMPLETE_WAIT` seconds). A backfill with runs left still answers 409,
    to the caller."""
    deadline = time.monotonic() + BACKFILL_COMPLETE_WAIT
    waiting = False
    while True:
        resp = client.post("/backfills", json=body)
        if resp.status_code != 409 or "already a running backfill" not in resp.text:
            return resp
        left = client.get(
            f"/dags/{body['dag_id']}/dagRuns",
            params={"run_type": "backfill", "state": ["queued", "running"], "limit": 1},
        )
        if left.status_code >= 400 or left.json()["total_entries"] or time.monotonic() > deadline:
            return resp
        if not waiting:
            log.info(
                "backfilling %s: the previous backfill's runs ended; waiting for the scheduler to "
                "mark it complete",
                body["dag_id"],
            )
            waiting = True
        time.sleep(1)


def listening_sockets(pids: Iterable[int]) -> list[tuple[int, str, int]]:
    """``(pid, address, port)`` of every listening TCP socket (IPv4 and IPv6) held by ``pids``
    (Linux ``/proc``, like ``ss -ltnp``)."""
    import ipaddress

    inodes: dict[int, int] = {}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[int(target[8:-1])] = pid
    found: list[tuple[int, str, int]] = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], int(cols[9])
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            addr_hex, port_hex = local.split(":")
            raw = bytes.fromhex(addr_hex)  # 32-bit words in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((inodes[inode], str(ipaddress.ip_address(raw)), int(port_hex, 16)))
    return sorted(found)


def is_loopback(address: str) -> bool:
    """``127.0.0.0/8``, ``::1``, or an IPv4-mapped loopback address."""
    import ipaddress

    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


@contextlib.contextmanager
def running(
    settings: Settings | None = None,
    port: int | None = None,
    components: Sequence[str] = COMPONENTS,
) -> Iterator[Services]:
    """Migrate the database, start the components, yield them, stop them."""
    env = environment(settings, port=port if port is not None else free_port())
    init_db(env)
    services = Services(env=env, components=components).start()
    try:
        yield services
    finally:
        services.stop()


def reserialize(env: Mapping[str, str]) -> None:
    """Parse the DAGs folder into the metadata database now (no waiting for the dag-processor)."""
    airflow(["dags", "reserialize"], env=env)


def unpause(dag_ids: Sequence[str], env: Mapping[str, str]) -> None:
    """Unpause ``dag_ids`` in one CLI call (each ``airflow`` start costs seconds)."""
    import re

    if not dag_ids:
        return
    pattern = "^(" + "|".join(re.escape(d) for d in dag_ids) + ")$"
    airflow(["dags", "unpause", "--treat-dag-id-as-regex", "-y", pattern], env=env)


def backfill(
    dag_id: str,
    start: str,
    end: str,
    env: Mapping[str, str],
    conf: Mapping[str, object] | None = None,
    max_active_runs: int | None = None,
    reprocess: str = "none",
) -> None:
    """``airflow backfill create`` for ``[start, end]`` (dates, inclusive of logical dates)."""
    args = ["backfill", "create", "--dag-id", dag_id, "--from-date", start, "--to-date", end]
    args += ["--reprocess-behavior", reprocess]
    if conf:
        args += ["--dag-run-conf", json.dumps(conf)]
    if max_active_runs:
        args += ["--max-active-runs", str(max_active_runs)]
    airflow(args, env=env)


def trigger(
    dag_id: str,
    env: Mapping[str, str],
    conf: Mapping[str, object] | None = None,
    logical_date: str | None = None,
    run_id: str | None = None,
) -> None:
    args = ["dags", "trigger", dag_id]
    if conf:
        args += ["-c", json.dumps(conf)]
    if logical_date:
        args += ["-l", logical_date]
    if run_id:
        args += ["-r", run_id]
    airflow(args, env=env)


def list_runs(dag_id: str, env: Mapping[str, str]) -> list[dict[str, object]]:
    """The runs of ``dag_id`` (oldest first): run_id, run_type, state, logical_date, start/end.

    On SQLite, a read-only query (a poll every few seconds through ``airflow dags list-runs``
    would cost a whole Python + Airflow start each time, a large share of a 2-core machine);
    elsewhere, the CLI.
    """
    conn = env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")
    if conn.startswith("sqlite:///"):
        return _sqlite_runs(conn.removeprefix("sqlite:///"), dag_id)
    proc = airflow(["dags", "list-runs", dag_id, "-o", "json"], env=env)
    return parse_json_list(proc.stdout)


def _sqlite_runs(db: str, dag_id: str) -> list[dict[str, object]]:
    import sqlite3

    if not Path(db).exists():
        return []
    columns = ("dag_id", "run_id", "run_type", "state", "logical_date", "start_date", "end_date")
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(columns)} FROM dag_run WHERE dag_id = ? ORDER BY id", (dag_id,)
        ).fetchall()
    return [dict(zip(columns, row, strict=True)) for row in rows]


def parse_json_list(text: str) -> list[dict[str, object]]:
    """The JSON array of objects in a CLI's stdout, ignoring anything printed around it
    (warnings, log lines that may themselves contain brackets)."""
    decoder = json.JSONDecoder()
    pos = text.find("[")
    while pos >= 0:
        try:
            value, _ = decoder.raw_decode(text, pos)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
        pos = text.find("[", pos + 1)
    if "No data found" in text or not text.strip():
        return []
    raise ValueError(f"no JSON list of runs in the CLI output:\n{text[-2000:]}")


def wait_for_runs(
    dag_id: str,
    env: Mapping[str, str],
    expected: int,
    timeout: float = 1800,
    services: Services | None = None,
    poll: float = 5,
    on_progress: object = None,
) -> list[dict[str, object]]:
    """Wait until at least ``expected`` runs of ``dag_id`` exist and all are finished."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if services is not None:
            services.check_alive()
        runs = list_runs(dag_id, env)
        done = [r for r in runs if r.get("state") in TERMINAL_STATES]
        status = f"{dag_id}: {len(done)}/{max(expected, len(runs))} runs finished"
        if status != last:
            if callable(on_progress):
                on_progress(status)
            else:
                log.info(status)
            last = status
        if len(runs) >= expected and len(done) == len(runs):
            return runs
        time.sleep(poll)
    raise TimeoutError(f"{dag_id}: runs not finished after {timeout}s ({last})")
