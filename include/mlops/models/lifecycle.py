"""The lifecycle at a glance: champion, challenger, recent versions, drift history, retraining.

Shared by the Airflow plugin's "ML lifecycle" page and the demo's summary. Every source is
optional: a stage that has not run yet shows as empty, never as an error.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.config import CHALLENGER, CHAMPION, MODEL_NAME, PREVIOUS, Settings, get_settings

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


@dataclass
class LifecycleState:
    champion: ModelVersionInfo | None = None
    challenger: ModelVersionInfo | None = None
    previous: ModelVersionInfo | None = None
    versions: list[ModelVersionInfo] = field(default_factory=list)
    drift_history: list[dict[str, Any]] = field(default_factory=list)
    retrain_requests: list[dict[str, Any]] = field(default_factory=list)
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
        from mlops import monitoring

        history = monitoring.drift_history(s)
        state.drift_history = history.to_dict(orient="records") if history is not None else []
        requests = monitoring.retrain_requests(s)
        state.retrain_requests = requests.to_dict(orient="records") if requests is not None else []
    except ModuleNotFoundError:
        pass
    except Exception as exc:
        state.errors.append(f"drift history: {exc}")
    return state


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
