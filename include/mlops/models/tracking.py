"""MLflow logging of a training run: params, metrics, plots, lineage, and the model itself.

One run per trained challenger in the experiment ``flight-delay``. Params, metrics and tags go in
batched calls (``MlflowClient.log_batch``). The model is a ``pyfunc`` (:class:`FlightDelayPyfunc`)
that takes the raw feature frame (categoricals as strings) and returns P(delay), logged with its
signature, an input example and explicit pip requirements. The run carries the lineage as tags
(``mlops.*``, ``airflow.*``) and as ``lineage.json``; ``mlops lineage VERSION`` reads them back.

Import cost: this module imports MLflow; DAG files import it inside tasks only.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import mlflow.pyfunc

from mlops.config import EXPERIMENT_NAME, FEATURE_SERVICE, REPO_ROOT, Settings, get_settings
from mlops.training import dataset

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pandas as pd
    from mlflow import MlflowClient

    from mlops.training.model import DelayModel
    from mlops.training.run import Result, TrainingRun

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
LINEAGE_ARTIFACT = "lineage.json"
PREDICTIONS_ARTIFACT = "holdout_predictions.parquet"
#: Packages the model needs at load time, pinned to the versions it was trained with.
MODEL_REQUIREMENTS: tuple[str, ...] = ("mlflow", "xgboost", "pandas", "numpy", "scikit-learn", "pyarrow")


class FlightDelayPyfunc(mlflow.pyfunc.PythonModel):
    """``predict(frame) -> P(arrival delay >= 15 min)`` for frames holding the model's features."""

    def load_context(self, context: Any) -> None:
        from mlops.training.model import DelayModel

        booster = Path(context.artifacts["booster"]).read_bytes()
        meta = Path(context.artifacts["meta"]).read_text()
        self.model = DelayModel.from_bytes(booster, meta)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> Any:
        return self.model.predict(model_input)


def client(settings: Settings | None = None) -> MlflowClient:
    """An MLflow client on the profile's tracking URI (also set as the process default)."""
    from mlflow import MlflowClient

    uri = (settings or get_settings()).mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(settings: Settings | None = None) -> Any:
    """The ``flight-delay`` experiment, created if needed and made the active one.

    With a local backend (SQLite) its artifacts live in ``$MLOPS_HOME/mlartifacts`` (MLflow's own
    default would be ``./mlruns`` in whatever directory the process runs in); a tracking server
    decides for itself.
    """
    from mlflow.exceptions import MlflowException

    s = settings or get_settings()
    c = client(s)
    experiment = c.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        location = None
        if not s.mlflow_tracking_uri.startswith(("http://", "https://", "databricks")):
            location = (s.home / "mlartifacts").resolve().as_uri()
        try:
            c.create_experiment(EXPERIMENT_NAME, artifact_location=location)
        except MlflowException:  # another process created it first
            pass
    return mlflow.set_experiment(EXPERIMENT_NAME)


def git_commit() -> str:
    """The code version: ``git rev-parse HEAD`` of the repo, ``+dirty`` when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{'+dirty' if dirty else ''}" if head else "unknown"


def pip_requirements() -> list[str]:
    return [f"{name}=={metadata.version(name)}" for name in MODEL_REQUIREMENTS]


def example_input(frame: pd.DataFrame, model: DelayModel, rows: int = 5) -> pd.DataFrame:
    """Model features of a few rows, categoricals as plain strings (what a caller sends)."""
    sample = frame[model.features].head(rows).copy()
    for col in model.categories:
        sample[col] = sample[col].astype("object").where(sample[col].notna(), None)
    return sample.reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------


def plots(predictions: pd.DataFrame, importance: Mapping[str, float], title: str) -> dict[str, Any]:
    """ROC, precision-recall, calibration and feature-importance figures (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = predictions["is_delayed"].astype(int).to_numpy()
    p = predictions["prediction"].to_numpy()
    figs: dict[str, Any] = {}

    fig, ax = plt.subplots(figsize=(5, 5))
    fpr, tpr, _ = roc_curve(y, p)
    ax.plot(fpr, tpr, label="challenger")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, holdout ({title})")
    figs["plots/roc.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 5))
    prec, rec, _ = precision_recall_curve(y, p)
    ax.plot(rec, prec)
    ax.axhline(y.mean(), ls="--", color="grey")
    ax.set(xlabel="recall", ylabel="precision", title=f"Precision-recall, holdout ({title})")
    figs["plots/precision_recall.png"] = fig

    fig, ax = plt.subplots(figsize=(5, 5))
    frac, mean = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot(mean, frac, "o-")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set(xlabel="mean predicted", ylabel="observed delayed rate", title=f"Calibration ({title})")
    figs["plots/calibration.png"] = fig

    top = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:25]
    fig, ax = plt.subplots(figsize=(6, 7))
    names = [k for k, _ in top][::-1]
    ax.barh(names, np.array([v for _, v in top][::-1]))
    ax.set(xlabel="total gain", title="Feature importance")
    fig.tight_layout()
    figs["plots/feature_importance.png"] = fig
    return figs


# --------------------------------------------------------------------------------------------------
# Logging a training run
# --------------------------------------------------------------------------------------------------


def _metric_name(name: str) -> str:
    """MLflow allows alphanumerics, ``_ - . /`` and spaces in names: replace anything else."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


def _flat(prefix: str, values: Mapping[str, Any]) -> dict[str, str]:
    return {f"{prefix}{k}": str(v) for k, v in values.items()}


def log_training(
    result: Result,
    *,
    example_frame: pd.DataFrame,
    manifest: Mapping[str, Any],
    validation: Mapping[str, Any],
    airflow_context: Mapping[str, Any] | None = None,
    stage_timings: Mapping[str, float] | None = None,
    checks: list[dict[str, Any]] | None = None,
    request_tags: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> dict[str, str]:
    """Log one trained challenger; returns ``{"run_id", "model_uri", "experiment_id", "run_url"}``.

    ``request_tags`` (the retrain request behind the run, :func:`mlops.airflow.events.request_context`)
    are written as tags of the run as they are.
    """
    s = settings or get_settings()
    experiment = ensure_experiment(s)
    af = dict(airflow_context or {})
    timings = dict(stage_timings or {})
    lineage = training_lineage(result, manifest, validation, af, timings, checks or [])
    tags = {**run_tags(result, manifest, validation, lineage, af), **dict(request_tags or {})}
    run_name = f"as_of={result.window.as_of}" + (f" {af['run_id']}" if af.get("run_id") else "")
    with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=run_name) as run:
        run_id = run.info.run_id
        _log_batch(client(s), run_id, result, validation, tags, timings)
        _log_artifacts(result, lineage)
        info = _log_model(result, example_frame)
    return {
        "run_id": run_id,
        "model_uri": info.model_uri,
        "experiment_id": experiment.experiment_id,
        "run_url": run_url(experiment.experiment_id, run_id, s),
    }


def log_run(
    run: TrainingRun,
    fitted: Mapping[str, Any],
    scores: list[dict[str, Any]],
    validation: Mapping[str, Any],
    stage_timings: Mapping[str, float],
    airflow_context: Mapping[str, Any],
    settings: Settings | None = None,
) -> dict[str, Any]:
    """``train_model.log_to_mlflow``: the run's fitted candidate, its behavioural checks (run once,
    here), logged with the run's manifest and retrain request; returns :func:`log_training`'s ids
    plus ``checks`` (what the promotion gate reads) and ``seconds``."""
    started = time.perf_counter()
    result = run.load_candidate(fitted, scores)
    holdout = run.holdout()
    checks = run.behavioural_checks(result.model, holdout)
    logged = log_training(
        result,
        example_frame=holdout,
        manifest=run.read_manifest(),
        validation=validation,
        airflow_context={**airflow_context, "as_of_source": run.as_of_source},
        stage_timings=stage_timings,
        checks=checks,
        request_tags=run.retrain,
        settings=settings,
    )
    return {**logged, "checks": checks, "seconds": round(time.perf_counter() - started, 3)}


def training_lineage(
    result: Result,
    manifest: Mapping[str, Any],
    validation: Mapping[str, Any],
    airflow_context: Mapping[str, Any],
    timings: Mapping[str, float],
    checks: list[dict[str, Any]],
) -> dict[str, Any]:
    """``lineage.json`` of a run: window, params, search, data read, validation, checks, code."""
    partitions = list(manifest.get("partitions", []))
    return {
        "as_of": result.window.as_of.isoformat(),
        "window": result.window.as_dict(),
        "params": result.params.as_dict(),
        "best": result.best,
        "search": result.scores,
        "metrics": result.metrics,
        "feature_service": manifest.get("feature_service", FEATURE_SERVICE),
        "features": manifest.get("features", result.model.features),
        "categorical": sorted(result.model.categories),
        "training_set": {k: manifest[k] for k in ("rows", "data_hash", "uri") if k in manifest},
        "partitions": partitions,
        "partitions_digest": dataset.partitions_digest(partitions),
        "validation": validation,
        "behaviour": checks,
        "code": {"git_commit": git_commit(), "packages": pip_requirements()},
        "airflow": dict(airflow_context),
        "timings": dict(timings),
    }


def run_tags(
    result: Result,
    manifest: Mapping[str, Any],
    validation: Mapping[str, Any],
    lineage: Mapping[str, Any],
    airflow_context: Mapping[str, Any],
) -> dict[str, str]:
    """The ``mlops.*`` and ``airflow.*`` tags of a run (what ``mlops lineage`` and the registry read)."""
    from mlops.config import MODEL_NAME

    window = result.window
    present = [p for p in lineage["partitions"] if not p.get("missing")]
    partitions = f"{present[0]['ds']}..{present[-1]['ds']} ({len(present)} partitions)" if present else "none"
    commit = lineage["code"]["git_commit"]
    return {
        "mlops.as_of": window.as_of.isoformat(),
        "mlops.window": f"{window.start}..{window.end}",
        "mlops.holdout": f"{window.holdout_start}..{window.end}",
        "mlops.feature_service": lineage["feature_service"],
        "mlops.data_hash": str(manifest.get("data_hash", "")),
        "mlops.partitions": partitions,
        "mlops.partitions_digest": lineage["partitions_digest"],
        "mlops.ingest.validation": "passed" if validation.get("passed") else "failed",
        "mlops.git_commit": commit,
        "mlflow.source.git.commit": commit.removesuffix("+dirty"),
        "mlops.model_name": MODEL_NAME,
        **{f"airflow.{k}": str(v) for k, v in airflow_context.items() if v is not None},
    }


def _log_batch(
    c: MlflowClient,
    run_id: str,
    result: Result,
    validation: Mapping[str, Any],
    tags: Mapping[str, str],
    timings: Mapping[str, float],
) -> None:
    """Params, metrics (holdout, search, stage timings) and tags in one call."""
    from mlflow.entities import Metric, Param, RunTag

    params = {
        **_flat("", result.params.as_dict()),
        **_flat("best.", {k: v for k, v in result.best.items() if k not in {"seconds"}}),
        "features": str(len(result.model.features)),
        "train_rows": str(int(validation.get("summary", {}).get("train_rows", 0))),
        "holdout_rows": str(len(result.holdout_predictions)),
    }
    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, 0) for k, v in result.metrics.items()]
    metrics += [
        Metric("search_valid_roc_auc", float(sc["valid_roc_auc"]), now, int(sc["candidate"]))
        for sc in result.scores
    ]
    metrics += [Metric(_metric_name(f"time_{k}_s"), float(v), now, 0) for k, v in timings.items()]
    c.log_batch(
        run_id,
        metrics=metrics,
        params=[Param(k, v[:6000]) for k, v in params.items()],
        tags=[RunTag(k, str(v)[:5000]) for k, v in tags.items()],
    )


def _log_artifacts(result: Result, lineage: Mapping[str, Any]) -> None:
    """``lineage.json``, ``search.json``, the plots and the holdout predictions (in the active run)."""
    import matplotlib.pyplot as plt

    mlflow.log_dict(dict(lineage), LINEAGE_ARTIFACT)
    mlflow.log_dict({"scores": result.scores, "best": result.best}, "search.json")
    for name, fig in plots(
        result.holdout_predictions, result.model.importance(), str(result.window.as_of)
    ).items():
        mlflow.log_figure(fig, name)
        plt.close(fig)
    with tempfile.TemporaryDirectory() as tmp:
        preds = Path(tmp) / PREDICTIONS_ARTIFACT
        result.holdout_predictions.to_parquet(preds, index=False)
        mlflow.log_artifact(str(preds))


def _log_model(result: Result, example_frame: pd.DataFrame) -> Any:
    """The pyfunc model with its signature, input example and pinned requirements (in the active run)."""
    from mlflow.models import infer_signature

    with tempfile.TemporaryDirectory() as tmp:
        booster, meta = result.model.to_bytes()
        (Path(tmp) / "booster.ubj").write_bytes(booster)
        (Path(tmp) / "meta.json").write_text(meta)
        example = example_input(example_frame, result.model)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=FlightDelayPyfunc(),
            artifacts={"booster": str(Path(tmp) / "booster.ubj"), "meta": str(Path(tmp) / "meta.json")},
            signature=infer_signature(example, result.model.predict(example)),
            input_example=example,
            pip_requirements=pip_requirements(),
        )


def run_url(experiment_id: str, run_id: str, settings: Settings | None = None) -> str:
    """The MLflow UI page of a run: the tracking server itself, or the embedded UI of ``make up``."""
    s = settings or get_settings()
    uri = s.mlflow_tracking_uri
    base = uri if uri.startswith("http") else "http://127.0.0.1:5000"
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
