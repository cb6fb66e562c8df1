"""Behavioural checks of a model (Made With ML style): invariance, direction, monotonicity, range.

What to check comes from the model spec (:class:`mlops.spec.model.Behaviour`: fields to ignore,
expected directions, monotonic features; the prediction range from its task). ``train_model``
runs them once, in ``log_to_mlflow`` (they are logged with the run); the promotion gate
(:func:`mlops.models.registry.gate_and_promote`) reads their outcome and refuses a model that
failed any.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.spec.model import model_spec

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import numpy as np
    import pandas as pd

    from mlops.spec.model import ModelSpec

    Predict = Callable[[pd.DataFrame], np.ndarray]

#: Deciles a monotonic check moves a feature through.
MONOTONIC_QUANTILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def behavioural_checks(
    predict: Predict,
    holdout: pd.DataFrame,
    features: Sequence[str],
    sample: int = 2000,
    seed: int = 0,
    spec: ModelSpec | None = None,
) -> list[dict[str, Any]]:
    """Run the spec's behavioural checks of a model (``predict``: frame -> predictions) on holdout rows.

    * range: predictions are finite and within the task's prediction range (a probability in
      [0, 1]; a regression's own bounds);
    * invariance: changing fields the model must ignore (``Behaviour.irrelevant_fields``) and the
      row order changes no prediction;
    * directional: moving an expected-direction feature from its 10th to its 90th percentile moves
      the mean prediction the expected way;
    * monotonic: moving a ``Behaviour.monotonic`` feature through its deciles never moves the mean
      prediction the other way.
    """
    import numpy as np

    spec = model_spec(spec)
    behaviour = spec.behaviour
    rows = holdout.sample(n=min(sample, len(holdout)), random_state=seed).reset_index(drop=True)
    base = np.asarray(predict(rows), dtype="float64")
    checks = [
        _range_check(base, spec.task.prediction_range),
        _irrelevant_fields_check(predict, rows, base, features, seed, behaviour.irrelevant_fields),
        _row_order_check(predict, rows, base, seed),
    ]
    for col, sign in behaviour.directions.items():
        direction = _direction_check(predict, rows, features, col, sign)
        if direction is not None:
            checks.append(direction)
    for col in behaviour.monotonic:
        monotonic = _monotonic_check(predict, rows, features, col, behaviour.directions.get(col, +1))
        if monotonic is not None:
            checks.append(monotonic)
    return checks


def _range_check(base: np.ndarray, bounds: tuple[float | None, float | None] = (0.0, 1.0)) -> dict[str, Any]:
    import numpy as np

    lo, hi = bounds
    inside = np.isfinite(base).all()
    if lo is not None:
        inside = inside and (base >= lo).all()
    if hi is not None:
        inside = inside and (base <= hi).all()
    return {
        "name": "range",
        "passed": bool(inside),
        "detail": f"min {base.min():.4f} max {base.max():.4f}, expected within [{lo}, {hi}]",
    }


def _irrelevant_fields_check(
    predict: Predict,
    rows: pd.DataFrame,
    base: np.ndarray,
    features: Sequence[str],
    seed: int,
    irrelevant: Sequence[str],
) -> dict[str, Any]:
    import numpy as np

    noisy = rows.copy()
    for col in irrelevant:
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


def _monotonic_check(
    predict: Predict, rows: pd.DataFrame, features: Sequence[str], col: str, sign: int
) -> dict[str, Any] | None:
    """Mean prediction with ``col`` set to each of its deciles: never a step the other way."""
    import numpy as np

    if col not in features or col not in rows.columns:
        return None
    values = rows[col].astype("float64")
    if values.notna().sum() < 20:
        return None
    points = sorted(set(float(values.quantile(q)) for q in MONOTONIC_QUANTILES))
    if len(points) < 2:
        return None
    means = []
    for point in points:
        moved = rows.copy()
        moved[col] = point
        means.append(float(np.mean(predict(moved))))
    steps = np.diff(means) * sign
    worst = float(steps.min())
    expected = "non-decreasing" if sign > 0 else "non-increasing"
    return {
        "name": f"monotonic_{col}",
        "passed": worst >= 0,
        "detail": (
            f"mean prediction at {len(points)} deciles of {col} ({points[0]:g}..{points[-1]:g}): "
            f"{', '.join(f'{m:.4g}' for m in means)}; expected {expected} (worst step {worst * sign:+.4g})"
        ),
    }


def failed(checks: Sequence[dict[str, Any]]) -> list[str]:
    """The names of the checks that did not pass."""
    return [c["name"] for c in checks if not c["passed"]]
