"""Where a run of the embedded profile spent its time, from Airflow's own metadata database.

For every task of every DAG: how often it ran, its median and total run time (``start_date`` to
``end_date``), and its two waits before running: *scheduled* (``scheduled_dttm`` to
``queued_dttm``: the scheduler's loop and free slots) and *start* (``queued_dttm`` to
``start_date``: the executor picking it up, the task process starting, importing and parsing its
DAG file; unknown for a task that deferred, whose run time includes its wait in the triggerer).
Per DAG, the *idle* share of its runs: wall time of each run during which none of its
tasks was running (the scheduler noticing a finished task and queueing the next one, waits on
slots). ``mlops demo`` prints the top of it; ``python -m mlops.dev.timings $MLOPS_HOME`` prints
all of it for any embedded home.
"""

from __future__ import annotations

import contextlib
import sqlite3
import statistics
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

__all__ = ["DagTiming", "TaskTiming", "dag_timings", "format_tables", "task_timings"]


@dataclass(frozen=True)
class TaskTiming:
    """One task of one DAG over all its tries (seconds)."""

    dag_id: str
    task_id: str
    tries: int
    run_median: float
    run_total: float
    scheduled_wait_median: float
    start_wait_median: float
    start_wait_total: float


@dataclass(frozen=True)
class DagTiming:
    """The runs of one DAG (seconds): wall time, and the part of it with no task running."""

    dag_id: str
    runs: int
    wall_median: float
    wall_total: float
    idle_total: float


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value).timestamp()


def query(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    """The rows of ``sql`` (with ``params``) from the metadata database at ``db``, read-only."""
    if not db.exists():
        raise FileNotFoundError(f"no Airflow metadata database at {db}: run `mlops demo` (or pass its path)")
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as conn:
        return conn.execute(sql, params).fetchall()


def _gap(later: float | None, earlier: float | None) -> float | None:
    """``later - earlier``; None when either is unknown or the order is reversed (a task that
    deferred is queued again when its trigger fires, after its first start)."""
    if later is None or earlier is None or later < earlier:
        return None
    return later - earlier


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else 0.0


def task_timings(db: Path) -> list[TaskTiming]:
    """Per task, sorted by total time spent waiting to start plus running (largest first)."""
    rows = query(
        db,
        "SELECT dag_id, task_id, scheduled_dttm, queued_dttm, start_date, end_date FROM task_instance "
        "WHERE start_date IS NOT NULL "
        "UNION ALL SELECT dag_id, task_id, NULL, NULL, start_date, end_date FROM task_instance_history "
        "WHERE start_date IS NOT NULL",
    )
    by_task: dict[tuple[str, str], list[tuple[float | None, ...]]] = {}
    for dag_id, task_id, scheduled, queued, start, end in rows:
        by_task.setdefault((dag_id, task_id), []).append((_ts(scheduled), _ts(queued), _ts(start), _ts(end)))
    out = []
    for (dag_id, task_id), tis in by_task.items():
        run = [g for s, q, b, e in tis if (g := _gap(e, b)) is not None]
        sched = [g for s, q, b, e in tis if (g := _gap(q, s)) is not None]
        start = [g for s, q, b, e in tis if (g := _gap(b, q)) is not None]
        out.append(
            TaskTiming(
                dag_id,
                task_id,
                len(tis),
                _median(run),
                round(sum(run), 1),
                _median(sched),
                _median(start),
                round(sum(start), 1),
            )
        )
    return sorted(out, key=lambda t: t.run_total + t.start_wait_total, reverse=True)


def _covered(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``intervals``."""
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def dag_timings(db: Path) -> list[DagTiming]:
    """Per DAG, sorted by total wall time of its runs (largest first)."""
    runs = query(db, "SELECT dag_id, run_id, start_date, end_date FROM dag_run WHERE end_date IS NOT NULL")
    tis = query(
        db,
        "SELECT dag_id, run_id, start_date, end_date FROM task_instance "
        "WHERE start_date IS NOT NULL AND end_date IS NOT NULL "
        "UNION ALL SELECT dag_id, run_id, start_date, end_date FROM task_instance_history "
        "WHERE start_date IS NOT NULL AND end_date IS NOT NULL",
    )
    busy: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for dag_id, run_id, start, end in tis:
        busy.setdefault((dag_id, run_id), []).append((_ts(start), _ts(end)))  # type: ignore[arg-type]
    walls: dict[str, list[float]] = {}
    idle: dict[str, float] = {}
    for dag_id, run_id, start, end in runs:
        lo, hi = _ts(start), _ts(end)
        if lo is None or hi is None:
            continue
        walls.setdefault(dag_id, []).append(hi - lo)
        clipped = [(max(a, lo), min(b, hi)) for a, b in busy.get((dag_id, run_id), []) if b > lo and a < hi]
        idle[dag_id] = idle.get(dag_id, 0.0) + (hi - lo) - _covered(clipped)
    out = [
        DagTiming(d, len(w), _median(w), round(sum(w), 1), round(idle.get(d, 0.0), 1))
        for d, w in walls.items()
    ]
    return sorted(out, key=lambda t: t.wall_total, reverse=True)


def format_tables(db: Path, top: int | None = None) -> list[str]:
    """Both tables as aligned text lines (``top``: only the first rows of the task table)."""
    lines = [
        f"{'dag / task':<48} {'tries':>5} {'run med':>8} {'run sum':>8} {'sched wait':>10} "
        f"{'start wait':>10} {'start sum':>9}"
    ]
    for t in task_timings(db)[:top]:
        lines.append(
            f"{t.dag_id + '.' + t.task_id:<48} {t.tries:>5} {t.run_median:>8.1f} {t.run_total:>8.0f} "
            f"{t.scheduled_wait_median:>10.1f} {t.start_wait_median:>10.1f} {t.start_wait_total:>9.0f}"
        )
    lines.append(f"{'dag':<48} {'runs':>5} {'wall med':>8} {'wall sum':>8} {'idle sum':>10}")
    for d in dag_timings(db):
        lines.append(
            f"{d.dag_id:<48} {d.runs:>5} {d.wall_median:>8.1f} {d.wall_total:>8.0f} {d.idle_total:>10.0f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlops.dev.timings MLOPS_HOME_OR_AIRFLOW_DB", file=sys.stderr)
        return 2
    path = Path(args[0])
    db = path / "airflow" / "airflow.db" if path.is_dir() else path
    try:
        print("\n".join(format_tables(db)))
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"{db}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
