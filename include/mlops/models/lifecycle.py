"""The lifecycle at a glance: champion, challenger, recent versions, drift history, retraining,
the latest model card and the audit trail of alias moves.

Shared by the Airflow plugin's "ML lifecycle" page and the demo's summary. Every source is
optional: a stage that has not run yet shows as empty, never as an error.

* :func:`lifecycle_state` collects the state (MLflow registry, drift history, retraining ledger);
  :func:`lifecycle_summary` prints it for the demo;
* :func:`lifecycle_page` turns it into the page's view model: plain data (labels, formatted
  values, the drift chart's geometry) for ``plugins/templates/lifecycle.html``. The plugin passes
  its links (:class:`PageLinks`) and keeps only routes, security and rendering.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops.config import CHALLENGER, CHAMPION, MODEL_NAME, PREVIOUS, Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

METRICS = ("roc_auc", "pr_auc", "log_loss", "brier")


@dataclass
class ModelVersionInfo:
    version: str
    aliases: list[str]
    run_id: str | None
    created: str
    metrics: dict[str, float] = field(default_factory=dict)
    as_of: str | None = None
    #: What started the training run: ``retrain request (ds=...)``, ``schedule``, ``backfill``...
    trigger: str | None = None
    #: Why a ``retrain_request`` fired, when one did (the drift check's reason).
    trigger_reason: str | None = None
    experiment_id: str | None = None
    #: The registry gate's verdict (``promoted``/``rejected``) and its reason.
    promotion: str | None = None
    promotion_reason: str | None = None
    #: The version has a model card (:mod:`mlops.models.card`) logged.
    has_card: bool = False


@dataclass
class LifecycleState:
    champion: ModelVersionInfo | None = None
    challenger: ModelVersionInfo | None = None
    previous: ModelVersionInfo | None = None
    versions: list[ModelVersionInfo] = field(default_factory=list)
    drift_history: list[dict[str, Any]] = field(default_factory=list)
    retrain_requests: list[dict[str, Any]] = field(default_factory=list)
    #: The newest version's model card (:func:`mlops.models.card.build`), if one was logged.
    model_card: dict[str, Any] | None = None
    #: The newest events of the audit trail (:mod:`mlops.models.audit`), newest first.
    audit: list[dict[str, Any]] = field(default_factory=list)
    #: Champion vs challenger on the shadow traffic of the newest logged days
    #: (:func:`mlops.monitoring.shadow.shadow_summary`), and those days.
    shadow: list[dict[str, Any]] = field(default_factory=list)
    shadow_days: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Airflow run-id prefixes -> how the training run was started.
_RUN_TYPES = {
    "scheduled__": "schedule",
    "backfill__": "backfill",
    "manual__": "manual",
    "asset_triggered__": "asset event",
    "dataset_triggered__": "asset event",
}


def _trigger(tags: dict[str, str]) -> tuple[str | None, str | None]:
    """(what started the training run, why) from the run's tags."""
    if tags.get("retrain.requested") == "true" or tags.get("retrain.reason"):
        ds = tags.get("retrain.ds")
        return (f"retrain request (ds={ds})" if ds else "retrain request"), tags.get("retrain.reason") or None
    run_id = tags.get("airflow.run_id", "")
    for prefix, kind in _RUN_TYPES.items():
        if run_id.startswith(prefix):
            return kind, None
    return (run_id or None), None


def _aliases(client: Any, name: str) -> dict[str, list[str]]:
    """version -> aliases. (``search_model_versions`` leaves ``aliases`` empty: ask the model.)"""
    out: dict[str, list[str]] = {}
    try:
        model = client.get_registered_model(name)
    except Exception as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
            return out
        raise
    for alias, version in sorted((getattr(model, "aliases", None) or {}).items()):
        out.setdefault(str(version), []).append(alias)
    return out


def _versions(settings: Settings, limit: int) -> list[ModelVersionInfo]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    try:
        found = client.search_model_versions(f"name = '{MODEL_NAME}'", max_results=200)
    except Exception as exc:  # no registry yet
        if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
            return []
        raise
    aliases = _aliases(client, MODEL_NAME) if found else {}
    found = sorted(found, key=lambda v: int(v.version), reverse=True)[:limit]
    order = {CHAMPION: 0, CHALLENGER: 1, PREVIOUS: 2}
    out = []
    for mv in found:
        metrics: dict[str, float] = {}
        run_tags: dict[str, str] = {}
        experiment_id = None
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
                metrics = {k: v for k, v in run.data.metrics.items() if k in METRICS}
                run_tags = dict(run.data.tags)
                experiment_id = run.info.experiment_id
            except Exception as exc:
                log.warning("run %s of version %s unreadable: %s", mv.run_id, mv.version, exc)
        tags = dict(mv.tags or {})
        trigger, why = _trigger(run_tags)
        out.append(
            ModelVersionInfo(
                version=str(mv.version),
                aliases=sorted(aliases.get(str(mv.version), []), key=lambda a: (order.get(a, 9), a)),
                run_id=mv.run_id,
                created=str(mv.creation_timestamp),
                metrics=metrics,
                as_of=tags.get("mlops.as_of") or run_tags.get("mlops.as_of"),
                trigger=trigger,
                trigger_reason=why,
                experiment_id=experiment_id,
                promotion=tags.get("promotion.decision"),
                promotion_reason=tags.get("promotion.reason"),
                has_card=bool(tags.get("mlops.model_card")),
            )
        )
    return out


def lifecycle_state(settings: Settings | None = None, limit: int = 20) -> LifecycleState:
    """Collect what the page shows. Failures of one source are reported in ``errors``."""
    s = settings or get_settings()
    state = LifecycleState()
    try:
        state.versions = _versions(s, limit)
        by_alias = {a: v for v in state.versions for a in v.aliases}
        state.champion = by_alias.get(CHAMPION)
        state.challenger = by_alias.get(CHALLENGER)
        state.previous = by_alias.get(PREVIOUS)
    except Exception as exc:
        state.errors.append(f"model registry: {exc}")
    try:
        from mlops.monitoring import history as drift

        history = drift.drift_history(s)
        state.drift_history = history.to_dict(orient="records") if history is not None else []
        requests = drift.retrain_requests(s)
        state.retrain_requests = requests.to_dict(orient="records") if requests is not None else []
    except ModuleNotFoundError:
        pass
    except Exception as exc:
        state.errors.append(f"drift history: {exc}")
    _governance(state, s)
    _shadow(state, s)
    return state


#: Days of online prediction log the page's shadow comparison covers (the newest ones).
SHADOW_DAYS = 7


def _shadow(state: LifecycleState, settings: Settings) -> None:
    """Champion vs challenger on the newest days of shadow traffic (errors reported)."""
    from mlops.monitoring import shadow

    try:
        state.shadow_days = shadow.recent_days(settings, SHADOW_DAYS)
        state.shadow = shadow.shadow_summary(state.shadow_days, settings) if state.shadow_days else []
    except Exception as exc:
        state.errors.append(f"shadow traffic: {exc}")


#: Audit events the page lists (the CLI, ``mlops audit``, prints them all).
AUDIT_ROWS = 30


def _governance(state: LifecycleState, settings: Settings) -> None:
    """The newest version's model card and the audit trail (each optional, errors reported)."""
    from mlops.models import audit, card

    try:
        with_card = next((v for v in state.versions if v.has_card), None)
        if with_card is not None:
            state.model_card = card.load(with_card.version, settings=settings)
    except Exception as exc:
        state.errors.append(f"model card: {exc}")
    try:
        events = audit.read(MODEL_NAME, settings, limit=AUDIT_ROWS)
        state.audit = [e.as_dict() for e in reversed(events)]
    except Exception as exc:
        state.errors.append(f"audit trail: {exc}")


def lifecycle_summary(settings: Settings | None = None) -> list[str]:
    """Short text lines for the demo's summary."""
    state = lifecycle_state(settings)
    lines = [f"model versions: {len(state.versions)}"]
    for v in reversed(state.versions):
        metrics = ", ".join(f"{k}={val:.3f}" for k, val in sorted(v.metrics.items()))
        aliases = f" @{', @'.join(v.aliases)}" if v.aliases else ""
        lines.append(f"  v{v.version}{aliases} as_of={v.as_of} trigger={v.trigger} {metrics}")
    lines.append(f"champion: v{state.champion.version}" if state.champion else "champion: none")
    drifted = [h for h in state.drift_history if h.get("drift_detected")]
    breached = [h for h in state.drift_history if h.get("breached")]
    lines.append(
        f"drift checks: {len(state.drift_history)} ({len(drifted)} with data drift, "
        f"{len(breached)} past a threshold)"
    )
    for r in state.retrain_requests:
        lines.append(f"  retrain request {r.get('ds')}: {r.get('decision')} — {r.get('reason')}")
    lines.extend(f"warning: {e}" for e in state.errors)
    return lines


# --------------------------------------------------------------------------------------------------
# The "ML lifecycle" page's view model: plain data for plugins/templates/lifecycle.html
# --------------------------------------------------------------------------------------------------

METRIC_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "log_loss": "log loss", "brier": "Brier"}
CARDS = (("Champion", "champion"), ("Challenger", "challenger"), ("Previous", "previous"))
#: The chart's series: history column, CSS class, legend.
SERIES = (
    ("drift_share", "s-share", "share of drifted features"),
    ("prediction_drift", "s-pred", "prediction drift (Wasserstein)"),
    ("calibration_error", "s-cal", "calibration error (ECE)"),
)
CHART_WIDTH, CHART_HEIGHT = 900, 260
#: The plot area's margins inside the chart (left, right, top, bottom).
CHART_MARGINS = (44, 16, 16, 34)


def _no_report_link(report_uri: str) -> str | None:
    return None


def _no_run_link(experiment_id: str, run_id: str) -> str | None:
    return None


@dataclass(frozen=True)
class PageLinks:
    """Where the page links to. The plugin builds them (:mod:`mlops.airflow.links`): this module
    only calls them, so the view model stays free of Airflow and of the plugin's routes."""

    #: A report in the lake -> the URL that serves it (None: not served).
    report: Callable[[str], str | None] = _no_report_link
    #: (experiment id, run id) -> the MLflow run's page.
    run: Callable[[str, str], str | None] = _no_run_link
    #: The registered model's page in the MLflow UI.
    registry: str = ""


def display(value: Any, digits: int = 3) -> str:
    """A value as a table cell: ``—`` for nothing, ``yes``/``no``, floats to ``digits`` places."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _report_href(report_uri: Any, links: PageLinks) -> str | None:
    return links.report(str(report_uri)) if report_uri else None


def _version_view(info: dict[str, Any], links: PageLinks) -> dict[str, Any]:
    """One model version as the cards and the versions table show it."""
    promotion = info.get("promotion")
    has_run = info.get("run_id") and info.get("experiment_id")
    return {
        "version": info["version"],
        "aliases": list(info.get("aliases") or []),
        "run_href": links.run(str(info["experiment_id"]), str(info["run_id"])) if has_run else None,
        "metrics": [
            {"label": label, "value": display(info["metrics"].get(key))}
            for key, label in METRIC_LABELS.items()
        ],
        "as_of": display(info.get("as_of")),
        "trigger": display(info.get("trigger")),
        "trigger_reason": info.get("trigger_reason") or "",
        "promotion": promotion or "",
        "promotion_kind": "ok" if promotion == "promoted" else "no",
        "promotion_reason": info.get("promotion_reason") or "",
    }


@dataclass(frozen=True)
class _ChartScale:
    """Days to x and values to y in the chart's plot area."""

    days: list[date]
    ymax: float

    def x(self, day: date) -> float:
        left, right, _, _ = CHART_MARGINS
        span = max((self.days[-1] - self.days[0]).days, 1)
        share = (day - self.days[0]).days / span if len(self.days) > 1 else 0.5
        return left + (CHART_WIDTH - left - right) * share

    def y(self, value: float) -> float:
        _, _, top, bottom = CHART_MARGINS
        return top + (CHART_HEIGHT - top - bottom) * (1 - min(value, self.ymax) / self.ymax)


def _x_ticks(xs: list[float]) -> list[int]:
    """The first and last day, and days in between at least 90px from their neighbours."""
    ticks: list[int] = []
    for i, x in enumerate(xs):
        if i in (0, len(xs) - 1) or ((not ticks or x - xs[ticks[-1]] >= 90) and xs[-1] - x >= 90):
            ticks.append(i)
    return ticks


def _chart_axes(scale: _ChartScale, threshold: float) -> dict[str, Any]:
    """The horizontal grid, the threshold line and the day ticks."""
    xs = [scale.x(day) for day in scale.days]
    last = len(scale.days) - 1
    return {
        "grid": [
            {
                "y": f"{scale.y(t * scale.ymax):.1f}",
                "label_y": f"{scale.y(t * scale.ymax) + 4:.1f}",
                "label": f"{t * scale.ymax:.2g}",
            }
            for t in (0.0, 0.25, 0.5, 0.75, 1.0)
        ],
        "threshold": {
            "y": f"{scale.y(threshold):.1f}",
            "label_y": f"{scale.y(threshold) - 5:.1f}",
            "value": f"{threshold:g}",
        },
        "xtick_y": CHART_HEIGHT - 12,
        "xticks": [
            {
                "x": f"{xs[i]:.1f}",
                "anchor": "start" if i == 0 else "end" if i == last else "middle",
                "text": scale.days[i].isoformat(),
            }
            for i in _x_ticks(xs)
        ],
    }


def _chart_lines(rows: list[dict[str, Any]], scale: _ChartScale) -> list[dict[str, str]]:
    """One polyline per series that has at least two points."""
    lines = []
    for key, css_class, _ in SERIES:
        points = [
            (scale.x(day), scale.y(value))
            for day, row in zip(scale.days, rows, strict=True)
            if (value := _number(row.get(key))) is not None
        ]
        if len(points) > 1:
            lines.append({"cls": css_class, "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in points)})
    return lines


def _chart_point(day: date, row: dict[str, Any], scale: _ChartScale, requested: bool) -> dict[str, Any]:
    """A checked day's dot (its tooltip says what the check found) and its request marker."""
    share = _number(row["drift_share"]) or 0.0
    decision = row.get("retrain_decision") or ""
    tip = (
        f"{day.isoformat()}: drift share {share:.2f} ({row.get('n_drifted')}/{row.get('n_features')} features)"
        f", prediction drift {display(_number(row.get('prediction_drift')))}"
        f", ECE {display(_number(row.get('calibration_error')))}"
        f"; breaches: {row.get('breaches') or 'none'}; retraining: {decision or 'none'}"
    )
    marker = None
    if decision == "requested" or requested:
        x, y = scale.x(day), CHART_MARGINS[2] + 2
        marker = {
            "d": f"M{x - 6:.1f},{y:.1f} L{x + 6:.1f},{y:.1f} L{x:.1f},{y + 10:.1f} Z",
            "tip": f"{day.isoformat()}: retraining requested",
        }
    return {
        "cls": "pt breached" if row.get("breached") else "pt",
        "cx": f"{scale.x(day):.1f}",
        "cy": f"{scale.y(share):.1f}",
        "tip": tip,
        "requested": marker,
    }


def drift_chart(
    history: list[dict[str, Any]], threshold: float, requested: set[str] | None = None
) -> dict[str, Any] | None:
    """The drift chart's geometry: drift share (and prediction drift, calibration error) per
    checked day, the threshold, the breaches and the retraining requests; None without checks."""
    rows = [row for row in history if row.get("ds") and _number(row.get("drift_share")) is not None]
    if not rows:
        return None
    days = [date.fromisoformat(str(row["ds"])[:10]) for row in rows]
    scale = _ChartScale(days, ymax=max(1.0, *(_number(row.get("prediction_drift")) or 0 for row in rows)))
    requested = requested or set()
    legend = [{"cls": css_class, "label": label} for _, css_class, label in SERIES]
    legend += [
        {"cls": "k-breach", "label": "past a threshold"},
        {"cls": "k-req", "label": "retraining requested"},
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_MARGINS[0],
        "right": CHART_WIDTH - CHART_MARGINS[1],
        **_chart_axes(scale, threshold),
        "lines": _chart_lines(rows, scale),
        "points": [
            _chart_point(day, row, scale, day.isoformat() in requested)
            for day, row in zip(days, rows, strict=True)
        ],
        "legend": legend,
    }


def _check_rows(history: list[dict[str, Any]], links: PageLinks, limit: int = 10) -> list[dict[str, Any]]:
    """The latest drift checks, newest first."""
    return [
        {
            "ds": display(row.get("ds")),
            "champion_version": display(row.get("champion_version")),
            "drift_share": display(_number(row.get("drift_share")), 2),
            "prediction_drift": display(_number(row.get("prediction_drift"))),
            "roc_auc": display(_number(row.get("roc_auc"))),
            "calibration_error": display(_number(row.get("calibration_error"))),
            "breached": bool(row.get("breached")),
            "breaches": row.get("breaches") or "",
            "retrain_decision": display(row.get("retrain_decision")),
            "report_href": _report_href(row.get("report_uri"), links),
        }
        for row in list(reversed(history))[:limit]
    ]


def _request_rows(requests: list[dict[str, Any]], links: PageLinks, limit: int = 20) -> list[dict[str, Any]]:
    """The latest retraining decisions, newest first."""
    rows = []
    for request in list(reversed(requests))[:limit]:
        decision = str(request.get("decision") or "")
        features = request.get("drifted_features") or {}
        drifted = (
            ", ".join(f"{k} {float(v):.2f}" for k, v in features.items())
            if isinstance(features, dict)
            else ""
        )
        rows.append(
            {
                "ds": display(request.get("ds")),
                "decision": decision,
                "decision_kind": "ok" if decision == "requested" else "muted-b",
                "reason": request.get("reason") or "",
                "drifted": drifted,
                "champion_version": display(request.get("champion_version")),
                "report_href": _report_href(request.get("report_uri"), links),
            }
        )
    return rows


def lifecycle_page(
    state: dict[str, Any], *, drift_share_threshold: float = 0.3, links: PageLinks | None = None
) -> dict[str, Any]:
    """What the "ML lifecycle" page shows, as plain data (strings, numbers, lists, dicts), for a
    :meth:`LifecycleState.to_dict`. The template escapes every value."""
    links = links or PageLinks()
    history, requests = state["drift_history"], state["retrain_requests"]
    requested = {str(r.get("ds")) for r in requests if r.get("decision") == "requested"}
    champion = state.get("champion")
    return {
        "model_name": MODEL_NAME,
        "champion": _version_view(champion, links) if champion else None,
        "n_versions": len(state["versions"]),
        "n_checks": len(history),
        "n_breached": sum(1 for h in history if h.get("breached")),
        "n_requested": sum(1 for r in requests if r.get("decision") == "requested"),
        "registry_href": links.registry,
        "errors": [str(e) for e in state["errors"]],
        "cards": [
            {
                "title": title,
                "kind": kind,
                "version": _version_view(state[kind], links) if state.get(kind) else None,
            }
            for title, kind in CARDS
        ],
        "metric_labels": list(METRIC_LABELS.values()),
        "versions": [_version_view(v, links) for v in state["versions"]],
        "chart": drift_chart(history, drift_share_threshold, requested),
        "checks": _check_rows(history, links) if history else [],
        "requests": _request_rows(requests, links),
        "model_card": _card_view(state.get("model_card"), links),
        "audit": [_audit_row(e) for e in state.get("audit") or []],
        "shadow": [_shadow_row(c) for c in state.get("shadow") or []],
        "shadow_days": _day_span(state.get("shadow_days") or []),
    }


def _day_span(days: list[str]) -> str:
    return f"{days[0]} … {days[-1]}" if len(days) > 1 else (days[0] if days else "")


def _shadow_row(c: dict[str, Any]) -> dict[str, Any]:
    """One (champion, challenger) pair of versions as the shadow table shows it."""
    share = c.get("agreement_rate")
    return {
        "versions": f"{_v(c.get('champion_version'))} vs {_v(c.get('challenger_version'))}",
        "pairs": int(c.get("pairs") or 0),
        "canary_pairs": int(c.get("canary_pairs") or 0),
        "agreement": "—" if share is None else f"{100 * float(share):.1f}%",
        "mean_diff": display(c.get("mean_score_diff"), 4),
        "mean_abs_diff": display(c.get("mean_abs_score_diff"), 4),
        "labelled": int(c.get("labelled") or 0),
        "champion_auc": display(c.get("champion_roc_auc"), 4),
        "challenger_auc": display(c.get("challenger_roc_auc"), 4),
        "served": f"{c.get('first_served_at') or ''} … {c.get('last_served_at') or ''}".strip(" …"),
    }


def _v(version: Any) -> str:
    return f"v{version}" if version else "none"


def _audit_row(event: dict[str, Any]) -> dict[str, Any]:
    """One audit event as the page's table shows it."""
    context = event.get("context") or {}
    if event.get("kind") == "approval":
        what = f"approval of {_v(event.get('version'))}: {event.get('decision')}"
        kind = "ok" if event.get("decision") == "promote" else "no"
    else:
        what = f"@{event.get('alias')} {_v(event.get('from_version'))} → {_v(event.get('to_version'))}"
        kind = str(event.get("alias") or "")
    return {
        "at": str(event.get("at", "")).replace("T", " ")[:19],
        "what": what,
        "kind": kind,
        "actor": str(event.get("actor", "")),
        "reason": str(event.get("reason", "")),
        "run": "/".join(str(context[k]) for k in ("dag_id", "dag_run_id") if context.get(k)),
    }


def _metric(value: Any) -> str:
    """A card metric: counts as integers (rows 1547), scores to 4 places."""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 2:
        return f"{value:.0f}"
    return display(value, 4)


def _card_view(c: dict[str, Any] | None, links: PageLinks) -> dict[str, Any] | None:
    """The model card as the page shows it (:func:`mlops.models.card.build`'s data)."""
    if not c:
        return None
    m, tr, trig = c.get("metrics") or {}, c.get("training") or {}, c.get("trigger") or {}
    ours, theirs = m.get("challenger") or {}, m.get("champion") or {}
    gate_metric = m.get("gate_metric")
    window, ts, parts = tr.get("window") or {}, tr.get("training_set") or {}, tr.get("partitions") or {}
    listed = list(parts.get("list") or [])
    shown = listed if len(listed) <= 6 else [*listed[:3], *listed[-3:]]
    has_run = c.get("run_id") and c.get("experiment_id")
    if trig.get("kind") == "retrain_request":
        why = f"drift request of {trig.get('day')}: {trig.get('reason')}"
        drifted = ", ".join(list(trig.get("drifted_features") or {})[:8])
    else:
        why, drifted = f"{trig.get('kind', '—')} run {trig.get('airflow_run_id') or ''}".strip(), ""
    gate = c.get("gate") or {}
    return {
        "version": c.get("version"),
        "run_href": links.run(str(c["experiment_id"]), str(c["run_id"])) if has_run else None,
        "intended_use": c.get("intended_use") or "—",
        "task": c.get("task") or "",
        "label": (c.get("label") or {}).get("name") or "—",
        "label_definition": (c.get("label") or {}).get("definition") or "",
        "verdict": gate.get("reason") or "—",
        "champion": _v(m.get("champion_version")),
        "metrics": [
            {
                "name": key + (" (gate)" if key == gate_metric else ""),
                "ours": _metric(ours.get(key)),
                "theirs": _metric(theirs.get(key)),
            }
            for key in sorted(set(ours) | set(theirs), key=lambda k: (k != gate_metric, k))
        ],
        "as_of": display(tr.get("as_of")),
        "window": f"{window.get('start')}..{window.get('holdout_start')}" if window else "—",
        "holdout": f"{window.get('holdout_start')}..{window.get('end')}" if window else "—",
        "rows": display(ts.get("rows")),
        "data_hash": display(ts.get("data_hash")),
        "partitions": f"{parts.get('read', 0)} read, {len(parts.get('missing') or [])} absent",
        "digest": display(parts.get("digest")),
        "partition_rows": [
            {"ds": p.get("ds"), "rows": display(p.get("rows")), "sha256": str(p.get("sha256") or "")[:16]}
            for p in shown
        ],
        "more_partitions": max(len(listed) - len(shown), 0),
        "feature_service": display(c.get("feature_service")),
        "n_features": len(c.get("features") or []),
        "checks": [
            {"name": ch.get("name"), "ok": bool(ch.get("passed")), "detail": str(ch.get("detail", ""))}
            for ch in c.get("behavioural_checks") or []
        ],
        "why": why,
        "drifted": drifted,
        "limits": [str(x) for x in c.get("known_limits") or []],
    }
