"""Behavioural checks of a model (Made With ML style): invariance, direction, range.

``train_model`` runs them once, in ``log_to_mlflow`` (they are logged with the run); the promotion
gate (:func:`mlops.models.registry.gate_and_promote`) reads their outcome and refuses a model that
failed any.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import pandas as pd

    Predict = Callable[[pd.DataFrame], np.ndarray]

#: Fields that are not model inputs: changing them must not change a prediction.
IRRELEVANT_FIELDS: tuple[str, ...] = ("flight_id", "flight", "tailnum", "ds")
#: Features where a higher value should not lower the average delay risk (+1), or should not
#: raise it (-1). Checked between each feature's 10th and 90th percentile on the holdout. Only
#: causal, unconfounded signals belong here: a late inbound aircraft and a congested departure
#: bank make a delay more likely whatever else is true. (Window rates such as a carrier's 7-day
#: delayed rate are confounded with the carrier and season; a good model may use them either way.)
EXPECTED_DIRECTIONS: dict[str, int] = {
    "prev_leg_dep_delay": +1,
    "cong_dep_delay_mean_prev_2h": +1,
}


def behavioural_checks(
    predict: Predict,
    holdout: pd.DataFrame,
    features: Sequence[str],
    sample: int = 2000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Run the behavioural checks of a model (``predict``: frame -> probabilities) on holdout rows.

    * range: predictions are finite probabilities;
    * invariance: changing fields the model must ignore (ids, tail number, flight number) and the
      row order changes no prediction;
    * directional: moving an expected-direction feature from its 10th to its 90th percentile moves
      the mean prediction the expected way.
    """
    import numpy as np

    rows = holdout.sample(n=min(sample, len(holdout)), random_state=seed).reset_index(drop=True)
    base = np.asarray(predict(rows), dtype="float64")
    checks = [
        _range_check(base),
        _irrelevant_fields_check(predict, rows, base, features, seed),
        _row_order_check(predict, rows, base, seed),
    ]
    for col, sign in EXPECTED_DIRECTIONS.items():
        direction = _direction_check(predict, rows, features, col, sign)
        if direction is not None:
            checks.append(direction)
    return checks


def _range_check(base: np.ndarray) -> dict[str, Any]:
    import numpy as np

    return {
        "name": "range",
        "passed": bool(np.isfinite(base).all() and (base >= 0).all() and (base <= 1).all()),
        "detail": f"min {base.min():.4f} max {base.max():.4f}",
    }


def _irrelevant_fields_check(
    predict: Predict, rows: pd.DataFrame, base: np.ndarray, features: Sequence[str], seed: int
) -> dict[str, Any]:
    import numpy as np

    noisy = rows.copy()
    for col in IRRELEVANT_FIELDS:
        if col in noisy.columns and col not in features:
            noisy[col] = noisy[col].sample(frac=1.0, random_state=seed + 1).to_numpy()
    noisy["unrelated_column"] = "x"
    diff = float(np.abs(np.asarray(predict(noisy)) - base).max())
    return {"name": "invariance_irrelevant_fields", "passed": diff == 0.0, "detail": f"max |dp| {diff:g}"}


def _row_order_check(predict: Predict, rows: pd.DataFrame, base: np.ndarray, seed: int) -> dict[str, Any]:
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(rows))
    shuffled = np.asarray(predict(rows.iloc[order].reset_index(drop=True)))
    diff = float(np.abs(shuffled - base[order]).max())
    return {"name": "invariance_row_order", "passed": diff == 0.0, "detail": f"max |dp| {diff:g}"}


def _direction_check(
    predict: Predict, rows: pd.DataFrame, features: Sequence[str], col: str, sign: int
) -> dict[str, Any] | None:
    """Mean prediction at the feature's 90th percentile minus at its 10th; None when not testable."""
    import numpy as np

    if col not in features or col not in rows.columns:
        return None
    values = rows[col].astype("float64")
    if values.notna().sum() < 20:
        return None
    lo, hi = values.quantile(0.1), values.quantile(0.9)
    if not np.isfinite([lo, hi]).all() or lo == hi:
        return None
    low, high = rows.copy(), rows.copy()
    low[col], high[col] = lo, hi
    delta = float(np.mean(predict(high)) - np.mean(predict(low)))
    expected = "+" if sign > 0 else "-"
    return {
        "name": f"direction_{col}",
        "passed": delta * sign >= 0,
        "detail": f"mean p at p90 ({hi:g}) - at p10 ({lo:g}) = {delta:+.4f}, expected {expected}",
    }


def failed(checks: Sequence[dict[str, Any]]) -> list[str]:
    """The names of the checks that did not pass."""
    return [c["name"] for c in checks if not c["passed"]]
