"""Asset events as tasks read them: which events a run got, the days they carry, the retrain request.

Used inside task bodies (``train_model.plan``, ``materialize_features.plan``); standard library
only, so importing it costs nothing at parse time. An event is Airflow's ``AssetEventResult`` (or a
plain dict with the same keys, as tests and the REST API give them); ``triggering_asset_events`` is
the run's context value, a mapping asset -> events, or a plain list of events.

- :func:`partition_days` - the ``ds`` of every triggering event, plus those of events that arrived
  while the run was queued (the apache/airflow#56050 workaround, see there);
- :func:`request_context` - the retrain request behind a training run (``retrain_request`` for
  ``train_model``, ``<model>_retrain_request`` for another model's, e.g. ``train_air_time``), as
  MLflow tags;
- :func:`timestamps` - when each triggering event was emitted.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

#: Name of the asset ``monitor_drift`` emits through the storm guard (:mod:`mlops.airflow.assets`):
#: the default model's request. Another model's is ``<model>_retrain_request``
#: (:func:`mlops.airflow.assets.retrain_request_asset`), passed to :func:`request_context`.
RETRAIN_REQUEST = "retrain_request"


def field(event: Any, name: str) -> Any:
    """Attribute ``name`` of an event object, or key ``name`` of an event dict (None when absent)."""
    if isinstance(event, dict):
        return event.get(name)
    return getattr(event, name, None)


def extra(event: Any) -> dict[str, Any]:
    """The event's metadata (``{}`` when it has none)."""
    return dict(field(event, "extra") or {})


def asset_name(event: Any) -> str | None:
    """The name of the asset the event is about (None when the event does not say)."""
    asset = field(event, "asset")
    return None if asset is None else field(asset, "name")


def all_events(triggering_asset_events: Any) -> list[Any]:
    """Every event of the run, whatever its asset, in the order Airflow gives them."""
    if not triggering_asset_events:
        return []
    if hasattr(triggering_asset_events, "values"):
        return [event for events in triggering_asset_events.values() for event in events]
    return list(triggering_asset_events)


def events_of(triggering_asset_events: Any, name: str) -> list[Any]:
    """The run's events about asset ``name`` (an event or key that names no asset counts as one)."""
    if not triggering_asset_events:
        return []
    if not hasattr(triggering_asset_events, "items"):
        return [e for e in triggering_asset_events if asset_name(e) in (name, None)]
    out: list[Any] = []
    for key, events in triggering_asset_events.items():
        if getattr(key, "name", key) in (name, None):
            out.extend(events)
        else:
            out.extend(e for e in events if asset_name(e) == name)
    return out


def timestamps(triggering_asset_events: Any) -> list[Any]:
    """When each of the run's events was emitted (wall clock), in Airflow's order."""
    return [field(event, "timestamp") for event in all_events(triggering_asset_events)]


def partition_days(
    triggering_asset_events: Any, inlet_events: Any = None, asset: Any = None, run_after: Any = None
) -> list[str]:
    """The sorted distinct ``ds`` of the run's events, plus those that arrived while it was queued.

    Airflow 3.3 queues one row per (asset, DAG): an event that arrives while that row waits
    (``max_active_runs``) is not consumed by the run the row creates (its events end at the row's
    time) and, the row deleted, triggers no run either (apache/airflow#56050). So when the run was
    asset-triggered, the events of ``asset`` after ``run_after`` (read through the task's
    ``inlet_events``; the task must declare ``asset`` as an inlet) count too. Events without a
    ``ds`` in their metadata are ignored; ``[]`` when no event carries one.
    """
    events = all_events(triggering_asset_events)
    if events and run_after is not None and inlet_events is not None and asset is not None:
        events += list(inlet_events[asset].after(run_after.isoformat()))
    return sorted({str(extra(e)["ds"]) for e in events if extra(e).get("ds")})


def request_context(triggering_asset_events: Any, asset: Any = RETRAIN_REQUEST) -> dict[str, str]:
    """The retrain request behind an asset-triggered training run, as MLflow tags.

    ``asset`` is the model's request asset, by name or as the ``Asset`` itself: ``retrain_request``
    (the default) for ``train_model``, the spec's ``retrain_request_asset(model)`` for another
    model's training DAG (:func:`mlops.airflow.training_dag.training_tasks` passes it). Events of any
    other asset are no request (another model's request, a curated partition, a schedule). Several requests queued for one run are all listed; the latest one's metadata is used. Returns
    ``{}`` for runs no request triggered (scheduled, backfill, manual). Keys (all strings):
    ``retrain.requested``, ``retrain.reason``, ``retrain.report_uri``, ``retrain.drifted_features``
    (JSON name -> score), ``retrain.window``, ``retrain.as_of``, ``retrain.ds``,
    ``retrain.signature``, ``retrain.data_version``, ``retrain.champion_version``,
    ``retrain.request_id``, ``retrain.source``, ``retrain.events`` and, for several requests,
    ``retrain.request_ids`` (JSON list, oldest first).
    """
    name = asset if isinstance(asset, str) else field(asset, "name")
    if not name:
        raise ValueError(f"request_context: asset {asset!r} has no name; pass the request asset or its name")
    events = [e for e in events_of(triggering_asset_events, name) if extra(e)]
    if not events:
        return {}
    events.sort(key=lambda e: str(field(e, "timestamp") or ""))
    tags = _request_tags(extra(events[-1]))
    tags["retrain.source"] = (
        f"{field(events[-1], 'source_dag_id') or ''}/{field(events[-1], 'source_run_id') or ''}"
    )
    tags["retrain.events"] = str(len(events))
    if len(events) > 1:
        tags["retrain.request_ids"] = json.dumps(_request_ids(events))
    return {key: value[:5000] for key, value in tags.items()}


def _request_tags(request: dict[str, Any]) -> dict[str, str]:
    """The tags of one request's metadata (see ``mlops.monitoring.guard.request_extra``)."""

    def text(key: str) -> str:
        return str(request.get(key) or "")

    return {
        "retrain.requested": "true",
        "retrain.reason": text("reason"),
        "retrain.report_uri": text("report_uri"),
        "retrain.drifted_features": json.dumps(request.get("drifted_features") or {}, sort_keys=True),
        "retrain.window": f"{request.get('window_start')}..{request.get('window_end')}",
        "retrain.as_of": text("as_of"),
        "retrain.ds": text("ds"),
        "retrain.signature": text("signature"),
        "retrain.data_version": text("data_version"),
        "retrain.champion_version": text("champion_version"),
        "retrain.request_id": text("request_id"),
    }


def _request_ids(events: Iterable[Any]) -> list[Any]:
    return [extra(e).get("request_id") for e in events]
