"""MLflow logging of a training run: params, metrics, plots, lineage, and the model itself.

One run per trained challenger in the experiment ``flight-delay``. Params, metrics and tags go in
batched calls (``MlflowClient.log_batch``). The model is a ``pyfunc`` logged as code (MLflow's
models-from-code, :mod:`mlops.models.booster_model`: no pickled project class, it loads wherever
its pinned requirements are installed) that takes the raw feature frame (categoricals as strings)
and returns P(delay), logged with its signature, an input example, explicit pip requirements and
the sha256 of its booster and metadata files (checked whenever it loads). The run carries the
lineage as tags (``mlops.*``, ``airflow.*``) and as ``lineage.json``; ``mlops lineage VERSION``
reads them back.

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
#: The model's code file: MLflow stores it with every version and runs it to load the version.
MODEL_CODE = Path(__file__).with_name("booster_model.py")
#: Run tag holding the logged booster's sha256 (the model config in ``MLmodel`` holds it too).
BOOSTER_SHA256_TAG = "mlops.booster_sha256"


class FlightDelayPyfunc(mlflow.pyfunc.PythonModel):
    """Legacy: the cloudpickled class of versions logged before the models-from-code change.

    New versions are logged as code (:mod:`mlops.models.booster_model`) and never use this class.
    It stays so that versions already in a registry still load inside this repository (MLflow
    unpickles them by reference to ``mlops.models.tracking.FlightDelayPyfunc``); outside it they
    fail with ``No module named 'mlops'``: retrain them to make them portable. The prediction
    service does not unpickle them at all (:func:`mlops.serving.model.load_version` reads their
    booster files).
    """

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


def ensure_experiment(settings: Settings | None = None, name: str = EXPERIMENT_NAME) -> Any:
    """The experiment ``name`` (a model spec's; default ``flight-delay``), created if needed and
    made the active one.

    With a local backend (SQLite) its artifacts live in ``$MLOPS_HOME/mlartifacts`` (MLflow's own
    default would be ``./mlruns`` in whatever directory the process runs in); a tracking server
    decides for itself.
    """
    from mlflow.exceptions import MlflowException

    s = settings or get_settings()
    c = client(s)
    experiment = c.get_experiment_by_name(name)
    if experiment is None:
        location = None
        if not s.mlflow_tracking_uri.startswith(("http://", "https://", "databricks")):
            location = (s.home / "mlartifacts").resolve().as_uri()
        try:
            c.create_experiment(name, artifact_location=location)
        except MlflowException:  # another process created it first
            pass
    return mlflow.set_experiment(name)


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


def plots(
    predictions: pd.DataFrame,
    importance: Mapping[str, float],
    title: str,
    label: str = "is_delayed",
    task: str = "binary",
) -> dict[str, Any]:
    """ROC, precision-recall, calibration (a ``binary`` task) or predicted-vs-actual and residual
    (a regression), and feature-importance figures (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    if task != "binary":
        figs = _regression_plots(predictions[label].to_numpy(dtype="float64"), predictions, title)
        figs["plots/feature_importance.png"] = _importance_plot(importance)
        return figs
    y = predictions[label].astype(int).to_numpy()
    p = predictions["prediction"].to_numpy()
    figs = {}

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

    figs["plots/feature_importance.png"] = _importance_plot(importance)
    return figs


def _importance_plot(importance: Mapping[str, float]) -> Any:
    import matplotlib.pyplot as plt
    import numpy as np

    top = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:25]
    fig, ax = plt.subplots(figsize=(6, 7))
    names = [k for k, _ in top][::-1]
    ax.barh(names, np.array([v for _, v in top][::-1]))
    ax.set(xlabel="total gain", title="Feature importance")
    fig.tight_layout()
    return fig


def _regression_plots(y: Any, predictions: pd.DataFrame, title: str) -> dict[str, Any]:
    """Predicted against actual, and the residuals' histogram, on the holdout."""
    import matplotlib.pyplot as plt
    import numpy as np

    p = predictions["prediction"].to_numpy(dtype="float64")
    figs: dict[str, Any] = {}
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y, p, s=2, alpha=0.3)
    lo, hi = float(np.nanmin([y.min(), p.min()])), float(np.nanmax([y.max(), p.max()]))
    ax.plot([lo, hi], [lo, hi], "--", color="grey")
    ax.set(xlabel="actual", ylabel="predicted", title=f"Predicted vs actual, holdout ({title})")
    figs["plots/predicted_vs_actual.png"] = fig
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.hist(p - y, bins=60)
    ax.set(xlabel="predicted - actual", ylabel="rows", title=f"Residuals, holdout ({title})")
    figs["plots/residuals.png"] = fig
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
    from mlops.spec.model import model_spec

    experiment = ensure_experiment(s, model_spec(result.spec).experiment)
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
        "weather": dict(manifest.get("weather") or {}),  # days without curated weather (docs/feeds.md)
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
    from mlops.models.lineage import weather_tags
    from mlops.spec.model import model_spec

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
        "mlops.model_name": model_spec(result.spec).model_name,
        "mlops.spec": result.spec,
        **weather_tags(manifest.get("weather")),
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
    from mlops.spec.model import model_spec

    gate = model_spec(result.spec).gate
    metrics += [
        Metric(f"search_valid_{gate.metric}", float(sc[f"valid_{gate.metric}"]), now, int(sc["candidate"]))
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
    from mlops.spec.model import model_spec

    spec = model_spec(result.spec)
    for name, fig in plots(
        result.holdout_predictions,
        result.model.importance(),
        str(result.window.as_of),
        label=spec.label,
        task=spec.task.name,
    ).items():
        mlflow.log_figure(fig, name)
        plt.close(fig)
    with tempfile.TemporaryDirectory() as tmp:
        preds = Path(tmp) / PREDICTIONS_ARTIFACT
        result.holdout_predictions.to_parquet(preds, index=False)
        mlflow.log_artifact(str(preds))


def _log_model(result: Result, example_frame: pd.DataFrame) -> Any:
    """The model as code (:data:`MODEL_CODE`) with its booster and metadata files, their sha256 in
    the model config, its signature, input example and pinned requirements (in the active run)."""
    from mlflow.models import infer_signature

    from mlops.models import booster_model
    from mlops.spec.model import model_spec

    booster, meta = result.model.to_bytes()
    contents = {booster_model.BOOSTER: booster, booster_model.META: meta.encode()}
    config: dict[str, Any] = {
        booster_model.HASH_KEYS[name]: booster_model.sha256_bytes(data) for name, data in contents.items()
    }
    active = mlflow.active_run()
    config["run_id"] = active.info.run_id if active else "unknown"
    config["model_name"] = model_spec(result.spec).model_name  # named in load errors
    mlflow.set_tag(BOOSTER_SHA256_TAG, config[booster_model.HASH_KEYS[booster_model.BOOSTER]])
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            booster_model.BOOSTER: Path(tmp) / "booster.ubj",
            booster_model.META: Path(tmp) / "meta.json",
        }
        for name, path in files.items():
            path.write_bytes(contents[name])
        example = example_input(example_frame, result.model)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT,
            python_model=str(MODEL_CODE),
            artifacts={name: str(path) for name, path in files.items()},
            model_config=config,
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
