"""The model: :class:`DelayModel` (an XGBoost booster with its columns and categories) and its fit.

The learning task (objective, early-stopping metric), the label and the monotone constraints come
from the model spec (:class:`mlops.spec.model.ModelSpec`; default: the flight-delay classifier).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops.spec.model import model_spec
from mlops.training.dataset import feature_columns
from mlops.training.params import HYPERPARAMETERS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy as np
    import pandas as pd
    import xgboost as xgb

    from mlops.spec.model import ModelSpec
    from mlops.training.params import TrainParams

#: Early stopping patience of the search (rounds without validation improvement).
EARLY_STOPPING_ROUNDS = 30


@dataclass
class DelayModel:
    """An XGBoost booster with the columns and fixed categories it was trained on."""

    booster: xgb.Booster
    features: list[str]
    categories: dict[str, list[str]]

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Select and type the model's columns (unknown categories -> missing): the portable
        model's own encoding (:func:`mlops.models.booster_model.encode`), so training, the MLflow
        model and serving can never encode differently."""
        from mlops.models.booster_model import encode

        return encode(frame, self.features, self.categories)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's output for each row (P(arrival delay >= 15 min) for the delay model), float64."""
        from mlops.models.booster_model import predict

        return predict(self.booster, frame, self.features, self.categories)

    def to_bytes(self) -> tuple[bytes, str]:
        """(UBJSON booster, JSON metadata)."""
        meta = json.dumps({"features": self.features, "categories": self.categories}, sort_keys=True)
        return bytes(self.booster.save_raw(raw_format="ubj")), meta

    @classmethod
    def from_bytes(cls, booster: bytes, meta: str) -> DelayModel:
        import xgboost as xgb

        b = xgb.Booster()
        b.load_model(bytearray(booster))
        m = json.loads(meta)
        return cls(booster=b, features=list(m["features"]), categories=dict(m["categories"]))

    def importance(self) -> dict[str, float]:
        """Total gain per feature (0 for unused features), in feature order."""
        gain = self.booster.get_score(importance_type="total_gain")
        return {f: float(gain.get(f, 0.0)) for f in self.features}


def _categories(frame: pd.DataFrame, features: Sequence[str]) -> dict[str, list[str]]:
    out = {}
    for col in features:
        if str(frame[col].dtype) == "category":
            out[col] = [str(v) for v in frame[col].cat.categories]
    return out


def xgb_params(
    hp: Mapping[str, Any],
    params: TrainParams,
    spec: ModelSpec | None = None,
    features: Sequence[str] = (),
) -> dict[str, Any]:
    """XGBoost ``train`` params: the spec's objective and metrics, the run's settings, the
    candidate's hyperparameters, and the spec's monotone constraints on ``features``."""
    spec = model_spec(spec)
    monotone = spec.estimator.monotone
    extra: dict[str, Any] = {}
    if monotone and features:
        extra["monotone_constraints"] = "(" + ",".join(str(int(monotone.get(f, 0))) for f in features) + ")"
    return {
        "objective": spec.task.objective,
        "eval_metric": list(spec.task.eval_metric),
        "tree_method": "hist",
        "max_bin": params.max_bin,
        "nthread": params.nthread,
        "seed": params.seed,
        "max_cat_to_onehot": 1,
        "verbosity": 0,
        **extra,
        **{k: hp[k] for k in HYPERPARAMETERS if k in hp},
    }


def fit_booster(
    train: pd.DataFrame,
    hp: Mapping[str, Any],
    params: TrainParams,
    rounds: int,
    valid: pd.DataFrame | None = None,
    spec: ModelSpec | None = None,
) -> DelayModel:
    """Fit one booster of the spec's task on its label (early stopping on ``valid`` when given)."""
    import xgboost as xgb

    spec = model_spec(spec)
    label = spec.label
    features = feature_columns(train, spec)
    model = DelayModel(booster=None, features=features, categories=_categories(train, features))  # type: ignore[arg-type]
    # QuantileDMatrix: the ``hist`` bins straight from the frame, without DMatrix's copy of every
    # value (8 bytes each): same bins, same model, bit for bit. (For the validation rows a
    # DMatrix costs less than a QuantileDMatrix with ``ref``; see benchmarks/bench_memory.py.)
    dtrain = xgb.QuantileDMatrix(
        model.matrix(train),
        label=train[label].astype("float64"),
        enable_categorical=True,
        nthread=params.nthread,
        max_bin=params.max_bin,
    )
    evals, kwargs = [], {}
    if valid is not None:
        dvalid = xgb.DMatrix(
            model.matrix(valid),
            label=valid[label].astype("float64"),
            enable_categorical=True,
            nthread=params.nthread,
        )
        evals = [(dvalid, "valid")]
        kwargs["early_stopping_rounds"] = EARLY_STOPPING_ROUNDS
    model.booster = xgb.train(
        xgb_params(hp, params, spec, features),
        dtrain,
        num_boost_round=rounds,
        evals=evals,
        verbose_eval=False,
        **kwargs,
    )
    return model
