"""The feature-set spec: the point-in-time features a team builds from its curated feeds, and how.

A :class:`FeatureSetSpec` is plain data plus functions named by import path (``module:function``),
like :mod:`mlops.spec.feed` and :mod:`mlops.spec.model`: importing one is cheap (no pandas, no
Feast), so a DAG file can name a feature set as a string and a task resolves it when it runs. The
feature stage (:mod:`mlops.features.compute`: the build loop over the set's views;
:mod:`mlops.features.feature_store`: materialize, historical and online retrieval, the training
frame; the ``materialize_features`` DAG built by :mod:`mlops.airflow.features_dag`) takes a feature
set and never names one. ``docs/specs.md`` ("Add your own features") explains every field; the
shipped set is the flights one (:mod:`mlops.flight_delay.features`).

What a spec says:

* **names** - ``name`` (what models, DAGs and runs name it by);
* **inputs** - ``feeds``: the curated feeds it reads; ``driving_feed``: the one whose days are
  built (a day without its curated partition is skipped); ``reads_after``: for another feed, how
  many days after its day ``D`` read it (a new partition of it rebuilds those days);
  ``history_days``: the curated days before a day its tables read (the longest window; a late
  partition rebuilds the built days up to that many days after it);
* **views** - :class:`View`: name, entity join key, feature columns, daily (partitioned
  ``{lake}/features/<view>/ds=YYYY-MM-DD/``) or static (``{lake}/features/<view>/data.parquet``);
* **builders** - ``inputs``: ``(days, settings) -> extra inputs`` read once per build (e.g. the
  weather observations); ``build_day``: ``(history, ds, inputs) -> {view: table}`` (pure: frames
  in, frames out); ``build_static``: ``(history, settings) -> {view: table}`` (reference tables,
  dated ``static_since``; it may also write the set's own side tables);
* **entities** - ``entity_frame``: curated rows -> Feast entity rows (``event_timestamp`` at the
  row's prediction time and every join key of ``join_keys``), the same for training and serving;
  ``entity_columns``: the curated columns it (and ``model_frame``) need besides the id and time;
* **model inputs** - ``model_frame``: ``(rows, feast_values) -> model features`` (request-time and
  derived features added by the same code offline and online); ``features``: every column it
  returns, in order; ``categorical_dtypes``: ``() -> {column: CategoricalDtype}``;
* **rows** - ``id_column``, ``time_column`` (the prediction time), ``day_column``;
* **training gate** - ``training_gate``: ``(frame, features, settings, day_column) -> (frame,
  record)``, what a training set must leave out (and say so, ``manifest[gate_key]``); ``""``: none;
* **Feast** - ``repo``: the Feast repo of its views and feature services (default ``feature_repo/``
  of the checkout, project ``flight_delay``); a set with its own repo has its own ``project``.

Lookup: :func:`feature_set` takes a spec, a registered name (:data:`FEATURE_SETS`) or an import path
``package.module:ATTRIBUTE``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlops.spec import lookup, resolve

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pandas as pd

    from mlops.config import Settings

#: Registered feature sets by name -> import path. A team adds one line here, or passes its import path.
FEATURE_SETS: dict[str, str] = {
    "flights": "mlops.flight_delay.features:SPEC",
}
#: The feature set of every caller that names none (what the pre-spec feature stage built).
DEFAULT = "flights"


@dataclass(frozen=True)
class View:
    """One Feast feature view of a set: its entity join key and feature columns.

    A daily view is written per day (``{lake}/features/<name>/ds=YYYY-MM-DD/data.parquet``, every
    row's event time within ``partition_event_span`` of the day's local midnight); a static one is
    one table (``{lake}/features/<name>/data.parquet``), rebuilt whole by every build.
    """

    name: str
    join_key: str
    features: tuple[str, ...]
    daily: bool = True
    #: Feature columns stored as text (the others are float64).
    text_features: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureSetSpec:
    """What a team supplies for one feature set (see the module docstring and ``docs/specs.md``)."""

    name: str
    description: str
    #: Curated feeds read (names of :data:`mlops.spec.feed.FEEDS` or import paths); the first is
    #: ``driving_feed`` unless set.
    feeds: tuple[str, ...]
    history_days: int
    views: tuple[View, ...]
    #: ``module:function``: ``(history, ds, inputs) -> {daily view: table}``.
    build_day: str
    #: ``module:function``: curated rows -> entity rows (``event_timestamp`` + ``join_keys``).
    entity_frame: str
    #: ``module:function``: ``(rows, feast_values) -> model features`` (aligned with ``rows``).
    model_frame: str
    #: Every column ``model_frame`` returns, in order.
    features: tuple[str, ...]
    #: ``module:function``: ``() -> {column: pandas.CategoricalDtype}``.
    categorical_dtypes: str
    #: Curated columns ``entity_frame``/``model_frame`` read, besides the id and time columns.
    entity_columns: tuple[str, ...] = ()
    #: The feed whose days are built; ``""``: the first of ``feeds``.
    driving_feed: str = ""
    #: Feed -> days after its day ``D`` whose tables read it (``D`` .. ``D + n``).
    reads_after: Mapping[str, int] = field(default_factory=dict)
    #: ``module:function``: ``(days, settings) -> inputs`` given to ``build_day``; ``""``: ``None``.
    inputs: str = ""
    #: ``module:function``: ``(history, settings) -> {static view: table}``; ``""``: none.
    build_static: str = ""
    #: The event time of static rows (materialization of static views starts here).
    static_since: str = "1970-01-01T00:00:00Z"
    #: Every row of a daily partition ``ds`` has its event time in [local midnight of ds, + this).
    partition_event_span: timedelta = timedelta(days=3)
    #: ``module:function``: ``(frame, features, settings, day_column) -> (frame, record)``; ``""``: none.
    training_gate: str = ""
    #: The training manifest's key of the gate's record.
    gate_key: str = "gate"
    id_column: str = "id"
    time_column: str = "event_time"
    day_column: str = "ds"
    #: Its own Feast repo folder (relative to the checkout, or absolute) with the same four modules
    #: as ``feature_repo/`` (entities, sources, views, services) and a ``feature_store.yaml``;
    #: ``""``: ``feature_repo/``. With its own repo the set has its own project (``project``, else
    #: its name) and embedded stores under ``{feast}/<name>/``.
    repo: str = ""
    project: str = ""
    #: The feature service of every view (what retrieval uses when given none); ``""``: the
    #: platform's default (``mlops.config.FEATURE_SERVICE``).
    feature_service: str = ""
    #: ``module:ATTRIBUTE`` of a spec that is not in :data:`FEATURE_SETS`.
    import_path: str = ""

    # -- derived ------------------------------------------------------------------------------------

    @property
    def ref(self) -> str:
        """How a DAG or a run names the set: the registered name, else the import path."""
        if self.name in FEATURE_SETS:
            return self.name
        if not self.import_path:
            raise ValueError(
                f"feature set {self.name!r} is neither in mlops.spec.features.FEATURE_SETS nor has an "
                "import_path: set import_path='package.module:SPEC' so other processes can load it"
            )
        return self.import_path

    @property
    def driving(self) -> str:
        """The feed whose days are built."""
        return self.driving_feed or self.feeds[0]

    @property
    def daily_views(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.views if v.daily)

    @property
    def static_views(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.views if not v.daily)

    @property
    def join_keys(self) -> tuple[str, ...]:
        """Every entity join key, in the order of first use by ``views``."""
        return tuple(dict.fromkeys(v.join_key for v in self.views))

    def view(self, name: str) -> View:
        for v in self.views:
            if v.name == name:
                return v
        raise ValueError(
            f"feature set {self.name!r} has no view {name!r} (views: {[v.name for v in self.views]})"
        )

    def feast_features(self) -> list[str]:
        """Every Feast feature column of the set's views, in view order."""
        return [f for v in self.views for f in v.features]

    # -- the supplied functions (resolved on first use) ---------------------------------------------

    def day_tables(self, history: pd.DataFrame, ds: str, inputs: Any) -> dict[str, pd.DataFrame]:
        return _function(self.build_day)(history, ds, inputs)

    def static_tables(self, history: pd.DataFrame, settings: Settings) -> dict[str, pd.DataFrame]:
        return _function(self.build_static)(history, settings) if self.build_static else {}

    def read_inputs(self, days: list[str], settings: Settings) -> Any:
        return _function(self.inputs)(days, settings) if self.inputs else None

    def entities(self, rows: pd.DataFrame) -> pd.DataFrame:
        return _function(self.entity_frame)(rows)

    def assemble(self, rows: pd.DataFrame, feast_values: pd.DataFrame) -> pd.DataFrame:
        return _function(self.model_frame)(rows, feast_values)

    def dtypes(self) -> dict[str, Any]:
        return _function(self.categorical_dtypes)()

    def gate(
        self, frame: pd.DataFrame, features: Any, settings: Settings | None, day_column: str
    ) -> tuple[pd.DataFrame, dict[str, Any] | None]:
        """``training_gate`` of a training frame; without one the frame and ``None``."""
        if not self.training_gate:
            return frame, None
        return _function(self.training_gate)(frame, features, settings, day_column)


@functools.cache
def _function(path: str) -> Callable[..., Any]:
    return resolve(path)


def feature_set(ref: FeatureSetSpec | str | None = None) -> FeatureSetSpec:
    """The set ``ref`` names: a spec, a name of :data:`FEATURE_SETS`, or ``module:ATTRIBUTE``
    (:func:`mlops.spec.lookup`). ``None`` is :data:`DEFAULT`."""
    return lookup(ref, FeatureSetSpec, FEATURE_SETS, DEFAULT, "docs/specs.md, 'Add your own features'")
