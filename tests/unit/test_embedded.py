"""The embedded runner (no Airflow started): parsing the Airflow CLI's output, the services' command
lines and environment, and the watchdog that stops what a dead component left running."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from mlops.dev.embedded import parse_json_list

RUNS = '[{"dag_id": "ingest_flights", "run_id": "backfill__2013-01-01", "state": "success"}]'


@pytest.mark.parametrize(
    "stdout",
    [
        RUNS,
        f"[2026-11-23T05:00:00] WARNING - something [noisy]\n{RUNS}\n",
        f"/path/x.py:1 DeprecationWarning: use [a] not [b]\n  warnings.warn(...)\n{RUNS}",
    ],
)
def test_runs_are_found_behind_noise(stdout: str) -> None:
    assert parse_json_list(stdout) == [
        {"dag_id": "ingest_flights", "run_id": "backfill__2013-01-01", "state": "success"}
    ]


@pytest.mark.parametrize("stdout", ["", "[]", "No data found\n"])
def test_no_runs(stdout: str) -> None:
    assert parse_json_list(stdout) == []


def test_unreadable_output_is_an_error_that_shows_it() -> None:
    with pytest.raises(ValueError, match="no JSON list of runs"):
        parse_json_list("Traceback (most recent call last): [boom]")


def test_runs_are_read_from_the_sqlite_metadata_db(tmp_path) -> None:
    import sqlite3

    from mlops.dev.embedded import list_runs

    db = tmp_path / "airflow.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE dag_run (id INTEGER PRIMARY KEY, dag_id TEXT, run_id TEXT, run_type TEXT, "
            "state TEXT, logical_date TEXT, start_date TEXT, end_date TEXT)"
        )
        conn.executemany(
            "INSERT INTO dag_run (dag_id, run_id, run_type, state) VALUES (?, ?, ?, ?)",
            [("a", "backfill__1", "backfill", "success"), ("b", "manual__1", "manual", "running")],
        )
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db}"}
    (run,) = list_runs("a", env)
    assert (run["run_id"], run["run_type"], run["state"]) == ("backfill__1", "backfill", "success")
    assert list_runs("c", env) == []
    assert list_runs("a", {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/none.db"}) == []


# --- the embedded services: what they start, and what a dead one leaves behind ----------------------

#: A stand-in for a component that forks workers (like the scheduler's LocalExecutor): three
#: children that ignore SIGTERM and SIGINT in its process group, one of which starts a "task" in a
#: process group of its own (as Airflow's task supervisor does). Each writes its pid to argv[1].
FORKING_COMPONENT = """
import os, signal, sys, time
out = sys.argv[1]
def record():
    with open(out, "a") as fh:
        fh.write(f"{os.getpid()}\\n")
record()
for i in range(3):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        record()
        if i == 0 and os.fork() == 0:
            os.setpgid(0, 0)
            record()
        while True:
            time.sleep(60)
while True:
    time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def _recorded(path: Path, count: int, timeout: float = 30) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(x) for x in path.read_text().split()] if path.exists() else []
        if len(pids) >= count:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"the stand-in component started {path.read_text()!r}, expected {count} pids")


@pytest.fixture
def forking_services(tmp_path: Path):
    from mlops.dev.embedded import Services

    pids_file = tmp_path / "pids"
    svc = Services(
        env={"AIRFLOW_HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")},
        components=("scheduler",),
        program=sys.executable,
        commands={"scheduler": ["-c", FORKING_COMPONENT, str(pids_file)]},
        watch_interval=0.2,
    )
    svc.start()
    try:
        yield svc, pids_file
    finally:
        svc.stop()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_component_takes_everything_it_started_with_it(forking_services) -> None:
    """SIGKILL of the leader (an OOM kill of the scheduler): its workers, which ignore SIGTERM, and
    the task in its own process group are stopped by the watchdog within a second or two."""
    from mlops.dev.embedded import session_processes

    svc, pids_file = forking_services
    leader, *children = _recorded(pids_file, 5)
    assert svc.procs["scheduler"].pid == leader
    assert session_processes(leader) == sorted([leader, *children])

    os.kill(leader, signal.SIGKILL)
    t0 = time.monotonic()
    while (not svc.exits or any(_alive(p) for p in children)) and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    left = [p for p in children if _alive(p)]
    assert not left, f"processes of the dead component still running: {left}"
    assert time.monotonic() - t0 < 5
    (exit_,) = svc.exits
    assert (exit_.name, exit_.pid, exit_.returncode) == ("scheduler", leader, -signal.SIGKILL)
    assert sorted(exit_.killed) == sorted(children)
    with pytest.raises(RuntimeError, match=r"airflow scheduler exited with -9 .*restart"):
        svc.check_alive()

    # A restart is a fresh session; stop() ends it although its workers ignore SIGTERM.
    pids_file.unlink()
    new = svc.restart("scheduler")
    leader2, *children2 = _recorded(pids_file, 5)
    assert new.pid == leader2 != leader
    svc.check_alive()
    svc.stop()
    assert not [p for p in [leader2, *children2] if _alive(p)]
    assert len(svc.exits) == 1  # stop() is not a death


def test_scheduler_and_triggerer_run_without_log_servers(tmp_path: Path) -> None:
    """Airflow's log servers listen on 0.0.0.0 and [::] (no host setting in Airflow 3.3); the
    embedded profile reads the log files directly and starts none (checked listening in
    tests/integration/test_faults.py)."""
    from mlops.dev.embedded import Services

    svc = Services(env={"AIRFLOW_HOME": str(tmp_path)})
    assert svc.argv("scheduler")[1:] == ["scheduler", "--skip-serve-logs"]
    assert svc.argv("triggerer")[1:] == ["triggerer", "--skip-serve-logs"]
    assert svc.argv("api-server")[1:] == ["api-server"]
    assert svc.argv("dag-processor")[1:] == ["dag-processor"]
    custom = Services(env={}, commands={"triggerer": ["triggerer", "--capacity", "10"]})
    assert custom.argv("triggerer")[1:] == ["triggerer", "--capacity", "10"]


def test_embedded_task_heartbeat_timeout_is_a_minute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task whose supervisor died is noticed after 60 s (Airflow's default: 300 s)."""
    from mlops.config import get_settings
    from mlops.dev.embedded import environment

    monkeypatch.delenv("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", raising=False)
    env = environment(get_settings({"MLOPS_HOME": str(tmp_path)}))
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "60"


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_listening_sockets_are_read_like_ss(tmp_path: Path) -> None:
    from mlops.dev.embedded import is_loopback, listening_sockets

    with socket.socket() as loop, socket.socket() as anywhere, socket.socket(socket.AF_INET6) as six:
        loop.bind(("127.0.0.1", 0))
        anywhere.bind(("0.0.0.0", 0))  # noqa: S104 (the case the check must catch)
        six.bind(("::1", 0))
        for s in (loop, anywhere, six):
            s.listen()
        found = {(addr, port) for pid, addr, port in listening_sockets([os.getpid()])}
        assert ("127.0.0.1", loop.getsockname()[1]) in found
        assert ("0.0.0.0", anywhere.getsockname()[1]) in found
        assert ("::1", six.getsockname()[1]) in found
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::")  # noqa: S104


PRELOAD_CHILD = """
import json, os, sys
sys.argv = ["airflow", "scheduler"]  # the local settings preload only in processes that fork tasks
import airflow.settings  # runs $AIRFLOW_HOME/config/airflow_local_settings.py, as the scheduler does
preloaded = sorted(m for m in sys.modules if m.startswith("mlops.airflow."))
read, write = os.pipe()
pid = os.fork()
if pid == 0:  # a task process: parse its DAG file
    import runpy
    before = set(sys.modules)
    runpy.run_path(os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "ingest_flights.py"), run_name="task")
    from airflow.sdk.plugins_manager import integrate_macros_plugins  # what a task's context does
    integrate_macros_plugins()
    os.write(write, json.dumps(sorted(set(sys.modules) - before)).encode())
    os._exit(0)
os.waitpid(pid, 0)
plugin = [m for m in sys.modules if "marker_plugin" in m]
from airflow.sdk.execution_time.supervisor import WatchedSubprocess
exit_wait = getattr(WatchedSubprocess._service_subprocess, "mlops_exit_wait", False)
print(json.dumps({"preloaded": preloaded, "plugin": plugin, "exit_wait": exit_wait,
                  "child_imported": json.loads(os.read(read, 100000))}))
"""


def test_the_scheduler_preloads_what_dag_files_and_plugins_import(mlops_home, tmp_path) -> None:
    """Through Airflow's own local-settings hook: a forked task parsing its DAG file and loading
    the plugins for its template context imports no module of the platform's or Airflow's again."""
    import json
    import subprocess

    from mlops.config import get_settings
    from mlops.dev.embedded import environment, write_local_settings

    settings = get_settings()
    write_local_settings(settings.airflow_home)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "marker_plugin.py").write_text(
        "from airflow.plugins_manager import AirflowPlugin\nimport mlops.airflow.links\n\n"
        "class MarkerPlugin(AirflowPlugin):\n    name = 'marker'\n"
    )
    env = {
        **environment(settings),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "MLOPS_PRELOAD": "mlops.airflow.local_settings:dag_modules,mlops.airflow.local_settings:plugins",
    }
    proc = subprocess.run(
        [sys.executable, "-c", PRELOAD_CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"mlops.airflow.ingest", "mlops.airflow.sensors", "mlops.airflow.operators.gx"} <= set(
        out["preloaded"]
    )
    assert out["plugin"], "the plugin was not loaded before the fork"
    assert out["exit_wait"], "the supervisor's exit wait (mlops.airflow.supervisor) is not installed"
    assert [m for m in out["child_imported"] if m.startswith(("mlops", "airflow", "fastapi"))] == []
