"""Where checks leave their state: the report folders, the history table and the request ledger.

Each model spec has its own, under its model root (:func:`mlops.layout.model_root` of the spec's
``lake_folder``: the lake itself for the flight-delay spec, ``{lake}/models/<name>`` otherwise):

- ``{root}/reports/drift/ds=YYYY-MM-DD/`` - a day's ``report.html`` and ``drift.json``;
- ``{root}/reports/drift/history.parquet`` - one row per checked day (:data:`HISTORY_COLUMNS`),
  the latest check's metrics, and the day's retraining decision (:func:`day_decision`);
- ``{root}/reports/drift/requests/ledger.json`` - every decision of the spec's storm guard
  (:data:`REQUEST_COLUMNS`), requested or suppressed, with its reasons.

Every function takes ``spec`` (a :class:`~mlops.spec.model.ModelSpec`, a registered name or an
import path; ``None``: the flight-delay spec). Writers hold the spec's
:func:`mlops.monitoring.guard.guard_lock`; readers (the plugin, the demo) do not.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlops import lake, layout
from mlops.config import Settings, get_settings
from mlops.spec.model import model_spec

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import pandas as pd

    from mlops.spec.model import ModelSpec

    SpecRef = ModelSpec | str | None

HISTORY_COLUMNS: tuple[str, ...] = (
    "ds",
    "model_name",
    "window_start",
    "window_end",
    "champion_version",
    "champion_as_of",
    "drift_share",
    "drift_detected",
    "n_drifted",
    "n_features",
    "prediction_drift",
    "prediction_drift_detected",
    "roc_auc",
    "roc_auc_reference",
    "roc_auc_drop",
    "calibration_error",
    "calibration_gap",
    "brier",
    "performance_metric",
    "performance",
    "performance_reference",
    "performance_degradation",
    "n_reference",
    "n_reference_total",
    "n_current",
    "n_current_total",
    "n_labelled",
    "sample_size",
    "seed",
    "breached",
    "breaches",
    "reference_source",
    "predictions_source",
    "data_version",
    "signature",
    "report_uri",
    "mlflow_run_id",
    "seconds",
    "retrain_decision",
    "retrain_reason",
)
REQUEST_COLUMNS: tuple[str, ...] = (
    "ds",
    "decision",
    "reason",
    "reasons",
    "signature",
    "data_version",
    "champion_version",
    "drifted_features",
    "report_uri",
    "window_start",
    "window_end",
    "run_id",
    "request_id",
    "decided_at",
)


# --------------------------------------------------------------------------------------------------
# Lake paths
# --------------------------------------------------------------------------------------------------


def _folder(spec: SpecRef) -> str:
    """The spec's ``lake_folder`` (``""`` for the flight-delay spec: DESIGN.md's paths)."""
    return model_spec(spec).lake_folder


def report_dir(ds: str, settings: Settings | None = None, spec: SpecRef = None) -> str:
    """``{root}/reports/drift/ds=YYYY-MM-DD``: the day's ``report.html`` and ``drift.json``."""
    return layout.report_dir((settings or get_settings()).lake_uri, layout.DRIFT, ds, _folder(spec))


def report_file(ds: str, settings: Settings | None = None, spec: SpecRef = None) -> str:
    """``{root}/reports/drift/ds=YYYY-MM-DD/report.html``."""
    return lake.join(report_dir(ds, settings, spec), layout.DRIFT_HTML)


def report_json_file(ds: str, settings: Settings | None = None, spec: SpecRef = None) -> str:
    """``{root}/reports/drift/ds=YYYY-MM-DD/drift.json``."""
    return lake.join(report_dir(ds, settings, spec), layout.DRIFT_JSON)


def history_uri(settings: Settings | None = None, spec: SpecRef = None) -> str:
    """``{root}/reports/drift/history.parquet``."""
    return layout.drift_history_file((settings or get_settings()).lake_uri, _folder(spec))


def ledger_uri(settings: Settings | None = None, spec: SpecRef = None) -> str:
    """``{root}/reports/drift/requests/ledger.json``."""
    return layout.drift_ledger_file((settings or get_settings()).lake_uri, _folder(spec))


# --------------------------------------------------------------------------------------------------
# The history table
# --------------------------------------------------------------------------------------------------


def read_history(settings: Settings | None = None, spec: SpecRef = None) -> pd.DataFrame:
    import pandas as pd

    uri = history_uri(settings, spec)
    if not lake.exists(uri):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in HISTORY_COLUMNS})
    return lake.read_parquet(uri)


def write_history(frame: pd.DataFrame, settings: Settings, spec: SpecRef = None) -> None:
    frame = frame.sort_values("ds", kind="stable").reset_index(drop=True)
    lake.write_parquet(history_uri(settings, spec), frame)


def history_row(ds: str, summary: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """The history row of a check (its ``retrain_decision`` is ``pending`` until the guard decides)."""
    return {
        **{k: summary.get(k) for k in HISTORY_COLUMNS if k in summary},
        "ds": ds,
        "model_name": context.get("model_name"),
        "window_start": context.get("window_start"),
        "window_end": context.get("window_end"),
        "champion_version": context.get("champion_version"),
        "champion_as_of": context.get("champion_as_of"),
        "breaches": "; ".join(b["kind"] for b in summary.get("breaches", [])),
        "reference_source": context.get("reference_source"),
        "predictions_source": json.dumps(context.get("predictions_source")),
        "data_version": context.get("data_version"),
        "signature": context.get("signature"),
        "report_uri": context.get("report_uri"),
        "mlflow_run_id": context.get("mlflow_run_id"),
        "seconds": summary.get("timings", {}).get("total"),
        "retrain_decision": "pending" if summary.get("breached") else "none",
        "retrain_reason": None if summary.get("breached") else "no threshold breached",
    }


def upsert_history(row: Mapping[str, Any], settings: Settings | None = None, spec: SpecRef = None) -> None:
    """Insert or replace the history row of ``row["ds"]`` in the spec's table (call under the
    spec's ``guard_lock``)."""
    import pandas as pd

    s = settings or get_settings()
    frame = read_history(s, spec)
    keep = frame[frame["ds"].astype(str) != str(row["ds"])]
    row = dict(row)
    decided = day_decision(str(row["ds"]), read_ledger(s, spec))
    if decided is not None and decided[0] == "requested":
        # A rerun's check replaces the day's metrics, never the request the day already made.
        row["retrain_decision"], row["retrain_reason"] = decided
    new = pd.DataFrame([{c: row.get(c) for c in HISTORY_COLUMNS}])
    new = new.astype({c: "object" for c in new.columns if new[c].isna().all()})
    for column in (c for c in HISTORY_COLUMNS if c not in keep.columns):
        keep = keep.assign(**{column: None})  # a table written before the column existed
    merged = pd.concat([keep, new], ignore_index=True) if len(keep) else new
    write_history(merged, s, spec)


def mark_day(ds: str, ledger: Sequence[Mapping[str, Any]], settings: Settings, spec: SpecRef = None) -> None:
    """Write the day's decision (:func:`day_decision`) on its history row, if it has one."""
    frame = read_history(settings, spec)
    mask = frame["ds"].astype(str) == ds
    decided = day_decision(ds, ledger)
    if not mask.any() or decided is None:
        return
    for column, value in zip(("retrain_decision", "retrain_reason"), decided, strict=True):
        frame[column] = frame[column].astype("object")
        frame.loc[mask, column] = value
    write_history(frame, settings, spec)


def day_decision(ds: str, ledger: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """The retraining decision the history shows for day ``ds``, from every ledger entry of it.

    A day that requested retraining stays ``requested`` (an event was emitted and started
    the spec's training DAG), whatever its later reruns decided; their suppressions are appended to the
    reason. Otherwise the latest decision. None: nothing decided for ``ds`` yet.
    """
    mine = sorted((e for e in ledger if str(e["ds"]) == ds), key=lambda e: str(e.get("decided_at") or ""))
    if not mine:
        return None
    requested = [e for e in mine if e["decision"] == "requested"]
    if not requested:
        return str(mine[-1]["decision"]), str(mine[-1].get("reason") or "")[:2000]
    first = requested[0]
    reason = f"requested by run {first.get('run_id')}: {first.get('reason') or ''}"
    later = [e for e in mine if e["decision"] != "requested" and e is not first]
    if later:
        last = later[-1]
        reason += (
            f"; {len(later)} later check(s) of this day suppressed, the last by run {last.get('run_id')}: "
            f"{last.get('reason') or ''}"
        )
    return "requested", reason[:2000]


def drift_history(settings: Settings | None = None, spec: SpecRef = None) -> pd.DataFrame:
    """One row per checked day of the spec's model (the latest check's metrics), oldest first: the
    trend table (empty, with :data:`HISTORY_COLUMNS`, before the first check).

    ``retrain_decision`` summarizes every decision of the day (:func:`day_decision`): a day that
    requested retraining keeps ``requested``. Each check run's own decision is in
    :func:`retrain_requests`.
    """
    frame = (
        read_history(settings or get_settings(), spec).sort_values("ds", kind="stable").reset_index(drop=True)
    )
    return _json_safe(frame)


def _json_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values as None (not NaN), so ``to_dict`` rows serialize as JSON (the plugin's API)."""
    return frame.astype("object").where(frame.notna(), None)


# --------------------------------------------------------------------------------------------------
# The request ledger
# --------------------------------------------------------------------------------------------------


def read_ledger(settings: Settings | None = None, spec: SpecRef = None) -> list[dict[str, Any]]:
    uri = ledger_uri(settings, spec)
    if not lake.exists(uri):
        return []
    return list(json.loads(lake.read_text(uri)).get("entries", []))


def write_ledger(entries: list[dict[str, Any]], settings: Settings, spec: SpecRef = None) -> None:
    entries = sorted(entries, key=lambda e: (e["ds"], e.get("decided_at", "")))
    lake.write_text(ledger_uri(settings, spec), json.dumps({"entries": entries}, indent=1, default=str))


def retrain_requests(settings: Settings | None = None, spec: SpecRef = None) -> pd.DataFrame:
    """Every retraining decision of the spec's guard (``requested`` or ``suppressed``) with its
    reason, by day."""
    import pandas as pd

    entries = read_ledger(settings, spec)
    frame = pd.DataFrame(
        [{c: e.get(c) for c in REQUEST_COLUMNS} for e in entries], columns=list(REQUEST_COLUMNS)
    )
    return _json_safe(frame.sort_values(["ds", "decided_at"], kind="stable").reset_index(drop=True))
