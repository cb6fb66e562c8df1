"""Typed ``Param`` blocks for the DAGs' trigger forms (declared once; DAG files import them).

Each block is a plain dict of ``Param`` objects: Airflow renders it as a form in the trigger UI,
validates manual and backfill ``conf`` against it, and fills defaults for scheduled runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowFailException

from mlops.ingest.simulator import FAULTS  # INGEST_PARAMS (cheap: stdlib and mlops.lake only)
from mlops.training.params import require_approval_default  # cheap: stdlib and mlops.params
from mlops.weather.feed import FAULTS as WEATHER_FAULTS  # (cheap: stdlib and the spec)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping


def _optional_date(title: str, description: str, section: str) -> Param:
    """An optional day (YYYY-MM-DD) of a trigger form: empty is ``None``."""
    return Param(
        None, type=["null", "string"], format="date", title=title, description=description, section=section
    )


def _ds_override(title: str, action: str, section: str, *, why: str = "", scheduled: bool = True) -> Param:
    """The ``ds`` override: ``action`` this day instead of the run's logical date (``why``: what for);
    with ``scheduled`` the description says that scheduled and backfill runs leave it empty."""
    description = f"{action} (YYYY-MM-DD) instead of the run's logical date{why}."
    if scheduled:
        description += " Leave empty for scheduled and backfill runs."
    return _optional_date(title, description, section)


_TRAIN_WINDOW = "Training window"
_XGB = "XGBoost hyperparameters (the search starts from these)"
_SEARCH = "Search, promotion and safety"

#: ``train_model``: the training window, XGBoost hyperparameters, the search and the promotion gate.
#: Keys match :class:`mlops.training.params.TrainParams` fields one to one.
TRAIN_PARAMS: dict[str, Param] = {
    "as_of": _optional_date(
        "As-of date (override)",
        "Train as of this date (YYYY-MM-DD) instead of the run's own date. Leave empty: "
        "scheduled and backfill runs use the data interval end, asset-triggered runs the request time.",
        _TRAIN_WINDOW,
    ),
    "window_days": Param(
        120,
        type="integer",
        minimum=14,
        maximum=730,
        title="Training window (days)",
        description="Days of labelled flights before the as-of date, holdout included.",
        section=_TRAIN_WINDOW,
    ),
    "holdout_days": Param(
        14,
        type="integer",
        minimum=3,
        maximum=120,
        title="Holdout (days)",
        description="The latest days before the as-of date, kept out of training: the challenger and "
        "the champion are both scored on them. The search validates on the same number of days "
        "just before the holdout.",
        section=_TRAIN_WINDOW,
    ),
    "n_estimators": Param(
        400,
        type="integer",
        minimum=10,
        maximum=3000,
        title="Max boosting rounds",
        section=_XGB,
        description="Upper bound; each candidate stops early on its validation days.",
    ),
    "max_depth": Param(6, type="integer", minimum=1, maximum=16, title="Max tree depth", section=_XGB),
    "learning_rate": Param(
        0.1, type="number", exclusiveMinimum=0, maximum=1, title="Learning rate (eta)", section=_XGB
    ),
    "min_child_weight": Param(
        1.0, type="number", minimum=0, maximum=1000, title="Min child weight", section=_XGB
    ),
    "subsample": Param(
        0.8, type="number", exclusiveMinimum=0, maximum=1, title="Row subsample", section=_XGB
    ),
    "colsample_bytree": Param(
        0.8, type="number", exclusiveMinimum=0, maximum=1, title="Column subsample per tree", section=_XGB
    ),
    "reg_lambda": Param(1.0, type="number", minimum=0, maximum=1000, title="L2 regularisation", section=_XGB),
    "n_candidates": Param(
        4,
        type="integer",
        minimum=1,
        maximum=32,
        title="Search candidates",
        description="Hyperparameter candidates, one mapped task each; candidate 0 is the values above.",
        section=_SEARCH,
    ),
    "seed": Param(
        42,
        type="integer",
        minimum=0,
        title="Random seed",
        description="Seeds the candidate draw and XGBoost: same as-of, params and data give the same model.",
        section=_SEARCH,
    ),
    "promotion_margin": Param(
        0.002,
        type="number",
        minimum=0,
        maximum=0.2,
        title="Promotion margin (ROC-AUC)",
        description="The challenger becomes champion only if its holdout ROC-AUC beats the champion's "
        "on the same holdout by at least this much (and it passes the behavioural checks).",
        section=_SEARCH,
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="Dry run",
        description="Build, validate, train and log to MLflow, but do not register or promote.",
        section=_SEARCH,
    ),
    "require_approval": Param(
        require_approval_default(),
        type="boolean",
        title="Require human approval",
        description="When the gate would promote the challenger, wait for a person to approve it "
        "(Required Actions, with the model card) before @champion moves; no answer in time rejects. "
        "Default from MLOPS_REQUIRE_APPROVAL (off embedded, on in the scale-out profile).",
        section=_SEARCH,
    ),
}

_FEATURES = "Feature partitions"

#: ``materialize_features``: manual runs name the days to (re)build; asset-triggered runs ignore
#: these and take every ``ds`` of their triggering ``curated_flights`` events.
FEATURE_PARAMS: dict[str, Param] = {
    "start_ds": _optional_date(
        "First day (manual runs)",
        "Build and materialize the feature partitions from this day (YYYY-MM-DD). "
        "Leave empty for asset-triggered runs.",
        _FEATURES,
    ),
    "end_ds": _optional_date(
        "Last day (manual runs, inclusive)",
        "Last day to build (YYYY-MM-DD); defaults to the first day.",
        _FEATURES,
    ),
    "overlap_hours": Param(
        24,
        type="integer",
        minimum=0,
        maximum=24 * 28,
        title="Materialization overlap (hours)",
        description="Hours before the covered interval materialized again, to pick up late rows.",
        section=_FEATURES,
    ),
}

# --- INGEST_PARAMS: ingest_flights and flights_upstream_simulator (issue 3) -----------------------

_INGEST = "Partition"
#: Defects ``flights_upstream_simulator`` can inject (see :data:`mlops.ingest.simulator.FAULTS`).
FAULT_NAMES: tuple[str, ...] = tuple(FAULTS)
#: Defects of the weather export (:data:`mlops.weather.feed.FAULTS`).
WEATHER_FAULT_NAMES: tuple[str, ...] = tuple(WEATHER_FAULTS)

#: ``ingest_flights``: the day to ingest (scheduled and backfill runs: their logical date) and
#: whether a short day is acceptable.
INGEST_PARAMS: dict[str, Param] = {
    "ds": _ds_override(
        "Partition date (override)",
        "Ingest this day",
        _INGEST,
        why=": re-ingest a fixed delivery from a manual run",
    ),
    "allow_partial": Param(
        False,
        type="boolean",
        title="Allow a partial day",
        description="Accept fewer flights than normal for the weekday (a known partial delivery, "
        "e.g. an upstream outage). Every other check still applies; the asset event records it.",
        section=_INGEST,
    ),
}

#: ``flights_upstream_simulator``: the day to export and, for demos, a defect to inject (the
#: batch then fails validation in ``ingest_flights`` and lands in quarantine).
SIMULATOR_PARAMS: dict[str, Param] = {
    "ds": _ds_override("Export date (override)", "Export this day", _INGEST, scheduled=False),
    "fault": Param(
        None,
        type=["null", "string"],
        enum=[None, *FAULT_NAMES],
        title="Inject a fault (demo)",
        description="Write a defective export instead of the clean one, to see validation reject it: "
        + ", ".join(FAULT_NAMES)
        + ".",
        section=_INGEST,
    ),
    "weather_fault": Param(
        None,
        type=["null", "string"],
        enum=[None, *WEATHER_FAULT_NAMES],
        title="Inject a weather fault (demo)",
        description="Write a defective weather export, to see ingest_weather reject it: "
        + ", ".join(WEATHER_FAULT_NAMES)
        + ".",
        section=_INGEST,
    ),
}


# --- PARAM CHECKS: unknown conf keys and readable param errors (issue 19) -------------------------


class InvalidParams(AirflowFailException, ValueError):
    """A run's params are wrong (an unknown key, a bad date): permanent, so the task fails without
    retry (a typo never fixes itself). Still a ``ValueError`` for callers outside Airflow."""


def unknown_params_message(keys: Iterable[str], declared: Iterable[str], dag_id: str | None = None) -> str:
    """The refusal for ``keys`` a DAG does not declare, or ``""`` when every key is declared.

    Names each unknown key with the closest declared name (:mod:`difflib`) and lists the valid ones.
    """
    import difflib

    valid = list(declared)
    unknown = [k for k in keys if k not in valid]
    if not unknown:
        return ""
    named = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.6)
        named.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    owner = dag_id or "this DAG"
    return (
        f"unknown param{'s' if len(unknown) > 1 else ''} {', '.join(named)} in the run's conf: "
        f"{owner} takes only {', '.join(valid)}. Trigger again with the right name (Airflow would "
        "otherwise ignore the key and run with the default)."
    )


def check_params(
    params: Mapping[str, Any] | None, declared: Iterable[str], dag_id: str | None = None
) -> None:
    """Refuse a run whose params hold a key the DAG does not declare (a typo in its conf).

    Airflow adds every key of ``dag_run.conf`` to ``params`` without checking it, so the first
    task of each DAG calls this with its declared params (``TRAIN_PARAMS``, ``dag.params``, ...).
    Raises :class:`InvalidParams` (no retry).
    """
    message = unknown_params_message(list(params or {}), declared, dag_id)
    if message:
        raise InvalidParams(message)


def _describe_schema(schema: Mapping[str, Any]) -> str:
    """What a param's JSON schema accepts, in words: ``a number > 0 and <= 1``."""
    kinds = schema.get("type") or []
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    article = {"integer": "an integer", "array": "an array", "object": "an object", "null": "null"}
    words = [article.get(k, f"a {k}") for k in kinds]
    if schema.get("format") == "date":
        words = ["a date YYYY-MM-DD" if w == "a string" else w for w in words]
    text = " or ".join(words) or "a value"
    bounds = [
        f"{op} {schema[key]}"
        for key, op in (
            ("minimum", ">="),
            ("exclusiveMinimum", ">"),
            ("maximum", "<="),
            ("exclusiveMaximum", "<"),
        )
        if key in schema
    ]
    if bounds:
        text += " " + " and ".join(bounds)
    if "enum" in schema:
        text = "one of " + ", ".join("null" if v is None else repr(v) for v in schema["enum"])
    if "pattern" in schema:
        text += f" matching {schema['pattern']}"
    return text


def describe_param_error(exc: BaseException, dag_id: str | None = None) -> str | None:
    """One line for Airflow's ``Invalid input for param ...`` error (a ``ParamValidationError``,
    maybe wrapped, e.g. by ``InvalidBackfillConf``): the param, the value and what is valid.
    ``None`` when ``exc`` is not such an error."""
    import re

    from jsonschema.exceptions import ValidationError

    seen: set[int] = set()
    chain: list[BaseException] = []
    todo: list[Any] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        chain.append(e)
        todo += [e.__cause__, e.__context__, *e.args]
    name = next(
        (m.group(1) for e in chain if (m := re.search(r"Invalid input for param (\S+?):", str(e)))), None
    )
    if name is None:
        return None
    where = f"param {name!r}" + (f" of {dag_id}" if dag_id else "")
    err = next((e for e in chain if isinstance(e, ValidationError)), None)
    if err is None:  # e.g. "No value passed and Param has no default value"
        detail = str(exc).split("Invalid input for param", 1)[-1].split(":", 1)[-1].strip().splitlines()
        return f"invalid value for {where}: {detail[0] if detail else exc}"
    item = "".join(f"[{p!r}]" for p in err.path)
    got = "" if repr(err.instance) in err.message else f" (got {err.instance!r})"
    valid = "" if err.validator == "enum" else f"; valid: {_describe_schema(err.schema)}"  # it lists them
    return f"invalid value for {where}{item}: {err.message}{got}{valid}"


def partition_date(
    params: Mapping[str, Any] | None, logical_ds: str | None, declared: Iterable[str] | None = None
) -> str:
    """The day a run of ``ingest_flights``/``flights_upstream_simulator`` works on.

    The ``ds`` param when set, else the run's logical date; a run with neither (triggered without
    a logical date) is refused with the way out. Given the DAG's ``declared`` params (templates
    pass ``dag.params``), unknown keys are refused first (:func:`check_params`).
    """
    import datetime as dt

    if declared is not None:
        check_params(params, declared)
    ds = (params or {}).get("ds") or logical_ds
    if not ds:
        raise InvalidParams("this run has no logical date: trigger it with params {'ds': 'YYYY-MM-DD'}")
    try:
        dt.date.fromisoformat(str(ds))
    except ValueError:
        raise InvalidParams(f"ds={ds!r} is not a YYYY-MM-DD date") from None
    return str(ds)


#: The most days one ``batch_predict`` run scores (``ds``..``end_ds``); more: split into runs.
MAX_SCORE_DAYS = 92


def scoring_days(
    params: Mapping[str, Any] | None, logical_ds: str | None, declared: Iterable[str] | None = None
) -> list[str]:
    """The days a ``batch_predict`` run scores: its day (:func:`partition_date`) through the
    ``end_ds`` param when set. A reversed or too long range is refused with the way out."""
    import datetime as dt

    first = partition_date(params, logical_ds, declared)
    end = (params or {}).get("end_ds")
    if not end:
        return [first]
    try:
        last = dt.date.fromisoformat(str(end))
    except ValueError:
        raise InvalidParams(f"end_ds={end!r} is not a YYYY-MM-DD date") from None
    span = (last - dt.date.fromisoformat(first)).days + 1
    if span < 1:
        raise InvalidParams(
            f"end_ds={end} is before the first day to score ({first}): set end_ds on or after ds "
            "(or the run's logical date), or leave it empty to score one day"
        )
    if span > MAX_SCORE_DAYS:
        raise InvalidParams(
            f"{first}..{end} is {span} days; one run scores at most {MAX_SCORE_DAYS}: split the range "
            "into several runs"
        )
    return [(dt.date.fromisoformat(first) + dt.timedelta(days=i)).isoformat() for i in range(span)]


def last_scoring_day(
    params: Mapping[str, Any] | None, logical_ds: str | None, declared: Iterable[str] | None = None
) -> str:
    """The last day a ``batch_predict`` run scores (its sensor waits for that day's features)."""
    return scoring_days(params, logical_ds, declared)[-1]


#: The day a run works on, as a template: the ``ds`` param when set, else the logical date,
#: checked by :func:`partition_date` when the template renders (an unknown param or a bad ``ds``
#: fails the task, without retry, with the way out): the first task that renders it refuses a
#: misspelt conf key. Needs ``user_defined_macros=PARTITION_MACROS`` on the DAG.
PARTITION = "{{ mlops_partition(params, ds, dag.params) }}"
PARTITION_MACROS = {"mlops_partition": partition_date}
#: ``batch_predict``'s last day to score (``end_ds`` or the day), checked when it renders.
LAST_SCORING_DAY = "{{ mlops_last_scoring_day(params, ds, dag.params) }}"
SCORING_MACROS = {**PARTITION_MACROS, "mlops_last_scoring_day": last_scoring_day}


# --- end INGEST_PARAMS ---------------------------------------------------------------------------

# --- DRIFT_PARAMS: monitor_drift (issue 6) --------------------------------------------------------

_DRIFT_WINDOW = "Window and sampling"
_DRIFT_THRESHOLDS = "Thresholds (any breach may request retraining)"
_DRIFT_GUARD = "Retraining trigger (storm guard)"

#: ``monitor_drift``: keys match :class:`mlops.monitoring.params.DriftParams` fields one to one.
DRIFT_PARAMS: dict[str, Param] = {
    "ds": _ds_override("Check date (override)", "Check the window ending with this day", _DRIFT_WINDOW),
    "window_days": Param(
        7,
        type="integer",
        minimum=1,
        maximum=90,
        title="Current window (days)",
        description="Days ending with the check's day compared against the champion's reference.",
        section=_DRIFT_WINDOW,
    ),
    "sample_size": Param(
        20000,
        type="integer",
        minimum=100,
        maximum=1_000_000,
        title="Sample cap (rows per side)",
        description="Each side is sampled to at most this many rows with the seed below (recorded "
        "with the totals), which bounds the check's time and memory whatever the volume.",
        section=_DRIFT_WINDOW,
    ),
    "seed": Param(42, type="integer", minimum=0, title="Sampling seed", section=_DRIFT_WINDOW),
    "drift_share": Param(
        0.3,
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        title="Drifted-feature share",
        description="Data drift when at least this share of the monitored features drifted.",
        section=_DRIFT_THRESHOLDS,
    ),
    "num_threshold": Param(
        1.0,
        type="number",
        exclusiveMinimum=0,
        title="Numeric feature threshold",
        description="A numeric feature drifted when its Wasserstein distance (normed by the "
        "reference standard deviation) reaches this. Evidently's default (0.1) flags most of this "
        "model's 7/28-day aggregates and weather features even for a week inside the training "
        "window (narrow one-week distributions); 1.0 means a shift of about one reference std.",
        section=_DRIFT_THRESHOLDS,
    ),
    "cat_threshold": Param(
        0.1,
        type="number",
        exclusiveMinimum=0,
        maximum=1,
        title="Categorical feature threshold",
        description="A categorical feature drifted when its Jensen-Shannon distance reaches this.",
        section=_DRIFT_THRESHOLDS,
    ),
    "prediction_threshold": Param(
        0.5,
        type="number",
        exclusiveMinimum=0,
        title="Prediction drift threshold",
        description="Wasserstein distance (normed) of the predicted probability against the "
        "champion's holdout predictions.",
        section=_DRIFT_THRESHOLDS,
    ),
    "max_auc_drop": Param(
        0.05,
        type="number",
        minimum=0,
        maximum=0.5,
        title="Max ROC-AUC drop",
        description="Performance breach when the ROC-AUC on labelled current rows is more than "
        "this below the champion's holdout ROC-AUC.",
        section=_DRIFT_THRESHOLDS,
    ),
    "max_calibration_error": Param(
        0.1,
        type="number",
        minimum=0,
        maximum=1,
        title="Max calibration error",
        description="Calibration breach when the expected calibration error (10 quantile bins) "
        "on labelled current rows exceeds this.",
        section=_DRIFT_THRESHOLDS,
    ),
    "min_current_rows": Param(
        500, type="integer", minimum=1, title="Min current rows to judge drift", section=_DRIFT_THRESHOLDS
    ),
    "min_labelled_rows": Param(
        500,
        type="integer",
        minimum=1,
        title="Min labelled rows to judge performance",
        section=_DRIFT_THRESHOLDS,
    ),
    "ignore_features": Param(
        ["month"],
        type="array",
        items={"type": "string"},
        title="Features not monitored",
        description="Calendar features whose distribution over a short window differs from a long "
        "reference by construction.",
        section=_DRIFT_THRESHOLDS,
    ),
    "cooldown_days": Param(
        7,
        type="integer",
        minimum=0,
        maximum=365,
        title="Cooldown (days of data)",
        description="No request within this many days (of ds) of another request, or after the "
        "champion's as-of date.",
        section=_DRIFT_GUARD,
    ),
    "allow_retrain": Param(
        True,
        type="boolean",
        title="Request retraining",
        description="Off: check, report and record only; never emit retrain_request.",
        section=_DRIFT_GUARD,
    ),
}

# --- end DRIFT_PARAMS ----------------------------------------------------------------------------

# --- BATCH_PARAMS: batch_predict (issue 7) --------------------------------------------------------

_BATCH = "Batch scoring"

#: ``batch_predict``: the day (default: the logical date), the model version that scores it
#: (default ``@champion``) and the decision threshold.
BATCH_PARAMS: dict[str, Param] = {
    "ds": _ds_override("Day to score (override)", "Score this day", _BATCH),
    "end_ds": _optional_date(
        "Last day to score (range)",
        "Score every day from the run's day through this one (YYYY-MM-DD) in one run: "
        "one feature retrieval for the whole range, much faster than a run per day (at most 92 "
        "days). Leave empty to score one day.",
        _BATCH,
    ),
    "model_version": Param(
        None,
        type=["null", "string"],
        pattern=r"^[0-9]+$",
        title="Model version (override)",
        description="Score with this registered version of flight_delay_xgb instead of the current "
        "@champion, e.g. to backfill past days with the model that was champion then. Leave empty: "
        "@champion is resolved when the run starts and recorded on every row.",
        section=_BATCH,
    ),
    "threshold": Param(
        0.5,
        type="number",
        minimum=0,
        maximum=1,
        title="Decision threshold",
        description="A flight is predicted delayed when its delay probability is at least this.",
        section=_BATCH,
    ),
}

# --- end BATCH_PARAMS ------------------------------------------------------------------------------


# --- ROLLOUT_PARAMS (rollout_guard; moved from mlops.airflow.operators.rollout) ---------------------

_ROLLOUT_WINDOW = "Evidence"
_ROLLOUT_AUC = "Online ROC-AUC (paired, on the champion's served and labelled flights)"
_ROLLOUT_SERVICE = "Service (the prediction service's /metrics)"


def _rollout_number(
    title: str, description: str, section: str, *, integer: bool = False, **bounds: Any
) -> Param:
    """An optional number: empty takes ``MLOPS_ROLLOUT_<NAME>`` or the built-in default."""
    kind = "integer" if integer else "number"
    return Param(
        None,
        type=["null", kind],
        title=title,
        description=f"{description} Empty: the environment's MLOPS_ROLLOUT_<NAME>, else the built-in default.",
        section=section,
        **bounds,
    )


#: ``rollout_guard``: keys match :class:`mlops.monitoring.rollout.RolloutParams` fields (plus ``ds``
#: and ``metrics_url``).
ROLLOUT_PARAMS: dict[str, Param] = {
    "ds": _ds_override(
        "Check date (override)",
        "Judge the online days ending with this day",
        _ROLLOUT_WINDOW,
        scheduled=False,
    ),
    "metrics_url": Param(
        None,
        type=["null", "string"],
        title="Prediction service /metrics URL",
        description="e.g. http://127.0.0.1:8000/metrics. Empty: MLOPS_SERVING_METRICS_URL; unset: error "
        "rate and p99 latency are not checked.",
        section=_ROLLOUT_SERVICE,
    ),
    "window_days": _rollout_number(
        "Online window (days)",
        "Days of served predictions (ending with the check's day) that are the evidence (default 3).",
        _ROLLOUT_WINDOW,
        integer=True,
        minimum=1,
        maximum=30,
    ),
    "max_auc_drop": _rollout_number(
        "Max ROC-AUC drop",
        "Roll back when @previous scores the champion's served flights better by more than this (default 0.02).",
        _ROLLOUT_AUC,
        minimum=0,
        maximum=0.5,
    ),
    "confidence": _rollout_number(
        "Bootstrap confidence",
        "... and a paired bootstrap puts the drop above zero with this confidence (default 0.95).",
        _ROLLOUT_AUC,
        minimum=0.5,
        maximum=0.999,
    ),
    "min_labelled": _rollout_number(
        "Min labelled flights",
        "Flights served by the champion with arrived labels needed before ROC-AUC counts (default 300).",
        _ROLLOUT_AUC,
        integer=True,
        minimum=50,
    ),
    "min_class_rows": _rollout_number(
        "Min flights per class",
        "Delayed and on-time flights needed each (default 30).",
        _ROLLOUT_AUC,
        integer=True,
        minimum=10,
    ),
    "min_requests": _rollout_number(
        "Min requests per version",
        "/predict requests measured for each version before its error rate or p99 counts (default 200).",
        _ROLLOUT_SERVICE,
        integer=True,
        minimum=50,
    ),
    "max_error_rate": _rollout_number(
        "Max error rate",
        "Roll back when the champion's 5xx share passes this (default 0.05).",
        _ROLLOUT_SERVICE,
        minimum=0.0001,
        maximum=1,
    ),
    "max_error_rate_increase": _rollout_number(
        "Max error-rate increase",
        "... or passes @previous's by more than this (default 0.01).",
        _ROLLOUT_SERVICE,
        minimum=0,
        maximum=1,
    ),
    "max_p99_ratio": _rollout_number(
        "Max p99 ratio",
        "Roll back when the champion's p99 is more than this times @previous's (default 1.5) ...",
        _ROLLOUT_SERVICE,
        minimum=1,
    ),
    "min_p99_increase_ms": _rollout_number(
        "Min p99 increase (ms)",
        "... and higher by at least this (default 5 ms).",
        _ROLLOUT_SERVICE,
        minimum=0,
    ),
    "allow_rollback": Param(
        None,
        type=["null", "boolean"],
        title="Allow rollback",
        description="Off: check and report only. Empty: MLOPS_ROLLOUT_ALLOW_ROLLBACK, else on.",
        section=_ROLLOUT_WINDOW,
    ),
}

# --- end ROLLOUT_PARAMS ----------------------------------------------------------------------------
