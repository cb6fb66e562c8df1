"""The lifecycle at a glance, for every registered model spec (:data:`mlops.spec.model.SPECS`):
champion, challenger, recent versions (with the gate metric in its direction), drift history,
retraining, the latest model card and the audit trail of alias moves; and for every registered
feed (:data:`mlops.spec.feed.FEEDS`) the days curated and quarantined.

Shared by the Airflow plugin's "ML lifecycle" page and the demo's summary. Every source is
optional: a stage that has not run yet shows as empty, never as an error.

* :func:`lifecycle_state` collects one model's state (MLflow registry, drift history, retraining
  ledger); :func:`platform_state` every model's and every feed's; :func:`lifecycle_summary`
  prints it for the demo;
* :func:`lifecycle_page` turns it into the page's view model: plain data (labels, formatted
  values, the drift chart's geometry) of one model, :func:`platform_page` of them all, for
  ``plugins/templates/lifecycle.html``. The plugin passes
  its links (:class:`PageLinks`) and keeps only routes, security and rendering.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops.config import CHALLENGER, CHAMPION, MODEL_NAME, PREVIOUS, Settings, get_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlops.spec.feed import FeedSpec
    from mlops.spec.model import ModelSpec

log = logging.getLogger(__name__)

#: Metrics the page shows, by the spec's task (the gate metric first, whatever the task).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "log_loss", "brier"),
    "regression": ("mae", "rmse", "r2"),
}
METRICS = TASK_METRICS["binary"]


def metric_keys(spec: ModelSpec) -> list[str]:
    """The metrics shown for ``spec``'s versions: its gate metric, then its task's others."""
    keys = TASK_METRICS.get(spec.task.name, ())
    return [spec.gate.metric, *(k for k in keys if k != spec.gate.metric)]


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
    #: Days of a feed the training run left out (run tag ``mlops.<feed>.missing_days``, e.g. a
    #: quarantined weather day), by feed; only feeds that recorded some.
    left_out: dict[str, str] = field(default_factory=dict)


@dataclass
class LifecycleState:
    #: Which model: the spec's ref, its registered model, task and gate (metric and direction).
    spec: str = "flight_delay"
    model_name: str = MODEL_NAME
    task: str = "binary"
    gate_metric: str = "roc_auc"
    higher_is_better: bool = True
    metric_keys: list[str] = field(default_factory=lambda: list(METRICS))
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


def _aliases(settings: Settings, name: str) -> dict[str, list[str]]:
    """version -> aliases (:func:`mlops.models.registry.current_aliases` inverted)."""
    from mlops.models.registry import current_aliases

    out: dict[str, list[str]] = {}
    for alias, version in sorted(current_aliases(settings, name).items()):
        out.setdefault(version, []).append(alias)
    return out


_MISSING_DAYS = re.compile(r"^mlops\.(\w+)\.missing_days$")


def _left_out(run_tags: dict[str, str]) -> dict[str, str]:
    """feed -> the days its training run left out (tags ``mlops.<feed>.missing_days``), if any."""
    return {
        m.group(1): days
        for key, days in sorted(run_tags.items())
        if (m := _MISSING_DAYS.match(key)) and days and days != "none"
    }


def _versions(settings: Settings, limit: int, spec: ModelSpec) -> list[ModelVersionInfo]:
    from mlops.models.tracking import client as tracking_client

    # The profile's store for runs and registry alike, as every task writes them (whatever a
    # MLFLOW_REGISTRY_URI in the api-server's environment says).
    client = tracking_client(settings)
    name, shown = spec.model_name, set(metric_keys(spec))
    try:
        found = client.search_model_versions(f"name = '{name}'", max_results=200)
    except Exception as exc:  # no registry yet
        if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
            return []
        raise
    aliases = _aliases(settings, name) if found else {}
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
                metrics = {k: v for k, v in run.data.metrics.items() if k in shown}
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
                left_out=_left_out(run_tags),
            )
        )
    return out


def lifecycle_state(
    settings: Settings | None = None, limit: int = 20, spec: ModelSpec | str | None = None
) -> LifecycleState:
    """Collect what the page shows of the model ``spec`` (default: the flight-delay spec).
    Failures of one source are reported in ``errors``."""
    from mlops.spec.model import model_spec

    s = settings or get_settings()
    model = model_spec(spec)
    state = LifecycleState(
        spec=model.ref,
        model_name=model.model_name,
        task=model.task.name,
        gate_metric=model.gate.metric,
        higher_is_better=model.gate.higher_is_better,
        metric_keys=metric_keys(model),
    )
    try:
        state.versions = _versions(s, limit, model)
        by_alias = {a: v for v in state.versions for a in v.aliases}
        state.champion = by_alias.get(CHAMPION)
        state.challenger = by_alias.get(CHALLENGER)
        state.previous = by_alias.get(PREVIOUS)
    except Exception as exc:
        state.errors.append(f"model registry: {exc}")
    try:
        from mlops.monitoring import history as drift

        history = drift.drift_history(s, model)
        state.drift_history = history.to_dict(orient="records") if history is not None else []
        requests = drift.retrain_requests(s, model)
        state.retrain_requests = requests.to_dict(orient="records") if requests is not None else []
    except ModuleNotFoundError:
        pass
    except Exception as exc:
        state.errors.append(f"drift history: {exc}")
    _governance(state, s)
    if model.lake_folder == model_spec(None).lake_folder:  # the shadow log is read from its folder only
        _shadow(state, s)
    return state


@dataclass
class PlatformState:
    """Every registered model's :class:`LifecycleState` and every registered feed's days."""

    models: list[LifecycleState] = field(default_factory=list)
    #: Per feed: ``feed``, ``curated`` (days), ``quarantined`` (days with a quarantined batch),
    #: ``still_quarantined`` (quarantined and never curated since), ``error``.
    feeds: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"models": [m.to_dict() for m in self.models], "feeds": list(self.feeds)}


_DS = re.compile(r"/ds=(\d{4}-\d{2}-\d{2})(?:/|$)")


def _days(root: str) -> list[str]:
    from mlops import lake

    return sorted({m.group(1) for uri in lake.list_uris(root) if (m := _DS.search(uri))})


def feed_state(feed: FeedSpec, settings: Settings) -> dict[str, Any]:
    """The days of ``feed`` curated and quarantined in the lake (errors reported, never raised)."""
    from mlops import lake, layout

    out: dict[str, Any] = {"feed": feed.name, "curated": [], "quarantined": [], "still_quarantined": []}
    try:
        out["curated"] = _days(feed.curated_root(settings.lake_uri))
        out["quarantined"] = _days(lake.join(settings.lake_uri, layout.QUARANTINE, feed.name))
    except FileNotFoundError:
        pass
    except Exception as exc:
        out["error"] = f"feed {feed.name}: {exc}"
    out["still_quarantined"] = sorted(set(out["quarantined"]) - set(out["curated"]))
    return out


def platform_state(settings: Settings | None = None, limit: int = 20) -> PlatformState:
    """:func:`lifecycle_state` of every spec of :data:`~mlops.spec.model.SPECS` and
    :func:`feed_state` of every feed of :data:`~mlops.spec.feed.FEEDS`."""
    from mlops.spec.feed import registered_feeds
    from mlops.spec.model import SPECS

    s = settings or get_settings()
    return PlatformState(
        models=[lifecycle_state(s, limit, name) for name in SPECS],
        feeds=[feed_state(feed, s) for feed in registered_feeds()],
    )


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
            state.model_card = card.load(with_card.version, settings=settings, name=state.model_name)
    except Exception as exc:
        state.errors.append(f"model card: {exc}")
    try:
        events = audit.read(state.model_name, settings, limit=AUDIT_ROWS)
        state.audit = [e.as_dict() for e in reversed(events)]
    except Exception as exc:
        state.errors.append(f"audit trail: {exc}")


def lifecycle_summary(settings: Settings | None = None) -> list[str]:
    """Short text lines for the demo's summary: every feed, then every model."""
    platform = platform_state(settings)
    lines = []
    for feed in platform.feeds:
        still = ", ".join(feed["still_quarantined"]) or "none"
        lines.append(
            f"feed {feed['feed']}: {len(feed['curated'])} day(s) curated, {len(feed['quarantined'])} "
            f"quarantined (still quarantined: {still})"
        )
        if feed.get("error"):
            lines.append(f"warning: {feed['error']}")
    for state in platform.models:
        lines.extend(_model_summary(state))
    return lines


def _model_summary(state: LifecycleState) -> list[str]:
    direction = "higher" if state.higher_is_better else "lower"
    lines = [
        f"model {state.model_name} (spec {state.spec}, gate {state.gate_metric}, {direction} is better): "
        f"{len(state.versions)} version(s)"
    ]
    for v in reversed(state.versions):
        metrics = ", ".join(f"{k}={v.metrics[k]:.3f}" for k in state.metric_keys if k in v.metrics)
        aliases = f" @{', @'.join(v.aliases)}" if v.aliases else ""
        left = "".join(f" left out {feed}: {days}" for feed, days in v.left_out.items())
        lines.append(f"  v{v.version}{aliases} as_of={v.as_of} trigger={v.trigger} {metrics}{left}")
    lines.append(f"  champion: v{state.champion.version}" if state.champion else "  champion: none")
    drifted = [h for h in state.drift_history if h.get("drift_detected")]
    breached = [h for h in state.drift_history if h.get("breached")]
    lines.append(
        f"  drift checks: {len(state.drift_history)} ({len(drifted)} with data drift, "
        f"{len(breached)} past a threshold)"
    )
    for r in state.retrain_requests:
        lines.append(f"  retrain request {r.get('ds')}: {r.get('decision')} — {r.get('reason')}")
    lines.extend(f"  warning: {e}" for e in state.errors)
    return lines


# --------------------------------------------------------------------------------------------------
# The "ML lifecycle" page's view model: plain data for plugins/templates/lifecycle.html
# --------------------------------------------------------------------------------------------------

METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "log_loss": "log loss",
    "brier": "Brier",
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
}
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


def _version_view(info: dict[str, Any], links: PageLinks, keys: list[str] | None = None) -> dict[str, Any]:
    """One model version as the cards and the versions table show it (metrics ``keys``)."""
    promotion = info.get("promotion")
    has_run = info.get("run_id") and info.get("experiment_id")
    return {
        "version": info["version"],
        "aliases": list(info.get("aliases") or []),
        "run_href": links.run(str(info["experiment_id"]), str(info["run_id"])) if has_run else None,
        "metrics": [
            {"label": METRIC_LABELS.get(key, key), "value": display(info["metrics"].get(key))}
            for key in keys or METRICS
        ],
        "left_out": [f"{feed}: {days}" for feed, days in (info.get("left_out") or {}).items()],
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
            "performance": display(_number(row.get("performance", row.get("roc_auc")))),
            "performance_metric": str(row.get("performance_metric") or "roc_auc"),
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
    keys = list(state.get("metric_keys") or METRICS)
    gate_metric = state.get("gate_metric") or keys[0]
    better = "higher" if state.get("higher_is_better", True) else "lower"
    return {
        "spec": str(state.get("spec") or "flight_delay"),
        "model_name": str(state.get("model_name") or MODEL_NAME),
        "task": str(state.get("task") or "binary"),
        "gate": f"{METRIC_LABELS.get(gate_metric, gate_metric)} on the holdout, {better} is better",
        "anchor": "",
        "champion": _version_view(champion, links, keys) if champion else None,
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
                "version": _version_view(state[kind], links, keys) if state.get(kind) else None,
            }
            for title, kind in CARDS
        ],
        "metric_labels": [
            METRIC_LABELS.get(key, key) + (" (gate)" if key == gate_metric else "") for key in keys
        ],
        "versions": [_version_view(v, links, keys) for v in state["versions"]],
        "chart": drift_chart(history, drift_share_threshold, requested),
        "checks": _check_rows(history, links) if history else [],
        "requests": _request_rows(requests, links),
        "model_card": _card_view(state.get("model_card"), links),
        "audit": [_audit_row(e) for e in state.get("audit") or []],
        "shadow": [_shadow_row(c) for c in state.get("shadow") or []],
        "shadow_days": _day_span(state.get("shadow_days") or []),
    }


#: Days listed by name in a feed's row (the rest are counted).
FEED_DAYS_LISTED = 12


def _feed_view(feed: dict[str, Any]) -> dict[str, Any]:
    still = list(feed.get("still_quarantined") or [])
    quarantined = list(feed.get("quarantined") or [])
    curated = list(feed.get("curated") or [])
    return {
        "feed": str(feed.get("feed")),
        "n_curated": len(curated),
        "curated_span": _day_span(curated),
        "n_quarantined": len(quarantined),
        "still_quarantined": still[-FEED_DAYS_LISTED:],
        "more_still": max(len(still) - FEED_DAYS_LISTED, 0),
        "fixed": [d for d in quarantined if d not in set(still)][-FEED_DAYS_LISTED:],
        "error": str(feed.get("error") or ""),
    }


def platform_page(
    state: dict[str, Any],
    *,
    drift_share_threshold: float = 0.3,
    links: Callable[[dict[str, Any]], PageLinks] | PageLinks | None = None,
) -> dict[str, Any]:
    """The whole page for a :meth:`PlatformState.to_dict` (or one model's
    :meth:`LifecycleState.to_dict`): one section per model (:func:`lifecycle_page`), the feeds'
    days, and a contents line. ``links`` may be a function of a model's state (its registry link)."""
    models = state["models"] if "models" in state else [state]
    sections = []
    for i, model in enumerate(models):
        model_links = links(model) if callable(links) else links
        page = lifecycle_page(model, drift_share_threshold=drift_share_threshold, links=model_links)
        page["anchor"] = "" if i == 0 else f"-{page['spec']}"
        sections.append(page)
    return {
        "models": sections,
        "feeds": [_feed_view(f) for f in state.get("feeds") or []],
        "title": ", ".join(m["model_name"] for m in sections),
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
