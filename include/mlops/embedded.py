"""Run the embedded Airflow (SQLite + LocalExecutor) from Python: the demo, tests, benchmarks.

Everything goes through the real components: ``airflow db migrate``, an api-server (which also
serves the Execution API that task processes talk to), scheduler, dag-processor and triggerer as
separate processes, and ``airflow backfill create`` / ``airflow dags trigger``. Nothing here calls
``dag.test()``.
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
    from collections.abc import Iterator, Mapping, Sequence

log = logging.getLogger(__name__)

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_STATES = frozenset({"success", "failed"})


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
# Written by mlops.embedded: the project's Airflow local settings (see that module's docstring).
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


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started us dies (Linux), so a killed demo,
    test or benchmark never leaves an orphaned Airflow behind."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Services:
    """The embedded Airflow components running as child processes."""

    env: dict[str, str]
    components: Sequence[str] = COMPONENTS
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    #: ``airflow`` arguments per component when not just its name (e.g. a Celery worker).
    commands: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: Extra environment per component, on top of ``env``.
    component_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return Path(self.env["AIRFLOW_HOME"]) / "services"

    @property
    def url(self) -> str:
        return self.env["AIRFLOW__API__BASE_URL"]

    def start(self) -> Services:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in self.components:
            out = (self.log_dir / f"{name}.log").open("ab")
            cmd = [str(Path(sys.executable).parent / "airflow"), *self.commands.get(name, [name])]
            env = {**self.env, **self.component_env.get(name, {})}
            self.procs[name] = subprocess.Popen(
                cmd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        if "api-server" in self.components:
            self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 180) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        url = f"{self.url}/api/v2/monitor/health"
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 (loopback)
                    if resp.status == 200:
                        return
            time.sleep(1)
        raise TimeoutError(f"Airflow api-server not healthy at {url} after {timeout}s; see {self.log_dir}")

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
            base_url=f"{self.url}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def trigger_run(self, dag_id: str, logical_date: str, conf: Mapping[str, object] | None = None) -> str:
        """Trigger ``dag_id`` for ``logical_date`` (``YYYY-MM-DD``, midnight UTC) like the UI's
        Trigger form; returns the run id."""
        with self.api() as client:
            resp = client.post(
                f"/dags/{dag_id}/dagRuns",
                json={"logical_date": f"{logical_date}T00:00:00Z", "conf": dict(conf or {})},
            )
        if resp.status_code >= 400:
            raise RuntimeError(
                f"triggering {dag_id} for {logical_date} failed ({resp.status_code}): {resp.text}"
            )
        return str(resp.json()["dag_run_id"])

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"airflow {name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        import signal

        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


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
