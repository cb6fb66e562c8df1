"""Every path of the lake layout (DESIGN.md "Lake layout"), built in one place.

No task, operator or domain module assembles a lake path by hand: it asks this module. Paths are
URIs under a root the caller passes (``settings.landing_uri`` or ``settings.lake_uri``, ``file://``
or ``s3://``); nothing here reads the configuration or touches storage.

==========================================================  ==========================================
path                                                         built by
==========================================================  ==========================================
``{landing}/<feed>/ds=YYYY-MM-DD/<feed>.csv``                :func:`landing_file`
``{lake}/curated/<feed>/ds=YYYY-MM-DD/data.parquet``         :func:`curated_file` (:func:`curated_root`)
``{lake}/quarantine/<feed>/ds=YYYY-MM-DD/``                  :func:`quarantine_dir` (+ ``<feed>.csv``,
                                                             ``validation.{html,json}``)
``{lake}/features/<feature_view>/ds=YYYY-MM-DD/data.parquet``  :func:`feature_file` (daily views)
``{lake}/features/<feature_view>/data.parquet``              :func:`static_feature_file`
``{lake}/features/aircraft_previous_leg/ds=.../data.parquet``  :func:`features_built_file` (a day's
                                                             features are all built)
``{lake}/predictions/ds=YYYY-MM-DD/data.parquet``            :func:`predictions_file`
``{lake}/predictions_online/ds=YYYY-MM-DD/part-....parquet``  :func:`predictions_online_dir`
``{lake}/reports/validation/ds=YYYY-MM-DD/``                 :func:`report_dir` (``VALIDATION``): flights
``{lake}/reports/validation/<feed>/ds=YYYY-MM-DD/``          :func:`validation_report_dir` (other feeds,
                                                             e.g. ``validation/weather``)
``{lake}/reports/drift/ds=YYYY-MM-DD/``                      :func:`report_dir` (``DRIFT``)
``{lake}/reports/drift/history.parquet``                     :func:`drift_history_file`
``{lake}/reports/drift/requests/ledger.json``                :func:`drift_ledger_file`
``{lake}/training/as_of=YYYY-MM-DD/<data key>/``             :func:`training_dir`
``{lake}/reports/rollout/metrics/<time_ns>.json``            :func:`rollout_metrics_dir` (the rollout
                                                             guard's scrapes of the service)
``{lake}/audit/<model>/<time_ns>-<id>.json``                 :func:`audit_dir` (the audit trail)
==========================================================  ==========================================

Predictions, the online log and drift reports belong to one model: the functions that build them
take ``model_dir``, the spec's :attr:`~mlops.spec.model.ModelSpec.lake_folder`. The flight-delay
spec's is ``""`` (the paths above, as DESIGN.md fixes them); every other model's live under
``{lake}/models/<model_dir>/`` (:func:`model_root`), e.g.
``{lake}/models/air_time/predictions/ds=YYYY-MM-DD/data.parquet``.

``tests/unit/test_layout.py`` holds these to DESIGN.md's table. The names of the published files
(what the UI may serve, :mod:`mlops.published`) are the constants below.
"""

from __future__ import annotations

from mlops import lake

#: The feed of the flight-delay model (a feed is a folder under landing/, curated/, quarantine/;
#: each feed's spec, :class:`mlops.spec.feed.FeedSpec`, names its own).
FLIGHTS = "flights"
#: The hourly weather feed (:mod:`mlops.weather.feed`).
WEATHER = "weather"

# Top-level folders of the lake.
CURATED = "curated"
QUARANTINE = "quarantine"
FEATURES = "features"
PREDICTIONS = "predictions"
PREDICTIONS_ONLINE = "predictions_online"
REPORTS = "reports"
TRAINING = "training"
AUDIT = "audit"
#: Where models other than the flight-delay classifier keep their predictions and reports.
MODELS = "models"

# Kinds of report under reports/.
VALIDATION = "validation"
DRIFT = "drift"
ROLLOUT = "rollout"

# File names.
DATA_FILE = "data.parquet"
VALIDATION_HTML = "validation.html"
VALIDATION_JSON = "validation.json"
DRIFT_HTML = "report.html"
DRIFT_JSON = "drift.json"
DRIFT_HISTORY = "history.parquet"
DRIFT_LEDGER = "requests/ledger.json"

#: The daily feature view ``materialize_features`` writes last for a day
#: (the flights feature set's last daily view, tested equal): its file says the day is built.
LAST_DAILY_VIEW = "aircraft_previous_leg"

#: The partition folder prefix: ``ds=YYYY-MM-DD``.
PARTITION_KEY = "ds"


def partition(ds: str) -> str:
    """``ds=YYYY-MM-DD``: the folder of one day."""
    return f"{PARTITION_KEY}={ds}"


def partition_day(uri: str) -> str | None:
    """The ``YYYY-MM-DD`` of the ``ds=`` folder in ``uri``, or None if it has none."""
    prefix = f"{PARTITION_KEY}="
    return next((part[len(prefix) :] for part in uri.split("/") if part.startswith(prefix)), None)


def landing_file_name(feed: str = FLIGHTS) -> str:
    """``<feed>.csv``: the raw export's name (in landing/ and in quarantine/)."""
    return f"{feed}.csv"


def landing_file(landing_root: str, ds: str, feed: str = FLIGHTS) -> str:
    """``{landing}/<feed>/ds=YYYY-MM-DD/<feed>.csv``: a day's raw export, as upstream writes it."""
    return lake.join(landing_root, feed, partition(ds), landing_file_name(feed))


def curated_root(lake_root: str, feed: str = FLIGHTS) -> str:
    """``{lake}/curated/<feed>``: every curated partition of ``feed``."""
    return lake.join(lake_root, CURATED, feed)


def curated_file(lake_root: str, ds: str, feed: str = FLIGHTS) -> str:
    """``{lake}/curated/<feed>/ds=YYYY-MM-DD/data.parquet``: a validated day."""
    return lake.join(curated_root(lake_root, feed), partition(ds), DATA_FILE)


def quarantine_dir(lake_root: str, ds: str, feed: str = FLIGHTS) -> str:
    """``{lake}/quarantine/<feed>/ds=YYYY-MM-DD``: a rejected batch and its validation report."""
    return lake.join(lake_root, QUARANTINE, feed, partition(ds))


def features_root(lake_root: str, view: str | None = None) -> str:
    """``{lake}/features`` or ``{lake}/features/<feature_view>`` (Feast's offline sources)."""
    base = lake.join(lake_root, FEATURES)
    return lake.join(base, view) if view else base


def feature_file(lake_root: str, view: str, ds: str) -> str:
    """``{lake}/features/<feature_view>/ds=YYYY-MM-DD/data.parquet``: a daily view's day."""
    return lake.join(features_root(lake_root, view), partition(ds), DATA_FILE)


def static_feature_file(lake_root: str, view: str) -> str:
    """``{lake}/features/<feature_view>/data.parquet``: a view without days (aircraft)."""
    return lake.join(features_root(lake_root, view), DATA_FILE)


def features_built_file(lake_root: str, ds: str) -> str:
    """The feature file whose presence says day ``ds``'s feature tables are all built."""
    return feature_file(lake_root, LAST_DAILY_VIEW, ds)


def model_root(lake_root: str, model_dir: str = "") -> str:
    """The root of one model's predictions and reports: the lake itself for ``model_dir=""``
    (the flight-delay spec), else ``{lake}/models/<model_dir>``."""
    if not model_dir:
        return lake_root
    if "/" in model_dir or model_dir in {".", ".."}:
        raise ValueError(f"model folder {model_dir!r}: a plain name (the spec's lake_folder)")
    return lake.join(lake_root, MODELS, model_dir)


def predictions_file(lake_root: str, ds: str, model_dir: str = "") -> str:
    """``{model root}/predictions/ds=YYYY-MM-DD/data.parquet``: batch predictions of a day."""
    return lake.join(model_root(lake_root, model_dir), PREDICTIONS, partition(ds), DATA_FILE)


def predictions_online_root(lake_root: str, model_dir: str = "") -> str:
    """``{model root}/predictions_online``: what ``mlops serve`` served."""
    return lake.join(model_root(lake_root, model_dir), PREDICTIONS_ONLINE)


def predictions_online_dir(lake_root: str, ds: str, model_dir: str = "") -> str:
    """``{model root}/predictions_online/ds=YYYY-MM-DD``: a day's served predictions (many parts)."""
    return lake.join(predictions_online_root(lake_root, model_dir), partition(ds))


def reports_root(lake_root: str, kind: str, model_dir: str = "") -> str:
    """``{lake}/reports/<kind>``, ``kind`` one of :data:`VALIDATION`, :data:`DRIFT` (drift
    reports are a model's: under its :func:`model_root`)."""
    if kind not in (VALIDATION, DRIFT):
        raise ValueError(f"unknown report kind {kind!r}: use {VALIDATION!r} or {DRIFT!r}")
    if kind == VALIDATION and model_dir:
        raise ValueError("validation reports belong to a feed, not a model: pass no model_dir")
    return lake.join(model_root(lake_root, model_dir), REPORTS, kind)


def report_dir(lake_root: str, kind: str, ds: str, model_dir: str = "") -> str:
    """``{root}/reports/<kind>/ds=YYYY-MM-DD``: a day's report (HTML + JSON)."""
    return lake.join(reports_root(lake_root, kind, model_dir), partition(ds))


def validation_report_dir(lake_root: str, ds: str, folder: str = VALIDATION) -> str:
    """``{lake}/reports/<folder>/ds=YYYY-MM-DD``: a feed's validation report of a day.

    ``folder`` is the feed spec's ``reports``: ``validation`` for the flights (their place before
    there were other feeds), ``validation/<feed>`` for the others.
    """
    if folder != VALIDATION and not folder.startswith(VALIDATION + "/"):
        raise ValueError(f"validation reports live under reports/{VALIDATION}/, not reports/{folder}/")
    if any(part in {"", ".", ".."} for part in folder.split("/")):
        raise ValueError(f"report folder {folder!r}: plain names separated by '/'")
    return lake.join(lake_root, REPORTS, folder, partition(ds))


def drift_history_file(lake_root: str, model_dir: str = "") -> str:
    """``{model root}/reports/drift/history.parquet``: one row per drift check."""
    return lake.join(reports_root(lake_root, DRIFT, model_dir), DRIFT_HISTORY)


def drift_ledger_file(lake_root: str, model_dir: str = "") -> str:
    """``{model root}/reports/drift/requests/ledger.json``: the storm guard's decisions."""
    return lake.join(reports_root(lake_root, DRIFT, model_dir), DRIFT_LEDGER)


def training_dir(lake_root: str, as_of: str, data_key: str) -> str:
    """``{lake}/training/as_of=YYYY-MM-DD/<data key>``: one training set per as-of and window."""
    return lake.join(lake_root, TRAINING, f"as_of={as_of}", data_key)


def audit_root(lake_root: str) -> str:
    """``{lake}/audit``: one folder per registered model (:mod:`mlops.models.audit`)."""
    return lake.join(lake_root, AUDIT)


def audit_dir(lake_root: str, model: str) -> str:
    """``{lake}/audit/<model>``: the model's audit events, one object each."""
    if not model or "/" in model or model in {".", ".."}:
        raise ValueError(f"model name {model!r}: a registered model name (no '/')")
    return lake.join(audit_root(lake_root), model)


def rollout_metrics_dir(lake_root: str) -> str:
    """``{lake}/reports/rollout/metrics``: the rollout guard's scrapes of ``/metrics``, one object each."""
    return lake.join(lake_root, REPORTS, ROLLOUT, "metrics")
