"""Small training frames made straight from the curated data (no Feast), for fast tests.

Columns follow ``mlops.features.feature_store.training_frame``: flight_id, sched_dep_ts, ds, is_delayed,
then features: the request-time features of :func:`mlops.features.compute.request_features` plus two
leak-free statistics (origin and carrier delayed rate over the previous 7 days, and the departure
delay of the aircraft's previous leg of the day when it had left before this flight's schedule).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from mlops import reference
from mlops.features.compute import request_features
from mlops.ingest.normalize import normalize


@functools.cache
def curated() -> pd.DataFrame:
    return normalize(reference.load("flights"))


def _prev_7d_rate(cur: pd.DataFrame, key: str) -> pd.Series:
    daily = cur.dropna(subset=["is_delayed"]).groupby([key, "ds"])["is_delayed"].agg(["sum", "count"])
    out = []
    for k, g in daily.reset_index().groupby(key):
        g = g.set_index(pd.to_datetime(g["ds"]))[["sum", "count"]].asfreq("D", fill_value=0)
        rate = g["sum"].rolling(7, min_periods=1).sum().shift(1) / g["count"].rolling(
            7, min_periods=1
        ).sum().shift(1)
        out.append(pd.DataFrame({key: k, "ds": g.index.strftime("%Y-%m-%d"), "rate": rate.to_numpy()}))
    table = pd.concat(out, ignore_index=True)
    return cur[[key, "ds"]].astype(str).merge(table, on=[key, "ds"], how="left")["rate"].to_numpy()


def _prev_leg_delay(cur: pd.DataFrame) -> np.ndarray:
    """Departure delay of the aircraft's previous leg that day, if it left before this one's schedule."""
    order = cur.sort_values(["sched_dep_ts", "flight_id"], kind="stable")
    g = order.groupby([order["tailnum"].fillna("?"), order["ds"]], sort=False)
    prev_delay, prev_dep = g["dep_delay"].shift(1), g["dep_ts"].shift(1)
    known = (prev_dep < order["sched_dep_ts"]) & order["tailnum"].notna()
    return prev_delay.where(known).reindex(cur.index).to_numpy(dtype="float64")


@functools.cache
def _full() -> pd.DataFrame:
    cur = curated()
    feats = request_features(cur)
    frame = pd.concat(
        [cur[["flight_id", "sched_dep_ts", "ds"]], cur["is_delayed"].rename("is_delayed"), feats], axis=1
    )
    frame["origin_delayed_rate_7d"] = _prev_7d_rate(cur, "origin")
    frame["carrier_delayed_rate_7d"] = _prev_7d_rate(cur, "carrier")
    frame["prev_leg_dep_delay"] = _prev_leg_delay(cur)
    frame = frame[frame["is_delayed"].notna()].copy()
    frame["is_delayed"] = frame["is_delayed"].astype("int8")
    return frame.reset_index(drop=True)


def small_frame(start: str, end: str, frac: float = 0.25, seed: int = 0) -> pd.DataFrame:
    """Labelled flights with ds in [start, end), a ``frac`` sample per day, canonical order."""
    full = _full()
    part = full[(full["ds"] >= start) & (full["ds"] < end)]
    part = part.sample(frac=frac, random_state=seed) if frac < 1 else part
    return part.sort_values(["sched_dep_ts", "flight_id"], kind="stable").reset_index(drop=True)


def tiny_params(**overrides):
    from mlops.training.params import TrainParams

    base = dict(
        window_days=42,
        holdout_days=7,
        n_estimators=40,
        max_depth=3,
        learning_rate=0.3,
        n_candidates=2,
        nthread=1,
        min_rows=500,
        min_holdout_rows=100,
        max_bin=64,
    )
    return TrainParams(**{**base, **overrides})


__all__ = ["curated", "small_frame", "tiny_params", "np"]
