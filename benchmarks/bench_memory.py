"""Memory benchmark: the peak RSS of each pipeline stage at 1x and 10x the real data volume.

Section ``8 memory`` for ``mlops bench`` (registered with the harness), also runnable alone:

    .venv/bin/python benchmarks/bench_memory.py [--factors 1 10] [--stages ingest features training scoring] [--work DIR]

Issue 9 asks for "no stage above 4 GiB at 10x volume". Every measured step runs the function its
Airflow task runs, in a fresh Python process (as a task does), and reports that process's peak RSS
in MiB (``VmHWM``, :func:`benchmarks.harness.peak_rss_mib`: imports, data and the work itself;
its children's ``ru_maxrss`` too, in case a library forks), the wall time of the call and of the whole process. Each step is
measured at 1x (the baseline, same code, same days) and at 10x; the limit is 4096 MiB.

The data is a synthetic scale-up of the real 2013 flights: every flight is copied ``factor - 1``
times with a distinct flight number (unused numbers of the same carrier and origin, so the flight
key ``(carrier, flight, origin)`` stays unique and within the validation's range 1-9999; the same
flight gets the same number every day) and a distinct tail number (``N14228`` -> ``Z30041`` in copy 3: a valid mark, so
each copy is an aircraft of its own; copies have no FAA registry row, so their ``plane_*`` features
are null). Schedules, delays and weather are the real ones.

Steps (task -> function):

1. **ingest** (``ingest_flights``): ``validate`` -> :func:`mlops.ingest.steps.validate_partition` (Great
   Expectations) and ``publish`` -> :func:`mlops.ingest.steps.publish_partition`, on a landing export of
   2013-06-20 (a Thursday, 995 flights) copied ``factor`` times. The volume expectation (weekday
   median +-50%) is the only check calibrated to 1x: its medians are multiplied by the factor in
   the measuring process, so the 10x batch passes validation as a real 10x day would.
2. **features** (``materialize_features``): ``build_features`` ->
   :func:`mlops.features.compute.build_feature_tables` for the week 2013-06-10..16 (its 28-day windows read
   the curated lake from 2013-05-13), ``materialize`` -> :func:`mlops.features.feature_store.materialize`
   of the interval the build covered (24 h overlap, as the DAG), and the point-in-time retrieval
   :func:`mlops.features.feature_store.training_frame` (Feast ``get_historical_features``, what
   ``build_training_set`` and batch scoring call) of that week's labelled flights and of the four
   weeks 2013-05-20..06-16 (two sizes: its memory grows with the rows retrieved, see below). The
   curated lake starts 2013-04-22; the feature tables of the three weeks before the measured one
   are built in the setup.
3. **training** (``train_model``): ``validate_training_set``, one ``score_candidate`` (candidate 0,
   the default hyperparameters) and ``refit``, each loading the saved training set with
   :func:`mlops.training.dataset.load_training_set` as the tasks do. The training set is the full year
   (as of 2014-01-01, window 365 days, holdout 61, the search validating on the 61 days before):
   the real 1x frame (327k labelled flights, the 63 model features, built once with the
   Feast-equivalent pandas join of ``bench_training.py`` and cached), and for 10x the same frame
   copied 10 times with a distinct ``flight_id`` and jittered numeric features
   (:func:`replicate_frame`). ``n_estimators`` is 30 (the search stops early at 66 rounds on the
   real year): the booster's memory grows with the rows, not the rounds, and 400 rounds at 10x
   would take an hour on this machine. Building the 10x year through Feast is not measured here
   (about 30 minutes); step 2 measures the same retrieval at 10x on a week.
4. **scoring** (``batch_predict``): :func:`mlops.serving.scoring.score_days` of one day (2013-06-14) and
   of the week 2013-06-10..16 in one call, with a model registered in MLflow (the real
   ``registry.predictor`` path), on the lake of step 2.

The retrieval's memory grows with the rows retrieved (the entity keys, each chunk's result, the
merge and the model frame are all held at once), so ``build_training_set`` over a whole training
window at 10x is not covered by the week: ``retrieval_extrapolation`` in the results draws a line
through the two measured retrievals and takes it to the default window and to a year (an
estimate, labelled as such; measuring it through Feast would take half an hour or more).

Work directory (``--work``, default ``$MLOPS_HOME/bench/memory``): one ``MLOPS_HOME`` per factor
(``f1/``, ``f10/``), ``year/`` (the 2013 lake behind the 1x training frame, kept as a cache) and the
training sets. Nothing is written to the lake of ``MLOPS_HOME`` itself. Results:
``benchmarks/results/memory.json`` (standalone) or the harness report. About 20 minutes on the
loaded 2-core machine (the first run builds the year's feature tables: 4 minutes more).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
FACTORS = (1, 10)
STAGES = ("ingest", "features", "retrieval", "training", "scoring", "drift")
LIMIT_MB = 4096
INGEST_DAY = "2013-06-20"
WEEK = ("2013-06-10", "2013-06-16")
FOUR_WEEKS = ("2013-05-20", "2013-06-16")  # the week and the three before (a longer retrieval)
#: The default training window (TrainParams.window_days = 120) ending with WEEK: what
#: ``build_training_set`` retrieves for a training run as of 2013-06-17.
WINDOW = ("2013-02-17", "2013-06-16")
SCORE_DAY = "2013-06-14"
LAKE_FIRST = "2013-01-20"  # WINDOW[0] - 28 days: the history its windows read
YEAR = ("2013-01-01", "2014-01-01")
TRAIN = {"window_days": 365, "holdout_days": 61, "n_estimators": 30, "n_candidates": 1}
MODEL_AS_OF = "2013-06-10"  # the scoring model: trained on the 42 days before (tiny, 25 trees)
log = logging.getLogger("bench_memory")


# --------------------------------------------------------------------------------------------------
# The scale-up
# --------------------------------------------------------------------------------------------------


def _copy_numbers(flights: Any, days: Any, copies: int) -> Any:
    """Flight numbers for ``copies`` copies of one carrier's flights at one origin: an array
    ``(copies, len(used))`` (copy ``k``'s number for the ``i``-th number in ``np.unique(flights)``).

    A copy of a flight keeps its number every day it flies, and no two flights share a number on
    the same day (the key ``(carrier, flight, origin)`` of a day's flights stays unique), within
    the validation's range 1-9999. Numbers are reused across days: over months a carrier flies
    more distinct numbers at an origin (UA at EWR: 1,125 from January to mid-June) than 10 copies
    of each would find free in 1-9999, but never more than a few hundred on one day. Each copy
    takes the lowest number free on all of its flight's days (greedy colouring, days as bit sets).
    """
    import numpy as np

    used, flight_idx = np.unique(flights, return_inverse=True)
    day_values, day_idx = np.unique(days, return_inverse=True)
    words = -(-len(day_values) // 64)
    flies = np.zeros((len(used), words * 64), dtype=bool)
    flies[flight_idx, day_idx] = True
    masks = np.packbits(flies, axis=1, bitorder="little").view(np.uint64)  # (numbers, words)
    # Number -> the days it is flown on, one array per 64-day word (contiguous: fast to scan).
    taken = [np.zeros(10_000, dtype=np.uint64) for _ in range(words)]
    for w in range(words):
        taken[w][0] = ~np.uint64(0)  # 0 is not a flight number
        taken[w][used] |= masks[:, w]
    out = np.empty((copies, len(used)), dtype=np.int64)
    for k in range(copies):
        for i, mask in enumerate(masks):
            clash = np.zeros(10_000, dtype=bool)
            for w in np.flatnonzero(mask):
                clash |= (taken[w] & mask[w]) != 0
            number = int(np.argmin(clash))
            if clash[number]:
                raise ValueError(
                    f"flight {used[i]}: no number in 1-9999 is free on all its days for copy {k + 1}"
                )
            out[k, i] = number
            for w in range(words):
                taken[w][number] |= mask[w]
    return out


def _copy_tail(tail: Any, k: int, index: dict[str, int]) -> Any:
    """Copy ``k``'s tail number of aircraft ``tail``: ``Z``, the copy, the aircraft's number in
    base 36 (``Z1002S``): a registration mark the validation accepts (2-7 capitals or digits),
    one per aircraft and copy, none a real one (US marks start with N). Null stays null."""
    if not isinstance(tail, str):
        return tail
    n, digits = index[tail], ""
    while True:
        n, r = divmod(n, 36)
        digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r] + digits
        if not n:
            break
    return f"Z{k}{digits:0>4}"


def replicate_raw(raw: Any, factor: int) -> Any:
    """Raw exports (any days) with every flight copied ``factor - 1`` times (see the docstring).

    Copy ``k`` of a flight gets a number its carrier flies from no other flight at that origin on
    any of the days the flight flies (:func:`_copy_numbers`): unique keys each day, the same number
    for the same flight every day.
    """
    import numpy as np
    import pandas as pd

    if factor == 1:
        return raw.copy()
    day = (raw["year"] * 10_000 + raw["month"] * 100 + raw["day"]).to_numpy()
    flights = raw["flight"].to_numpy()
    numbers = np.empty((factor - 1, len(raw)), dtype=np.int64)
    for (_carrier, _origin), rows in raw.groupby(["carrier", "origin"]).indices.items():
        table = _copy_numbers(flights[rows], day[rows], factor - 1)
        idx = np.searchsorted(np.unique(flights[rows]), flights[rows])
        numbers[:, rows] = table[:, idx]
    tails = {t: i for i, t in enumerate(sorted(raw["tailnum"].dropna().astype(str).unique()))}
    copies = [raw]
    for k in range(1, factor):
        copy = raw.copy()
        copy["flight"] = numbers[k - 1].astype(raw["flight"].dtype)
        copy["tailnum"] = raw["tailnum"].map(lambda t, k=k: _copy_tail(t, k, tails))
        copies.append(copy)
    out = pd.concat(copies, ignore_index=True)
    return out.sort_values(["year", "month", "day", "sched_dep_time"], kind="stable").reset_index(drop=True)


def replicate_frame(frame: Any, factor: int, seed: int = 0) -> Any:
    """A training frame copied ``factor`` times: distinct ``flight_id``; each numeric feature of
    copy ``k`` shifted by one Gaussian draw of 1% of its standard deviation (copy 0 is the frame).

    One offset per copy and column, not per row: a copy keeps the structure of the real values
    (one weather observation per airport and hour, one rate per carrier and day), so the saved set
    compresses like real data. Per-row noise made every value unique: the 10x parquet file was
    1.29 GB against 18 MB at 1x, and reading it cost memory no real 10x year would."""
    import numpy as np
    import pandas as pd

    from mlops.training.dataset import feature_columns, sort_frame

    if factor == 1:
        return frame
    rng = np.random.default_rng(seed)
    numeric = [c for c in feature_columns(frame) if pd.api.types.is_float_dtype(frame[c])]
    std = {c: float(frame[c].std()) for c in numeric}
    copies = [frame]
    for k in range(1, factor):
        copy = frame.copy()
        copy["flight_id"] = (frame["flight_id"].astype(str) + f"#{k}").astype(frame["flight_id"].dtype)
        for c in numeric:
            if std[c] == std[c] and std[c] > 0:
                copy[c] = frame[c] + rng.normal(0.0, 0.01 * std[c])
        copies.append(copy)
    return sort_frame(pd.concat(copies, ignore_index=True))


# --------------------------------------------------------------------------------------------------
# Tasks: each runs in its own process (`python bench_memory.py --task NAME --home DIR --factor K`)
# --------------------------------------------------------------------------------------------------


def _train_params() -> Any:
    from mlops.training.params import TrainParams

    return TrainParams.from_mapping(TRAIN)


def _training_set_uri(work: Path, factor: int) -> str:
    # The recipe is in the name: a cached set made another way is not reused.
    return (work / f"training_{factor}x_offset_jitter" / "training_set.parquet").resolve().as_uri()


def setup_year(work: Path, **_: Any) -> dict[str, Any]:
    """The real 1x training frame of 2013 (cached): curated lake, feature tables, pandas join."""
    from mlops.config import get_settings
    from mlops.training.dataset import sort_frame

    out = work / "year_1x.parquet"
    if out.exists():
        return {"cached": str(out)}
    from benchmarks.bench_training import pandas_training_frame, prepare

    s = get_settings()
    prepare(s)
    frame = sort_frame(pandas_training_frame(*YEAR, s))
    frame.to_parquet(out, index=False, compression="zstd")
    return {"rows": len(frame), "written": str(out)}


def setup_lake(work: Path, factor: int, **_: Any) -> dict[str, Any]:
    """A home at ``factor``x: the ingestion day's landing export, the curated lake of
    LAKE_FIRST..WEEK[-1], the feature tables of WINDOW before WEEK (the week's own are the
    measured build; built four weeks at a time) and ``feast apply``."""
    from mlops import lake, layout
    from mlops.config import get_settings
    from mlops.dev.seed import seed_weather
    from mlops.features import compute, feature_store
    from mlops.ingest import simulator
    from mlops.ingest.normalize import normalize

    s = get_settings()
    marker = s.home / "setup.json"
    if marker.exists() and json.loads(marker.read_text()).get("lake") == [LAKE_FIRST, WEEK[1], "weather"]:
        return json.loads(marker.read_text()) | {"cached": True}
    import pandas as pd

    landing = replicate_raw(simulator.replay_day(INGEST_DAY), factor)
    lake.write_bytes(layout.landing_file(s.landing_uri, INGEST_DAY), simulator.to_csv_bytes(landing))
    days = compute.day_range(LAKE_FIRST, WEEK[1])
    raw = replicate_raw(pd.concat([simulator.replay_day(d) for d in days], ignore_index=True), factor)
    curated = normalize(raw)
    for ds, part in curated.groupby("ds"):
        lake.write_parquet(layout.curated_file(s.lake_uri, str(ds)), part.reset_index(drop=True))
    # Features read weather from the curated lake only (the real weather: one feed for every copy);
    # without it every origin_weather row is missing and the retrieval's frame is not the real one.
    seed_weather(days, s)
    before_week = (datetime.fromisoformat(WEEK[0]) - timedelta(days=1)).date().isoformat()
    window_days = compute.day_range(WINDOW[0], before_week)
    for first in range(0, len(window_days), 28):
        compute.build_feature_tables(window_days[first : first + 28], s, include_dependents=False)
    feature_store.apply(s)
    info = {
        "lake": [LAKE_FIRST, WEEK[1], "weather"],
        "landing_rows": len(landing),
        "curated_rows": len(curated),
    }
    marker.write_text(json.dumps(info))
    return info


def setup_model(work: Path, **_: Any) -> dict[str, Any]:
    """A model registered in the home's MLflow for scoring (trained on the real year before
    MODEL_AS_OF), and made ``@champion``: what the drift check compares against."""
    from mlops.config import CHAMPION, MODEL_NAME, get_settings
    from mlops.models import registry
    from mlops.training.dataset import load_training_set
    from tests.integration._registry_helpers import train_and_register

    marker = get_settings().home / "model.json"
    if marker.exists():
        return json.loads(marker.read_text()) | {"cached": True}
    year = load_training_set((work / "year_1x.parquet").resolve().as_uri())
    year = year[year["ds"] < MODEL_AS_OF].reset_index(drop=True)
    version, _ = train_and_register(year, as_of=MODEL_AS_OF, n_candidates=1, n_estimators=25)
    registry.move_alias(
        MODEL_NAME, CHAMPION, version, actor="bench_memory", reason="the drift step's champion"
    )
    info = {"model_version": version}
    marker.write_text(json.dumps(info))
    return info


def setup_training_set(work: Path, factor: int, **_: Any) -> dict[str, Any]:
    """The year's training set at ``factor``x, saved as ``build_training_set`` saves it."""
    import pandas as pd

    from mlops import lake
    from mlops.training.dataset import load_training_set

    uri = _training_set_uri(work, factor)
    if lake.exists(uri):
        return {"cached": uri}
    frame = load_training_set((work / "year_1x.parquet").resolve().as_uri())
    big = replicate_frame(frame, factor)
    del frame
    lake.write_parquet(uri, big)
    return {
        "rows": len(big),
        "written": uri,
        "dtypes": pd.Series(big.dtypes.astype(str)).value_counts().to_dict(),
    }


def ingest_validate(factor: int, **_: Any) -> dict[str, Any]:
    from mlops.ingest import steps, validation

    if factor != 1:  # the volume expectation is calibrated to 1x (see the module docstring)
        for day, median in list(validation.NORMAL_ROWS_BY_WEEKDAY.items()):
            validation.NORMAL_ROWS_BY_WEEKDAY[day] = median * factor
    t = time.perf_counter()
    result = steps.validate_partition(INGEST_DAY)
    seconds = time.perf_counter() - t
    if not result.success:
        raise RuntimeError(result.message)
    summary = result.summary()
    return {"rows": summary["rows"], "seconds": seconds, "detail": {"sha256": summary["source_sha256"]}}


def ingest_publish(**_: Any) -> dict[str, Any]:
    from mlops.ingest import steps

    t = time.perf_counter()
    published = steps.publish_partition(INGEST_DAY)
    return {"rows": published.rows, "seconds": time.perf_counter() - t}


def _week_rows() -> int:
    from mlops.features import compute

    return len(compute.read_curated(compute.day_range(*WEEK)))


def features_build(**_: Any) -> dict[str, Any]:
    from mlops.features import compute

    t = time.perf_counter()
    result = compute.build_feature_tables(compute.day_range(*WEEK))
    seconds = time.perf_counter() - t
    detail = result.as_dict()
    detail.pop("partitions")
    return {"rows": _week_rows(), "seconds": seconds, "detail": detail}


def features_materialize(start: str, end: str, **_: Any) -> dict[str, Any]:
    from datetime import timedelta

    from mlops.features import feature_store

    t = time.perf_counter()
    lo, hi = feature_store.materialize(start, end, overlap=timedelta(hours=24))
    seconds = time.perf_counter() - t
    return {
        "rows": _week_rows(),
        "seconds": seconds,
        "detail": {"start": lo.isoformat(), "end": hi.isoformat()},
    }


def features_historical(first: str = WEEK[0], last: str = WEEK[1], **_: Any) -> dict[str, Any]:
    from mlops.features import feature_store

    end = (datetime.fromisoformat(last) + timedelta(days=1)).date().isoformat()
    t = time.perf_counter()
    frame = feature_store.training_frame(first, end)
    seconds = time.perf_counter() - t
    nulls = float(frame[frame.columns[4:]].isna().to_numpy().mean())
    return {"rows": len(frame), "seconds": seconds, "detail": {"null_rate": round(nulls, 4)}}


def train_validate(work: Path, factor: int, **_: Any) -> dict[str, Any]:
    from mlops.training.dataset import load_training_set
    from mlops.training.params import Window
    from mlops.training.validation import validate_training_set

    p = _train_params()
    t = time.perf_counter()
    frame = load_training_set(_training_set_uri(work, factor))
    report = validate_training_set(frame, Window.of(YEAR[1], p), p)
    seconds = time.perf_counter() - t
    failed = [c["name"] for c in report["checks"] if not c["passed"]]
    return {"rows": len(frame), "seconds": seconds, "detail": {"passed": report["passed"], "failed": failed}}


def train_score_candidate(work: Path, factor: int, **_: Any) -> dict[str, Any]:
    from mlops.training.dataset import load_training_set
    from mlops.training.params import Window
    from mlops.training.search import candidates, score_candidate

    p = _train_params()
    candidate = candidates(p)[0]
    t = time.perf_counter()
    frame = load_training_set(_training_set_uri(work, factor))
    loaded = time.perf_counter() - t
    score = score_candidate(frame, Window.of(YEAR[1], p), p, candidate)
    return {
        "rows": len(frame),
        "seconds": time.perf_counter() - t,
        "detail": {"load_seconds": round(loaded, 2), "score": score},
    }


def train_refit(work: Path, factor: int, best: dict[str, Any], **_: Any) -> dict[str, Any]:
    import hashlib
    import tempfile

    from mlops import lake
    from mlops.training.dataset import load_training_set
    from mlops.training.params import Window
    from mlops.training.run import refit

    p = _train_params()
    t = time.perf_counter()
    frame = load_training_set(_training_set_uri(work, factor))
    loaded = time.perf_counter() - t
    result = refit(frame, Window.of(YEAR[1], p), p, best)
    booster, meta = result.model.to_bytes()
    with tempfile.TemporaryDirectory(dir=work) as out:  # what the task writes, then dropped
        base = Path(out).resolve().as_uri()
        lake.write_bytes(lake.join(base, "booster.ubj"), booster)
        lake.write_text(lake.join(base, "meta.json"), meta)
        lake.write_parquet(lake.join(base, "holdout_predictions.parquet"), result.holdout_predictions)
    preds = result.holdout_predictions["prediction"].to_numpy()
    return {
        "rows": len(frame),
        "seconds": time.perf_counter() - t,
        "detail": {
            "load_seconds": round(loaded, 2),
            "holdout_roc_auc": result.metrics["roc_auc"],
            "booster_sha256": hashlib.sha256(booster).hexdigest(),
            "holdout_predictions_sha256": hashlib.sha256(preds.tobytes()).hexdigest(),
        },
    }


def _score(days: list[str]) -> dict[str, Any]:
    from mlops.config import get_settings
    from mlops.serving import scoring

    version = json.loads((get_settings().home / "model.json").read_text())["model_version"]
    model = scoring.resolve_version(version)  # the resolve_model task, before the score task
    timings: dict[str, float] = {}
    t = time.perf_counter()
    results = scoring.score_days(
        days, model["model_version"], threshold=0.5, model_as_of=model.get("as_of"), timings=timings
    )
    seconds = time.perf_counter() - t
    steps = {k: round(v, 2) for k, v in timings.items()}
    return {"rows": sum(r.rows for r in results), "seconds": seconds, "detail": {"steps": steps}}


def score_day(**_: Any) -> dict[str, Any]:
    return _score([SCORE_DAY])


def score_week(**_: Any) -> dict[str, Any]:
    from mlops.features import compute

    return _score(compute.day_range(*WEEK))


def drift_check(**_: Any) -> dict[str, Any]:
    """``monitor_drift.check_drift`` of WEEK[-1] (its 7 days: the week scored by ``score_week``)
    against the champion: reference rebuilt through Feast, Evidently, reports, MLflow, history."""
    from mlops.monitoring.check import check
    from mlops.monitoring.params import DriftParams

    t = time.perf_counter()
    summary = check(WEEK[1], DriftParams(), airflow_context={"dag_id": "bench_memory", "run_id": "manual"})
    seconds = time.perf_counter() - t
    keep = ("n_reference", "n_current", "n_current_total", "n_drifted", "n_features", "breached")
    return {
        "rows": summary["n_current_total"],
        "seconds": seconds,
        "detail": {k: summary.get(k) for k in keep} | {"timings": summary.get("timings")},
    }


TASKS = {
    f.__name__: f
    for f in (
        setup_year,
        setup_lake,
        setup_model,
        setup_training_set,
        ingest_validate,
        ingest_publish,
        features_build,
        features_materialize,
        features_historical,
        train_validate,
        train_score_candidate,
        train_refit,
        score_day,
        score_week,
        drift_check,
    )
}
#: stage -> its measured steps, in pipeline order: (step name, task, Airflow task it stands for,
#: the task's arguments).
STEPS: dict[str, list[tuple[str, str, str, dict[str, Any]]]] = {
    "ingest": [
        ("validate", "ingest_validate", "ingest_flights.validate", {}),
        ("publish", "ingest_publish", "ingest_flights.publish", {}),
    ],
    "features": [
        ("build feature tables (1 week)", "features_build", "materialize_features.build_features", {}),
        ("materialize (1 week)", "features_materialize", "materialize_features.materialize", {}),
    ],
    "retrieval": [
        ("get_historical_features (1 week)", "features_historical", "train_model.build_training_set", {}),
        (
            "get_historical_features (4 weeks)",
            "features_historical",
            "train_model.build_training_set",
            {"first": FOUR_WEEKS[0], "last": FOUR_WEEKS[1]},
        ),
        (
            "get_historical_features (120 days)",
            "features_historical",
            "train_model.build_training_set",
            {"first": WINDOW[0], "last": WINDOW[1]},
        ),
    ],
    "training": [
        ("validate_training_set (year)", "train_validate", "train_model.validate_training_set", {}),
        ("score_candidate (year)", "train_score_candidate", "train_model.score_candidate", {}),
        ("refit (year)", "train_refit", "train_model.refit", {}),
    ],
    "scoring": [
        ("score_days, one day", "score_day", "batch_predict.score", {}),
        ("score_days, one week", "score_week", "batch_predict.score", {}),
    ],
    "drift": [("check_drift (the scored week)", "drift_check", "monitor_drift.check_drift", {})],
}


def run_task_here(name: str, work: Path, factor: int, args: dict[str, Any]) -> dict[str, Any]:
    """Run one task in this process and add its resource use (the child side of :func:`run_task`)."""
    from benchmarks.harness import children_peak_rss_mib, peak_rss_mib, rss_mib

    started = time.perf_counter()
    rss_start = round(rss_mib(), 1)
    out = TASKS[name](work=work, factor=factor, **args)
    self_peak, children_peak = peak_rss_mib(), children_peak_rss_mib()
    out.update(
        task=name,
        factor=factor,
        rss_start_mb=rss_start,
        peak_rss_mb=round(self_peak, 1),
        children_peak_rss_mb=round(children_peak, 1),
        call_seconds=round(out.pop("seconds", time.perf_counter() - started), 2),
    )
    return out


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLOPS_FEAST_", "MLOPS_LAKE", "MLOPS_LANDING", "MLFLOW_", "AIRFLOW"))
    }
    env.update(
        MLOPS_HOME=str(home),
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONWARNINGS="ignore",
        FEAST_USAGE="False",
        GX_ANALYTICS_ENABLED="False",
        MLFLOW_ENABLE_TELEMETRY="false",
        DO_NOT_TRACK="1",
        GIT_PYTHON_REFRESH="quiet",
    )
    return env


def run_task(name: str, home: Path, work: Path, factor: int = 1, **args: Any) -> dict[str, Any]:
    """Run ``name`` in a fresh Python process with ``MLOPS_HOME=home``; its JSON result."""
    home.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--task", name, "--work", str(work), "--factor", str(factor)]
    cmd += ["--args", json.dumps(args)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_env(home), check=False)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"bench_memory --task {name} --factor {factor} failed:\n{proc.stderr[-4000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = round(seconds, 2)
    log.info(
        "%s %sx: %s rows, call %.1fs, process %.1fs, peak RSS %.0f MB",
        name,
        factor,
        out.get("rows", "-"),
        out.get("call_seconds", 0),
        seconds,
        out.get("peak_rss_mb", 0),
    )
    return out


# --------------------------------------------------------------------------------------------------
# The whole measurement
# --------------------------------------------------------------------------------------------------


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure(
    factors: tuple[int, ...] = FACTORS, stages: tuple[str, ...] = STAGES, work: Path | None = None
) -> dict[str, Any]:
    from mlops.config import get_settings

    work = (work or get_settings().home / "bench" / "memory").resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    out: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "benchmarks/bench_memory.py --factors "
        + " ".join(map(str, factors))
        + " --stages "
        + " ".join(stages),
        "machine": {"cpus": os.cpu_count(), "memory_gb": _memory_gb(), "python": sys.version.split()[0]},
        "loadavg_before": _loadavg(),
        "limit_mb": LIMIT_MB,
        "factors": list(factors),
        "setup": {},
        "steps": [],
    }
    homes = {k: work / f"f{k}" for k in factors}
    setup = out["setup"]
    modelled = {"scoring", "drift"} & set(stages)  # need a registered model (from the real year)
    if modelled or "training" in stages:
        t = time.perf_counter()
        setup["year_1x"] = run_task("setup_year", work / "year", work)
        setup["year_1x"]["seconds"] = round(time.perf_counter() - t, 1)
    for k in factors:
        if {"ingest", "features", "retrieval", "scoring", "drift"} & set(stages):
            t = time.perf_counter()
            setup[f"lake_{k}x"] = run_task("setup_lake", homes[k], work, k)
            setup[f"lake_{k}x"]["seconds"] = round(time.perf_counter() - t, 1)
        if modelled:
            t = time.perf_counter()
            setup[f"model_{k}x"] = run_task("setup_model", homes[k], work, k)
            setup[f"model_{k}x"]["seconds"] = round(time.perf_counter() - t, 1)
        if "training" in stages:
            t = time.perf_counter()
            setup[f"training_set_{k}x"] = run_task("setup_training_set", work / "year", work, k)
            setup[f"training_set_{k}x"]["seconds"] = round(time.perf_counter() - t, 1)
    # Scoring and retrieval read the week's feature tables, the drift check the week's predictions.
    needs = {"retrieval": ("features",), "scoring": ("features",), "drift": ("features", "scoring")}
    wanted = set(stages) | {n for s in stages for n in needs.get(s, ())}
    order = [s for s in STAGES if s in wanted]
    for stage in order:
        for step, task, airflow_task, step_args in STEPS[stage]:
            per: dict[int, dict[str, Any]] = {}
            for k in factors:
                args = dict(step_args)
                if task == "features_materialize":
                    built = next(
                        s["by_factor"][str(k)] for s in out["steps"] if s["task"] == "features_build"
                    )
                    args = {"start": built["detail"]["start"], "end": built["detail"]["end"]}
                if task == "train_refit":
                    scored = next(
                        s["by_factor"][str(k)] for s in out["steps"] if s["task"] == "train_score_candidate"
                    )
                    args = {"best": scored["detail"]["score"]}
                home = work / "year" if stage == "training" else homes[k]
                per[k] = run_task(task, home, work, k, **args)
            out["steps"].append(
                {
                    "stage": stage,
                    "step": step,
                    "task": task,
                    "airflow_task": airflow_task,
                    "by_factor": {str(k): v for k, v in per.items()},
                }
            )
    out["loadavg_after"] = _loadavg()
    out["total_seconds"] = round(time.perf_counter() - started, 1)
    top = max(
        (v["peak_rss_mb"], s["stage"], s["step"], k) for s in out["steps"] for k, v in s["by_factor"].items()
    )
    out["max_peak_rss_mb"] = {"value": top[0], "stage": top[1], "step": top[2], "factor": int(top[3])}
    out["within_limit"] = all(
        v["peak_rss_mb"] <= LIMIT_MB for s in out["steps"] for v in s["by_factor"].values()
    )
    out["retrieval_extrapolation"] = retrieval_extrapolation(out)
    return out


def keep_steps(result: dict[str, Any], earlier: dict[str, Any]) -> None:
    """Add to ``result`` the steps of ``earlier`` (a results file) whose stage ``result`` did not
    measure, at the same factors, each marked ``kept_from`` with the earlier run's start and load."""
    measured = {s["stage"] for s in result["steps"]}
    factors = {str(k) for k in result["factors"]}
    origin = f"from run {earlier.get('started', '?')} at load {earlier.get('loadavg_before', '?')}"
    kept = [
        {**s, "kept_from": s.get("kept_from") or origin}
        for s in earlier.get("steps", [])
        if s["stage"] not in measured and factors <= set(s["by_factor"])
    ]
    order = {stage: i for i, stage in enumerate(STAGES)}
    result["steps"] = sorted(result["steps"] + kept, key=lambda s: order.get(s["stage"], len(order)))
    top = max(
        (v["peak_rss_mb"], s["stage"], s["step"], k)
        for s in result["steps"]
        for k, v in s["by_factor"].items()
    )
    result["max_peak_rss_mb"] = {"value": top[0], "stage": top[1], "step": top[2], "factor": int(top[3])}
    result["within_limit"] = all(
        v["peak_rss_mb"] <= LIMIT_MB for s in result["steps"] for v in s["by_factor"].values()
    )


def retrieval_extrapolation(result: dict[str, Any]) -> dict[str, Any]:
    """What ``build_training_set`` (Feast retrieval of the whole training window) would need at
    each factor: a straight line through the two measured retrievals (1 and 4 weeks), taken to
    the default window (``TrainParams.window_days``) and to a year. An estimate, not a measurement.
    """
    from mlops.training.params import TrainParams

    steps = [s for s in result["steps"] if s["task"] == "features_historical"]
    if len(steps) < 2:
        return {}
    out: dict[str, Any] = {"method": "linear in rows through the 1-week and 4-week retrievals"}
    days = (datetime.fromisoformat(FOUR_WEEKS[1]) - datetime.fromisoformat(FOUR_WEEKS[0])).days + 1
    window = TrainParams().window_days
    for k in steps[0]["by_factor"]:
        (r1, m1), (r2, m2) = (
            (s["by_factor"][k]["rows"], s["by_factor"][k]["peak_rss_mb"]) for s in steps[:2]
        )
        slope = (m2 - m1) / (r2 - r1)  # MB per row
        base = m1 - slope * r1
        per_day = r2 / days
        out[f"{k}x"] = {
            "kb_per_row": round(slope * 1024, 2),
            "fixed_mb": round(base, 1),
            f"window_{window}d": {
                "rows": round(per_day * window),
                "peak_rss_mb": round(base + slope * per_day * window),
            },
            "year": {"rows": round(per_day * 365), "peak_rss_mb": round(base + slope * per_day * 365)},
            "rows_at_limit": round((LIMIT_MB - base) / slope) if slope > 0 else None,
        }
    return out


def _memory_gb() -> float:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)


def table(result: dict[str, Any]) -> str:
    """A markdown table: stage, step, rows and peak RSS per factor, seconds per factor."""
    factors = [str(k) for k in result["factors"]]
    head = ["stage", "step"]
    head += [f"rows {k}x" for k in factors] + [f"peak RSS {k}x (MB)" for k in factors]
    head += [f"seconds {k}x" for k in factors]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result["steps"]:
        f = s["by_factor"]
        cells = [s["stage"], s["step"]]
        cells += [f"{f[k]['rows']:,}" for k in factors]
        cells += [f"{f[k]['peak_rss_mb']:,.0f}" for k in factors]
        cells += [f"{f[k]['call_seconds']:.1f}" for k in factors]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rows(result: dict[str, Any], missing: list[str] | None = None) -> list[Any]:
    """The table rows of a :func:`measure` result (or of ``results/memory.json``, its saved form):
    each step's peak RSS at the largest factor next to the same step at the smallest."""
    from benchmarks.harness import Row

    factors = sorted(int(k) for k in result["factors"])
    if len(factors) < 2 or not result["steps"]:
        raise KeyError("steps measured at two factors (e.g. --factors 1 10)")
    base, big = str(factors[0]), str(factors[-1])
    out = []
    for s in result["steps"]:
        b, x = s["by_factor"][base], s["by_factor"][big]
        out.append(
            Row(
                "8 memory",
                f"{s['stage']}: {s['step']}, peak RSS at {big}x ({x['rows']:,} rows)",
                x["peak_rss_mb"],
                f"same at {base}x ({b['rows']:,} rows)",
                b["peak_rss_mb"],
                unit="MB",
                peak_rss_mb=x["peak_rss_mb"],
                note=f"{s['airflow_task']}; call {b['call_seconds']:.0f} s at {base}x, "
                f"{x['call_seconds']:.0f} s at {big}x; limit {result['limit_mb']} MB"
                + (f"; {s['kept_from']}" if s.get("kept_from") else ""),
            )
        )
    if missing is not None:
        measured = {s["stage"] for s in result["steps"]}
        missing += [f"memory of stage {stage}: not in this run" for stage in STAGES if stage not in measured]
    return out


#: The section ``mlops bench`` runs (the arguments of :func:`benchmarks.harness.register`); the
#: report keeps the summary of the measurement.
HARNESS = {
    "name": "memory",
    "results": RESULTS / "memory.json",
    "rows": rows,
    "command": ".venv/bin/python benchmarks/bench_memory.py",
    "measure": measure,
    "details": lambda m: {
        k: m[k]
        for k in ("max_peak_rss_mb", "within_limit", "loadavg_before", "loadavg_after", "total_seconds")
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--factors", type=int, nargs="+", default=list(FACTORS))
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--work", type=Path, help="work directory (default $MLOPS_HOME/bench/memory)")
    parser.add_argument("--output", type=Path, default=RESULTS / "memory.json")
    parser.add_argument(
        "--keep-from",
        type=Path,
        help="an earlier results file whose steps of the stages not measured now are kept (each "
        "marked with that run's date and load)",
    )
    parser.add_argument("--task", choices=sorted(TASKS), help=argparse.SUPPRESS)
    parser.add_argument("--factor", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--args", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if args.task:
        logging.basicConfig(level=logging.WARNING)
        print(
            json.dumps(run_task_here(args.task, args.work, args.factor, json.loads(args.args)), default=str)
        )
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = measure(tuple(args.factors), tuple(args.stages), args.work)
    if args.keep_from:
        keep_steps(result, json.loads(args.keep_from.read_text()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=str))
    print(table(result))
    print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")
    print(f"max peak RSS {result['max_peak_rss_mb']}; within {LIMIT_MB} MB: {result['within_limit']}")
    if result.get("retrieval_extrapolation"):
        print("build_training_set, estimated:", json.dumps(result["retrieval_extrapolation"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
