"""``mlops lineage VERSION`` and ``mlops reproduce VERSION``: what made a model, and make it again.

A registered version points at its MLflow run; the run carries ``lineage.json`` (written by
:func:`mlops.models.tracking.log_training`): the as-of date and window, the params and the chosen
candidate, every curated partition read with its row count and sha256, the training-set hash,
the validation report, the feature service and features, the code version, the Airflow run, and
the holdout metrics. ``reproduce`` checks the data is still the same, rebuilds the training set,
retrains with the same params and seed, and compares the holdout predictions bit for bit.

Any model: the run's ``mlops.spec`` tag (written by :func:`mlops.models.tracking.run_tags`) names
its :class:`~mlops.spec.model.ModelSpec`, which says how to rebuild its training set (its frame,
its feeds' partitions, the weather gate), its id column, label and gate metric. The commands take
``--model`` (a registered model name or a spec name / import path; default the flight-delay model).

Importing this module is cheap: MLflow, pandas and XGBoost are imported by the commands.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from mlops.cli import command
from mlops.config import MODEL_NAME

if TYPE_CHECKING:
    import argparse

    import pandas as pd

    from mlops.config import Settings
    from mlops.spec.model import ModelSpec
    from mlops.training.params import TrainParams, Window
    from mlops.training.run import Result

log = logging.getLogger(__name__)


def model_name_of(ref: str | None) -> str:
    """The registered model ``ref`` names: a spec's name or import path (its ``model_name``), else
    ``ref`` itself as a registered model name; ``None`` is the flight-delay model."""
    from mlops.spec.model import SPECS, model_spec

    if not ref:
        return MODEL_NAME
    if ref in SPECS or ":" in ref:
        return model_spec(ref).model_name
    return ref


def run_spec(tags: dict[str, str], name: str) -> str:
    """The spec reference of a training run: its ``mlops.spec`` tag; a run logged before specs
    existed has none and was the registered spec of ``name`` (the flight-delay model's)."""
    from mlops.spec.model import spec_for_model

    recorded = tags.get("mlops.spec")
    if recorded:
        return recorded
    try:
        return spec_for_model(name).ref
    except ValueError:
        raise ValueError(
            f"the run of {name} has no mlops.spec tag and no registered spec registers {name}: "
            "cannot tell which spec to reproduce it with"
        ) from None


def lineage(version: str, settings: Settings | None = None, name: str = MODEL_NAME) -> dict[str, Any]:
    """Everything recorded about ``name`` version ``version`` (version, run, spec, lineage.json)."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from mlops.models.tracking import LINEAGE_ARTIFACT, client

    c = client(settings)
    try:
        mv = c.get_model_version(name, str(version))
    except MlflowException as error:
        raise ValueError(
            f"no version {version} of the registered model {name!r} ({error.message.splitlines()[0]}): "
            "list them with `mlops audit` or the MLflow UI; pick another model with --model"
        ) from None
    run = c.get_run(mv.run_id)
    recorded = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{LINEAGE_ARTIFACT}")
    return {
        "model": name,
        "spec": run_spec(run.data.tags, name),
        "version": str(mv.version),
        "aliases": list(mv.aliases or []),
        "status": mv.status,
        "version_tags": dict(mv.tags or {}),
        "run_id": mv.run_id,
        "experiment_id": run.info.experiment_id,
        "run_metrics": dict(run.data.metrics),
        "run_tags": {k: v for k, v in run.data.tags.items() if k.startswith(("mlops.", "airflow."))},
        "lineage": recorded,
    }


def format_lineage(info: dict[str, Any], all_partitions: bool = False) -> str:
    """A human-readable account of a version's lineage."""
    lin = info["lineage"]
    tags = info["version_tags"]
    w = lin["window"]
    lines = [
        f"{info['model']} version {info['version']}  aliases: {', '.join(info['aliases']) or '-'}",
        f"  promotion: {tags.get('promotion.decision', 'pending')} - {tags.get('promotion.reason', '')}",
        f"  MLflow run: {info['run_id']} (experiment {info['experiment_id']})",
        f"  spec: {info.get('spec', '-')}",
        "",
        f"As of {lin['as_of']}: trained on {w['start']}..{w['holdout_start']} (search validation from "
        f"{w['valid_start']}), holdout {w['holdout_start']}..{w['end']} (end exclusive)",
        "",
        "Data",
        f"  training set: {lin['training_set'].get('rows')} rows, sha256 {lin['training_set'].get('data_hash')}",
        f"  uri: {lin['training_set'].get('uri', '-')}",
    ]
    lines += _partition_lines(lin, _feeds_of(info.get("spec")), all_partitions)
    weather = lin.get("weather") or {}
    lines += _weather_lines(weather)
    if weather.get("used"):
        lines += _listing(weather.get("partitions") or [], all_partitions)
    v = lin.get("validation", {})
    lines += ["", f"Validation: {'passed' if v.get('passed') else 'FAILED'}"]
    for chk in v.get("checks", []):
        lines.append(f"  [{'ok' if chk['passed'] else 'FAIL'}] {chk['name']}: {chk['message']}")
    beh = lin.get("behaviour", [])
    if beh:
        lines.append("Behavioural checks:")
        lines += [f"  [{'ok' if b['passed'] else 'FAIL'}] {b['name']}: {b.get('detail', '')}" for b in beh]
    lines += [
        "",
        f"Features: service {lin['feature_service']}, {len(lin['features'])} features "
        f"({len(lin.get('categorical', []))} categorical)",
        "  " + ", ".join(lin["features"]),
        "",
        f"Code: git {lin['code']['git_commit']}",
        "  " + ", ".join(lin["code"]["packages"]),
        "",
        "Airflow: "
        + (
            ", ".join(f"{k}={v}" for k, v in lin.get("airflow", {}).items())
            if lin.get("airflow")
            else "not run by Airflow"
        ),
        "",
        "Params: " + ", ".join(f"{k}={v}" for k, v in lin["params"].items()),
        "Chosen candidate: " + ", ".join(f"{k}={v}" for k, v in lin["best"].items()),
        "",
        "Holdout metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in lin["metrics"].items()),
    ]
    return "\n".join(lines)


def _feeds_of(spec: str | None) -> tuple[str, ...]:
    """The names of the curated feeds a spec's training set reads (a feed named by import path
    reads as its spec's name; ``("flights",)`` when the spec cannot be loaded)."""
    from mlops.spec.feed import feed_spec
    from mlops.spec.model import model_spec

    try:
        return tuple(feed_spec(feed).name for feed in model_spec(spec).feeds)
    except ValueError:
        return ("flights",)


def _partition_lines(lin: dict[str, Any], feeds: tuple[str, ...], all_partitions: bool) -> list[str]:
    """The curated partitions of each of the spec's feeds (the first feed's entries carry no
    ``feed`` key, the others do: :func:`mlops.training.dataset.partition_lineage`)."""
    parts = lin.get("partitions", [])
    if not feeds and not parts:
        return ["  curated partitions: none (the spec's frame reads no curated feed)"]
    first = feeds[0] if feeds else "flights"
    lines = []
    for feed in dict.fromkeys([first, *feeds, *(p["feed"] for p in parts if p.get("feed"))]):
        mine = [p for p in parts if p.get("feed", first) == feed]
        label = "curated partitions" if feed == first else f"curated {feed} partitions"
        lines.append(
            f"  {label}: {_counts(mine)}; feed {feed}; digest "
            + (lin["partitions_digest"] if feed == first and len(mine) == len(parts) else _digest(mine))
        )
        lines += _listing(mine, all_partitions)
    return lines


def _counts(parts: list[dict[str, Any]]) -> str:
    missing = [p["ds"] for p in parts if p.get("missing")]
    span = f" ({missing[0]}..{missing[-1]})" if missing else ""
    return f"{len(parts) - len(missing)} read, {len(missing)} absent{span}"


def _listing(parts: list[dict[str, Any]], all_partitions: bool) -> list[str]:
    """One line per partition read (the first and last four unless ``all_partitions``)."""
    present = [p for p in parts if not p.get("missing")]
    shown = present if all_partitions or len(present) <= 8 else present[:4] + present[-4:]
    lines = []
    for i, p in enumerate(shown):
        if not all_partitions and len(present) > 8 and i == 4:
            lines.append(f"    ... {len(present) - 8} more (--all-partitions)")
        extra = f"  content_hash={p['content_hash']}" if p.get("content_hash") else ""
        if "validation" in p:
            extra += f"  validation={'passed' if p['validation'].get('success') else 'FAILED'}"
        lines.append(f"    ds={p['ds']}  rows={p.get('rows', '?'):>5}  sha256={p.get('sha256', '-')}{extra}")
    return lines


def _weather_lines(weather: dict[str, Any]) -> list[str]:
    """The weather feed's part of :func:`format_lineage`: partitions read, days left out."""
    if not weather:
        return ["  weather: not recorded (trained before the weather feed)"]
    if not weather.get("used"):
        return ["  weather: not used by this model"]
    parts = weather.get("partitions") or []
    present = [p for p in parts if not p.get("missing")]
    states = weather.get("states") or {}
    gaps = ", ".join(f"{ds} ({state})" for ds, state in states.items()) or "none"
    return [
        f"  weather partitions: {len(present)} read, {len(parts) - len(present)} absent; "
        f"digest {_digest(parts)}",
        f"  days without weather: {gaps}; {weather.get('excluded_rows', 0)} rows left out of training "
        "(docs/feeds.md)",
    ]


def weather_tags(weather: dict[str, Any] | None) -> dict[str, str]:
    """MLflow tags of a run's weather record (``manifest["weather"]``): ``mlops.weather.missing_days``
    (``"none"`` or ``"2013-02-12 (quarantined), ..."``) and ``mlops.weather.excluded_rows``; no
    tags when the model does not use weather."""
    if not weather or not weather.get("used"):
        return {}
    states = weather.get("states") or {}
    missing = ", ".join(f"{ds} ({state})" for ds, state in states.items()) or "none"
    return {
        "mlops.weather.missing_days": missing[:5000],
        "mlops.weather.excluded_rows": str(weather.get("excluded_rows", 0)),
    }


def _digest(partitions: list[dict[str, Any]]) -> str:
    from mlops.training.dataset import partitions_digest

    return partitions_digest(partitions)[:16]


def reproduce(
    version: str,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
    search: bool = True,
) -> dict[str, Any]:
    """Retrain ``version`` from its lineage and compare holdout predictions exactly.

    Steps: the curated partitions' hashes must match the recorded ones; the rebuilt training set's
    hash must match; the search (unless ``search=False``, which refits the recorded candidate)
    and the refit run with the recorded params and seed; the new holdout predictions must equal
    the recorded ones (same rows, same order, bit-identical floats).

    The run's spec (its ``mlops.spec`` tag) says how: its frame, its feeds, its id column, label
    and gate metric; the report names it and the gate metric's value then and now.
    """
    from mlops.spec.model import model_spec
    from mlops.training.dataset import build_training_set
    from mlops.training.params import TrainParams, Window

    info = lineage(version, settings, name)
    spec = model_spec(info["spec"])
    if spec.model_name != name:
        raise ValueError(
            f"{name} version {version} was trained with the spec {spec.ref!r}, which registers "
            f"{spec.model_name!r}, not {name!r}: the run's mlops.spec tag and its registered model disagree"
        )
    recorded = info["lineage"]
    params = TrainParams.from_mapping(recorded["params"], spec.estimator.defaults)
    window = Window.of(recorded["as_of"], params)
    report: dict[str, Any] = {
        "model": name,
        "spec": spec.ref,
        "version": str(version),
        "as_of": recorded["as_of"],
        "gate_metric": spec.gate.metric,
        "checks": [],
    }

    _check_partitions(report, recorded, window, settings, spec)
    frame, manifest = build_training_set(window, settings, spec)
    _check(
        report,
        "training_set",
        manifest["data_hash"] == recorded["training_set"].get("data_hash"),
        f"rebuilt {manifest['rows']} rows, sha256 {manifest['data_hash'][:16]}... "
        f"(recorded {str(recorded['training_set'].get('data_hash'))[:16]}...)",
    )
    result = _retrain(report, recorded, frame, window, params, search, spec)
    _check_predictions(report, info["run_id"], result.holdout_predictions, spec.id_column)
    report["metrics"] = result.metrics
    report["recorded_metrics"] = recorded["metrics"]
    report["passed"] = all(c["passed"] for c in report["checks"])
    return report


def _check(report: dict[str, Any], name: str, ok: bool, detail: str) -> None:
    """Append one named check to the :func:`reproduce` report, and log it."""
    report["checks"].append({"name": name, "passed": bool(ok), "detail": detail})
    log.info("%s %s: %s", "ok" if ok else "FAIL", name, detail)


def _check_partitions(
    report: dict[str, Any],
    recorded: dict[str, Any],
    window: Window,
    settings: Settings | None,
    spec: ModelSpec | None = None,
) -> None:
    """The curated partitions of every feed hash as they did at training time: those of the spec's
    feeds over the window (the flights), and the weather partitions the run recorded (when its
    model uses weather)."""
    from mlops.features import compute
    from mlops.training.dataset import partition_lineage

    _compare(report, "curated_partitions", recorded["partitions"], partition_lineage(window, settings, spec))
    weather = recorded.get("weather") or {}
    if weather.get("used"):
        then = weather.get("partitions") or []
        now = compute.feed_partitions(weather.get("feed", "weather"), [p["ds"] for p in then], settings)
        _compare(report, "weather_partitions", then, now)


def _compare(
    report: dict[str, Any], name: str, then: list[dict[str, Any]], now: list[dict[str, Any]]
) -> None:
    """One check: the partitions ``now`` have the fingerprints recorded ``then`` (absent ones too)."""
    from mlops.training.dataset import partition_fingerprint

    before = {p["ds"]: partition_fingerprint(p) for p in then}
    after = {p["ds"]: partition_fingerprint(p) for p in now}
    changed = sorted(ds for ds in set(before) | set(after) if before.get(ds) != after.get(ds))
    _check(
        report,
        name,
        not changed,
        f"{len(before)} partitions, {len(changed)} changed since training{': ' + ', '.join(changed[:5]) if changed else ''}",
    )


def _retrain(
    report: dict[str, Any],
    recorded: dict[str, Any],
    frame: pd.DataFrame,
    window: Window,
    params: TrainParams,
    search: bool,
    spec: ModelSpec | None = None,
) -> Result:
    """Rerun the search (checked against the recorded best candidate) or, without ``search``,
    refit the recorded candidate; the training result."""
    from mlops.training.run import refit, train

    if not search:
        return refit(frame, window, params, recorded["best"], spec)
    result = train(frame, params, window.as_of, spec=spec)
    best, recorded_best = result.best, recorded["best"]
    _check(
        report,
        "search",
        best["candidate"] == recorded_best["candidate"]
        and best["best_rounds"] == recorded_best["best_rounds"],
        f"best candidate {best['candidate']} with {best['best_rounds']} rounds "
        f"(recorded {recorded_best['candidate']} with {recorded_best['best_rounds']})",
    )
    return result


def _check_predictions(
    report: dict[str, Any], run_id: str, new: pd.DataFrame, id_column: str = "flight_id"
) -> None:
    """The new holdout predictions equal the recorded ones: same rows (the spec's id column), same
    order, bit-identical floats."""
    import mlflow.artifacts
    import numpy as np
    import pandas as pd

    from mlops.models.tracking import PREDICTIONS_ARTIFACT

    original = pd.read_parquet(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{PREDICTIONS_ARTIFACT}"))
    same_rows = list(original[id_column].astype(str)) == list(new[id_column].astype(str))
    identical = same_rows and np.array_equal(
        original["prediction"].to_numpy(dtype="float64"), new["prediction"].to_numpy(dtype="float64")
    )
    max_diff = (
        float(np.max(np.abs(original["prediction"].to_numpy() - new["prediction"].to_numpy())))
        if same_rows and len(new)
        else float("nan")
    )
    _check(
        report,
        "holdout_predictions",
        identical,
        f"{len(new)} holdout predictions, same {id_column}s: {same_rows}, identical: {identical}, "
        f"max |diff| {max_diff:g}",
    )


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=MODEL_NAME,
        help=f"registered model, or model spec name / import path (default {MODEL_NAME}; e.g. "
        "flight_air_time_xgb or air_time)",
    )


def _lineage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", help="registered version of the model (e.g. 3), or an alias (champion)")
    _model_arg(p)
    p.add_argument("--json", action="store_true", help="print the raw lineage as JSON")
    p.add_argument("--all-partitions", action="store_true", help="list every curated partition")


def _quiet_downloads() -> None:
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _resolve(version: str, name: str = MODEL_NAME) -> str:
    if version.isdigit():
        return version
    from mlops.models.registry import alias_version

    found = alias_version(version.lstrip("@"), name=name)
    if found is None:
        raise ValueError(
            f"{name} has no alias @{version.lstrip('@')}: give a version number or another alias"
        )
    return found


@command(
    "lineage", "print what made a model version: data, validation, features, code, Airflow run", _lineage_args
)
def _lineage(ns: argparse.Namespace) -> int:
    _quiet_downloads()
    name = model_name_of(ns.model)
    info = lineage(_resolve(ns.version, name), name=name)
    print(json.dumps(info, indent=2, default=str) if ns.json else format_lineage(info, ns.all_partitions))
    return 0


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("version", help="registered version of the model (e.g. 3), or an alias (champion)")
    _model_arg(p)
    p.add_argument(
        "--no-search",
        action="store_true",
        help="refit the recorded candidate instead of rerunning the search",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")


@command(
    "reproduce",
    "retrain a model version from its lineage and check its holdout predictions are identical",
    _reproduce_args,
)
def _reproduce(ns: argparse.Namespace) -> int:
    _quiet_downloads()
    name = model_name_of(ns.model)
    report = reproduce(_resolve(ns.version, name), name=name, search=not ns.no_search)
    if ns.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for c in report["checks"]:
            print(f"[{'ok' if c['passed'] else 'FAIL'}] {c['name']}: {c['detail']}")
        metric = report["gate_metric"]
        print(
            f"{'REPRODUCED' if report['passed'] else 'NOT REPRODUCED'}: {name} v{report['version']} "
            f"(spec {report['spec']}) as of {report['as_of']}, holdout {metric} "
            f"{report['metrics'][metric]:.6f} (recorded {report['recorded_metrics'][metric]:.6f})"
        )
    return 0 if report["passed"] else 1
