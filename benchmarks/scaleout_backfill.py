"""A month of ``ingest_flights`` backfilled on CeleryExecutor (two workers) vs the embedded profile.

    .venv/bin/python benchmarks/scaleout_backfill.py                      # 2013-02-01 + 31 days
    .venv/bin/python benchmarks/scaleout_backfill.py --days 7 --profiles celery

Each profile starts from nothing in a scratch directory under /tmp: the scale-out stack of
:func:`mlops.dev.stack.local_stack` (PostgreSQL, Redis, S3 on loopback, MLflow server, two Celery
workers) or the embedded one of :func:`mlops.dev.embedded.running` (SQLite, LocalExecutor, local lake).
The month is landed first (``mlops.ingest.simulator.export_day`` for each day, what the simulator DAG
writes; ``--land-with-dag`` backfills ``flights_upstream_simulator`` instead; timed apart), then
``airflow backfill create --dag-id ingest_flights`` over it is timed from creation until its last run
finished (runs are polled in the metadata database, not with the CLI). Both get the same task slots (``--slots``: Celery workers x concurrency, LocalExecutor
parallelism) and the same ``--max-active-runs``. The profiles run one after the other on the same
machine; the load average before and after each is recorded, since the machine is shared.

Writes ``benchmarks/results/scaleout_backfill.json`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import REPO_ROOT, get_settings
from mlops.dev import embedded
from mlops.dev.stack import local_stack, worker_busy

if TYPE_CHECKING:
    from collections.abc import Callable

RESULTS = REPO_ROOT / "benchmarks" / "results" / "scaleout_backfill.json"
SIMULATOR, INGEST = "flights_upstream_simulator", "ingest_flights"
log = logging.getLogger("scaleout_backfill")


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _backfill_ids(start: date, days: int) -> set[str]:
    return {f"backfill__{start + timedelta(days=i)}T00:00:00+00:00" for i in range(days)}


def _backfill(
    env: dict[str, str],
    services: Any,
    runs_of: Callable[[str], list[dict[str, Any]]],
    dag_id: str,
    start: date,
    days: int,
    max_active: int,
) -> float:
    """``airflow backfill create`` and wait for its runs; polls the metadata database with
    ``runs_of`` (an ``airflow dags list-runs`` per poll would cost seconds of CPU each)."""
    end = start + timedelta(days=days - 1)
    ids = _backfill_ids(start, days)
    t0 = time.monotonic()
    embedded.backfill(dag_id, start.isoformat(), end.isoformat(), env=env, max_active_runs=max_active)
    deadline, last = t0 + 6 * 3600, -1
    while time.monotonic() < deadline:
        services.check_alive()
        runs = [r for r in runs_of(dag_id) if r["run_id"] in ids]
        done = [r for r in runs if r["state"] in ("success", "failed")]
        if len(done) != last:
            log.info("%s: %d/%d runs finished", dag_id, len(done), days)
            last = len(done)
        if len(done) == days:
            break
        time.sleep(2)
    else:
        raise TimeoutError(f"{dag_id}: backfill not finished after 6 h")
    wall = time.monotonic() - t0
    bad = [r["run_id"] for r in runs if r["state"] != "success"]
    if bad:
        raise RuntimeError(f"{dag_id}: {len(bad)} runs did not succeed: {sorted(bad)[:5]}")
    return wall


def _sqlite_runs(db: Path) -> Callable[[str], list[dict[str, Any]]]:
    def runs_of(dag_id: str) -> list[dict[str, Any]]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (dag_id,)).fetchall()
        finally:
            conn.close()
        return [{"run_id": r, "state": s} for r, s in rows]

    return runs_of


def _cpu_seconds(services: Any) -> float:
    """CPU time (user + system) used so far by the Airflow processes and everything under them."""
    import psutil

    total = 0.0
    for proc in services.procs.values():
        try:
            root = psutil.Process(proc.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in tree:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _land(landing_root: str, start: date, days: int, s3_factory: Callable[[], Any] | None = None) -> float:
    """Drop the month's raw exports into the landing zone directly (what the simulator DAG writes)."""
    from mlops import lake
    from mlops.ingest.simulator import export_day

    t0 = time.monotonic()
    lake.set_s3_client_factory(s3_factory)
    try:
        for i in range(days):
            export_day((start + timedelta(days=i)).isoformat(), landing_root)
    finally:
        lake.set_s3_client_factory(None)
    return time.monotonic() - t0


def _sqlite_tis(db: Path, dag_id: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT task_id, run_id, map_index, state, try_number, hostname, start_date, end_date "
            "FROM task_instance WHERE dag_id = ?",
            (dag_id,),
        ).fetchall()
    finally:
        conn.close()
    keys = ("task_id", "run_id", "map_index", "state", "try_number", "hostname", "start_date", "end_date")
    out = []
    for row in rows:
        ti = dict(zip(keys, row, strict=True))
        for k in ("start_date", "end_date"):
            if ti[k]:
                ti[k] = datetime.fromisoformat(str(ti[k])).replace(tzinfo=UTC)
        out.append(ti)
    return out


def _peak_per_worker(tis: list[dict[str, Any]]) -> dict[str, int]:
    """The most task instances each worker (hostname) had running at the same moment."""
    events: dict[str, list[tuple[float, int]]] = {}
    for t in tis:
        if t.get("hostname") and t.get("start_date") and t.get("end_date"):
            ev = events.setdefault(str(t["hostname"]), [])
            ev += [(t["start_date"].timestamp(), 1), (t["end_date"].timestamp(), -1)]
    peaks = {}
    for host, ev in sorted(events.items()):
        running = peak = 0
        for _, delta in sorted(ev):  # an end sorts before a start at the same instant
            running += delta
            peak = max(peak, running)
        peaks[host] = peak
    return peaks


def _check_lake(
    lake_root: str, landing_root: str, start: date, days: int, s3_factory: Callable[[], Any] | None = None
) -> dict[str, Any]:
    """The curated lake after the backfill: exactly one ``data.parquet`` per day and nothing else
    under ``curated/`` (no temp or stray objects), each non-empty, without duplicated rows, its
    footer's row count and content hash matching the rows read back, and whole: the same rows
    (content hash) as the day's landing export normalized again here."""
    from mlops import lake, layout
    from mlops.ingest import steps

    lake.set_s3_client_factory(s3_factory)
    try:
        curated = lake.join(lake_root, layout.CURATED)
        expected = {
            layout.curated_file(lake_root, (start + timedelta(days=i)).isoformat()): (
                start + timedelta(days=i)
            ).isoformat()
            for i in range(days)
        }
        found = list(lake.list_uris(curated))
        if not lake.is_s3(curated):  # list_uris skips dot files: the local writer's temp files
            root = lake.local_path(curated)
            found += [
                lake.join(curated, p.relative_to(root).as_posix()) for p in root.rglob(".*") if p.is_file()
            ]
        problems = [f"unexpected object {u}" for u in sorted(set(found) - set(expected))]
        problems += [f"missing {u}" for u in sorted(set(expected) - set(found))]
        rows = 0
        for uri, ds in sorted(expected.items()):
            if uri not in found:
                continue
            frame, meta = lake.read_parquet(uri), steps.read_curated_metadata(uri)
            landed = lake.read_bytes(lake.join(landing_root, "flights", f"ds={ds}", "flights.csv"))
            whole = steps.content_hash(steps.curated_frame(steps.parse_raw(landed), ds))
            rows += len(frame)
            if frame.empty:
                problems.append(f"ds={ds}: empty")
            if frame.duplicated().any():
                problems.append(f"ds={ds}: {int(frame.duplicated().sum())} duplicated rows")
            if meta.get("mlops.rows") != str(len(frame)) or meta.get("mlops.ds") != ds:
                problems.append(f"ds={ds}: footer {meta} vs {len(frame)} rows read")
            if not meta.get("mlops.content_hash") == steps.content_hash(frame) == whole:
                problems.append(f"ds={ds}: content hash differs from the landing export's rows")
    finally:
        lake.set_s3_client_factory(None)
    return {
        "curated_partitions": len(set(found) & set(expected)),
        "curated_objects": len(found),
        "curated_rows": rows,
        "problems": problems,
    }


def run_celery(
    start: date, days: int, slots: int, max_active: int, dags: Path | None, land_with_dag: bool
) -> dict[str, Any]:
    workers = 2
    concurrency = max(1, slots // workers)
    with tempfile.TemporaryDirectory(prefix="scaleout_bench_", dir="/tmp") as tmp:
        t0 = time.monotonic()
        with local_stack(
            Path(tmp),
            workers=workers,
            concurrency=concurrency,
            schedule_end="2013-12-31",
            wait_mlflow=False,
            dags_folder=dags,
        ) as st:
            started = time.monotonic() - t0
            embedded.reserialize(st.env)
            embedded.unpause([SIMULATOR, INGEST] if land_with_dag else [INGEST], st.env)
            if land_with_dag:
                sim = _backfill(st.env, st.services, st.dag_runs, SIMULATOR, start, days, max_active)
            else:
                sim = _land(st.env["MLOPS_LANDING_URI"], start, days, st.s3)
            load_before, cpu_before = _loadavg(), _cpu_seconds(st.services)
            wall = _backfill(st.env, st.services, st.dag_runs, INGEST, start, days, max_active)
            load_after, cpu = _loadavg(), _cpu_seconds(st.services) - cpu_before
            ids = _backfill_ids(start, days)
            tis = [t for t in st.task_instances(INGEST) if t["run_id"] in ids]
            spread = worker_busy(tis)
            spread["peak_tasks_per_worker"] = _peak_per_worker(tis)
            checked = _check_lake(st.env["MLOPS_LAKE_URI"], st.env["MLOPS_LANDING_URI"], start, days, st.s3)
    return {
        "profile": f"celery ({workers} workers x concurrency {concurrency}, PostgreSQL, Redis, S3 on loopback)",
        "stack_start_seconds": round(started, 1),
        "landing_seconds": round(sim, 1),
        "ingest_backfill_seconds": round(wall, 1),
        "ingest_airflow_cpu_seconds": round(cpu, 1),
        "ingest_tasks": len([t for t in tis if t["state"] == "success"]),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "workers": spread,
        "lake": checked,
    }


def run_embedded(
    start: date, days: int, slots: int, max_active: int, dags: Path | None, land_with_dag: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="embedded_bench_", dir="/tmp") as tmp:
        saved = {
            k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("AIRFLOW", "MLOPS_", "MLFLOW_"))
        }
        os.environ["MLOPS_HOME"] = tmp
        os.environ["AIRFLOW__CORE__PARALLELISM"] = str(slots)
        os.environ["AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG"] = str(slots)
        if dags is not None:
            os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        try:
            settings = get_settings()
            t0 = time.monotonic()
            with embedded.running(settings, port=embedded.free_port()) as svc:
                started = time.monotonic() - t0
                embedded.reserialize(svc.env)
                embedded.unpause([SIMULATOR, INGEST] if land_with_dag else [INGEST], svc.env)
                runs_of = _sqlite_runs(settings.airflow_home / "airflow.db")
                if land_with_dag:
                    sim = _backfill(svc.env, svc, runs_of, SIMULATOR, start, days, max_active)
                else:
                    sim = _land(settings.landing_uri, start, days)
                load_before, cpu_before = _loadavg(), _cpu_seconds(svc)
                wall = _backfill(svc.env, svc, runs_of, INGEST, start, days, max_active)
                load_after, cpu = _loadavg(), _cpu_seconds(svc) - cpu_before
                ids = _backfill_ids(start, days)
                tis = [
                    t for t in _sqlite_tis(settings.airflow_home / "airflow.db", INGEST) if t["run_id"] in ids
                ]
                checked = _check_lake(settings.lake_uri, settings.landing_uri, start, days)
        finally:
            for k in [k for k in os.environ if k.startswith(("AIRFLOW", "MLOPS_"))]:
                del os.environ[k]
            os.environ.update(saved)
    spread = worker_busy(tis)
    return {
        "profile": f"embedded (LocalExecutor, parallelism {slots}, SQLite, local lake)",
        "stack_start_seconds": round(started, 1),
        "landing_seconds": round(sim, 1),
        "ingest_backfill_seconds": round(wall, 1),
        "ingest_airflow_cpu_seconds": round(cpu, 1),
        "ingest_tasks": len([t for t in tis if t["state"] == "success"]),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "workers": {k: spread[k] for k in ("busy_seconds", "window_seconds", "peak_parallel_tasks")},
        "lake": checked,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", type=date.fromisoformat, default=date(2013, 2, 1))
    parser.add_argument("--days", type=int, default=31)
    parser.add_argument("--slots", type=int, default=4, help="task slots of each profile (default 4)")
    parser.add_argument("--max-active-runs", type=int, default=8)
    parser.add_argument("--dags-folder", type=Path, help="DAGs to run instead of dags/ (e.g. a patched copy)")
    parser.add_argument(
        "--land-with-dag",
        action="store_true",
        help="land the month with a flights_upstream_simulator backfill (default: export_day directly)",
    )
    parser.add_argument(
        "--profiles", nargs="+", default=["celery", "embedded"], choices=["celery", "embedded"]
    )
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    dags = ns.dags_folder or REPO_ROOT / "dags"
    missing = [d for d in (SIMULATOR, INGEST) if not (dags / f"{d}.py").exists()]
    if missing:
        print(f"not in dags/ yet: {missing}; nothing to measure", file=sys.stderr)
        return 2
    runners = {"celery": run_celery, "embedded": run_embedded}
    result: dict[str, Any] = {
        "benchmark": "month backfill of ingest_flights",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "window": {"start": ns.start.isoformat(), "days": ns.days},
        "slots": ns.slots,
        "max_active_runs": ns.max_active_runs,
        "dags_folder": str(dags),
        "landing": "flights_upstream_simulator backfill"
        if ns.land_with_dag
        else "mlops.ingest.simulator.export_day",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg": _loadavg()},
        "profiles": {},
    }
    for profile in ns.profiles:
        print(f"== {profile}: {ns.days} days from {ns.start}", flush=True)
        try:
            result["profiles"][profile] = runners[profile](
                ns.start, ns.days, ns.slots, ns.max_active_runs, ns.dags_folder, ns.land_with_dag
            )
        except Exception as exc:  # keep the other profile's figures; say why this one has none
            log.exception("%s profile failed", profile)
            result.setdefault("failed", {})[profile] = f"{type(exc).__name__}: {str(exc)[-1500:]}"
            continue
        print(json.dumps(result["profiles"][profile], indent=2), flush=True)
    profiles = result["profiles"]
    if {"celery", "embedded"} <= set(profiles):
        result["celery_over_embedded"] = round(
            profiles["celery"]["ingest_backfill_seconds"] / profiles["embedded"]["ingest_backfill_seconds"], 3
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {RESULTS.relative_to(REPO_ROOT)}")
    for name, why in result.get("failed", {}).items():
        print(f"  {name:<9} FAILED: {why[:300]}")
    for name, p in profiles.items():
        print(f"  {name:<9} ingest month {p['ingest_backfill_seconds']:7.0f}s   ({p['profile']})")
        lk = p["lake"]
        print(
            f"            lake: {lk['curated_partitions']} partitions, problems {lk['problems'][:5] or 'none'}"
        )
        if "tasks" in p["workers"]:
            w = p["workers"]
            print(
                f"            tasks {w['tasks']}, peak per worker {w['peak_tasks_per_worker']}, "
                f"both busy {w['all_workers_busy_seconds']}s of {w['window_seconds']}s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
