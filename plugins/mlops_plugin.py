"""The project's Airflow plugin: an "ML lifecycle" page in the navigation, report serving, and
the operator extra links (task -> MLflow run, validation report, drift report).

The FastAPI app is mounted by the api-server under ``/mlops``; its pages require an Airflow login
(the UI's session cookie or a bearer token). Heavy work (MLflow, the lake) happens per request.
"""

from __future__ import annotations

import asyncio
import html
import mimetypes
from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep  # noqa: TC002 (FastAPI resolves it at runtime)
from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mlops.airflow.links import DriftReportLink, MLflowRunLink, ValidationReportLink

app = FastAPI(title="mlops lifecycle", docs_url=None, redoc_url=None)


@app.get("/api/state")
async def state(user: GetUserDep) -> JSONResponse:
    from mlops.report import lifecycle_state

    result = await asyncio.to_thread(lifecycle_state)
    return JSONResponse(result.to_dict())


async def _serve(folder: str, path: str) -> Response:
    """Serve a file from ``{lake}/<folder>`` (validation and drift reports, quarantined batches)."""
    from mlops import lake
    from mlops.config import get_settings

    parts = path.split("/")
    if not path or ".." in parts or path.startswith("/") or "" in parts:
        raise HTTPException(status_code=400, detail="invalid report path")
    uri = lake.join(get_settings().lake_uri, folder, path)
    try:
        data = await asyncio.to_thread(lake.read_bytes, uri)
    except (FileNotFoundError, OSError) as exc:
        raise HTTPException(status_code=404, detail=f"no file at {folder}/{path}") from exc
    except Exception as exc:  # S3 NoSuchKey and friends
        raise HTTPException(status_code=404, detail=f"no file at {folder}/{path}: {exc}") from exc
    media = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if media.startswith("text/") or media == "application/json":
        media += "; charset=utf-8"
    return Response(content=data, media_type=media)


@app.get("/reports/{path:path}")
async def report(path: str, user: GetUserDep) -> Response:
    """A report under ``{lake}/reports`` (``validation/ds=.../validation.html``, ``drift/...``)."""
    return await _serve("reports", path)


@app.get("/quarantine/{path:path}")
async def quarantined(path: str, user: GetUserDep) -> Response:
    """A quarantined batch or its validation report, under ``{lake}/quarantine``."""
    return await _serve("quarantine", path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return html.escape(str(value)) if value is not None else "—"


def _version_card(title: str, info: Any) -> str:
    if info is None:
        return f"<div class='card'><h3>{title}</h3><p>none yet</p></div>"
    rows = "".join(
        f"<tr><td>{_fmt(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in sorted(info["metrics"].items())
    )
    return (
        f"<div class='card'><h3>{title}: v{_fmt(info['version'])}</h3>"
        f"<p>as of {_fmt(info.get('as_of'))} · trigger {_fmt(info.get('trigger'))}</p>"
        f"<table>{rows}</table></div>"
    )


def _drift_chart(history: list[dict[str, Any]]) -> str:
    points = [(str(h.get("ds")), h.get("drift_share")) for h in history if h.get("drift_share") is not None]
    if not points:
        return "<p>No drift checks yet.</p>"
    width, height, pad = 760, 220, 30
    n = len(points)
    xs = [pad + (width - 2 * pad) * (i / max(n - 1, 1)) for i in range(n)]
    ys = [height - pad - (height - 2 * pad) * float(v) for _, v in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    dots = "".join(
        f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3'><title>{html.escape(d)}: {float(v):.2f}</title></circle>"
        for x, y, (d, v) in zip(xs, ys, points, strict=True)
    )
    return (
        f"<svg id='drift-chart' width='{width}' height='{height}' role='img' aria-label='drift share per day'>"
        f"<line x1='{pad}' y1='{height - pad}' x2='{width - pad}' y2='{height - pad}' stroke='#888'/>"
        f"<line x1='{pad}' y1='{pad}' x2='{pad}' y2='{height - pad}' stroke='#888'/>"
        f"<text x='{pad}' y='{pad - 8}' font-size='11'>share of drifted features (0-1)</text>"
        f"<text x='{pad}' y='{height - 8}' font-size='11'>{html.escape(points[0][0])}</text>"
        f"<text x='{width - pad - 70}' y='{height - 8}' font-size='11'>{html.escape(points[-1][0])}</text>"
        f"<polyline fill='none' stroke='#017cee' stroke-width='2' points='{line}'/>{dots}</svg>"
    )


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>ML lifecycle</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#1a1a1a}}
.cards{{display:flex;gap:16px;flex-wrap:wrap}}.card{{border:1px solid #ddd;border-radius:8px;padding:12px 16px;
min-width:220px}}table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #eee;
text-align:left;font-size:13px}}h1{{font-size:22px}}h2{{font-size:17px;margin-top:28px}}.err{{color:#b00}}</style>
</head><body><h1>ML lifecycle: flight_delay_xgb</h1>{errors}
<div class="cards">{champion}{challenger}{previous}</div>
<h2>Recent versions</h2><table id="versions"><tr><th>version</th><th>aliases</th><th>as of</th>
<th>trigger</th><th>ROC-AUC</th><th>PR-AUC</th><th>run</th></tr>{versions}</table>
<h2>Drift history</h2>{chart}
<h2>Retraining requests</h2><table id="requests"><tr><th>day</th><th>decision</th><th>reason</th></tr>{requests}</table>
</body></html>"""


@app.get("/lifecycle", response_class=HTMLResponse)
async def lifecycle(user: GetUserDep) -> HTMLResponse:
    from mlops.airflow.links import mlflow_ui_url
    from mlops.report import lifecycle_state

    st = (await asyncio.to_thread(lifecycle_state)).to_dict()
    versions = "".join(
        f"<tr><td>v{_fmt(v['version'])}</td><td>{_fmt(', '.join(v['aliases']))}</td><td>{_fmt(v['as_of'])}</td>"
        f"<td>{_fmt(v['trigger'])}</td><td>{_fmt(v['metrics'].get('roc_auc'))}</td>"
        f"<td>{_fmt(v['metrics'].get('pr_auc'))}</td>"
        f"<td><a target='_blank' href='{mlflow_ui_url()}/#/models/flight_delay_xgb/versions/{_fmt(v['version'])}'>"
        f"open</a></td></tr>"
        for v in st["versions"]
    )
    requests = "".join(
        f"<tr><td>{_fmt(r.get('ds'))}</td><td>{_fmt(r.get('decision'))}</td><td>{_fmt(r.get('reason'))}</td></tr>"
        for r in st["retrain_requests"][-20:]
    )
    errors = "".join(f"<p class='err'>{html.escape(e)}</p>" for e in st["errors"])
    body = PAGE.format(
        errors=errors,
        champion=_version_card("Champion", st["champion"]),
        challenger=_version_card("Challenger", st["challenger"]),
        previous=_version_card("Previous", st["previous"]),
        versions=versions or "<tr><td colspan='7'>no model registered yet</td></tr>",
        chart=_drift_chart(st["drift_history"]),
        requests=requests or "<tr><td colspan='3'>none</td></tr>",
    )
    return HTMLResponse(body)


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
