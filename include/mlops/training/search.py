"""The hyperparameter search: seeded candidates, one candidate scored, the best one.

Each candidate is fit on the window's first days and scored on the ``holdout_days`` just before
the holdout (``train_model`` maps one task per candidate; :func:`mlops.training.run.train` loops).
The ranges come from the spec's :class:`~mlops.spec.model.Estimator`, the ranking from its
:class:`~mlops.spec.model.Gate` (the gate metric in its direction, ties by the tie-break metric).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlops.spec.model import model_spec
from mlops.training.model import fit_booster
from mlops.training.split import search_split, split

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    import pandas as pd

    from mlops.spec.model import ModelSpec
    from mlops.training.params import TrainParams, Window


def draw(rng: np.random.Generator, how: Sequence[Any]) -> Any:
    """One value of a search range (:data:`mlops.spec.model.DEFAULT_SEARCH` documents the forms)."""
    kind = how[0]
    if kind == "int":
        return int(rng.integers(how[1], how[2]))
    if kind == "log10":
        return round(float(10 ** rng.uniform(how[1], how[2])), how[3] if len(how) > 3 else 4)
    if kind == "uniform":
        return round(float(rng.uniform(how[1], how[2])), how[3] if len(how) > 3 else 3)
    if kind == "choice":
        return rng.choice(list(how[1])).item()
    raise ValueError(f"search range {tuple(how)!r}: the kind must be int, log10, uniform or choice")


def candidates(params: TrainParams, spec: ModelSpec | None = None) -> list[dict[str, Any]]:
    """``n_candidates`` hyperparameter sets: the params' own values first, then seeded random draws
    from the spec's search ranges (in their order)."""
    import numpy as np

    ranges = model_spec(spec).estimator.search
    rng = np.random.default_rng(params.seed)
    out = [{"candidate": 0, **params.base_hyperparameters()}]
    for i in range(1, params.n_candidates):
        out.append({"candidate": i, **{name: draw(rng, how) for name, how in ranges.items()}})
    return out


def score_candidate(
    frame: pd.DataFrame,
    window: Window,
    params: TrainParams,
    candidate: Mapping[str, Any],
    spec: ModelSpec | None = None,
) -> dict[str, Any]:
    """Fit a candidate on the search's training days, score it on its validation days.

    Returns the candidate with ``valid_<gate metric>``, ``valid_<tie-break metric>`` (for the
    flight-delay spec ``valid_roc_auc`` and ``valid_log_loss``), ``best_rounds`` and ``seconds``.
    """
    import xgboost as xgb

    spec = model_spec(spec)
    started = time.perf_counter()
    train, _ = split(frame, window, spec)
    fit_part, valid_part = search_split(train, window, spec)
    if fit_part.empty or valid_part.empty:
        raise ValueError(
            f"as of {window.as_of}: the search needs rows before and after {window.valid_start} "
            f"(got {len(fit_part)} and {len(valid_part)}); widen window_days"
        )
    model = fit_booster(fit_part, candidate, params, params.n_estimators, valid=valid_part, spec=spec)
    rounds = int(model.booster.best_iteration) + 1
    p = model.booster.predict(
        xgb.DMatrix(model.matrix(valid_part), enable_categorical=True), iteration_range=(0, rounds)
    )
    metrics = spec.evaluate(valid_part[spec.label], p)
    gate = spec.gate
    return {
        **dict(candidate),
        "best_rounds": rounds,
        f"valid_{gate.metric}": metrics[gate.metric],
        f"valid_{gate.tiebreak}": metrics[gate.tiebreak],
        "seconds": round(time.perf_counter() - started, 3),
    }


def best_candidate(scores: Sequence[Mapping[str, Any]], spec: ModelSpec | None = None) -> dict[str, Any]:
    """The best validation gate metric (in its direction); ties by the lower tie-break metric,
    then the lower candidate number."""
    if not scores:
        raise ValueError("no search candidate finished")
    gate = model_spec(spec).gate
    return dict(
        min(
            scores,
            key=lambda s: (
                gate.sort_key(s[f"valid_{gate.metric}"]),
                s[f"valid_{gate.tiebreak}"],
                s["candidate"],
            ),
        )
    )
