"""The model spec: everything a team supplies for its own model, and nothing the platform guesses.

A :class:`ModelSpec` is plain data (plus a few functions named by import path): the training,
registry gate, monitoring and scoring code take one as an argument and never name a model.
``docs/specs.md`` ("Add your own model") explains every field; the flight-delay classifier
(:mod:`mlops.flight_delay.model`) and the air-time regressor (:mod:`mlops.air_time.model`) are
the two shipped specs.

What a spec says:

* **names** - the spec's own ``name`` (what operators and DAGs take), the registered model, the
  MLflow experiment, the Feast feature service and the feature set it belongs to
  (:mod:`mlops.spec.features`);
* **the rows** - the id, time and day columns of a row; the label column, its definition
  (``label_of``: the curated frame -> the label, null when unknown) and its dtype; the model's
  features (in order) and the source of a labelled frame (``frame``);
* **the task** - :data:`BINARY` or :data:`REGRESSION` (or a team's own :class:`Task`): the
  XGBoost objective and early-stopping metrics, the metric function and the monitoring
  performance function;
* **the model factory** - :class:`Estimator`: the params form's defaults (``TrainParams`` field
  overrides), the hyperparameter search ranges, monotone constraints;
* **the gate** - :class:`Gate`: the metric the challenger must win on (and its direction), the
  tie-break of the search;
* **checks** - :class:`LabelChecks` (training-set label checks) and :class:`Behaviour`
  (behavioural checks: fields to ignore, expected directions, the prediction range);
* **monitoring** - :class:`Monitoring`: features to ignore, the performance metric, the allowed
  degradation, the monitoring experiment;
* **serving** - the online request schema (field -> JSON type), the online service's adapter
  (``online``, :class:`mlops.serving.online.OnlineSpec`) and the batch output columns.

Lookup: :func:`model_spec` takes a spec, a registered name (:data:`SPECS`) or an import path
``package.module:ATTRIBUTE``; importing a spec module is cheap (no pandas, no XGBoost), so an
operator can resolve one in ``execute()`` and a DAG file can name one as a string.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.spec import lookup, resolve

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import numpy as np
    import pandas as pd

#: Registered specs by name -> import path. A team adds one line here, or passes its import path.
SPECS: dict[str, str] = {
    "flight_delay": "mlops.flight_delay.model:SPEC",
    "air_time": "mlops.air_time.model:SPEC",
}


@dataclass(frozen=True)
class Task:
    """A kind of learning task: the XGBoost objective, its metrics and how it is evaluated.

    ``evaluate`` and ``performance`` are import paths (``module:function``) so that a spec stays
    cheap to import: ``evaluate(labels, predictions) -> {metric: value}`` scores a holdout;
    ``performance(holdout, current, params, timestamp, spec)`` is the monitoring performance step
    (:mod:`mlops.monitoring.statistics`).
    """

    name: str
    objective: str
    #: XGBoost ``eval_metric``; early stopping watches the last one.
    eval_metric: tuple[str, ...]
    evaluate: str
    performance: str
    #: Bounds every prediction must lie in (``None``: unbounded); a behavioural check.
    prediction_range: tuple[float | None, float | None] = (None, None)


BINARY = Task(
    name="binary",
    objective="binary:logistic",
    eval_metric=("logloss", "auc"),
    evaluate="mlops.training.metrics:binary_metrics",
    performance="mlops.monitoring.statistics:classification_performance",
    prediction_range=(0.0, 1.0),
)
REGRESSION = Task(
    name="regression",
    objective="reg:squarederror",
    eval_metric=("rmse", "mae"),
    evaluate="mlops.training.metrics:regression_metrics",
    performance="mlops.monitoring.statistics:regression_performance",
)

#: Search ranges of the hyperparameters (what the flight-delay search has always drawn from):
#: ``("int", lo, hi)`` integers in [lo, hi); ``("log10", lo, hi, digits)`` 10**uniform(lo, hi)
#: rounded; ``("uniform", lo, hi, digits)``; ``("choice", (values...))``. Drawn in this order from
#: one seeded RNG.
DEFAULT_SEARCH: dict[str, tuple[Any, ...]] = {
    "max_depth": ("int", 3, 10),
    "learning_rate": ("log10", -1.6, -0.7, 4),
    "min_child_weight": ("choice", (1.0, 2.0, 5.0, 10.0, 20.0)),
    "subsample": ("uniform", 0.6, 1.0, 3),
    "colsample_bytree": ("uniform", 0.5, 1.0, 3),
    "reg_lambda": ("log10", -0.5, 1.3, 3),
}


@dataclass(frozen=True)
class Estimator:
    """The model factory: the params form's defaults and the search ranges of an XGBoost model."""

    #: ``TrainParams`` fields whose default differs for this model (window, hyperparameters, thresholds).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search: Mapping[str, tuple[Any, ...]] = field(default_factory=lambda: dict(DEFAULT_SEARCH))
    #: XGBoost monotone constraints by feature (+1 increasing, -1 decreasing).
    monotone: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Gate:
    """What a challenger must win on: ``metric`` on the shared holdout, in its direction.

    The search picks its best candidate on the same metric (validation days), ties broken by
    ``tiebreak`` (lower is better).
    """

    metric: str
    higher_is_better: bool
    tiebreak: str

    def better(self, ours: float, theirs: float, margin: float = 0.0) -> bool:
        """True when ``ours`` beats ``theirs`` by at least ``margin`` in the metric's direction."""
        return ours >= theirs + margin if self.higher_is_better else ours <= theirs - margin

    def sort_key(self, value: float) -> float:
        """A key that sorts the best value first."""
        return -value if self.higher_is_better else value


@dataclass(frozen=True)
class LabelChecks:
    """The training set's label checks (:mod:`mlops.training.validation`).

    ``mean_range``: bounds of the label's mean in the train and holdout parts; ``None`` takes them
    from the params form (``min_positive_rate`` / ``max_positive_rate``, a classifier's delayed
    rate). ``value_range``: bounds of every label value (``None``: unbounded).
    """

    mean_name: str = "positive rate"
    mean_range: tuple[float, float] | None = None
    value_range: tuple[float | None, float | None] = (None, None)


@dataclass(frozen=True)
class Behaviour:
    """Behavioural checks (Made With ML): what must not matter, and what must move predictions.

    ``irrelevant_fields``: columns whose shuffling must change no prediction. ``directions``:
    feature -> +1/-1, the mean prediction must not move the other way between the feature's 10th
    and 90th percentile; with ``monotonic`` the mean prediction must also not move the other way
    between any two of its deciles.
    """

    irrelevant_fields: tuple[str, ...] = ()
    directions: Mapping[str, int] = field(default_factory=dict)
    monotonic: tuple[str, ...] = ()


@dataclass(frozen=True)
class Monitoring:
    """Drift and performance monitoring of the champion (:mod:`mlops.monitoring`)."""

    #: MLflow experiment of the daily checks.
    experiment: str
    #: Features whose window distribution differs from the reference by construction.
    ignore_features: tuple[str, ...] = ()
    #: The performance metric compared with the champion's holdout (a key of the task's metrics).
    metric: str = "roc_auc"
    higher_is_better: bool = True
    #: A relative degradation (``mae`` 15% above the holdout's), or ``None`` for the absolute
    #: ``DriftParams.max_auc_drop`` (the classifier's ROC-AUC drop).
    max_relative_degradation: float | None = None
    #: ``module:function``, curated rows -> when each row's label becomes known (UTC; NaT: never);
    #: ``""``: when the row itself is (its ``time_column``).
    label_known_at: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """What a team supplies for one model (see the module docstring and ``docs/specs.md``)."""

    name: str
    model_name: str
    experiment: str
    description: str
    task: Task
    label: str
    #: The label's definition in words (model card, docs).
    label_doc: str
    #: ``module:function``: curated frame -> label series (null when unknown: such rows are
    #: neither trained nor evaluated on).
    label_of: str
    feature_service: str
    #: Model inputs, in order (a subset of what ``frame`` returns).
    features: tuple[str, ...]
    #: ``module:function``: ``(spec, start, end, settings) -> frame`` of the labelled rows with a
    #: scheduled time in [start, end): id, time and day columns, the label, then ``features``.
    frame: str
    estimator: Estimator
    gate: Gate
    label_checks: LabelChecks
    behaviour: Behaviour
    monitoring: Monitoring
    #: Online request schema: field -> JSON type ("string", "integer", "number", "date-time").
    request_fields: Mapping[str, str]
    #: The prediction's column in batch output, and every column batch scoring writes.
    prediction_column: str
    batch_columns: tuple[str, ...]
    label_dtype: str = "float64"
    #: Curated feeds whose partitions a training set reads (its lineage: rows, hashes).
    feeds: tuple[str, ...] = ("flights",)
    #: The feature set its Feast features come from (:mod:`mlops.spec.features`: a name of
    #: ``FEATURE_SETS`` or ``module:SPEC``): what ``feast_frame`` builds, what the training gate and
    #: a saved training set's categories are.
    feature_set: str = "flights"
    id_column: str = "flight_id"
    time_column: str = "sched_dep_ts"
    day_column: str = "ds"
    #: ``module:ATTRIBUTE`` of a spec that is not in :data:`SPECS` (how another process finds it).
    import_path: str = ""
    #: The folder of this model's predictions, online log and drift reports under
    #: ``{lake}/models/`` (:func:`mlops.layout.model_root`); ``None``: the spec's ``name``. The
    #: flight-delay spec sets ``""``: its paths are DESIGN.md's (``{lake}/predictions/...``).
    lake_dir: str | None = None
    #: ``module:ATTRIBUTE`` of the spec's :class:`mlops.serving.online.OnlineSpec` (``mlops serve
    #: --spec``): the request item, its entity keys and features; ``""``: not served online.
    online: str = ""

    # -- derived ------------------------------------------------------------------------------------

    @property
    def ref(self) -> str:
        """How runs record the spec and :func:`model_spec` finds it again: the registered name,
        else the import path."""
        if self.name in SPECS:
            return self.name
        if not self.import_path:
            raise ValueError(
                f"model spec {self.name!r} is neither in mlops.spec.model.SPECS nor has an "
                "import_path: set import_path='package.module:SPEC' so other processes can load it"
            )
        return self.import_path

    @property
    def lake_folder(self) -> str:
        """``lake_dir``, or the spec's name when unset (what :mod:`mlops.layout` takes as ``model_dir``)."""
        return self.name if self.lake_dir is None else self.lake_dir

    @property
    def meta_columns(self) -> tuple[str, ...]:
        """Columns of a training frame that are not model inputs (besides the label)."""
        return (self.id_column, self.time_column, self.day_column)

    def evaluate(
        self, labels: Sequence[float] | np.ndarray, predictions: Sequence[float] | np.ndarray
    ) -> dict[str, float]:
        """The task's metrics of ``predictions`` against ``labels``."""
        return _function(self.task.evaluate)(labels, predictions)

    def labels(self, curated: pd.DataFrame) -> pd.Series:
        """The label of every curated row (null when unknown)."""
        return _function(self.label_of)(curated)

    def build_frame(self, start: Any, end: Any, settings: Any = None) -> pd.DataFrame:
        """The labelled rows of [start, end) with their features (``frame``)."""
        return _function(self.frame)(self, start, end, settings)

    def as_dict(self) -> dict[str, Any]:
        """What a run records about its spec (MLflow tags, lineage)."""
        return {
            "name": self.name,
            "model_name": self.model_name,
            "experiment": self.experiment,
            "task": self.task.name,
            "label": self.label,
            "feature_service": self.feature_service,
            "gate_metric": self.gate.metric,
            "gate_higher_is_better": self.gate.higher_is_better,
        }


@functools.cache
def _function(path: str) -> Callable[..., Any]:
    return resolve(path)


def model_spec(ref: ModelSpec | str | None = None) -> ModelSpec:
    """The spec ``ref`` names: a spec, a name of :data:`SPECS`, or ``module:ATTRIBUTE``
    (:func:`mlops.spec.lookup`).

    ``None`` is the flight-delay spec (what every pre-spec caller meant).
    """
    return lookup(ref, ModelSpec, SPECS, "flight_delay", "docs/specs.md, 'Add your own model'")


def spec_for_model(model_name: str) -> ModelSpec:
    """The registered spec (:data:`SPECS`) whose registered model is ``model_name``.

    How the registry gate finds a model's label, metrics and gate direction from the name it is
    given; a model without a registered spec is an error naming the known ones.
    """
    known = {}
    for name in SPECS:
        spec = model_spec(name)
        if spec.model_name == model_name:
            return spec
        known[spec.model_name] = name
    raise ValueError(
        f"no model spec registers the model {model_name!r} (known: {sorted(known)}): add the spec "
        "to mlops.spec.model.SPECS (docs/specs.md, 'Add your own model')"
    )
