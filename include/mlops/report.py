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
    trigger: str | None = None


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


def _versions(settings: Settings, limit: int) -> list[ModelVersionInfo]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    try:
        found = client.search_model_versions(f"name = '{MODEL_NAME}'", max_results=200)
    except Exception as exc:  # no registry yet
        if "RESOURCE_DOES_NOT_EXIST" in str(exc) or "not found" in str(exc).lower():
            return []
        raise
    found = sorted(found, key=lambda v: int(v.version), reverse=True)[:limit]
    out = []
    for mv in found:
        metrics: dict[str, float] = {}
        if mv.run_id:
            try:
                run = client.get_run(mv.run_id)
                metrics = {
                    k: v for k, v in run.data.metrics.items() if k.split(".")[-1] in METRICS or k in METRICS
                }
            except Exception as exc:
                log.warning("run %s of version %s unreadable: %s", mv.run_id, mv.version, exc)
        tags = dict(mv.tags or {})
        out.append(
            ModelVersionInfo(
                version=str(mv.version),
                aliases=list(getattr(mv, "aliases", []) or []),
                run_id=mv.run_id,
                created=str(mv.creation_timestamp),
                metrics=metrics,
                as_of=tags.get("as_of"),
                trigger=tags.get("trigger"),
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
    lines.append(f"drift checks: {len(state.drift_history)} ({len(drifted)} with drift)")
    for r in state.retrain_requests:
        lines.append(f"  retrain request {r.get('ds')}: {r.get('decision')} — {r.get('reason')}")
    lines.extend(f"warning: {e}" for e in state.errors)
    return lines
