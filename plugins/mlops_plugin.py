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


# --------------------------------------------------------------------------------------------------
# The "ML lifecycle" page (plain HTML + inline SVG: no JavaScript, no CDN)
# --------------------------------------------------------------------------------------------------

METRIC_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "log_loss": "log loss", "brier": "Brier"}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return _e(value)


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


def _badge(text: str, kind: str) -> str:
    return f"<span class='badge {kind}'>{_e(text)}</span>"


def _version_card(title: str, info: dict[str, Any] | None, kind: str) -> str:
    if info is None:
        return f"<section class='card {kind}' data-role='{kind}'><h3>{title}</h3><p class='muted'>none yet</p></section>"
    metrics = "".join(
        f"<div class='metric'><span>{label}</span><b>{_fmt(info['metrics'].get(key))}</b></div>"
        for key, label in METRIC_LABELS.items()
    )
    trigger = _fmt(info.get("trigger"))
    if info.get("trigger_reason"):
        trigger += f"<div class='why'>{_e(info['trigger_reason'])}</div>"
    gate = ""
    if info.get("promotion"):
        gate = (
            f"<dt>gate</dt><dd>{_badge(info['promotion'], 'ok' if info['promotion'] == 'promoted' else 'no')}"
            f" <span class='muted'>{_e(info.get('promotion_reason') or '')}</span></dd>"
        )
    href = _run_href(info)
    run = f"<a href='{_e(href)}' target='_blank' rel='noopener'>MLflow run ↗</a>" if href else ""
    return (
        f"<section class='card {kind}' data-role='{kind}'><h3>{title} <span class='ver'>v{_e(info['version'])}</span>"
        f"<span class='link'>{run}</span></h3><div class='metrics'>{metrics}</div>"
        f"<dl><dt>trained as of</dt><dd>{_fmt(info.get('as_of'))}</dd><dt>trigger</dt><dd>{trigger}</dd>{gate}</dl>"
        "</section>"
    )


def _versions_table(versions: list[dict[str, Any]]) -> str:
    if not versions:
        return "<p class='muted'>No model registered yet: <code>train_model</code> registers one.</p>"
    rows = []
    for v in versions:
        aliases = " ".join(_badge("@" + a, a) for a in v["aliases"])
        href = _run_href(v)
        run = f"<a href='{_e(href)}' target='_blank' rel='noopener'>run ↗</a>" if href else "—"
        gate = (
            _badge(v["promotion"], "ok" if v["promotion"] == "promoted" else "no")
            if v.get("promotion")
            else ""
        )
        metrics = "".join(f"<td class='num'>{_fmt(v['metrics'].get(k))}</td>" for k in METRIC_LABELS)
        rows.append(
            f"<tr><td><b>v{_e(v['version'])}</b> {aliases}</td><td>{_fmt(v.get('as_of'))}</td>"
            f"<td>{_fmt(v.get('trigger'))}</td>{metrics}<td title='{_e(v.get('promotion_reason') or '')}'>{gate}</td>"
            f"<td>{run}</td></tr>"
        )
    head = "".join(f"<th class='num'>{label}</th>" for label in METRIC_LABELS.values())
    return (
        "<table id='versions'><thead><tr><th>version</th><th>as of</th><th>trigger</th>"
        f"{head}<th>gate</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


def _drift_chart(history: list[dict[str, Any]], threshold: float, requested: set[str] | None = None) -> str:
    """Drift share (and prediction drift, calibration error) per checked day, as an SVG chart."""
    from datetime import date

    rows = [h for h in history if h.get("ds") and _num(h.get("drift_share")) is not None]
    if not rows:
        return "<p class='muted'>No drift checks yet: <code>monitor_drift</code> records one per day.</p>"
    width, height = 900, 260
    left, right, top, bottom = 44, 16, 16, 34
    days = [date.fromisoformat(str(h["ds"])[:10]) for h in rows]
    span = max((days[-1] - days[0]).days, 1)
    ymax = max(1.0, *(_num(h.get("prediction_drift")) or 0 for h in rows))

    def x(d: date) -> float:
        return left + (width - left - right) * ((d - days[0]).days / span if len(days) > 1 else 0.5)

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - min(v, ymax) / ymax)

    out = [
        f"<svg id='drift-chart' viewBox='0 0 {width} {height}' role='img' aria-label='drift per checked day'>"
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        v = tick * ymax
        out.append(
            f"<line class='grid' x1='{left}' x2='{width - right}' y1='{y(v):.1f}' y2='{y(v):.1f}'/>"
            f"<text class='axis' x='{left - 6}' y='{y(v) + 4:.1f}' text-anchor='end'>{v:.2g}</text>"
        )
    out.append(
        f"<line class='threshold' x1='{left}' x2='{width - right}' y1='{y(threshold):.1f}' y2='{y(threshold):.1f}'/>"
        f"<text class='axis thr' x='{width - right}' y='{y(threshold) - 5:.1f}' text-anchor='end'>"
        f"drift share threshold {threshold:g}</text>"
    )
    # x ticks: the first and last day, and days in between at least 90px from their neighbours
    ticks: list[int] = []
    for i in range(len(days)):
        last_x = x(days[-1])
        if i in (0, len(days) - 1) or (
            (not ticks or x(days[i]) - x(days[ticks[-1]]) >= 90) and last_x - x(days[i]) >= 90
        ):
            ticks.append(i)
    for i in ticks:
        anchor = "start" if i == 0 else "end" if i == len(days) - 1 else "middle"
        out.append(
            f"<text class='axis' x='{x(days[i]):.1f}' y='{height - 12}' text-anchor='{anchor}'>{days[i].isoformat()}</text>"
        )
    series = (
        ("drift_share", "s-share", "share of drifted features"),
        ("prediction_drift", "s-pred", "prediction drift (Wasserstein)"),
        ("calibration_error", "s-cal", "calibration error (ECE)"),
    )
    for key, cls, _ in series:
        pts = [(x(d), y(v)) for d, h in zip(days, rows, strict=True) if (v := _num(h.get(key))) is not None]
        if len(pts) > 1:
            out.append(f"<polyline class='{cls}' points='{' '.join(f'{a:.1f},{b:.1f}' for a, b in pts)}'/>")
    for d, h in zip(days, rows, strict=True):
        share = _num(h["drift_share"]) or 0.0
        decision = h.get("retrain_decision") or ""
        cls = "pt breached" if h.get("breached") else "pt"
        tip = (
            f"{d.isoformat()}: drift share {share:.2f} ({h.get('n_drifted')}/{h.get('n_features')} features)"
            f", prediction drift {_fmt(_num(h.get('prediction_drift')))}, ECE {_fmt(_num(h.get('calibration_error')))}"
            f"; breaches: {h.get('breaches') or 'none'}; retraining: {decision or 'none'}"
        )
        out.append(
            f"<circle class='{cls}' cx='{x(d):.1f}' cy='{y(share):.1f}' r='5'><title>{_e(tip)}</title></circle>"
        )
        if decision == "requested" or d.isoformat() in (requested or set()):
            px, py = x(d), top + 2
            out.append(
                f"<path class='req' d='M{px - 6:.1f},{py:.1f} L{px + 6:.1f},{py:.1f} L{px:.1f},{py + 10:.1f} Z'>"
                f"<title>{_e(d.isoformat())}: retraining requested</title></path>"
            )
    out.append("</svg>")
    legend = "".join(f"<span class='key {cls}'>{label}</span>" for _, cls, label in series)
    legend += "<span class='key k-breach'>past a threshold</span><span class='key k-req'>retraining requested</span>"
    return f"<div class='chart'>{''.join(out)}<div class='legend'>{legend}</div></div>"


def _checks_table(history: list[dict[str, Any]], limit: int = 10) -> str:
    rows = []
    for h in list(reversed(history))[:limit]:
        href = _report_href(h.get("report_uri"))
        report = f"<a href='{_e(href)}' target='_blank' rel='noopener'>report ↗</a>" if href else "—"
        verdict = _badge("breached", "no") if h.get("breached") else _badge("ok", "ok")
        rows.append(
            f"<tr><td>{_fmt(h.get('ds'))}</td><td>v{_fmt(h.get('champion_version'))}</td>"
            f"<td class='num'>{_fmt(_num(h.get('drift_share')), 2)}</td>"
            f"<td class='num'>{_fmt(_num(h.get('prediction_drift')))}</td>"
            f"<td class='num'>{_fmt(_num(h.get('roc_auc')))}</td>"
            f"<td class='num'>{_fmt(_num(h.get('calibration_error')))}</td>"
            f"<td>{verdict} <span class='muted'>{_e(h.get('breaches') or '')}</span></td>"
            f"<td>{_fmt(h.get('retrain_decision'))}</td><td>{report}</td></tr>"
        )
    return (
        "<table id='checks'><thead><tr><th>day</th><th>champion</th><th class='num'>drift share</th>"
        "<th class='num'>prediction drift</th><th class='num'>ROC-AUC</th><th class='num'>ECE</th>"
        f"<th>verdict</th><th>retraining</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _requests_table(requests: list[dict[str, Any]], limit: int = 20) -> str:
    if not requests:
        return (
            "<p class='muted'>No retraining decisions yet: they appear when a check breaches a threshold.</p>"
        )
    rows = []
    for r in list(reversed(requests))[:limit]:
        decision = str(r.get("decision") or "")
        features = r.get("drifted_features") or {}
        drifted = (
            ", ".join(f"{_e(k)} {float(v):.2f}" for k, v in features.items())
            if isinstance(features, dict)
            else ""
        )
        href = _report_href(r.get("report_uri"))
        report = f"<a href='{_e(href)}' target='_blank' rel='noopener'>report ↗</a>" if href else ""
        rows.append(
            f"<tr><td>{_fmt(r.get('ds'))}</td>"
            f"<td>{_badge(decision, 'ok' if decision == 'requested' else 'muted-b')}</td>"
            f"<td>{_e(r.get('reason') or '')}"
            + (f"<div class='muted'>drifted: {drifted}</div>" if drifted else "")
            + f"</td><td>v{_fmt(r.get('champion_version'))}</td><td>{report}</td></tr>"
        )
    return (
        "<table id='requests'><thead><tr><th>day</th><th>decision</th><th>why</th><th>champion</th><th></th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


STYLE = """
:root{--fg:#1d2939;--muted:#667085;--line:#e4e7ec;--bg:#fff;--card:#f9fafb;--blue:#017cee;--green:#12b76a;
--red:#d92d20;--amber:#f79009}
*{box-sizing:border-box}body{font-family:Inter,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
padding:20px 28px 40px;color:var(--fg);background:var(--bg);font-size:14px;line-height:1.45}
h1{font-size:22px;margin:0 0 2px}h2{font-size:16px;margin:28px 0 10px}h3{font-size:15px;margin:0 0 10px;
display:flex;align-items:baseline;gap:8px}.sub{color:var(--muted);margin:0 0 18px}
a{color:var(--blue);text-decoration:none}a:hover{text-decoration:underline}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:14px}
.card{border:1px solid var(--line);border-radius:10px;padding:14px 16px;background:var(--card)}
.card.champion{border-top:4px solid var(--green)}.card.challenger{border-top:4px solid var(--blue)}
.card.previous{border-top:4px solid #98a2b3}.ver{font-size:20px}.link{margin-left:auto;font-size:12px;font-weight:400}
.metrics{display:grid;grid-template-columns:repeat(4,1fr);gap:6px;margin-bottom:10px}
.metric{background:#fff;border:1px solid var(--line);border-radius:6px;padding:5px 7px}
.metric span{display:block;font-size:11px;color:var(--muted)}.metric b{font-size:16px;font-variant-numeric:tabular-nums}
dl{display:grid;grid-template-columns:auto 1fr;gap:3px 10px;margin:0;font-size:13px}dt{color:var(--muted)}dd{margin:0}
.why{color:var(--muted);font-size:12px}.muted{color:var(--muted)}
table{border-collapse:collapse;width:100%;font-size:13px}th{font-weight:600;color:var(--muted);text-align:left;
border-bottom:1px solid var(--line);padding:6px 8px;white-space:nowrap}td{padding:6px 8px;border-bottom:1px solid var(--line);
vertical-align:top}td:first-child,td a{white-space:nowrap}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;line-height:18px;background:#eef4ff;
color:#3538cd;white-space:nowrap}.badge.champion,.badge.ok{background:#ecfdf3;color:#027a48}
.badge.challenger{background:#eff8ff;color:#175cd3}.badge.previous,.badge.muted-b{background:#f2f4f7;color:#475467}
.badge.no{background:#fef3f2;color:#b42318}
.chart{border:1px solid var(--line);border-radius:10px;padding:10px 12px 6px;max-width:940px}
svg{width:100%;height:auto;display:block}.grid{stroke:#eaecf0}.axis{font-size:11px;fill:var(--muted)}
.threshold{stroke:var(--red);stroke-dasharray:5 4;opacity:.6}.thr{fill:var(--red)}
polyline{fill:none;stroke-width:2}.s-share{stroke:var(--blue)}.s-pred{stroke:var(--amber);stroke-dasharray:6 3}
.s-cal{stroke:#7a5af8;stroke-dasharray:2 3}.pt{fill:var(--blue);stroke:#fff;stroke-width:1.5}
.pt.breached{fill:var(--red)}.req{fill:var(--green)}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:var(--muted);padding:4px 0 2px 40px}
.key:before{content:"";display:inline-block;width:16px;height:3px;margin-right:5px;vertical-align:middle;background:var(--blue)}
.key.s-pred:before{background:var(--amber)}.key.s-cal:before{background:#7a5af8}
.key.k-breach:before{width:9px;height:9px;border-radius:50%;background:var(--red)}
.key.k-req:before{width:0;height:0;background:none;border-left:5px solid transparent;border-right:5px solid transparent;
border-top:9px solid var(--green)}
.err{color:var(--red);background:#fef3f2;border-radius:6px;padding:6px 10px}code{font-size:12px}
"""


def render_lifecycle(st: dict[str, Any], *, drift_share_threshold: float = 0.3) -> str:
    """The page for a :meth:`mlops.report.LifecycleState.to_dict`."""
    from mlops.airflow.links import mlflow_ui_url
    from mlops.config import MODEL_NAME

    errors = "".join(f"<p class='err'>{_e(e)}</p>" for e in st["errors"])
    champion = st.get("champion")
    sub = (
        f"champion v{_e(champion['version'])}, trained as of {_fmt(champion.get('as_of'))}"
        if champion
        else "no champion yet"
    )
    n_checks, n_breached = len(st["drift_history"]), sum(1 for h in st["drift_history"] if h.get("breached"))
    n_requested = sum(1 for r in st["retrain_requests"] if r.get("decision") == "requested")
    registry = f"{mlflow_ui_url()}/#/models/{MODEL_NAME}"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>ML lifecycle</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head><body>"
        f"<h1>ML lifecycle · <code>{_e(MODEL_NAME)}</code></h1>"
        f"<p class='sub'>{sub} · {len(st['versions'])} version(s) · {n_checks} drift check(s), {n_breached} past a "
        f"threshold · {n_requested} retraining request(s) · <a href='{_e(registry)}' target='_blank' rel='noopener'>"
        f"MLflow registry ↗</a></p>{errors}"
        "<div class='cards'>"
        + _version_card("Champion", champion, "champion")
        + _version_card("Challenger", st.get("challenger"), "challenger")
        + _version_card("Previous", st.get("previous"), "previous")
        + "</div><h2>Recent versions</h2>"
        + _versions_table(st["versions"])
        + "<h2>Drift history</h2>"
        + _drift_chart(
            st["drift_history"],
            drift_share_threshold,
            {str(r.get("ds")) for r in st["retrain_requests"] if r.get("decision") == "requested"},
        )
        + ("<h2>Latest checks</h2>" + _checks_table(st["drift_history"]) if st["drift_history"] else "")
        + "<h2>Retraining requests</h2>"
        + _requests_table(st["retrain_requests"])
        + "</body></html>"
    )


@app.get("/lifecycle", response_class=HTMLResponse)
async def lifecycle(user: GetUserDep) -> HTMLResponse:
    from mlops.monitoring import DriftParams
    from mlops.report import lifecycle_state

    st = (await asyncio.to_thread(lifecycle_state)).to_dict()
    return HTMLResponse(render_lifecycle(st, drift_share_threshold=DriftParams().drift_share))


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
