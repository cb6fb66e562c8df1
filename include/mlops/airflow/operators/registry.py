"""Operators for the model registry: register a trained run, gate and promote it.

Both store only plain arguments in ``__init__`` (templated, so XComArgs and Jinja resolve at run
time), import MLflow inside ``execute()``, and carry an extra link to the MLflow run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops.airflow.links import MLFLOW_RUN_KEY, MLflowRunLink, mlflow_run_url, publish

if TYPE_CHECKING:
    from airflow.sdk import Context


def _skip(message: str) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    raise AirflowSkipException(message)


class RegisterModelOperator(BaseOperator):
    """Register the model logged by MLflow run ``run_id`` as a new version of ``model_name`` and
    point ``@challenger`` at it. Idempotent (a retry finds the run's version). Returns the version.

    With ``dry_run`` true the task is skipped (and so is everything after it).
    """

    template_fields = ("run_id", "model_uri", "experiment_id", "dry_run")
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#d5e8f7"

    def __init__(
        self,
        *,
        run_id: str,
        model_uri: str,
        experiment_id: str,
        model_name: str = "flight_delay_xgb",
        dry_run: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.model_uri = model_uri
        self.experiment_id = experiment_id
        self.model_name = model_name
        self.dry_run = dry_run

    def execute(self, context: Context) -> str:
        url = mlflow_run_url(str(self.experiment_id), str(self.run_id))
        publish(context, MLFLOW_RUN_KEY, url)
        from mlops.params import parse_bool

        if parse_bool(self.dry_run, "dry_run"):
            _skip(f"dry run: MLflow run {self.run_id} logged, not registered ({url})")
        from mlops.models.registry import register

        tags = {"airflow.dag_id": context["dag"].dag_id, "airflow.run_id": context["run_id"]}
        version = register(self.run_id, self.model_uri, tags=tags, name=self.model_name)
        self.log.info("registered %s version %s from run %s (%s)", self.model_name, version, self.run_id, url)
        return version


class PromoteModelOperator(BaseOperator):
    """Gate ``version`` against the current ``@champion`` on the challenger's own holdout and
    promote it atomically if it wins by ``margin`` and passed its behavioural checks.

    ``training_run`` is the run's :class:`mlops.training.run.TrainingRun` as ``plan`` returned it
    (the holdout is re-read from its training set); ``checks`` are the behavioural checks
    ``log_to_mlflow`` ran on the model (read, not run again). Returns the decision (a dict); never
    fails on a rejection.
    """

    template_fields = ("version", "training_run", "checks", "margin", "experiment_id", "run_id")
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#f7e3d5"

    def __init__(
        self,
        *,
        version: str,
        training_run: dict[str, Any],
        checks: list[dict[str, Any]],
        margin: float | str,
        experiment_id: str,
        run_id: str,
        model_name: str = "flight_delay_xgb",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.training_run = training_run
        self.checks = checks
        self.margin = margin
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.model_name = model_name

    def execute(self, context: Context) -> dict[str, Any]:
        import json

        from mlops.airflow.runtime import lake_task
        from mlops.models.registry import gate_and_promote
        from mlops.training.run import TrainingRun

        publish(context, MLFLOW_RUN_KEY, mlflow_run_url(str(self.experiment_id), str(self.run_id)))
        with lake_task():  # the holdout is read from the lake
            decision = gate_and_promote(
                str(self.version),
                TrainingRun.from_dict(self.training_run),
                checks=list(self.checks),
                margin=float(self.margin),
                name=self.model_name,
            )
        self.log.info("promotion decision: %s", json.dumps(decision, default=str))
        return decision
