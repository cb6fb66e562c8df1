"""The fault suite: what a crash costs on the embedded profile, through the real scheduler.

One embedded Airflow (api-server, scheduler, dag-processor, triggerer as :class:`mlops.dev.embedded.
Services`) runs a week of ``flights_upstream_simulator`` and ``ingest_flights`` backfills, and the
tests break it the way a machine does:

- **scheduler SIGKILL mid-backfill** (an OOM kill): the watchdog stops everything the scheduler
  left (LocalExecutor workers, task supervisors and task processes), the restarted scheduler
  starts cleanly (no log server on 0.0.0.0, no port left taken) and the backfill completes, each
  partition once and whole;
- **a dead task supervisor** is noticed after the embedded heartbeat timeout (60 s, not 300 s),
  and the task is retried;
- **task SIGKILL mid-write** (the task has created its temporary file, not yet renamed it): the
  partition stays whole, the retry succeeds and sweeps the temporary file;
- **read-only partition**: the task fails at once, without retry, naming the partition and the
  final path;
- **rerun hash identity**: ingesting a day again gives the same content hash and the same bytes.

Every process listens on loopback only; nothing is left running at the end. Counts and recovery
times are printed (``-s``): ``.venv/bin/python -m pytest tests/integration/test_faults.py -s``
(10-20 minutes on a loaded 2-core machine).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mlops import lake, layout
from mlops.config import get_settings
from mlops.dev import embedded
from mlops.ingest import steps
from tests.conftest import use_home

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

FIRST, LAST = "2013-03-04", "2013-03-10"  # Monday .. Sunday
DAYS = [f"2013-03-{d:02d}" for d in range(4, 11)]
#: The day each single-day fault works on (each ingested by the backfill first).
MID_WRITE_DAY, READ_ONLY_DAY, RERUN_DAY, SUPERVISOR_DAY = DAYS[1], DAYS[2], DAYS[3], DAYS[4]
#: Logical dates of the manual re-ingest runs (the `ds` param names the day they work on).
MANUAL_DATES = iter(f"2013-06-{d:02d}" for d in range(1, 29))
#: A dead supervisor must be noticed within this (Airflow's default heartbeat timeout alone: 300 s).
SUPERVISOR_DETECTION_LIMIT = 120.0
STAGE_TIMEOUT = 1800


# --- the stack ------------------------------------------------------------------------------------


@dataclass
class Stack:
    env: dict[str, str]
    svc: embedded.Services
    settings: object
    #: Every component pid ever started (restarts included), to check that nothing is left.
    leaders: set[int] = field(default_factory=set)

    def note_leaders(self) -> None:
        self.leaders |= {p.pid for p in self.svc.procs.values()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        use_home(mp, tmp_path_factory.mktemp("faults"))
        settings = get_settings()
        env = embedded.environment(settings, port=embedded.free_port())
        embedded.init_db(env)
        embedded.reserialize(env)
        # Created while both DAGs are paused (no SQLite contention with a starting scheduler).
        for dag_id in ("flights_upstream_simulator", "ingest_flights"):
            embedded.backfill(dag_id, FIRST, LAST, env, max_active_runs=4)
        svc = embedded.Services(env=env).start()
        st = Stack(env=env, svc=svc, settings=settings)
        st.note_leaders()
        try:
            yield st
        finally:
            svc.stop()


# --- metadata database and /proc helpers ----------------------------------------------------------


def sql(env: dict[str, str], query: str, *args: object) -> list[tuple]:
    db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as conn:
        return conn.execute(query, args).fetchall()


TI_COLUMNS = ("dag_id", "run_id", "task_id", "state", "try_number", "max_tries", "pid", "id")


def task_instances(env: dict[str, str], where: str = "1=1", *args: object) -> list[dict]:
    rows = sql(env, f"SELECT {', '.join(TI_COLUMNS)} FROM task_instance WHERE {where}", *args)
    return [dict(zip(TI_COLUMNS, row, strict=True)) for row in rows]


def task_instance(env: dict[str, str], dag_id: str, run_id: str, task_id: str) -> dict:
    (ti,) = task_instances(env, "dag_id = ? AND run_id = ? AND task_id = ?", dag_id, run_id, task_id)
    return ti


def wait_run(st: Stack, dag_id: str, run_id: str, timeout: float = STAGE_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st.svc.check_alive()
        run = next((r for r in embedded.list_runs(dag_id, st.env) if r["run_id"] == run_id), None)
        if run and run["state"] in embedded.TERMINAL_STATES:
            return run
        time.sleep(2)
    raise TimeoutError(f"{dag_id} {run_id}: not finished after {timeout}s")


def reingest(st: Stack, ds: str) -> str:
    """A manual ``ingest_flights`` run for day ``ds`` (the ``ds`` param); returns its run id."""
    return st.svc.trigger_run("ingest_flights", next(MANUAL_DATES), conf={"ds": ds})


def wait_state(st: Stack, run_id: str, task_id: str, states: set[str], timeout: float = 900) -> dict:
    """Poll (every 0.2 s) until ``ingest_flights``' ``task_id`` in ``run_id`` is in one of ``states``."""
    deadline = time.monotonic() + timeout
    while (ti := task_instance(st.env, "ingest_flights", run_id, task_id))["state"] not in states:
        st.svc.check_alive()
        assert time.monotonic() < deadline, f"{task_id} of {run_id} never reached {states}: {ti}"
        time.sleep(0.2)
    return ti


def proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, ppid)`` of ``pid``, or None when it is gone (zombies count as gone)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    state = fields[0].decode()
    return None if state in {"Z", "X"} else (state, int(fields[1]))


def alive(pid: int) -> bool:
    return proc_stat(pid) is not None


def describe(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    return "?"


def find_task_process(ti_id: str, timeout: float = 600) -> tuple[int, int]:
    """``(supervisor pid, task pid)`` of the task instance ``ti_id`` as soon as it is forked.

    The LocalExecutor worker that supervises a task titles itself ``airflow worker --
    LocalExecutor: <task instance id>``; the task process is its child.
    """
    wanted = str(uuid.UUID(ti_id)).encode()
    deadline = time.monotonic() + timeout
    supervisor = None
    while time.monotonic() < deadline:
        if supervisor is None or not alive(supervisor):
            supervisor = None
            for name in os.listdir("/proc"):
                if name.isdigit():
                    with contextlib.suppress(OSError):
                        if wanted in Path(f"/proc/{name}/cmdline").read_bytes():
                            supervisor = int(name)
                            break
        if supervisor is not None:
            for name in os.listdir("/proc"):
                if name.isdigit() and (st := proc_stat(int(name))) and st[1] == supervisor:
                    return supervisor, int(name)
        time.sleep(0.002)
    raise TimeoutError(f"no task process for task instance {ti_id} after {timeout}s")


def freeze(pid: int, timeout: float = 10) -> bool:
    """SIGSTOP ``pid`` and wait until it is stopped (a process in uninterruptible sleep, e.g. an
    fsync, stops when that call returns). False when it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = proc_stat(pid)
        if st is None:
            return False
        if st[0] in {"T", "t"}:
            return True
        time.sleep(0.0002)
    raise TimeoutError(f"pid {pid} did not stop within {timeout}s")


class WriteCompleted(Exception):
    """The write finished within one time slice: the kill missed it."""


def kill_mid_write(pid: int, final: Path, before: int, slice_seconds: float) -> tuple[str, int, int]:
    """Run the (frozen) task process ``pid`` in slices of ``slice_seconds`` until it has created
    the temporary sibling of ``final`` but not yet renamed it onto ``final``, and SIGKILL it there.

    ``before`` is ``final``'s inode before the run. Returns the temporary file's name, its size,
    and the number of slices it took.
    """
    prefix = f".{final.name}."
    slices = 0
    while True:
        temps = sorted(n for n in os.listdir(final.parent) if n.startswith(prefix) and n.endswith(".tmp"))
        if (final.stat().st_ino if final.exists() else None) != before:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            raise WriteCompleted(f"{final} was replaced within one {slice_seconds * 1000:.1f} ms slice")
        if temps:
            os.kill(pid, signal.SIGKILL)
            size = (final.parent / temps[0]).stat().st_size
            return temps[0], size, slices
        os.kill(pid, signal.SIGCONT)
        time.sleep(slice_seconds)
        slices += 1
        if not freeze(pid):
            raise WriteCompleted(f"the task process {pid} ended before writing {final}")


def task_log(st: Stack, dag_id: str, run_id: str, task_id: str, try_number: int) -> tuple[str, list[str]]:
    """A task's log as the UI shows it (the REST API): its text and the sources it was read from."""
    with st.svc.api() as client:
        resp = client.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
            headers={"Accept": "application/json"},
        )
    resp.raise_for_status()
    content = resp.json()["content"]
    events = [str(line.get("event", "")) if isinstance(line, dict) else str(line) for line in content]
    text = "\n".join(json.dumps(line) if isinstance(line, dict) else str(line) for line in content)
    sources = []
    if "::group::Log message source details" in events:
        start = events.index("::group::Log message source details") + 1
        sources = events[start : events.index("::endgroup::", start)]
    return text, sources


# --- the lake -------------------------------------------------------------------------------------


def curated_dir(ds: str) -> Path:
    return lake.local_path(steps.partition(ds).curated).parent


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_hash(ds: str) -> str:
    """The content hash of day ``ds`` computed here from its landing export, not by the task."""
    p = steps.partition(ds)
    return steps.content_hash(steps.curated_frame(steps.parse_raw(lake.read_bytes(p.landing)), ds))


def check_partition(ds: str) -> str:
    """Day ``ds``'s curated partition is one whole file (no temporary sibling, nothing else), its
    rows match its footer, and its content hash is the one computed from the landing export."""
    files = sorted(os.listdir(curated_dir(ds)))
    assert files == [layout.DATA_FILE], f"ds={ds}: {files}"
    uri = steps.partition(ds).curated
    meta = steps.read_curated_metadata(uri)
    frame = lake.read_parquet(uri)
    assert int(meta["mlops.rows"]) == len(frame) > 600, (ds, meta, len(frame))
    assert meta["mlops.content_hash"] == steps.content_hash(frame) == expected_hash(ds), ds
    return meta["mlops.content_hash"]


def curated_events(env: dict[str, str]) -> list[dict]:
    rows = sql(
        env,
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.name = 'curated_flights'",
    )
    return [json.loads(extra) if isinstance(extra, str) else extra for (extra,) in rows]


# --- 1. scheduler SIGKILL mid-backfill ------------------------------------------------------------


@dataclass
class SchedulerKill:
    listening_before: list[tuple[str, int, str, int]]
    listening_after: list[tuple[str, int, str, int]]
    ss_before: str
    ss_after: str
    session: dict[int, str]  # pid -> command line, at the kill
    running: list[dict]  # task instances running at the kill
    noticed_seconds: float
    exit: embedded.ComponentExit
    survivors: list[int]
    #: Restart -> the new scheduler's job row; -> every task running at the kill reset (or done).
    scheduler_up_seconds: float
    reset_seconds: float
    restart_to_done_seconds: float
    kill_to_done_seconds: float
    runs: dict[str, list[dict]]
    bind_errors: list[str]


def ss_lines(pids: set[int]) -> str:
    """``ss -ltnp`` restricted to ``pids`` (when ``ss`` is installed)."""
    if not shutil.which("ss"):
        return "(ss not installed)"
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=False).stdout.splitlines()
    keep = [line for line in out[1:] if any(f"pid={p}," in line for p in pids)]
    return "\n".join(out[:1] + keep)


def all_pids(svc: embedded.Services) -> set[int]:
    return {pid for pids in svc.processes().values() for pid in pids}


@pytest.fixture(scope="module")
def scheduler_kill(stack: Stack) -> SchedulerKill:
    env, svc = stack.env, stack.svc
    embedded.unpause(["ingest_flights", "flights_upstream_simulator"], env)

    # Wait until the backfill is under way: two days ingested, and tasks running in the scheduler.
    deadline = time.monotonic() + STAGE_TIMEOUT
    while True:
        svc.check_alive()
        done = [r for r in embedded.list_runs("ingest_flights", env) if r["state"] == "success"]
        running = task_instances(env, "state = 'running' AND pid IS NOT NULL")
        if len(done) >= 2 and running:
            break
        assert time.monotonic() < deadline, "the backfill never got under way"
        time.sleep(0.5)

    listening_before = svc.listening()
    ss_before = ss_lines(all_pids(svc))
    scheduler = svc.procs["scheduler"]
    session = {pid: describe(pid) for pid in embedded.session_processes(scheduler.pid)}
    t_kill = time.monotonic()
    os.kill(scheduler.pid, signal.SIGKILL)  # what the OOM killer does
    while not svc.exits and time.monotonic() - t_kill < 60:
        time.sleep(0.05)
    assert svc.exits, "the watchdog did not notice the dead scheduler within 60 s"
    exit_ = svc.exits[-1]
    survivors = [pid for pid in session if alive(pid)]

    log_file = svc.log_dir / "scheduler.log"
    log_offset = log_file.stat().st_size
    last_job = sql(env, "SELECT MAX(id) FROM job WHERE job_type = 'SchedulerJob'")[0][0]
    t_restart = time.monotonic()
    svc.restart("scheduler")
    stack.note_leaders()
    scheduler_up = reset = None
    while scheduler_up is None or reset is None:
        svc.check_alive()
        now = time.monotonic() - t_restart
        assert now < STAGE_TIMEOUT, "the restarted scheduler never reset the interrupted tasks"
        if scheduler_up is None and sql(
            env, "SELECT 1 FROM job WHERE job_type = 'SchedulerJob' AND id > ?", last_job
        ):
            scheduler_up = now
        tis = [task_instance(env, t["dag_id"], t["run_id"], t["task_id"]) for t in running]
        if reset is None and all(
            ti["state"] != "running" or ti["try_number"] > t["try_number"]
            for ti, t in zip(tis, running, strict=True)
        ):
            reset = now
        time.sleep(0.5)
    runs = {
        dag_id: [
            r
            for r in embedded.wait_for_runs(dag_id, env, len(DAYS), timeout=STAGE_TIMEOUT, services=svc)
            if str(r["run_id"]).startswith("backfill__")
        ]
        for dag_id in ("flights_upstream_simulator", "ingest_flights")
    }
    t_done = time.monotonic()
    with log_file.open("rb") as fh:  # the restarted scheduler's part of its log
        fh.seek(log_offset)
        restarted = fh.read().decode(errors="replace")
    bind_errors = [line for line in restarted.splitlines() if "Errno 98" in line or "already in use" in line]
    return SchedulerKill(
        listening_before=listening_before,
        listening_after=svc.listening(),
        ss_before=ss_before,
        ss_after=ss_lines(all_pids(svc)),
        session=session,
        running=running,
        noticed_seconds=exit_.noticed - t_kill,
        exit=exit_,
        survivors=survivors,
        scheduler_up_seconds=scheduler_up,
        reset_seconds=reset,
        restart_to_done_seconds=t_done - t_restart,
        kill_to_done_seconds=t_done - t_kill,
        runs=runs,
        bind_errors=bind_errors,
    )


def test_every_component_listens_on_loopback_only(stack: Stack, scheduler_kill: SchedulerKill) -> None:
    """No log server on 0.0.0.0/[::] (ports 8793/8794), before the kill and after the restart."""
    k = scheduler_kill
    print("\n  listening sockets of the embedded Airflow (component, pid, address, port):")
    for row in k.listening_before:
        print(f"    {row}")
    print(f"  ss -ltnp, our processes, mid-backfill:\n{k.ss_before}")
    print(f"  ss -ltnp, our processes, after the scheduler restart:\n{k.ss_after}")
    for rows in (k.listening_before, k.listening_after):
        assert rows, "nothing listening (the api-server at least should)"
        exposed = [r for r in rows if not embedded.is_loopback(r[2])]
        assert not exposed, f"listening beyond loopback: {exposed}"
        assert not [r for r in rows if r[3] in (8793, 8794)], rows
    assert {r[0] for r in k.listening_before} == {"api-server"}, k.listening_before


def test_scheduler_sigkill_mid_backfill(stack: Stack, scheduler_kill: SchedulerKill) -> None:
    k = scheduler_kill
    kinds = Counter(
        "scheduler"
        if pid == k.exit.pid
        else "LocalExecutor worker"
        if "LocalExecutor" in cmd
        else "task/other"
        for pid, cmd in k.session.items()
    )
    running = sorted(
        f"{t['dag_id']}.{t['task_id']}[{t['run_id'][-10:]}] try {t['try_number']}" for t in k.running
    )
    print(
        f"\n  SIGKILL of the scheduler with {len(k.running)} task(s) running ({', '.join(running)});"
        f"\n  its session held {len(k.session)} processes ({dict(kinds)}); the watchdog noticed in "
        f"{k.noticed_seconds:.1f}s and SIGKILLed the {len(k.exit.killed)} left behind; survivors: {k.survivors}"
        f"\n  restart -> new scheduler job {k.scheduler_up_seconds:.0f}s, -> interrupted tasks reset "
        f"{k.reset_seconds:.0f}s, -> backfill complete: {k.restart_to_done_seconds:.0f}s; kill -> complete: "
        f"{k.kill_to_done_seconds:.0f}s"
    )
    assert k.exit.name == "scheduler" and k.exit.returncode == -signal.SIGKILL
    assert not k.survivors, [(pid, k.session[pid]) for pid in k.survivors]
    late = sorted(set(k.exit.killed) - set(k.session))  # forked after the kill: workers run on
    print(f"  of them {len(late)} started after the scheduler's death (queued work its workers picked up)")
    assert k.noticed_seconds < 5
    assert not embedded.session_processes(k.exit.pid)
    assert not k.bind_errors, k.bind_errors

    for dag_id, runs in k.runs.items():
        assert len(runs) == len(DAYS) and all(r["state"] == "success" for r in runs), (dag_id, runs)
    # Each task that was running at the kill was run again, and succeeded.
    reran = []
    for t in k.running:
        now = task_instance(stack.env, t["dag_id"], t["run_id"], t["task_id"])
        assert now["state"] == "success", now
        reran.append(now["try_number"] > t["try_number"])
    # No duplicate or partial partition: one whole file per day, as computed from its export.
    partitions = sorted(os.listdir(curated_dir(DAYS[0]).parent))
    assert partitions == [f"ds={d}" for d in DAYS], partitions
    hashes = {ds: check_partition(ds) for ds in DAYS}
    events = Counter(e["ds"] for e in curated_events(stack.env))
    timeouts = sql(stack.env, "SELECT COUNT(*) FROM log WHERE event = 'heartbeat timeout'")[0][0]
    print(
        f"  {len(DAYS)}/{len(DAYS)} ingest runs succeeded; tasks running at the kill rerun: "
        f"{sum(reran)}/{len(reran)}; partitions: {len(hashes)} whole, unique, hashes as computed; "
        f"curated_flights events per day: {dict(sorted(events.items()))}; heartbeat timeouts: {timeouts}"
    )


# --- 2. a dead task supervisor --------------------------------------------------------------------


def test_dead_task_supervisor_is_noticed_within_the_heartbeat_timeout(stack: Stack, scheduler_kill) -> None:
    """SIGKILL the LocalExecutor worker supervising ``validate`` (the task process lives on as an
    orphan): the scheduler fails the attempt after the heartbeat timeout and the retry succeeds.
    While the task runs, its log shows in the UI without a log server (read from the file)."""
    env = stack.env
    run_id = reingest(stack, SUPERVISOR_DAY)
    wait_state(stack, run_id, "wait_for_landing", {"running", "deferred", "success"})
    ti = task_instance(env, "ingest_flights", run_id, "validate")
    supervisor, task_pid = find_task_process(ti["id"])
    assert freeze(task_pid)  # hold the task so that it is still running when its supervisor dies
    ti = wait_state(stack, run_id, "validate", {"running"}, timeout=300)
    text, sources = task_log(stack, "ingest_flights", run_id, "validate", ti["try_number"])
    t_kill = time.monotonic()
    os.kill(supervisor, signal.SIGKILL)
    os.kill(task_pid, signal.SIGCONT)
    timeout = float(env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"])
    orphan_exit = None
    while (now := task_instance(env, "ingest_flights", run_id, "validate"))["state"] == "running":
        if orphan_exit is None and not alive(task_pid):
            orphan_exit = time.monotonic() - t_kill
        assert time.monotonic() - t_kill < 900, "the dead supervisor was never noticed"
        time.sleep(1)
    detected = time.monotonic() - t_kill
    run = wait_run(stack, "ingest_flights", run_id)
    final = task_instance(env, "ingest_flights", run_id, "validate")
    orphan = f"after {orphan_exit:.0f}s" if orphan_exit is not None else "later"
    print(
        f"\n  SIGKILL of validate's supervisor (ds={SUPERVISOR_DAY}): noticed after {detected:.0f}s "
        f"(heartbeat timeout {timeout:.0f}s), attempt marked {now['state']}; the orphaned task process "
        f"exited {orphan}; run {run['state']} "
        f"on try {final['try_number']}"
        f"\n  log of the running task through the API: {len(text.splitlines())} lines from {sources}"
    )
    logs_folder = str(Path(env["AIRFLOW_HOME"]) / "logs")
    assert any(s.startswith(logs_folder) for s in sources), sources  # read from the file
    assert len(text.splitlines()) > 3, text
    assert detected < SUPERVISOR_DETECTION_LIMIT, f"a dead supervisor took {detected:.0f}s to be noticed"
    assert now["state"] in {"up_for_retry", "failed"} and run["state"] == "success", (now, run)
    assert final["try_number"] > ti["try_number"]
    check_partition(SUPERVISOR_DAY)


# --- 3. task SIGKILL mid-write --------------------------------------------------------------------


def test_task_sigkill_mid_write_leaves_the_partition_whole(stack: Stack, scheduler_kill) -> None:
    """Kill ``publish`` after it created its temporary file and before the rename: the previous
    partition is untouched, the retry succeeds and sweeps the temporary file (lake.write_bytes
    sweeps a dead writer's temporary sibling at the next write of the file; before that, the
    temporary file stayed for good)."""
    env = stack.env
    final = curated_dir(MID_WRITE_DAY) / layout.DATA_FILE
    before = file_sha256(final)
    for attempt, slice_seconds in enumerate((0.001, 0.0003, 0.0001), start=1):
        run_id = reingest(stack, MID_WRITE_DAY)
        inode = final.stat().st_ino
        wait_state(stack, run_id, "validate", {"running", "success"})
        ti = task_instance(env, "ingest_flights", run_id, "publish")
        _, task_pid = find_task_process(ti["id"])
        t0 = time.monotonic()
        assert freeze(task_pid)
        try:
            temp, size, slices = kill_mid_write(task_pid, final, inode, slice_seconds)
        except WriteCompleted as exc:
            print(f"\n  attempt {attempt}: missed ({exc}); again with shorter slices")
            assert wait_run(stack, "ingest_flights", run_id)["state"] == "success"
            continue
        break
    else:
        pytest.fail("the write completed within a time slice in every attempt")
    t_kill = time.monotonic()
    # Right after the kill: the temporary file is there, the partition is the previous one, whole.
    assert (final.parent / temp).exists()
    assert file_sha256(final) == before
    check_partition_files = sorted(os.listdir(final.parent))
    run = wait_run(stack, "ingest_flights", run_id)
    recovered = time.monotonic() - t_kill
    publish = task_instance(env, "ingest_flights", run_id, "publish")
    print(
        f"\n  SIGKILL of publish (ds={MID_WRITE_DAY}) mid-write, attempt {attempt}: after {slices} slices of "
        f"{slice_seconds * 1000:.1f} ms ({time.monotonic() - t0:.1f}s), {temp} held {size} of {final.stat().st_size} bytes, "
        f"{final.name} unchanged ({check_partition_files}); run {run['state']} {recovered:.0f}s after the "
        f"kill, publish try {publish['try_number']}; directory now {sorted(os.listdir(final.parent))}"
    )
    assert run["state"] == "success" and publish["try_number"] == 2, (run, publish)
    assert sorted(os.listdir(final.parent)) == [layout.DATA_FILE], "the temporary file was not swept"
    assert file_sha256(final) == before
    check_partition(MID_WRITE_DAY)


# --- 4. read-only partition -----------------------------------------------------------------------


@contextlib.contextmanager
def read_only(directory: Path):
    """Make ``directory`` refuse writes: a read-only bind mount (EROFS) where this process may mount,
    else the immutable attribute (root, EPERM), else no write permission (EACCES). Yields how."""
    how = None
    if os.geteuid() == 0 and shutil.which("mount"):
        bind = subprocess.run(
            ["mount", "--bind", str(directory), str(directory)], capture_output=True, check=False
        )
        if bind.returncode == 0:
            ro = subprocess.run(
                ["mount", "-o", "remount,ro,bind", str(directory)], capture_output=True, check=False
            )
            if ro.returncode == 0:
                how = "read-only bind mount (EROFS)"
            else:
                subprocess.run(["umount", str(directory)], check=False)
    if how is None and os.geteuid() == 0 and shutil.which("chattr"):
        if subprocess.run(["chattr", "+i", str(directory)], capture_output=True, check=False).returncode == 0:
            how = "immutable directory (EPERM)"
    if how is None:
        directory.chmod(0o555)
        how = "no write permission (EACCES)"
    try:
        yield how
    finally:
        if how.startswith("read-only bind"):
            subprocess.run(["umount", str(directory)], check=True)
        elif how.startswith("immutable"):
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        else:
            directory.chmod(0o755)


def test_read_only_partition_fails_without_retry(stack: Stack, scheduler_kill) -> None:
    """A lake that refuses the write is a permanent error (lake.LakeWriteError -> AirflowFailException):
    one attempt, and a message with the partition and the final path (before: retried twice, the
    message naming only the temporary file)."""
    env = stack.env
    directory = curated_dir(READ_ONLY_DAY)
    final = directory / layout.DATA_FILE
    before = file_sha256(final)
    with read_only(directory) as how:
        t0 = time.monotonic()
        run_id = reingest(stack, READ_ONLY_DAY)
        run = wait_run(stack, "ingest_flights", run_id)
        failed_after = time.monotonic() - t0
        publish = task_instance(env, "ingest_flights", run_id, "publish")
        text, _ = task_log(stack, "ingest_flights", run_id, "publish", publish["try_number"])
    line = next((line for line in text.splitlines() if "cannot write" in line), "{}")
    errors = (json.loads(line) if line.startswith("{") else {}).get("error_detail") or [{}]
    message = str(errors[0].get("exc_value") or line)
    print(
        f"\n  read-only partition ds={READ_ONLY_DAY} ({how}): run {run['state']} {failed_after:.0f}s after "
        f"the trigger, publish {publish['state']} on try {publish['try_number']} of {publish['max_tries'] + 1}"
        f"\n  message: {message}"
    )
    assert run["state"] == "failed" and publish["state"] == "failed", (run, publish)
    assert publish["try_number"] == 1, f"retried: {publish}"
    assert f"ds={READ_ONLY_DAY}" in message and str(final) in message, message
    assert file_sha256(final) == before
    assert sorted(os.listdir(directory)) == [layout.DATA_FILE]


# --- 5. rerun hash identity -----------------------------------------------------------------------


def test_rerun_gives_the_same_content_hash(stack: Stack, scheduler_kill) -> None:
    env = stack.env
    final = curated_dir(RERUN_DAY) / layout.DATA_FILE
    before_bytes, before_hash = file_sha256(final), check_partition(RERUN_DAY)
    t0 = time.monotonic()
    run = wait_run(stack, "ingest_flights", reingest(stack, RERUN_DAY))
    assert run["state"] == "success", run
    after_hash = check_partition(RERUN_DAY)
    hashes = {e["content_hash"] for e in curated_events(env) if e["ds"] == RERUN_DAY}
    print(
        f"\n  rerun of ds={RERUN_DAY} ({time.monotonic() - t0:.0f}s): content hash {after_hash} "
        f"{'==' if after_hash == before_hash else '!='} before; file bytes "
        f"{'identical' if file_sha256(final) == before_bytes else 'differ'}; curated_flights events "
        f"for the day carry {len(hashes)} distinct hash(es)"
    )
    assert after_hash == before_hash and file_sha256(final) == before_bytes
    assert hashes == {before_hash}, hashes


# --- nothing left behind --------------------------------------------------------------------------


def test_stop_leaves_nothing_running(stack: Stack, scheduler_kill) -> None:
    stack.note_leaders()
    stack.svc.stop()
    left = {sid: embedded.session_processes(sid) for sid in stack.leaders}
    print(f"\n  after stop: {sum(map(len, left.values()))} processes left in {len(stack.leaders)} sessions")
    assert not any(left.values()), {sid: [describe(p) for p in pids] for sid, pids in left.items() if pids}
