"""Operator extra links: a task's MLflow run, validation report and drift report.

A task (or custom operator) publishes a URL under an XCom key with :func:`publish`; operators
that list these links in ``operator_extra_links`` turn it into a button on the task instance page
(Airflow 3 evaluates links when the task finishes and stores them as XComs).

Reports in the lake are served by the plugin's FastAPI app under ``/mlops/reports/<path>`` and
``/mlops/quarantine/<path>`` (relative to ``{lake}/reports`` and ``{lake}/quarantine``), so
``file://`` and ``s3://`` lakes both open in the browser, behind the Airflow login. The UI shows
the links in the task instance's *Details* tab.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from airflow.sdk import BaseOperatorLink

from mlops import layout
from mlops.published import FOLDERS

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

MLFLOW_RUN_KEY = "mlflow_run_url"
VALIDATION_REPORT_KEY = "validation_report_url"
DRIFT_REPORT_KEY = "drift_report_url"


def mlflow_ui_url() -> str:
    """Base URL of the MLflow UI users open (``MLFLOW_UI_URL``; embedded default the `make up` one)."""
    return os.environ.get("MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")


def mlflow_run_url(experiment_id: str, run_id: str) -> str:
    return f"{mlflow_ui_url()}/#/experiments/{experiment_id}/runs/{run_id}"


def report_url(report_uri: str, lake_uri: str) -> str:
    """The plugin URL that serves ``report_uri`` (under ``{lake}/reports``, ``{lake}/quarantine`` or
    a model's own ``{lake}/models/<folder>/reports``, :func:`mlops.layout.model_root`).

    Server-relative (with the path of ``AIRFLOW__API__BASE_URL``, if Airflow is served under a
    prefix): the UI opens it on the host the user is logged in to, so the session cookie goes
    along whatever name the user reached Airflow by (``localhost``, ``127.0.0.1``, a proxy).
    """
    root = lake_uri.rstrip("/") + "/"
    relative = report_uri[len(root) :] if report_uri.startswith(root) else ""
    parts = relative.split("/")
    model_report = len(parts) > 3 and parts[0] == layout.MODELS and parts[2] == layout.REPORTS
    if not model_report and (parts[0] not in FOLDERS or len(parts) < 2):  # the plugin's folders
        raise ValueError(
            f"{report_uri!r} is not under {root}{{{','.join(FOLDERS)}}}/ nor {root}{layout.MODELS}/<model>/{layout.REPORTS}/"
        )
    prefix = urlsplit(os.environ.get("AIRFLOW__API__BASE_URL", "")).path.rstrip("/")
    return f"{prefix}/mlops/{relative}"


def publish(context: Any, key: str, url: str) -> None:
    """Push ``url`` under ``key`` for this task instance (read by the links below)."""
    context["ti"].xcom_push(key=key, value=url)


class _XComUrlLink(BaseOperatorLink):
    url_key: ClassVar[str]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        pull = getattr(ti_key, "xcom_pull", None)  # the runtime task instance, in the worker
        if pull is None:
            return ""
        return pull(task_ids=ti_key.task_id, key=self.url_key, map_indexes=ti_key.map_index) or ""


class MLflowRunLink(_XComUrlLink):
    name = "MLflow run"
    url_key = MLFLOW_RUN_KEY


class ValidationReportLink(_XComUrlLink):
    name = "Validation report"
    url_key = VALIDATION_REPORT_KEY


class DriftReportLink(_XComUrlLink):
    name = "Drift report"
    url_key = DRIFT_REPORT_KEY
