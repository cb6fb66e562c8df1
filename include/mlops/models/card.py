"""The model card of a registered version: Markdown for people, JSON for programs.

:func:`build` assembles it from what the platform already recorded, nothing re-computed:

* the model spec (:mod:`mlops.spec.model`): intended use (``description``), the label and its
  definition (``label_doc``), the gate metric;
* the run's lineage (``lineage.json``, :mod:`mlops.models.tracking`): the training window, every
  curated partition read (rows, sha256), the training set's hash, the feature service and
  features, the holdout metrics, the behavioural checks;
* the gate's decision (:class:`mlops.models.registry.Decision`): the challenger's and the
  champion's metrics on the same holdout, the margin, the verdict;
* the run's ``retrain.*`` tags: the drift request that caused the run, if one did.

:func:`log` writes it as the artifacts ``model_card.md`` and ``model_card.json`` of the version's
MLflow run (and the version tag ``mlops.model_card``); :func:`load` reads the JSON back (the
lifecycle page), :func:`to_markdown` renders one (the approval step's body in Airflow).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from mlops.config import MODEL_NAME, Settings

if TYPE_CHECKING:
    from collections.abc import Mapping

CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"
#: The version tag naming the card's artifact.
CARD_TAG = "mlops.model_card"
#: Partitions listed one by one in the Markdown (first and last); the JSON lists them all.
SHOWN_PARTITIONS = 6


def _spec(run_tags: Mapping[str, str], name: str) -> Any:
    """The model spec of the run (its ``mlops.spec`` tag, else the spec registering ``name``)."""
    from mlops.spec.model import SPECS, model_spec

    ref = run_tags.get("mlops.spec")
    if ref:
        return model_spec(ref)
    for key in SPECS:
        spec = model_spec(key)
        if spec.model_name == name:
            return spec
    return None


def _trigger(tags: Mapping[str, str]) -> dict[str, Any]:
    """What started the training run: a drift (retrain) request, with its reason, or the run type."""
    if tags.get("retrain.requested") == "true" or tags.get("retrain.reason"):
        try:
            drifted = json.loads(tags.get("retrain.drifted_features") or "{}")
        except ValueError:
            drifted = {}
        return {
            "kind": "retrain_request",
            "reason": tags.get("retrain.reason", ""),
            "day": tags.get("retrain.ds", ""),
            "drifted_features": drifted,
            "report_uri": tags.get("retrain.report_uri", ""),
            "source": tags.get("retrain.source", ""),
            "request_id": tags.get("retrain.request_id", ""),
            "champion_version": tags.get("retrain.champion_version", ""),
        }
    run_id = tags.get("airflow.run_id", "")
    kind = run_id.split("__", 1)[0] if "__" in run_id else ("airflow" if run_id else "outside Airflow")
    return {"kind": kind, "airflow_run_id": run_id}


def _partitions(lineage: Mapping[str, Any]) -> dict[str, Any]:
    parts = list(lineage.get("partitions") or [])
    present = [p for p in parts if not p.get("missing")]
    return {
        "read": len(present),
        "missing": [p["ds"] for p in parts if p.get("missing")],
        "digest": lineage.get("partitions_digest"),
        "rows": sum(int(p.get("rows") or 0) for p in present),
        "list": [
            {k: p.get(k) for k in ("feed", "ds", "rows", "sha256", "content_hash") if p.get(k) is not None}
            for p in present
        ],
    }


def _limits(
    spec: Any, lineage: Mapping[str, Any], checks: list[dict[str, Any]], missing: list[str]
) -> list[str]:
    """Known limits: the spec's own (``known_limits``), then what this run's records show."""
    window = lineage.get("window") or {}
    limits = [str(x) for x in getattr(spec, "known_limits", ()) or ()]
    if window:
        limits.append(
            f"Trained on {window.get('start')}..{window.get('holdout_start')} only: seasons, schedules "
            "and airports outside that window are untested until monitoring scores them."
        )
    if spec is not None:
        limits.append(f"Rows without a label are neither trained nor evaluated on ({spec.label_doc}).")
    limits.append(
        "Compared with the champion on this run's holdout only "
        f"({window.get('holdout_start', '?')}..{window.get('end', '?')}, end exclusive)."
    )
    if missing:
        limits.append(f"{len(missing)} partition(s) of the window were absent: {', '.join(missing[:10])}.")
    failed = [c["name"] for c in checks if not c.get("passed")]
    if failed:
        limits.append(f"Failed behavioural checks: {', '.join(failed)}.")
    return limits


def build(
    version: str,
    decision: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    name: str = MODEL_NAME,
) -> dict[str, Any]:
    """The card of ``name`` version ``version`` as JSON-ready data (see the module docstring).

    ``decision`` is the gate's (:meth:`mlops.models.registry.Decision.as_dict`); without one the
    version's ``promotion.*`` tags stand in.
    """
    from mlops.models.lineage import lineage as read_lineage

    info = read_lineage(str(version), settings, name)
    lin, run_tags, vtags = info["lineage"], info["run_tags"], info["version_tags"]
    spec = _spec(run_tags, name)
    d = dict(decision or {})
    checks = list(d.get("checks") or lin.get("behaviour") or [])
    parts = _partitions(lin)
    metric = spec.gate.metric if spec is not None else "roc_auc"
    champion_metrics = d.get("champion_metrics")
    if champion_metrics is None:
        champion_metrics = json.loads(vtags.get("promotion.champion_metrics") or "{}")
    return {
        "model": name,
        "version": str(version),
        "run_id": info["run_id"],
        "experiment_id": info["experiment_id"],
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "intended_use": spec.description if spec is not None else "",
        "task": spec.task.name if spec is not None else "",
        "label": {
            "name": spec.label if spec is not None else "",
            "definition": spec.label_doc if spec else "",
        },
        "training": {
            "as_of": lin.get("as_of"),
            "window": lin.get("window") or {},
            "training_set": lin.get("training_set") or {},
            "partitions": parts,
        },
        "feature_service": lin.get("feature_service"),
        "features": list(lin.get("features") or []),
        "metrics": {
            "gate_metric": metric,
            "higher_is_better": bool(spec.gate.higher_is_better) if spec is not None else True,
            "challenger": dict(d.get("challenger_metrics") or lin.get("metrics") or {}),
            "champion_version": d.get("champion_before", vtags.get("promotion.champion_before") or None),
            "champion": dict(champion_metrics or {}),
            "margin": d.get("margin"),
            "same_holdout": True,
        },
        "gate": {
            "eligible": d.get("eligible"),
            "promoted": d.get("promoted"),
            "reason": d.get("reason") or vtags.get("promotion.reason", ""),
        },
        "behavioural_checks": checks,
        "trigger": _trigger(run_tags),
        "known_limits": _limits(spec, lin, checks, parts["missing"]),
        "code": {"git_commit": (lin.get("code") or {}).get("git_commit")},
    }


def _fmt(value: Any) -> str:
    """A metric for the table: counts as integers (rows 1547), scores to 4 places."""
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() and abs(value) >= 2 else f"{value:.4f}"
    return "—" if value is None else str(value)


def _metrics_table(card: Mapping[str, Any]) -> list[str]:
    m = card["metrics"]
    ours, theirs = m.get("challenger") or {}, m.get("champion") or {}
    champion = f"champion v{m['champion_version']}" if m.get("champion_version") else "champion (none)"
    lines = [f"| metric | v{card['version']} (this) | {champion} |", "|---|---:|---:|"]
    for key in sorted(set(ours) | set(theirs), key=lambda k: (k != m.get("gate_metric"), k)):
        mark = " (gate)" if key == m.get("gate_metric") else ""
        lines.append(f"| {key}{mark} | {_fmt(ours.get(key))} | {_fmt(theirs.get(key))} |")
    return lines


def to_markdown(card: Mapping[str, Any]) -> str:
    """The card as Markdown (the approval's body, ``model_card.md``)."""
    tr, parts, trig = card["training"], card["training"]["partitions"], card["trigger"]
    window, ts = tr.get("window") or {}, tr.get("training_set") or {}
    gate = card["gate"]
    lines = [
        f"# Model card: {card['model']} v{card['version']}",
        "",
        f"**Intended use.** {card['intended_use'] or '—'} ({card['task'] or 'task not recorded'}).",
        "",
        f"**Label.** `{card['label']['name']}`: {card['label']['definition'] or '—'}",
        "",
        "## Gate",
        "",
        f"**Verdict:** {gate.get('reason') or '—'} (margin {_fmt(card['metrics'].get('margin'))}, "
        f"{'higher' if card['metrics']['higher_is_better'] else 'lower'} is better; both scored on "
        "this run's holdout).",
        "",
        *_metrics_table(card),
        "",
        "## Training data",
        "",
        f"- as of **{tr.get('as_of')}**: trained {window.get('start')}..{window.get('holdout_start')}, "
        f"search validation from {window.get('valid_start')}, holdout "
        f"{window.get('holdout_start')}..{window.get('end')} (end exclusive)",
        f"- training set: {ts.get('rows', '?')} rows, sha256 `{ts.get('data_hash', '?')}`",
        f"- curated partitions: {parts['read']} read ({parts['rows']} rows), {len(parts['missing'])} absent; "
        f"digest `{parts['digest']}`",
    ]
    listed = parts["list"]
    half = SHOWN_PARTITIONS // 2
    shown = listed if len(listed) <= SHOWN_PARTITIONS else [*listed[:half], None, *listed[-half:]]
    for p in shown:
        if p is None:
            lines.append(f"  - … {len(listed) - SHOWN_PARTITIONS} more (all in model_card.json)")
        else:
            feed = f"{p['feed']}/" if p.get("feed") else ""
            lines.append(f"  - {feed}ds={p.get('ds')}: {p.get('rows')} rows, sha256 `{p.get('sha256')}`")
    lines += [
        f"- feature service `{card['feature_service']}`: {len(card['features'])} features",
        "",
        "## Behavioural checks",
        "",
    ]
    checks = card["behavioural_checks"]
    lines += [
        f"- {'ok' if c.get('passed') else 'FAILED'} `{c['name']}`: {c.get('detail', '')}" for c in checks
    ]
    if not checks:
        lines.append("- none recorded")
    lines += ["", "## Why this run", ""]
    if trig["kind"] == "retrain_request":
        drifted = ", ".join(f"{k} ({_fmt(v)})" for k, v in list(trig["drifted_features"].items())[:8])
        lines.append(f"- drift request of {trig['day']} from {trig['source']}: {trig['reason']}")
        if drifted:
            lines.append(f"- drifted features: {drifted}")
    else:
        lines.append(f"- {trig['kind']} run {trig.get('airflow_run_id') or ''}".rstrip())
    lines += ["", "## Known limits", ""]
    lines += [f"- {limit}" for limit in card["known_limits"]]
    lines += ["", f"MLflow run `{card['run_id']}` · code `{card['code'].get('git_commit')}`"]
    return "\n".join(lines) + "\n"


def log(card: Mapping[str, Any], *, settings: Settings | None = None) -> str:
    """Log ``card`` as ``model_card.md`` + ``model_card.json`` of its version's run (replacing an
    earlier card of the same run: a task retry writes the same names); returns the Markdown."""
    from mlops.models.tracking import client

    c = client(settings)
    markdown = to_markdown(card)
    c.log_text(card["run_id"], markdown, CARD_MD)
    c.log_dict(card["run_id"], dict(card), CARD_JSON)
    c.set_model_version_tag(card["model"], card["version"], CARD_TAG, f"runs:/{card['run_id']}/{CARD_JSON}")
    return markdown


def load(version: str, *, settings: Settings | None = None, name: str = MODEL_NAME) -> dict[str, Any] | None:
    """The logged card of ``name`` version ``version``, or None if it has none."""
    import mlflow.artifacts

    from mlops.models.tracking import client

    mv = client(settings).get_model_version(name, str(version))
    if not (mv.tags or {}).get(CARD_TAG):
        return None
    return mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{CARD_JSON}")
