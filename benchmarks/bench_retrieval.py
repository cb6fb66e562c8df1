"""Where a training-set retrieval spends its time and memory: phases of ``training_frame``, two checkouts.

    .venv/bin/python benchmarks/bench_retrieval.py --before /tmp/before --home HOME [--window 2013-02-17 2013-06-17]
    .venv/bin/python benchmarks/bench_retrieval.py --child FIRST END          # one measured run, JSON on stdout

``--before`` is a ``git worktree`` of the commit to compare with; ``HOME`` an ``MLOPS_HOME`` whose lake
holds the curated flights and feature tables of the window (e.g. a ``bench_memory.py`` home:
``$work/f1``, ``$work/f10``) and whose registry is applied. Each variant runs in a fresh process
(its own ``include/`` first on ``PYTHONPATH``), both at once, so they see the same load.

A run calls :func:`mlops.features.feature_store.training_frame` (what ``build_training_set`` calls)
with marks at: Feast imported and the store built, the curated flights read, each chunk's
``get_historical_features`` call (entity keys built) and its plan returned, the model frame, the
end. Each mark records wall seconds, this process's CPU seconds (all threads: DuckDB's too) and
RSS; the run's peak RSS is ``VmHWM`` (:func:`benchmarks.harness.peak_rss_mib`). Results: ``benchmarks/results/retrieval.json``.
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
WINDOW = ("2013-02-17", "2013-06-17")  # bench_memory.WINDOW: the default 120 days as of 2013-06-17


def child(first: str, end: str) -> dict[str, Any]:
    """One measured ``training_frame(first, end)`` in this process, with its marks."""
    from benchmarks.harness import peak_rss_mib, rss_mib

    t0 = time.perf_counter()
    marks: list[list[Any]] = []

    def mark(name: str) -> None:
        marks.append(
            [name, round(time.perf_counter() - t0, 2), round(time.process_time(), 2), round(rss_mib())]
        )
        print(marks[-1], file=sys.stderr, flush=True)

    import pandas  # noqa: F401

    mark("import pandas")
    try:
        from mlops.features import compute, feature_store
    except ImportError:  # a checkout from before the stage packages (issue 15)
        from mlops import feature_store  # type: ignore[no-redef]
        from mlops import features as compute  # type: ignore[no-redef]
    store = feature_store.get_store()
    mark("import Feast, get_store")
    get = store.get_historical_features

    def historical(*args: Any, **kwargs: Any) -> Any:
        mark("chunk: entity keys built")
        job = get(*args, **kwargs)
        mark("chunk: get_historical_features planned")
        return job

    store.get_historical_features = historical
    read, assemble = compute.read_curated, compute.model_frame

    def read_curated(*args: Any, **kwargs: Any) -> Any:
        out = read(*args, **kwargs)
        mark(f"curated read ({len(out)} rows)")
        return out

    def model_frame(*args: Any, **kwargs: Any) -> Any:
        mark("chunks done: model frame start")
        out = assemble(*args, **kwargs)
        mark("model frame end")
        return out

    compute.read_curated, compute.model_frame = read_curated, model_frame
    frame = feature_store.training_frame(first, end)
    mark("training_frame returned")
    return {
        "rows": len(frame),
        "marks": marks,
        "peak_rss_mb": round(peak_rss_mib()),
        "cpu_s": round(time.process_time(), 2),
        "null_rate": round(float(frame[frame.columns[4:]].isna().to_numpy().mean()), 4),
        "module": feature_store.__file__,
    }


def summary(run: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds per phase and RSS at its end, from a run's marks."""
    marks = run["marks"]
    by = {name: (wall, cpu, rss) for name, wall, cpu, rss in marks}
    store = next(m for m in marks if m[0].startswith("import Feast"))
    read = next(m for m in marks if m[0].startswith("curated read"))
    chunks = [m for m in marks if m[0] == "chunk: get_historical_features planned"]
    start = by["chunks done: model frame start"]
    end = by["training_frame returned"]
    return {
        "chunks": len(chunks),
        "cpu_import_and_store_s": store[2],
        "cpu_retrieval_s": round(end[1] - store[2], 2),
        "cpu_chunks_s": round(start[1] - read[2], 2),
        "cpu_model_frame_s": round(by["model frame end"][1] - start[1], 2),
        "rss_after_curated_mb": read[3],
        "peak_rss_mb": run["peak_rss_mb"],
    }


def compare(before: Path, home: Path, window: tuple[str, str]) -> dict[str, Any]:
    procs = {}
    for variant, root in (("before", before.resolve()), ("after", ROOT)):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PYTHONPATH"))}
        env |= {
            "MLOPS_HOME": str(home),
            # The variant's package; this checkout's benchmarks (benchmarks.harness's RSS helpers).
            "PYTHONPATH": f"{root / 'include'}{os.pathsep}{ROOT}",
            "PYTHONWARNINGS": "ignore",
            "FEAST_USAGE": "False",
        }
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *window]
        procs[variant] = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE, text=True)
    load = os.getloadavg()
    out: dict[str, Any] = {
        "home": str(home),
        "window": list(window),
        "loadavg_start": [round(x, 2) for x in load],
    }
    for variant, proc in procs.items():
        stdout, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"{variant} failed (exit {proc.returncode})")
        out[variant] = json.loads(stdout.strip().splitlines()[-1])
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Any]:
    """Peak RSS and retrieval CPU of each measured lake, this checkout against the earlier one."""
    from benchmarks.harness import Row

    out = []
    for name, m in result["lakes"].items():
        b, a = summary(m["before"]), summary(m["after"])
        note = (
            f"{m['after']['rows']:,} rows, {a['chunks']} chunks; commits {result['commits']['before'][:7]} -> "
            f"{result['commits']['after'][:7]}; load {m['loadavg_start'][0]:.0f}-{m['loadavg_end'][0]:.0f}; "
            + m.get("note", "")
        )
        out.append(
            Row(
                "3b retrieval",
                f"{name}: training_frame peak RSS",
                a["peak_rss_mb"],
                "same, earlier commit (same run)",
                b["peak_rss_mb"],
                unit="MB",
                peak_rss_mb=a["peak_rss_mb"],
                note=note,
            )
        )
        out.append(
            Row(
                "3b retrieval",
                f"{name}: training_frame CPU (after Feast import)",
                a["cpu_retrieval_s"],
                "same, earlier commit (same run)",
                b["cpu_retrieval_s"],
                spread=f"model frame {a['cpu_model_frame_s']} vs {b['cpu_model_frame_s']} s CPU",
                note=note,
            )
        )
    return out


#: The standalone section (its results file; the arguments of :func:`benchmarks.harness.register`).
HARNESS = {
    "name": "retrieval",
    "results": RESULTS / "retrieval.json",
    "rows": rows,
    "command": ".venv/bin/python benchmarks/bench_retrieval.py --before <worktree> --home <home>",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="git worktree of the commit to compare with")
    parser.add_argument("--home", type=Path, action="append", help="MLOPS_HOME of a lake (repeatable)")
    parser.add_argument("--window", nargs=2, default=list(WINDOW), metavar=("FIRST", "END"))
    parser.add_argument("--out", type=Path, default=RESULTS / "retrieval.json")
    parser.add_argument("--child", nargs=2, metavar=("FIRST", "END"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    if args.before is None or not args.home:
        parser.error("--before and --home are required")
    commits = {
        v: subprocess.run(["git", "rev-parse", "HEAD"], cwd=r, capture_output=True, text=True).stdout.strip()
        for v, r in (("before", args.before), ("after", ROOT))
    }
    result: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commits": commits,
    }
    result["lakes"] = {home.name: compare(args.before, home, tuple(args.window)) for home in args.home}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps({k: {v: summary(m[v]) for v in ("before", "after")} for k, m in result["lakes"].items()})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
