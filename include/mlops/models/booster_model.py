"""The logged model's code: an XGBoost booster with its columns and categories, as an MLflow pyfunc.

MLflow's *models-from-code*: :func:`mlops.models.tracking.log_training` hands MLflow this file's
path, MLflow copies it into every version it logs (``booster_model.py`` beside ``MLmodel``) and runs
it to load the version. It imports only what the version's ``requirements.txt`` pins (mlflow,
numpy, pandas, xgboost) and nothing from ``mlops``: ``mlflow.pyfunc.load_model``,
``mlflow models predict`` and ``mlflow models serve`` load a version in any environment holding its
requirements, and nothing is unpickled.

A version holds two artifacts and records their sha256 in its model config (``MLmodel``,
``flavors.python_function.config``):

* ``booster``: the booster, UBJSON (``xgboost.Booster.save_raw("ubj")``), hash ``booster_sha256``;
* ``meta``: ``{"features": [...], "categories": {column: [category, ...]}}`` as JSON, hash
  ``meta_sha256``.

:meth:`BoosterModel.load_context` refuses a file whose hash differs (:class:`ArtifactHashError`);
the prediction service checks them too, with the repository's copy of this module
(:func:`read_version_files`), so a replaced code file in the artifact store cannot skip the check.

The feature encoding (:func:`encode`, :func:`predict`) is the one ``mlops.training.model.DelayModel``
trains and predicts with (it calls these functions): categoricals as ``pandas`` categories in the
model's own category list (unknown or missing -> missing), everything else as float64
(non-numbers -> missing).

In the repository this module is ``mlops.models.booster_model``; importing it there has no side
effect (the :func:`mlflow.models.set_model` call at the bottom runs only when MLflow loads the file
as model code).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.models
import mlflow.pyfunc
import pandas as pd
import xgboost as xgb

if TYPE_CHECKING:
    import numpy as np

#: The names of the version's artifacts (``context.artifacts`` keys).
BOOSTER = "booster"
META = "meta"
#: Model-config key of each artifact's sha256.
HASH_KEYS = {BOOSTER: "booster_sha256", META: "meta_sha256"}
#: The module name of this file inside the repository (MLflow runs it under another name).
REPO_MODULE = "mlops.models.booster_model"


class ArtifactHashError(RuntimeError):
    """A model artifact whose sha256 is not the one recorded when the version was logged."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_checked(path: str | Path, expected: str | None, what: str) -> bytes:
    """The bytes of ``path`` if their sha256 is ``expected``; else :class:`ArtifactHashError`.

    ``what`` names the model (version, run) in the error.
    """
    data = Path(path).read_bytes()
    actual = sha256_bytes(data)
    if not expected:
        raise ArtifactHashError(
            f"{what}: no sha256 recorded for {path} in the model config, so it cannot be verified; "
            "log the model with mlops.models.tracking (it records booster_sha256 and meta_sha256) "
            "or retrain it"
        )
    if actual != expected:
        raise ArtifactHashError(
            f"{what}: {path} has sha256 {actual}, but {expected} was recorded when the model was "
            "logged: the file changed in the artifact store (corrupted or replaced). Do not serve "
            "it: restore the artifact, or register a retrained model"
        )
    return data


def encode(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]) -> pd.DataFrame:
    """The booster's input: the model's columns, typed (unknown categories -> missing)."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise KeyError(f"input lacks model features {missing}: send every column of the model's signature")
    out = {}
    for col in features:
        if col in categories:
            values = frame[col].astype("object")
            out[col] = values.where(values.notna(), None).astype(pd.CategoricalDtype(categories[col]))
        else:
            out[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64", copy=False)
    # No copy of float64 columns, no consolidation into one block: XGBoost reads column by column.
    return pd.DataFrame(out, index=frame.index, copy=False)


def predict(
    booster: xgb.Booster, frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]]
) -> np.ndarray:
    """The booster's output for each row of ``frame`` (for the delay model, P(delay)), float64."""
    dm = xgb.DMatrix(encode(frame, features, categories), enable_categorical=True, nthread=1)
    return booster.predict(dm).astype("float64")


class Booster:
    """A loaded booster with the columns and categories it was trained on."""

    def __init__(self, booster: xgb.Booster, features: list[str], categories: dict[str, list[str]]) -> None:
        self.booster = booster
        self.features = features
        self.categories = categories

    @classmethod
    def from_bytes(cls, booster: bytes, meta: bytes | str) -> Booster:
        b = xgb.Booster()
        b.load_model(bytearray(booster))
        m = json.loads(meta)
        return cls(b, list(m["features"]), {k: list(v) for k, v in m["categories"].items()})

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return predict(self.booster, frame, self.features, self.categories)


def read_version_files(model_dir: str | Path, what: str) -> tuple[bytes, bytes, bool]:
    """``(booster, meta, verified)`` of a downloaded model directory (the one holding ``MLmodel``).

    A version logged by this module: both files checked against the hashes of its model config
    (:class:`ArtifactHashError` on a difference or a missing hash), ``verified`` True. A version
    logged before hashes were recorded (a cloudpickled ``mlops`` class, no ``model_code_path``):
    the files as they are, ``verified`` False. ``what`` names the model in errors.
    """
    directory = Path(model_dir)
    conf = mlflow.models.Model.load(str(directory)).flavors.get("python_function", {})
    artifacts = conf.get("artifacts") or {}
    if BOOSTER not in artifacts or META not in artifacts:
        raise ArtifactHashError(
            f"{what}: {directory} holds no '{BOOSTER}' and '{META}' artifacts (has {sorted(artifacts)}): "
            "not a booster model logged by mlops.models.tracking"
        )
    paths = {name: directory / artifacts[name]["path"] for name in (BOOSTER, META)}
    if "model_code_path" not in conf:  # the cloudpickled class of earlier versions: no hashes
        return paths[BOOSTER].read_bytes(), paths[META].read_bytes(), False
    config = conf.get("config") or {}  # the model config, as MLmodel stores it
    booster, meta = (read_checked(paths[n], config.get(HASH_KEYS[n]), what) for n in (BOOSTER, META))
    return booster, meta, True


class BoosterModel(mlflow.pyfunc.PythonModel):
    """``predict(frame)``: the booster's output for frames holding the model's features.

    After :meth:`load_context`, :attr:`model` is the :class:`Booster` (``model.predict(frame)``
    takes training frames as they are, categoricals as ``category`` or plain strings).
    """

    def load_context(self, context: Any) -> None:
        config = dict(context.model_config or {})
        what = f"model {config.get('model_name', 'booster')} (run {config.get('run_id', 'unknown')})"
        booster, meta = (
            read_checked(context.artifacts[n], config.get(HASH_KEYS[n]), what) for n in (BOOSTER, META)
        )
        self.model = Booster.from_bytes(booster, meta)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        return self.model.predict(model_input)


if __name__ != REPO_MODULE:  # MLflow runs this file as model code (under a generated module name)
    mlflow.models.set_model(BoosterModel())
