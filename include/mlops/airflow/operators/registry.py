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
        if str(self.dry_run).lower() in {"true", "1"}:
            _skip(f"dry run: MLflow run {self.run_id} logged, not registered ({url})")
        from mlops.models.registry import register

        tags = {"airflow.dag_id": context["dag"].dag_id, "airflow.run_id": context["run_id"]}
        version = register(self.run_id, self.model_uri, tags=tags, name=self.model_name)
        self.log.info("registered %s version %s from run %s (%s)", self.model_name, version, self.run_id, url)
        return version


class PromoteModelOperator(BaseOperator):
    """Gate ``version`` against the current ``@champion`` on the challenger's own holdout and
    promote it atomically if it wins by ``margin`` and passes the behavioural checks.

    The holdout is re-read from ``training_set_uri`` with the run's ``as_of`` and ``params``
    (window and holdout days). Returns the decision (a dict); never fails on a rejection.
    """

    template_fields = (
        "version",
        "training_set_uri",
        "as_of",
        "params_json",
        "margin",
        "experiment_id",
        "run_id",
    )
    operator_extra_links = (MLflowRunLink(),)
    ui_color = "#f7e3d5"

    def __init__(
        self,
        *,
        version: str,
        training_set_uri: str,
        as_of: str,
        params_json: str | dict[str, Any],
        margin: float | str,
        experiment_id: str,
        run_id: str,
        model_name: str = "flight_delay_xgb",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.version = version
        self.training_set_uri = training_set_uri
        self.as_of = as_of
        self.params_json = params_json
        self.margin = margin
        self.experiment_id = experiment_id
        self.run_id = run_id
        self.model_name = model_name

    def execute(self, context: Context) -> dict[str, Any]:
        import json

        from mlops.models.registry import gate_and_promote

        publish(context, MLFLOW_RUN_KEY, mlflow_run_url(str(self.experiment_id), str(self.run_id)))
        params = self.params_json if isinstance(self.params_json, dict) else json.loads(self.params_json)
        decision = gate_and_promote(
            str(self.version),
            self.training_set_uri,
            as_of=str(self.as_of),
            params=params,
            margin=float(self.margin),
            name=self.model_name,
        )
        self.log.info("promotion decision: %s", json.dumps(decision, default=str))
        return decision
