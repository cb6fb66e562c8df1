"""The project's Airflow plugin: an "ML lifecycle" page in the navigation, report serving, and
the operator extra links (task -> MLflow run, validation report, drift report).

The FastAPI app is mounted by the api-server under ``/mlops``. Every route needs an Airflow login
(the UI's session cookie or a bearer token) and the auth manager's permission to read the runs of
the DAGs whose output it shows: every registered model's training and drift DAGs
(:func:`model_dags`) for the lifecycle page, the publishing DAG for a report
(:mod:`mlops.published`). The app has no OpenAPI document or docs.

Reports are served only under names the platform publishes (:func:`mlops.published.published`):
``/mlops/reports/<name>`` and ``/mlops/quarantine/<name>`` for ``{lake}/reports`` and
``{lake}/quarantine``, and ``/mlops/models/<model folder>/reports/drift/ds=.../<file>`` for the
drift reports of a model that keeps its files under ``{lake}/models/<folder>/``
(:func:`mlops.layout.model_root`; the folder must be a registered spec's ``lake_folder``),
with ``Content-Security-Policy: sandbox`` (Evidently's report may run its own inline scripts, in
an opaque origin with no network) and ``X-Content-Type-Options: nosniff``. The lifecycle page is a
Jinja template (``templates/lifecycle.html``, autoescaped) fed plain data; its CSP allows only its
own stylesheet. Heavy work (MLflow, the lake) happens per request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mlops.airflow.links import DriftReportLink, MLflowRunLink, ValidationReportLink
from mlops.models.lifecycle import PageLinks, platform_page

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Every response: nothing is framed by another site, nothing loads, nothing runs (routes that
#: serve a page set their own policy).
DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
#: A published report or data file, in a sandbox (an opaque origin: no cookies, no storage, no
#: access to the Airflow origin); its own inline styles and images only; opened from the UI.
_REPORT_CSP = (
    "sandbox{scripts}; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "{script}connect-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
REPORT_CSP = _REPORT_CSP.format(scripts="", script="")
#: Evidently's report renders with its own inline scripts (its bundle and data): allowed to run,
#: sandboxed, with no network (``connect-src 'none'``), so they reach nothing of the user's session.
SCRIPTED_REPORT_CSP = _REPORT_CSP.format(scripts=" allow-scripts", script="script-src 'unsafe-inline'; ")


def model_dags(spec: Any) -> tuple[str, str]:
    """The training and drift-check DAG ids of the model ``spec``: ``train_model`` and
    ``monitor_drift`` for the model that keeps DESIGN.md's layout (its ``lake_folder`` is ``""``),
    ``train_<name>`` and ``monitor_drift_<name>`` for every other (the ids its DAG files give the
    builders of :mod:`mlops.airflow.training_dag` and :mod:`mlops.airflow.drift_dag`, docs/dags.md)."""
    if not spec.lake_folder:
        return "train_model", "monitor_drift"
    return f"train_{spec.name}", f"monitor_drift_{spec.name}"


def _registered_models() -> list[Any]:
    from mlops.spec.model import SPECS, model_spec

    return [model_spec(name) for name in SPECS]


#: Read the runs of these DAGs to see the lifecycle page (every registered model's registry and
#: drift checks are on it): each model's training and drift DAGs (:func:`model_dags`).
LIFECYCLE_DAGS: tuple[str, ...] = tuple(
    dict.fromkeys(dag_id for spec in _registered_models() for dag_id in model_dags(spec))
)
#: Model folder under ``{lake}/models/`` -> the DAG whose runs publish its drift reports.
MODEL_REPORT_DAGS: dict[str, str] = {
    spec.lake_folder: model_dags(spec)[1] for spec in _registered_models() if spec.lake_folder
}

app = FastAPI(title="mlops lifecycle", docs_url=None, redoc_url=None, openapi_url=None)


@app.middleware("http")
async def _security_headers(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    response.headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _read_runs(dag_id: str) -> Any:
    """Airflow's own check: the user may read the runs of ``dag_id`` (403 otherwise)."""
    return Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=dag_id))


LIFECYCLE_ACCESS = [_read_runs(d) for d in LIFECYCLE_DAGS]


@app.get("/api/state", dependencies=LIFECYCLE_ACCESS)
async def state(user: GetUserDep) -> JSONResponse:
    """Every registered model's lifecycle and every feed's days (``PlatformState``)."""
    from mlops.models.lifecycle import platform_state

    result = await asyncio.to_thread(platform_state)
    return JSONResponse(result.to_dict())


async def _serve(folder: str, name: str, request: Request, user: Any, model_dir: str = "") -> Response:
    """Serve the published file ``{lake}/<folder>/<name>`` (see :mod:`mlops.published`), or with
    ``model_dir`` the drift report ``{lake}/models/<model_dir>/reports/<name>``."""
    from mlops import published
    from mlops.config import get_settings

    try:
        item = published.published(folder, name)
        if model_dir:
            item = _model_report(item, model_dir)
    except published.NotPublished as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    folder = item.folder
    check = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=item.dag_id)
    await asyncio.to_thread(check, request, user)
    lake_uri = get_settings().lake_uri
    try:
        data = await asyncio.to_thread(published.read, item, lake_uri)
    except published.NotPublished as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise HTTPException(
            status_code=404,
            detail=f"{folder}/{name} has not been written: the {item.dag_id} run of {item.ds} publishes it",
        ) from None
    except Exception as exc:
        raise HTTPException(
            status_code=502, detail=f"could not read {folder}/{name} from the lake: {type(exc).__name__}"
        ) from exc
    csp = SCRIPTED_REPORT_CSP if item.scripted else REPORT_CSP
    return Response(content=data, media_type=item.media_type, headers={"Content-Security-Policy": csp})


@app.get("/reports/{path:path}")
async def report(path: str, request: Request, user: GetUserDep) -> Response:
    """A report under ``{lake}/reports`` (``validation/ds=.../validation.html``, ``drift/...``)."""
    return await _serve("reports", path, request, user)


def _model_report(item: Any, model_dir: str) -> Any:
    """The published ``reports/`` name ``item``, as the drift report of the model kept under
    ``{lake}/models/<model_dir>/``: only drift reports, only a registered model's folder, read under
    the rights of that model's drift DAG (:data:`MODEL_REPORT_DAGS`)."""
    import dataclasses

    from mlops import layout, published

    dag_id = MODEL_REPORT_DAGS.get(model_dir)
    if dag_id is None:
        served = ", ".join(f"models/{d}/reports" for d in MODEL_REPORT_DAGS) or "none"
        raise published.NotPublished(
            f"models/{model_dir[:80]!r} is not a registered model's folder: the UI serves {served}"
        )
    if not item.name.startswith(layout.DRIFT + "/"):
        raise published.NotPublished(
            f"models/{model_dir}/reports/{item.name} is not a file the platform publishes: a model's "
            f"folder serves only its drift reports ({layout.DRIFT}/ds=YYYY-MM-DD/"
            f"{{{layout.DRIFT_HTML},{layout.DRIFT_JSON}}})"
        )
    folder = "/".join((layout.MODELS, model_dir, layout.REPORTS))
    return dataclasses.replace(item, folder=folder, dag_id=dag_id)


@app.get("/models/{model_dir}/reports/{path:path}")
async def model_report(model_dir: str, path: str, request: Request, user: GetUserDep) -> Response:
    """A drift report of the model kept under ``{lake}/models/<model_dir>`` (e.g. ``air_time``)."""
    return await _serve("reports", path, request, user, model_dir=model_dir)


@app.get("/quarantine/{path:path}")
async def quarantined(path: str, request: Request, user: GetUserDep) -> Response:
    """A quarantined batch or its validation report, under ``{lake}/quarantine``."""
    return await _serve("quarantine", path, request, user)


# --------------------------------------------------------------------------------------------------
# The "ML lifecycle" page: templates/lifecycle.html fed mlops.models.lifecycle.platform_page's data
# --------------------------------------------------------------------------------------------------


@cache
def _templates() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _stylesheet() -> tuple[str, str]:
    """The page's CSS and the CSP source that allows exactly it (``'sha256-...'``)."""
    css = (TEMPLATES / "lifecycle.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode()
    return css, f"'sha256-{digest}'"


def lifecycle_csp() -> str:
    """The page's policy: its own stylesheet, no script, framed only by the Airflow UI."""
    return (
        f"default-src 'none'; style-src {_stylesheet()[1]}; img-src 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    )


def model_report_url(report_uri: str, lake_uri: str) -> str | None:
    """This app's URL of a model's drift report under ``{lake}/models/<folder>/reports/``
    (``None`` for any other URI, or a folder no registered model keeps)."""
    from mlops import layout
    from mlops.airflow.links import report_url

    for model_dir in MODEL_REPORT_DAGS:
        root = layout.model_root(lake_uri, model_dir).rstrip("/") + f"/{layout.REPORTS}/"
        if report_uri.startswith(root) and report_uri[len(root) :]:
            return report_url(report_uri, lake_uri)
    return None


def page_links(model_name: str | None = None) -> PageLinks:
    """The page's links: reports through this app's routes (a model's own report folder included),
    runs and the registered model ``model_name`` (default: the default spec's) in the MLflow UI."""
    from mlops import layout
    from mlops.airflow.links import mlflow_run_url, mlflow_ui_url, report_url
    from mlops.config import MODEL_NAME, get_settings

    lake_uri = get_settings().lake_uri
    models_root = lake_uri.rstrip("/") + f"/{layout.MODELS}/"

    def report(uri: str) -> str | None:
        if uri.startswith(models_root):  # only the folders of the models this app serves
            return model_report_url(uri, lake_uri)
        try:
            return report_url(uri, lake_uri)
        except ValueError:  # not under {lake}/reports or {lake}/quarantine
            return None

    model = model_name or MODEL_NAME
    return PageLinks(report=report, run=mlflow_run_url, registry=f"{mlflow_ui_url()}/#/models/{model}")


def render_lifecycle(st: dict[str, Any], *, drift_share_threshold: float = 0.3) -> str:
    """The page for a :meth:`mlops.models.lifecycle.PlatformState.to_dict` (every model and feed)
    or one model's :meth:`~mlops.models.lifecycle.LifecycleState.to_dict`."""
    from markupsafe import Markup

    page = platform_page(
        st, drift_share_threshold=drift_share_threshold, links=lambda m: page_links(m.get("model_name"))
    )
    css = Markup(_stylesheet()[0])  # the project's own stylesheet, allowed by its CSP hash
    return _templates().get_template("lifecycle.html").render(page, css=css)


@app.get("/lifecycle", response_class=HTMLResponse, dependencies=LIFECYCLE_ACCESS)
async def lifecycle(user: GetUserDep) -> HTMLResponse:
    from mlops.models.lifecycle import platform_state
    from mlops.monitoring.params import DriftParams

    st = (await asyncio.to_thread(platform_state)).to_dict()
    page = render_lifecycle(st, drift_share_threshold=DriftParams().drift_share)
    return HTMLResponse(page, headers={"Content-Security-Policy": lifecycle_csp()})


class MLOpsPlugin(AirflowPlugin):
    name = "mlops"
    fastapi_apps = [{"app": app, "url_prefix": "/mlops", "name": "mlops lifecycle"}]
    external_views = [
        {
            "name": "ML lifecycle",
            "href": "mlops/lifecycle",
            "destination": "nav",
            "url_route": "ml-lifecycle",
            "icon": None,
        }
    ]
    operator_extra_links = [MLflowRunLink(), ValidationReportLink(), DriftReportLink()]
