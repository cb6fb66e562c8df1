"""The hyperparameter search: seeded candidates, one candidate scored, the best one.

Each candidate is fit on the window's first days and scored on the ``holdout_days`` just before
the holdout (``train_model`` maps one task per candidate; :func:`mlops.training.run.train` loops).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlops.schema import LABEL
from mlops.training.metrics import evaluate
from mlops.training.model import fit_booster
from mlops.training.split import search_split, split

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from mlops.training.params import TrainParams, Window


def candidates(params: TrainParams) -> list[dict[str, Any]]:
    """``n_candidates`` hyperparameter sets: the params' own values first, then seeded random draws."""
    import numpy as np

    rng = np.random.default_rng(params.seed)
    out = [{"candidate": 0, **params.base_hyperparameters()}]
    for i in range(1, params.n_candidates):
        out.append(
            {
                "candidate": i,
                "max_depth": int(rng.integers(3, 10)),
                "learning_rate": round(float(10 ** rng.uniform(-1.6, -0.7)), 4),
                "min_child_weight": float(rng.choice([1.0, 2.0, 5.0, 10.0, 20.0])),
                "subsample": round(float(rng.uniform(0.6, 1.0)), 3),
                "colsample_bytree": round(float(rng.uniform(0.5, 1.0)), 3),
                "reg_lambda": round(float(10 ** rng.uniform(-0.5, 1.3)), 3),
            }
        )
    return out


def score_candidate(
    frame: pd.DataFrame, window: Window, params: TrainParams, candidate: Mapping[str, Any]
) -> dict[str, Any]:
    """Fit a candidate on the search's training days, score it on its validation days.

    Returns the candidate with ``valid_roc_auc``, ``valid_log_loss``, ``best_rounds`` and ``seconds``.
    """
    import xgboost as xgb

    started = time.perf_counter()
    train, _ = split(frame, window)
    fit_part, valid_part = search_split(train, window)
    if fit_part.empty or valid_part.empty:
        raise ValueError(
            f"as of {window.as_of}: the search needs rows before and after {window.valid_start} "
            f"(got {len(fit_part)} and {len(valid_part)}); widen window_days"
        )
    model = fit_booster(fit_part, candidate, params, params.n_estimators, valid=valid_part)
    rounds = int(model.booster.best_iteration) + 1
    p = model.booster.predict(
        xgb.DMatrix(model.matrix(valid_part), enable_categorical=True), iteration_range=(0, rounds)
    )
    metrics = evaluate(valid_part[LABEL], p)
    return {
        **dict(candidate),
        "best_rounds": rounds,
        "valid_roc_auc": metrics["roc_auc"],
        "valid_log_loss": metrics["log_loss"],
        "seconds": round(time.perf_counter() - started, 3),
    }


def best_candidate(scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Highest validation ROC-AUC; ties by lower log loss, then lower candidate number."""
    if not scores:
        raise ValueError("no search candidate finished")
    return dict(min(scores, key=lambda s: (-s["valid_roc_auc"], s["valid_log_loss"], s["candidate"])))
