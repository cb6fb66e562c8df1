"""The project's Airflow plugin: an "ML lifecycle" page in the navigation, report serving, and
the operator extra links (task -> MLflow run, validation report, drift report).

The FastAPI app is mounted by the api-server under ``/mlops``. Every route needs an Airflow login
(the UI's session cookie or a bearer token) and the auth manager's permission to read the runs of
the DAGs whose output it shows: ``train_model`` and ``monitor_drift`` for the lifecycle page, the
publishing DAG for a report (:mod:`mlops.published`). The app has no OpenAPI document or docs.

Reports are served only under names the platform publishes (:func:`mlops.published.published`),
with ``Content-Security-Policy: sandbox`` (Evidently's report may run its own inline scripts, in
an opaque origin with no network) and ``X-Content-Type-Options: nosniff``. The lifecycle page is a
Jinja template (``templates/lifecycle.html``, autoescaped) fed plain data; its CSP allows only its
own stylesheet. Heavy work (MLflow, the lake) happens per request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from datetime import date
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mlops.airflow.links import DriftReportLink, MLflowRunLink, ValidationReportLink

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
#: Read the runs of these DAGs to see the lifecycle page (the registry's and the drift checks').
LIFECYCLE_DAGS = ("train_model", "monitor_drift")

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
    from mlops.models.lifecycle import lifecycle_state

    result = await asyncio.to_thread(lifecycle_state)
    return JSONResponse(result.to_dict())


async def _serve(folder: str, name: str, request: Request, user: Any) -> Response:
    """Serve the published file ``{lake}/<folder>/<name>`` (see :mod:`mlops.published`)."""
    from mlops import published as P
    from mlops.config import get_settings

    try:
        item = P.published(folder, name)
    except P.NotPublished as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    check = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=item.dag_id)
    await asyncio.to_thread(check, request, user)
    lake_uri = get_settings().lake_uri
    try:
        data = await asyncio.to_thread(P.read, item, lake_uri)
    except P.NotPublished as exc:
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


@app.get("/quarantine/{path:path}")
async def quarantined(path: str, request: Request, user: GetUserDep) -> Response:
    """A quarantined batch or its validation report, under ``{lake}/quarantine``."""
    return await _serve("quarantine", path, request, user)


# --------------------------------------------------------------------------------------------------
# The "ML lifecycle" page: the data it shows (the markup is templates/lifecycle.html)
# --------------------------------------------------------------------------------------------------

METRIC_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "log_loss": "log loss", "brier": "Brier"}
CARDS = (("Champion", "champion"), ("Challenger", "challenger"), ("Previous", "previous"))
SERIES = (
    ("drift_share", "s-share", "share of drifted features"),
    ("prediction_drift", "s-pred", "prediction drift (Wasserstein)"),
    ("calibration_error", "s-cal", "calibration error (ECE)"),
)


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


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _report_href(uri: Any) -> str | None:
    """The plugin URL of a report in the lake, or None when it is not served."""
    from mlops.airflow.links import report_url
    from mlops.config import get_settings

    if not uri:
        return None
    try:
        return report_url(str(uri), get_settings().lake_uri)
    except ValueError:
        return None


def _run_href(info: dict[str, Any]) -> str | None:
    from mlops.airflow.links import mlflow_run_url

    if info.get("run_id") and info.get("experiment_id"):
        return mlflow_run_url(str(info["experiment_id"]), str(info["run_id"]))
    return None


def _version(info: dict[str, Any]) -> dict[str, Any]:
    """One model version as the cards and the versions table show it."""
    promotion = info.get("promotion")
    return {
        "version": info["version"],
        "aliases": list(info.get("aliases") or []),
        "run_href": _run_href(info),
        "metrics": [
            {"label": label, "value": _fmt(info["metrics"].get(key))} for key, label in METRIC_LABELS.items()
        ],
        "as_of": _fmt(info.get("as_of")),
        "trigger": _fmt(info.get("trigger")),
        "trigger_reason": info.get("trigger_reason") or "",
        "promotion": promotion or "",
        "promotion_kind": "ok" if promotion == "promoted" else "no",
        "promotion_reason": info.get("promotion_reason") or "",
    }


def _x_ticks(xs: list[float]) -> list[int]:
    """The first and last day, and days in between at least 90px from their neighbours."""
    ticks: list[int] = []
    for i, x in enumerate(xs):
        if i in (0, len(xs) - 1) or ((not ticks or x - xs[ticks[-1]] >= 90) and xs[-1] - x >= 90):
            ticks.append(i)
    return ticks


def drift_chart(
    history: list[dict[str, Any]], threshold: float, requested: set[str] | None = None
) -> dict[str, Any] | None:
    """The drift chart's geometry: drift share (and prediction drift, calibration error) per
    checked day, the threshold, the breaches and the retraining requests; None without checks."""
    rows = [h for h in history if h.get("ds") and _num(h.get("drift_share")) is not None]
    if not rows:
        return None
    width, height = 900, 260
    left, right, top, bottom = 44, 16, 16, 34
    days = [date.fromisoformat(str(h["ds"])[:10]) for h in rows]
    span = max((days[-1] - days[0]).days, 1)
    ymax = max(1.0, *(_num(h.get("prediction_drift")) or 0 for h in rows))

    def x(d: date) -> float:
        return left + (width - left - right) * ((d - days[0]).days / span if len(days) > 1 else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - min(v, ymax) / ymax)

    xs = [x(d) for d in days]
    ticks = _x_ticks(xs)
    lines = []
    for key, cls, _ in SERIES:
        pts = [(x(d), y(v)) for d, h in zip(days, rows, strict=True) if (v := _num(h.get(key))) is not None]
        if len(pts) > 1:
            lines.append({"cls": cls, "points": " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)})
    points = []
    for d, h in zip(days, rows, strict=True):
        share = _num(h["drift_share"]) or 0.0
        decision = h.get("retrain_decision") or ""
        tip = (
            f"{d.isoformat()}: drift share {share:.2f} ({h.get('n_drifted')}/{h.get('n_features')} features)"
            f", prediction drift {_fmt(_num(h.get('prediction_drift')))}, ECE {_fmt(_num(h.get('calibration_error')))}"
            f"; breaches: {h.get('breaches') or 'none'}; retraining: {decision or 'none'}"
        )
        marker = None
        if decision == "requested" or d.isoformat() in (requested or set()):
            px, py = x(d), top + 2
            marker = {
                "d": f"M{px - 6:.1f},{py:.1f} L{px + 6:.1f},{py:.1f} L{px:.1f},{py + 10:.1f} Z",
                "tip": f"{d.isoformat()}: retraining requested",
            }
        points.append(
            {
                "cls": "pt breached" if h.get("breached") else "pt",
                "cx": f"{x(d):.1f}",
                "cy": f"{y(share):.1f}",
                "tip": tip,
                "requested": marker,
            }
        )
    legend = [{"cls": cls, "label": label} for _, cls, label in SERIES]
    legend += [
        {"cls": "k-breach", "label": "past a threshold"},
        {"cls": "k-req", "label": "retraining requested"},
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "grid": [
            {"y": f"{y(t * ymax):.1f}", "label_y": f"{y(t * ymax) + 4:.1f}", "label": f"{t * ymax:.2g}"}
            for t in (0.0, 0.25, 0.5, 0.75, 1.0)
        ],
        "threshold": {
            "y": f"{y(threshold):.1f}",
            "label_y": f"{y(threshold) - 5:.1f}",
            "value": f"{threshold:g}",
        },
        "xtick_y": height - 12,
        "xticks": [
            {
                "x": f"{xs[i]:.1f}",
                "anchor": "start" if i == 0 else "end" if i == len(days) - 1 else "middle",
                "text": days[i].isoformat(),
            }
            for i in ticks
        ],
        "lines": lines,
        "points": points,
        "legend": legend,
    }


def _checks(history: list[dict[str, Any]], limit: int = 10) -> list[dict[str, Any]]:
    return [
        {
            "ds": _fmt(h.get("ds")),
            "champion_version": _fmt(h.get("champion_version")),
            "drift_share": _fmt(_num(h.get("drift_share")), 2),
            "prediction_drift": _fmt(_num(h.get("prediction_drift"))),
            "roc_auc": _fmt(_num(h.get("roc_auc"))),
            "calibration_error": _fmt(_num(h.get("calibration_error"))),
            "breached": bool(h.get("breached")),
            "breaches": h.get("breaches") or "",
            "retrain_decision": _fmt(h.get("retrain_decision")),
            "report_href": _report_href(h.get("report_uri")),
        }
        for h in list(reversed(history))[:limit]
    ]


def _requests(requests: list[dict[str, Any]], limit: int = 20) -> list[dict[str, Any]]:
    rows = []
    for r in list(reversed(requests))[:limit]:
        decision = str(r.get("decision") or "")
        features = r.get("drifted_features") or {}
        rows.append(
            {
                "ds": _fmt(r.get("ds")),
                "decision": decision,
                "decision_kind": "ok" if decision == "requested" else "muted-b",
                "reason": r.get("reason") or "",
                "drifted": ", ".join(f"{k} {float(v):.2f}" for k, v in features.items())
                if isinstance(features, dict)
                else "",
                "champion_version": _fmt(r.get("champion_version")),
                "report_href": _report_href(r.get("report_uri")),
            }
        )
    return rows


def lifecycle_page(st: dict[str, Any], *, drift_share_threshold: float = 0.3) -> dict[str, Any]:
    """What the page shows, as plain data, for a :meth:`mlops.models.lifecycle.LifecycleState.to_dict`."""
    from mlops.airflow.links import mlflow_ui_url
    from mlops.config import MODEL_NAME

    history, requests = st["drift_history"], st["retrain_requests"]
    requested = {str(r.get("ds")) for r in requests if r.get("decision") == "requested"}
    champion = st.get("champion")
    return {
        "css": _stylesheet()[0],
        "model_name": MODEL_NAME,
        "champion": _version(champion) if champion else None,
        "n_versions": len(st["versions"]),
        "n_checks": len(history),
        "n_breached": sum(1 for h in history if h.get("breached")),
        "n_requested": sum(1 for r in requests if r.get("decision") == "requested"),
        "registry_href": f"{mlflow_ui_url()}/#/models/{MODEL_NAME}",
        "errors": [str(e) for e in st["errors"]],
        "cards": [
            {"title": title, "kind": kind, "version": _version(st[kind]) if st.get(kind) else None}
            for title, kind in CARDS
        ],
        "metric_labels": list(METRIC_LABELS.values()),
        "versions": [_version(v) for v in st["versions"]],
        "chart": drift_chart(history, drift_share_threshold, requested),
        "checks": _checks(history) if history else [],
        "requests": _requests(requests),
    }


def render_lifecycle(st: dict[str, Any], *, drift_share_threshold: float = 0.3) -> str:
    """The page for a :meth:`mlops.models.lifecycle.LifecycleState.to_dict`."""
    from markupsafe import Markup

    page = lifecycle_page(st, drift_share_threshold=drift_share_threshold)
    page["css"] = Markup(page["css"])  # the project's own stylesheet, allowed by its CSP hash
    return _templates().get_template("lifecycle.html").render(page)


@app.get("/lifecycle", response_class=HTMLResponse, dependencies=LIFECYCLE_ACCESS)
async def lifecycle(user: GetUserDep) -> HTMLResponse:
    from mlops.models.lifecycle import lifecycle_state
    from mlops.monitoring import DriftParams

    st = (await asyncio.to_thread(lifecycle_state)).to_dict()
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
