"""The training set's checks before anything is trained: volume, day coverage, labels, null rates.

The label checks come from the model spec (:class:`mlops.spec.model.LabelChecks`: the bounds of
the label's mean in each part, and of every value); the rest from the run's params.

:func:`validate_training_set` returns a report ``{"passed", "checks", "summary"}`` (each check has
``name``, ``passed``, ``value``, ``threshold`` and ``message``) and raises nothing;
:func:`require_valid` turns a failed report into :class:`TrainingSetInvalid`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mlops.spec.model import model_spec
from mlops.training.dataset import feature_columns

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd

    from mlops.spec.model import ModelSpec
    from mlops.training.params import TrainParams, Window

Check = dict[str, Any]


class TrainingSetInvalid(ValueError):
    """The training set failed validation; nothing was trained. ``report`` holds every check."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def _check(name: str, passed: bool, value: Any, threshold: Any, message: str) -> Check:
    return {"name": name, "passed": bool(passed), "value": value, "threshold": threshold, "message": message}


def validate_training_set(
    frame: pd.DataFrame,
    window: Window,
    params: TrainParams,
    manifest: Mapping[str, Any] | None = None,
    spec: ModelSpec | None = None,
) -> dict[str, Any]:
    """Check volume, coverage, labels and null rates before anything is trained (see module)."""
    spec = model_spec(spec)
    ds = frame[spec.day_column].astype(str)
    holdout = ds >= window.holdout_start.isoformat()
    present = set(ds.unique())
    # Days before the first curated day of the window are "not yet started" (data begins there);
    # a gap after it is a missing partition.
    first = min(present) if present else window.end.isoformat()
    null_rates = {c: round(float(frame[c].isna().mean()), 4) for c in feature_columns(frame, spec)}
    checks = [
        *_volume_checks(frame, holdout, window, params),
        *_coverage_checks(present, first, window, params),
        *_label_checks(frame, holdout, params, spec),
        _null_rate_check(null_rates, params),
        _feature_coverage_check(frame, ds, params, spec),
    ]
    if manifest is not None:
        checks.append(_partitions_check(manifest, first, params))
    y = frame[spec.label].astype("float64")
    return {
        "passed": all(c["passed"] for c in checks),
        "checks": checks,
        "summary": {
            "rows": len(frame),
            "train_rows": int((~holdout).sum()),
            "holdout_rows": int(holdout.sum()),
            "positive_rate": round(float(y.mean()), 4) if len(frame) else None,
            "label": spec.label,
            "label_mean": round(float(y.mean()), 4) if len(frame) else None,
            "first_day": first,
            "null_rates": null_rates,
        },
    }


def _volume_checks(
    frame: pd.DataFrame, holdout: pd.Series, window: Window, params: TrainParams
) -> list[Check]:
    rows, holdout_rows = int(len(frame)), int(holdout.sum())
    return [
        _check(
            "volume", rows >= params.min_rows, rows, params.min_rows, f"{rows} labelled rows in the window"
        ),
        _check(
            "holdout_volume",
            holdout_rows >= params.min_holdout_rows,
            holdout_rows,
            params.min_holdout_rows,
            f"{holdout_rows} rows in the holdout {window.holdout_start}..{window.last_day()}",
        ),
    ]


def _coverage_checks(present: set[str], first: str, window: Window, params: TrainParams) -> list[Check]:
    missing = [d for d in window.days() if d >= first and d not in present]
    if present:
        message = f"days without labelled rows after {first}: {_some(missing)}"
    else:
        message = f"no labelled rows on any day of {window.start}..{window.last_day()}"
    holdout_days = {d for d in present if d >= window.holdout_start.isoformat()}
    return [
        _check(
            "missing_days",
            len(missing) <= params.max_missing_days and bool(present),
            len(missing) if present else len(window.days()),
            params.max_missing_days,
            message,
        ),
        _check(
            "holdout_coverage",
            len(holdout_days) == params.holdout_days,
            len(holdout_days),
            params.holdout_days,
            f"holdout days with data: {len(holdout_days)} of {params.holdout_days}",
        ),
    ]


def _label_checks(
    frame: pd.DataFrame, holdout: pd.Series, params: TrainParams, spec: ModelSpec
) -> list[Check]:
    """The label's mean in each part within the spec's bounds (or the params' positive-rate
    bounds), every value within the spec's range, no null label, no duplicated id."""
    rules = spec.label_checks
    y = frame[spec.label].astype("float64")
    lo, hi = rules.mean_range or (params.min_positive_rate, params.max_positive_rate)
    checks = []
    for part, mask in (("train", ~holdout), ("holdout", holdout)):
        rate = float(y[mask].mean()) if mask.any() else float("nan")
        checks.append(
            _check(
                f"label_balance_{part}",
                lo <= rate <= hi,
                round(rate, 4) if not math.isnan(rate) else None,
                [lo, hi],
                f"{part} {rules.mean_name} {rate:.3f}",
            )
        )
    value_lo, value_hi = rules.value_range
    if value_lo is not None or value_hi is not None:
        outside = int((y < value_lo).sum()) if value_lo is not None else 0
        outside += int((y > value_hi).sum()) if value_hi is not None else 0
        checks.append(
            _check(
                "label_range",
                outside == 0,
                outside,
                [value_lo, value_hi],
                f"{outside} {spec.label} values outside [{value_lo}, {value_hi}]"
                + (f" (min {y.min():g}, max {y.max():g})" if len(y) else ""),
            )
        )
    nulls = int(y.isna().sum())
    checks.append(_check("label_not_null", nulls == 0, nulls, 0, "null labels in the set"))
    duplicated = int(frame[spec.id_column].duplicated().sum())
    checks.append(
        _check("unique_ids", duplicated == 0, duplicated, 0, f"{duplicated} duplicated {spec.id_column}")
    )
    return checks


def _null_rate_check(null_rates: Mapping[str, float], params: TrainParams) -> Check:
    too_null = {c: r for c, r in null_rates.items() if r > params.max_null_rate}
    return _check(
        "null_rates",
        not too_null,
        too_null,
        params.max_null_rate,
        f"features with null rate above {params.max_null_rate}: {sorted(too_null)}",
    )


def _feature_coverage_check(
    frame: pd.DataFrame, ds: pd.Series, params: TrainParams, spec: ModelSpec
) -> Check:
    """Days whose rows have (nearly) every feature null: their feature tables were not built.

    Such a day (e.g. a stranded asset event) hides in the overall null rate when it is a small part
    of the window, but it is most of a holdout. Null count per row, column by column (no copy).
    """
    import pandas as pd

    cols = feature_columns(frame, spec)
    row_nulls = sum(frame[c].isna().to_numpy(dtype="int64") for c in cols) if cols else 0
    per_day = pd.Series(row_nulls / max(len(cols), 1), index=frame.index).groupby(ds).mean()
    unfeatured = sorted(d for d, r in per_day.items() if r > params.max_day_null_rate)
    return _check(
        "feature_coverage",
        not unfeatured,
        len(unfeatured),
        params.max_day_null_rate,
        f"days whose rows have on average more than {params.max_day_null_rate:.0%} null features (feature "
        f"tables not built? run materialize_features for them): {_some(unfeatured)}",
    )


def _partitions_check(manifest: Mapping[str, Any], first: str, params: TrainParams) -> Check:
    gone = [p["ds"] for p in manifest.get("partitions", []) if p.get("missing") and p["ds"] >= first]
    return _check(
        "curated_partitions",
        len(gone) <= params.max_missing_days,
        len(gone),
        params.max_missing_days,
        f"curated partitions missing in the window after {first}: {gone[:10]}",
    )


def _some(days: list[str]) -> str:
    """The first ten days of a list, ``...`` when there are more."""
    return f"{days[:10]}{'...' if len(days) > 10 else ''}"


def require_valid(report: Mapping[str, Any], window: Window) -> None:
    """Raise :class:`TrainingSetInvalid` naming every failed check, its value and the next step."""
    failed = [c for c in report["checks"] if not c["passed"]]
    if not failed:
        return
    lines = "; ".join(
        f"{c['name']}: {c['message']} (value {c['value']}, threshold {c['threshold']})" for c in failed
    )
    raise TrainingSetInvalid(
        f"training set as of {window.as_of} ({window.start}..{window.last_day()}) failed "
        f"{len(failed)} check(s): {lines}. Nothing was trained and the champion is untouched; "
        "backfill the missing curated partitions / feature tables or change window_days, then clear the run.",
        dict(report),
    )
