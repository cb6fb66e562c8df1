"""The benchmark suite behind ``make bench`` / ``mlops bench``.

Every figure is a ratio against a baseline measured in the same run (absolute times on a shared
2-core machine drift). Results: ``benchmarks/results/<timestamp>.json`` and the table in
``benchmarks/README.md``. Sections whose stage has not landed are reported as not measured.

    .venv/bin/mlops bench                       # every section, default sizes
    .venv/bin/mlops bench --only parse orchestration --days 30
    .venv/bin/mlops bench --collect             # re-run nothing: table the latest results files

A benchmark module declares its section in a module-level ``HARNESS`` dict (the arguments of
:func:`register`; :func:`_load_stage_sections` registers it), or registers it itself. A section may
declare its standalone results file (``register(name, results=..., rows=...)``):
the JSON its script writes when run alone (``benchmarks/results/<name>.json``) and the function
turning that dict into rows. ``--collect`` (and ``--only``, for the sections it does not run)
tables the latest harness rows of each section (``results/2*.json``), else the rows of its
standalone results, each row's note naming the run it comes from.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.config import REPO_ROOT

if TYPE_CHECKING:
    from collections.abc import Callable

BENCH_DIR = REPO_ROOT / "benchmarks"
RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class Row:
    section: str
    measure: str
    value: float
    baseline_name: str
    baseline: float
    unit: str = "s"
    spread: str = ""
    peak_rss_mb: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


@dataclass
class Report:
    started: str
    machine: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    # "run" (make bench), "only" (--only) or "collect" (--collect: nothing measured).
    mode: str = "run"
    # Where rows that were not measured by this run come from (one line per results file).
    sources: list[str] = field(default_factory=list)


def machine_info() -> dict[str, Any]:
    import importlib.metadata as md

    versions = {}
    for pkg in ("apache-airflow", "great-expectations", "feast", "mlflow", "xgboost", "evidently", "pandas"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    load = os.getloadavg()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": [round(x, 2) for x in load],
        "versions": versions,
    }


def _proc_status_mib(key: str, pid: int | str) -> float | None:
    """``key`` (``VmHWM``, ``VmRSS``) of ``/proc/<pid>/status`` in MiB; ``None`` without /proc."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return None


def peak_rss_mib(pid: int | str = "self") -> float:
    """The peak resident set size of a process (default this one) in MiB: its ``VmHWM``. Unlike
    ``ru_maxrss`` it is not inherited over exec (a child forked from a large parent reports its
    own peak). Without /proc (not Linux): this process's ``ru_maxrss``."""
    import resource

    peak = _proc_status_mib("VmHWM", pid)
    if peak is None and pid == "self":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if peak is None:
        raise ProcessLookupError(f"no /proc/{pid}/status: process {pid} has exited (or this is not Linux)")
    return peak


def rss_mib(pid: int | str = "self") -> float:
    """The resident set size of a process (default this one) now, in MiB (``VmRSS``); NaN without
    /proc."""
    rss = _proc_status_mib("VmRSS", pid)
    return float("nan") if rss is None else rss


def children_peak_rss_mib() -> float:
    """The largest peak RSS of this process's waited-for children, in MiB (``ru_maxrss`` of
    ``RUSAGE_CHILDREN``: the only record left of a child once reaped)."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return f"min {min(values):.3f} / max {max(values):.3f} (n={len(values)})"


# ── 1. DAG parse time ────────────────────────────────────────────────────────────────────────
def bench_parse(report: Report, repeats: int = 5, **_: Any) -> None:
    from mlops.dev.checks import EMPTY_DAG, parse_dag_file

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty_dag.py"
        empty.write_text(EMPTY_DAG)
        base = [float(parse_dag_file(empty)["seconds"]) for _ in range(repeats)]
        base_med = statistics.median(base)
        for path in sorted((REPO_ROOT / "dags").glob("*.py")):
            times = [float(parse_dag_file(path)["seconds"]) for _ in range(repeats)]
            report.rows.append(
                Row(
                    "1 parse",
                    path.name,
                    statistics.median(times),
                    "empty DAG file",
                    base_med,
                    spread=spread(times),
                )
            )


# ── 2. Orchestration overhead ────────────────────────────────────────────────────────────────
NOOP_TEMPLATE = '''
"""No-op twin of {dag_id} (same task ids and dependencies), generated by benchmarks/harness.py."""
import pendulum
from airflow.sdk import dag, task


@dag(dag_id="noop_{dag_id}", schedule="@daily", start_date=pendulum.datetime(2013, 1, 1, tz="UTC"),
     catchup=False, tags=["bench"], max_active_runs={max_active_runs})
def noop_{dag_id}():
{tasks}
{edges}


noop_{dag_id}()
'''


def noop_twin(dag: Any) -> str:
    """A DAG file with the same shape as ``dag`` whose tasks do nothing (each still a process)."""
    names = {t.task_id: f"t{i}" for i, t in enumerate(dag.tasks)}
    tasks = "\n".join(
        f"    @task(task_id={tid!r})\n    def {names[tid]}_fn() -> None:\n        return None\n"
        f"    {names[tid]} = {names[tid]}_fn()\n"
        for tid in names
    )
    edges = "\n".join(
        f"    {names[up]} >> {names[t.task_id]}" for t in dag.tasks for up in sorted(t.upstream_task_ids)
    )
    return NOOP_TEMPLATE.format(
        dag_id=dag.dag_id, tasks=tasks, edges=edges or "    pass", max_active_runs=dag.max_active_runs
    )


def _run_seconds(runs: list[dict[str, Any]]) -> list[float]:
    out = []
    for r in runs:
        start, end = r.get("start_date"), r.get("end_date")
        if start and end:
            out.append(
                (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
            )
    return out


def bench_orchestration(report: Report, days: int = 30, **_: Any) -> None:
    from mlops.dev import embedded
    from mlops.dev.checks import load_dagbag

    pipeline = ["flights_upstream_simulator", "ingest_flights"]
    bag = load_dagbag(REPO_ROOT / "dags")
    missing = [d for d in pipeline if d not in bag.dags]
    if missing:
        report.skipped["2 orchestration"] = f"DAGs not present yet: {missing}"
        return
    start = datetime(2013, 1, 1).date()
    end = datetime.fromordinal(start.toordinal() + days - 1).date()
    with tempfile.TemporaryDirectory(prefix="bench-orch-") as tmp:
        dags = Path(tmp) / "dags"
        dags.mkdir()
        for dag_id in pipeline:
            (dags / f"{dag_id}.py").symlink_to(REPO_ROOT / "dags" / f"{dag_id}.py")
            (dags / f"noop_{dag_id}.py").write_text(textwrap.dedent(noop_twin(bag.dags[dag_id])))
        os.environ["MLOPS_HOME"] = str(Path(tmp) / "home")
        os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        try:
            with embedded.running() as svc:
                embedded.reserialize(svc.env)
                all_ids = pipeline + [f"noop_{d}" for d in pipeline]
                embedded.unpause(all_ids, svc.env)
                timings: dict[str, tuple[float, list[float]]] = {}
                for label, ids in (("noop", [f"noop_{d}" for d in pipeline]), ("real", pipeline)):
                    t0 = time.monotonic()
                    per_run: list[float] = []
                    for dag_id in ids:
                        embedded.backfill(dag_id, start.isoformat(), end.isoformat(), env=svc.env)
                        runs = embedded.wait_for_runs(dag_id, svc.env, days, services=svc, timeout=7200)
                        per_run += _run_seconds(runs)
                        failed = [r["run_id"] for r in runs if r["state"] != "success"]
                        if failed:
                            report.details.setdefault("orchestration_failures", {})[dag_id] = failed
                    timings[label] = (time.monotonic() - t0, per_run)
        finally:
            os.environ.pop("AIRFLOW__CORE__DAGS_FOLDER", None)
    (real_wall, real_runs), (noop_wall, noop_runs) = timings["real"], timings["noop"]
    report.rows.append(
        Row(
            "2 orchestration",
            f"backfill {days} days: simulator + ingest (wall)",
            real_wall,
            "same-shape no-op DAGs",
            noop_wall,
            note=f"{days} runs per DAG",
        )
    )
    report.rows.append(
        Row(
            "2 orchestration",
            "per-run median",
            statistics.median(real_runs),
            "no-op per-run median",
            statistics.median(noop_runs),
            spread=spread(real_runs),
        )
    )
    report.details["year_extrapolation_minutes"] = round(real_wall / days * 365 / 60, 1)


SECTIONS: dict[str, Callable[..., None]] = {
    "parse": bench_parse,
    "orchestration": bench_orchestration,
}


@dataclass
class Standalone:
    """A section's standalone results: the JSON its script writes and how it becomes rows.

    ``rows(result, missing)`` returns the section's rows for ``result`` (the same function the
    harness section uses on ``measure()``); it appends ``"what: why"`` to ``missing`` (a list, or
    None in a harness run) for a row the result cannot give, and raises KeyError when it can give
    none.
    """

    results: Path
    rows: Callable[..., list[Row]]
    command: str = ""


STANDALONE: dict[str, Standalone] = {}


def register(
    name: str,
    *,
    results: Path | None = None,
    rows: Callable[..., list[Row]] | None = None,
    command: str = "",
    measure: Callable[[], dict[str, Any]] | None = None,
    details: Callable[[dict[str, Any]], Any] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Stage modules add their benchmark sections here.

    As a decorator: the function run by ``mlops bench``. With ``results`` and ``rows``: the
    section's standalone results file (see :class:`Standalone`), used by ``--collect`` and for the
    sections a run does not measure; ``command`` is how that file is written. With ``measure``
    (and ``rows``) the section run by ``mlops bench`` is ``rows(measure())``, the measurement kept
    in the report's details (``details`` picks what of it to keep; default all). Called without
    decorating anything or ``measure``, the section is standalone only.
    """
    if results is not None and rows is not None:
        STANDALONE[name] = Standalone(Path(results), rows, command)

    def deco(fn: Callable[..., None]) -> Callable[..., None]:
        SECTIONS[name] = fn
        return fn

    if measure is not None:
        if rows is None:
            raise ValueError(f"benchmark section {name!r}: measure= needs rows= (its report rows)")

        def section(report: Report, **_: Any) -> None:
            m = measure()
            report.rows += rows(m)
            report.details[name] = details(m) if details else m

        deco(section)
    return deco


# ── 3. Feature store (standalone only: python -m mlops.features.feature_store bench) ──────────────────
def feature_store_rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Row]:
    """Rows of ``mlops.features.feature_store.bench`` (saved as ``results/feature_store.json``): one month
    of feature tables built, then materialized, in one call, next to the day's call x the month's
    days (measured in the same run). The year-long training frame has no same-run baseline."""
    days = result.get("month_days")
    if days is None:  # the saved file records the command it ran, not the month's length
        span = re.search(r"--month\s+(\S+)\s+(\S+)", str(result.get("command", "")))
        if span is None:
            raise KeyError("month_days (or a --month FIRST LAST in 'command')")
        first, last = (datetime.fromisoformat(d).date() for d in span.groups())
        days = (last - first).days + 1
    out = []
    for step, what in (
        ("build", "feature tables built"),
        ("materialize", "materialized to the online store"),
    ):
        day, month = result[f"day_{step}"], result[f"month_{step}"]
        out.append(
            Row(
                "3 feature store",
                f"one month ({days} days) {what} in one call",
                month["wall_s"],
                f"{days} one-day calls (day x {days})",
                day["wall_s"] * days,
                spread=f"CPU {month['cpu_s']:.1f} s vs {day['cpu_s'] * days:.1f} s",
            )
        )
    if missing is not None and "year_training_frame" in result:
        y = result["year_training_frame"]
        missing.append(
            f"year training frame: {y['wall_s']:.1f} s wall, {y['cpu_s']:.1f} s CPU for "
            f"{result.get('year_rows', 0):,} rows, not tabled: no baseline measured in the same run"
        )
    return out


register(
    "feature_store",
    results=RESULTS_DIR / "feature_store.json",
    rows=feature_store_rows,
    command="MLOPS_HOME=<home with a 2013 lake> .venv/bin/python -m mlops.features.feature_store bench "
    "(JSON on stdout, saved with its command and load averages)",
)


def _fmt(v: float | None, unit: str = "") -> str:
    if v is None:
        return "—"
    if unit == "s":
        return f"{v:.3f} s" if v < 10 else f"{v:.1f} s"
    return f"{v:,.0f} {unit}".strip() if abs(v) >= 100 else f"{v:.3f} {unit}".strip()


INTRO = [
    "# Benchmarks",
    "",
    "Written by `benchmarks/harness.py`. Every figure sits next to a baseline measured in the same run;",
    "the ratio is what to compare across machines. Three ways to write this file:",
    "",
    "- `make bench` (= `mlops bench`): runs every section the harness measures and tables that run;",
    "  sections that only run standalone (their script, see its docstring) show their latest results",
    '  file, `benchmarks/results/<name>.json`, noted "standalone run ...".',
    "- `mlops bench --only SECTION ...`: runs those sections; every other section keeps its latest rows",
    '  from an earlier harness run (`benchmarks/results/2*.json`, noted "from run ..."), else from its',
    "  standalone results file.",
    "- `mlops bench --collect`: runs nothing; rebuilds this table from those same files (e.g. after",
    "  running a section's script alone).",
    "",
]


def _machine_line(m: dict[str, Any]) -> str:
    return f"{m['cpus']} CPUs, {m['memory_gb']} GiB, Python {m['python']}"


def _versions(m: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in m["versions"].items())


def markdown(report: Report) -> str:
    m = report.machine
    lines = list(INTRO)
    if report.mode == "collect":
        lines += [
            f"Collected {report.started} by `mlops bench --collect`: no section was re-run. Each row comes "
            "from one of these results files (its note names the run):",
            "",
            *[f"- {s}" for s in report.sources],
            "",
            f"Machine at collection: {_machine_line(m)}, load average {m['loadavg_at_start']}. "
            "Standalone results files record no machine or versions.",
            "Versions installed at collection: " + _versions(m),
        ]
    else:
        lines += [
            f"Run {report.started} on {_machine_line(m)}, load average at start {m['loadavg_at_start']}.",
            "Versions: " + _versions(m),
        ]
        if report.sources:
            lines += ["", "Rows read from standalone results files:", "", *[f"- {s}" for s in report.sources]]
    lines += [
        "",
        "| section | measure | value | baseline | baseline value | ratio | spread | peak RSS | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "—"
        rss = f"{r.peak_rss_mb:,.0f} MB" if r.peak_rss_mb else ""
        lines.append(
            f"| {r.section} | {r.measure} | {_fmt(r.value, r.unit)} | {r.baseline_name} | "
            f"{_fmt(r.baseline, r.unit)} | {ratio} | {r.spread} | {rss} | {r.note} |"
        )
    if report.skipped:
        heading = "Not measured in this run:" if report.mode != "collect" else "Not measured:"
        lines += ["", heading, ""]
        lines += [f"- {k}: {v}" for k, v in report.skipped.items()]
    if report.details:
        lines += ["", "Details:", "", "```json", json.dumps(report.details, indent=2, default=str), "```"]
    return "\n".join(lines) + "\n"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(only: list[str] | None = None, **kwargs: Any) -> Report:
    _load_stage_sections()
    report = Report(started=_now(), machine=machine_info(), mode="only" if only else "run")
    for name, fn in SECTIONS.items():
        if only and name not in only:
            continue
        print(f"[bench] {name} ...", flush=True)
        t0 = time.monotonic()
        before = len(report.rows)
        try:
            fn(report, **kwargs)
        except Exception as exc:  # one broken section must not hide the others
            report.skipped[name] = f"error: {type(exc).__name__}: {exc}"
        LABELS.setdefault(name, set()).update(r.section for r in report.rows[before:])
        print(f"[bench] {name} done in {time.monotonic() - t0:.0f}s", flush=True)
    for name in only or []:
        if name not in SECTIONS and name in STANDALONE:
            report.skipped[name] = f"runs standalone only: {STANDALONE[name].command}"
        elif name not in SECTIONS:
            report.skipped[name] = f"no such section (sections: {', '.join(sorted(SECTIONS))})"
    if only:
        _carry_over(report)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = report.started.replace(":", "").replace("-", "")
    out = RESULTS_DIR / f"{stamp}.json"
    # The run's JSON holds harness rows only (measured, or carried over as before); rows read from
    # standalone results files go to the table alone, so a later carry-over never mistakes them
    # for a harness run's.
    out.write_text(
        json.dumps(
            asdict(report) | {"rows": [asdict(r) | {"ratio": r.ratio} for r in report.rows]},
            indent=2,
            default=str,
        )
    )
    # A full run tables the standalone-only sections; --only also the sections it did not run.
    _add_standalone(report, [n for n in STANDALONE if n not in SECTIONS or (only and n not in only)])
    _not_measured(report)
    (BENCH_DIR / "README.md").write_text(markdown(report))
    print(markdown(report))
    print(f"results: {out}")
    return report


def collect(write: bool = True) -> Report:
    """``mlops bench --collect``: the table from the latest results files, nothing re-run.

    Each section's rows come from the newest harness run that measured it (``results/2*.json``,
    as ``--only`` carries them over), else from its standalone results file. Writes only
    ``benchmarks/README.md`` (no ``results/2*.json``: nothing was measured).
    """
    _load_stage_sections()
    report = Report(started=_now(), machine=machine_info(), mode="collect")
    files = _carry_over(report)
    for path in files:
        old = json.loads(path.read_text())
        if old.get("details"):
            report.details[f"harness run {old.get('started')}"] = old["details"]
    # The harness runs the rows were measured in (a carried row names its run in its note).
    runs = {m.group(1) for r in report.rows if (m := re.search(r"\(from run (\S+?)\)", r.note))}
    report.sources += [_describe_run(started, report.machine) for started in sorted(runs)]
    _add_standalone(report, None)
    _not_measured(report)
    if write:
        (BENCH_DIR / "README.md").write_text(markdown(report))
        print(markdown(report))
    return report


def _describe_run(started: str, now: dict[str, Any]) -> str:
    path = RESULTS_DIR / f"{started.replace(':', '').replace('-', '')}.json"
    try:
        m = json.loads(path.read_text())["machine"]
    except (OSError, ValueError, KeyError):
        return f"harness run {started} (its results file `{_rel(path)}` is missing)"
    same = (
        "same versions as installed now"
        if m.get("versions") == now["versions"]
        else ("versions " + _versions(m))
    )
    return (
        f"`{_rel(path)}`: harness run {started} on {_machine_line(m)}, load average at start "
        f"{m['loadavg_at_start']}; {same}"
    )


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _carry_over(report: Report) -> list[Path]:
    """A partial run (``--only``) keeps the other sections' latest rows in the table, each marked
    with the run it comes from, so benchmarks/README.md always shows every section. Returns the
    results files rows were taken from."""
    measured = {r.section for r in report.rows}
    seen: set[str] = set(measured)
    used: list[Path] = []
    for path in sorted(RESULTS_DIR.glob("2*.json"), reverse=True):
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        rows = [r for r in old.get("rows", []) if r.get("section") not in seen]
        for r in rows:
            r.pop("ratio", None)
            row = Row(**r)
            if "(from run " not in row.note:
                row.note = f"{row.note} (from run {old.get('started')})".strip()
            report.rows.append(row)
        if rows:
            used.append(path)
        seen |= {r["section"] for r in rows}
    report.rows.sort(key=lambda r: r.section)
    return used


# Row sections (the table's first column) each registered section produced, by section name.
LABELS: dict[str, set[str]] = {}


def _covered(name: str, report: Report) -> bool:
    """Whether the table has rows of section ``name`` (by the labels it is known to produce, else
    by its name: ``drift`` -> ``5 drift``)."""
    present = {r.section for r in report.rows}
    if LABELS.get(name):
        return bool(LABELS[name] & present)
    return any(p == name or p.split(" ", 1)[-1].endswith(name.replace("_", " ")) for p in present)


def standalone_note(path: Path, result: dict[str, Any]) -> str:
    """``(standalone run <when>, load <loadavg>)`` for the rows of a standalone results file.

    When: the start the file records; else, when the file is as committed, its commit time (a
    checkout resets the mtime); else its mtime."""
    started = result.get("started") or result.get("started_utc")
    if started:
        when = f" {started}"
    else:
        committed = _committed(path)
        when = f", results committed {committed}" if committed else f", results file written {_mtime(path)}"
    load = next(
        (result[k] for k in ("load_average_start", "loadavg_before", "loadavg_at_start") if k in result),
        None,
    )
    return f"(standalone run{when}, load {load if load is not None else 'not recorded'})"


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _committed(path: Path) -> str | None:
    """The commit time of ``path`` when the file is unchanged since that commit, else None."""
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        stamp = subprocess.run(
            ["git", "log", "-1", "--format=%ct", "--", str(path)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    if dirty or not stamp:
        return None
    return datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def standalone_rows(name: str) -> tuple[list[Row], list[str], str | None]:
    """(rows, notes on rows left out, source line) of section ``name``'s standalone results file.
    No rows and the reason as the only note when the file is missing or lacks what rows need."""
    sa = STANDALONE[name]
    if not sa.results.exists():
        return [], [f"no standalone results file `{_rel(sa.results)}` (written by: {sa.command})"], None
    try:
        result = json.loads(sa.results.read_text())
    except (OSError, ValueError) as exc:
        return [], [f"unreadable `{_rel(sa.results)}`: {exc}"], None
    missing: list[str] = []
    try:
        rows = sa.rows(result, missing)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        return [], [f"`{_rel(sa.results)}` lacks what its rows need ({type(exc).__name__}: {exc})"], None
    note = standalone_note(sa.results, result)
    for r in rows:
        r.note = f"{r.note} {note}".strip()
    return rows, missing, f"`{_rel(sa.results)}`: {note.strip('()')}"


def _add_standalone(report: Report, names: list[str] | None) -> None:
    """Rows from the standalone results of each section in ``names`` (None: every section with
    one) that has no rows in the table yet."""
    sources: dict[str, list[str]] = {}
    for name in STANDALONE if names is None else names:
        if _covered(name, report):
            continue
        rows, missing, source = standalone_rows(name)
        labels = {r.section for r in rows}
        LABELS.setdefault(name, set()).update(labels)
        if labels & {r.section for r in report.rows}:
            continue  # already tabled from a harness run
        report.rows += rows
        if missing:
            _skip(report, name, "; ".join(missing))
        if source:
            sources.setdefault(source, []).append(name)
    for source, secs in sources.items():
        report.sources.append(f"{source} (section{'s' if len(secs) > 1 else ''} {', '.join(secs)})")
    report.rows.sort(key=lambda r: r.section)


def _skip(report: Report, name: str, why: str) -> None:
    report.skipped[name] = f"{report.skipped[name]}; {why}" if name in report.skipped else why


def _not_measured(report: Report) -> None:
    for name in [*SECTIONS, *STANDALONE]:
        if name in report.skipped or _covered(name, report):
            continue
        if report.mode == "run" and name in SECTIONS:
            continue  # ran without rows: nothing to say beyond the run itself
        why = "no rows in any harness run (benchmarks/results/2*.json)"
        if name in STANDALONE:
            why += f" and no standalone results file `{_rel(STANDALONE[name].results)}`"
        else:
            why += " and no standalone results file declared"
        report.skipped[name] = why


def _load_stage_sections() -> None:
    """Import the benchmark modules of stages that have landed and register their sections: a
    module's ``HARNESS`` dict (the arguments of :func:`register`), or what it registers itself."""
    import importlib.util

    # ``from benchmarks import harness`` in the stage modules needs the repository on sys.path
    # (``mlops bench`` runs from the venv's bin/; the package itself is include/).
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    for path in sorted(BENCH_DIR.glob("bench_*.py")):
        name = f"benchmarks.{path.stem}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if not (spec and spec.loader):
                continue
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        if isinstance(section := getattr(module, "HARNESS", None), dict):
            register(**section)
