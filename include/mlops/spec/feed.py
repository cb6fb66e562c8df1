"""The feed spec: everything a team supplies for one upstream feed, and nothing the platform guesses.

A :class:`FeedSpec` is plain data plus a few functions named by import path, so importing a spec
is cheap (no pandas, no Great Expectations) and an operator can resolve one in ``execute()`` from
the name a DAG file passes as a string. The ingest package (landing -> validation -> curated or
quarantine), the simulator, the GX operator and the lake layout take a spec; they never name a
feed. ``docs/feeds.md`` ("Add your own feed") explains every field; the shipped feeds are the
flights (:mod:`mlops.flight_delay.feed`) and the hourly weather (:mod:`mlops.weather.feed`).

What a spec says:

* **names** - ``name``: the feed's folder under ``landing/``, ``curated/`` and ``quarantine/`` and
  the stem of its raw export (``{landing}/<name>/ds=YYYY-MM-DD/<name>.csv``); the ingest DAG id,
  the curated asset and the landing asset;
* **the raw export** - its format (CSV text, as upstream writes it) and its columns with the pandas
  dtype a reader parses each with (``raw_columns``);
* **validation** - ``suite``: ``module:function`` returning the feed's
  :class:`mlops.ingest.validation.Suite` (the Great Expectations suite builder, its per-day
  parameters and how failures are put in words). The suite is also the **semantic checks hook**:
  what the feed's values mean (relations between columns, a normal day's shape) is added by the
  feed's own package as table-level expectations around plain-pandas findings functions
  (:func:`mlops.ingest.expectations.findings_metric` and
  :func:`~mlops.ingest.expectations.findings_result`), worded by the suite's ``describers``
  (``docs/feeds.md``, "Semantic checks: the hook"); nothing in :mod:`mlops.ingest` knows them;
* **normalization** - ``normalize``: ``module:function``, raw frame -> curated frame with exactly
  ``curated_columns`` (pure and deterministic);
* **the partition key** - ``partition_key``: the curated column holding the partition day
  (``YYYY-MM-DD``); a curated partition holds that one day only;
* **where its validation reports go** - ``reports``: the folder under ``{lake}/reports/``;
* **upstream, simulated** - ``replay``: ``module:function``, target date -> the day's raw frame
  (the simulator writes it), and ``faults``: ``module:ATTRIBUTE``, the defects it can inject.

Lookup: :func:`feed_spec` takes a spec, a registered name (:data:`FEEDS`) or an import path
``package.module:ATTRIBUTE``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops import layout
from mlops.spec import lookup, resolve

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pandas as pd

    from mlops.ingest.validation import Suite

#: Registered feeds by name -> import path. A team adds one line here, or passes its import path.
FEEDS: dict[str, str] = {
    "flights": "mlops.flight_delay.feed:SPEC",
    "weather": "mlops.weather.feed:SPEC",
}


@dataclass(frozen=True)
class FeedSpec:
    """What a team supplies for one feed (see the module docstring and ``docs/feeds.md``)."""

    name: str
    #: Human name, capitalized ("Flights"): report titles, messages.
    title: str
    description: str
    #: Raw export columns, in order, with the pandas dtype a reader should parse each with.
    raw_columns: Mapping[str, str]
    #: Curated partition columns with their pandas dtypes (``normalize`` returns exactly these).
    curated_columns: Mapping[str, str]
    #: ``module:function`` -> the feed's :class:`mlops.ingest.validation.Suite`.
    suite: str
    #: ``module:function``: raw frame -> curated frame (pure, deterministic, sorted).
    normalize: str
    #: ``module:function``: ``datetime.date`` -> the day's raw frame, as upstream would export it.
    replay: str
    #: ``module:ATTRIBUTE``: ``{fault name: (description, function(frame, ds) -> bytes)}``.
    faults: str
    #: Folder of its validation reports under ``{lake}/reports/``.
    reports: str
    #: The curated column that holds the partition day.
    partition_key: str = "ds"
    #: ``module:ATTRIBUTE`` of a spec that is not in :data:`FEEDS` (how another process finds it).
    import_path: str = ""

    # -- names --------------------------------------------------------------------------------------

    @property
    def dag_id(self) -> str:
        """The ingest DAG: ``ingest_<name>``."""
        return f"ingest_{self.name}"

    @property
    def asset(self) -> str:
        """The curated asset: ``curated_<name>``."""
        return f"curated_{self.name}"

    @property
    def landing_asset(self) -> str:
        """The landing asset the simulator emits: ``<name>_landing``."""
        return f"{self.name}_landing"

    @property
    def ref(self) -> str:
        """How a DAG or a run names the spec: the registered name, else the import path."""
        if self.name in FEEDS:
            return self.name
        if not self.import_path:
            raise ValueError(
                f"feed spec {self.name!r} is neither in mlops.spec.feed.FEEDS nor has an import_path: "
                "set import_path='package.module:SPEC' so other processes can load it"
            )
        return self.import_path

    # -- paths (mlops.layout) -----------------------------------------------------------------------

    def landing_file(self, landing_root: str, ds: str) -> str:
        """``{landing}/<name>/ds=YYYY-MM-DD/<name>.csv``."""
        return layout.landing_file(landing_root, ds, self.name)

    def landing_file_name(self) -> str:
        return layout.landing_file_name(self.name)

    def curated_file(self, lake_root: str, ds: str) -> str:
        """``{lake}/curated/<name>/ds=YYYY-MM-DD/data.parquet``."""
        return layout.curated_file(lake_root, ds, self.name)

    def curated_root(self, lake_root: str) -> str:
        return layout.curated_root(lake_root, self.name)

    def quarantine_dir(self, lake_root: str, ds: str) -> str:
        """``{lake}/quarantine/<name>/ds=YYYY-MM-DD``."""
        return layout.quarantine_dir(lake_root, ds, self.name)

    def report_dir(self, lake_root: str, ds: str) -> str:
        """``{lake}/reports/<reports>/ds=YYYY-MM-DD``: an accepted day's validation report."""
        return layout.validation_report_dir(lake_root, ds, self.reports)

    # -- the supplied functions (resolved on first use) ---------------------------------------------

    def build_suite(self) -> Suite:
        return _function(self.suite)()

    def normalized(self, raw: pd.DataFrame) -> pd.DataFrame:
        return _function(self.normalize)(raw)

    def replay_day(self, target: Any) -> pd.DataFrame:
        return _function(self.replay)(target)

    def fault_table(self) -> Mapping[str, tuple[str, Callable[[pd.DataFrame, str], bytes]]]:
        return resolve(self.faults)


@functools.cache
def _function(path: str) -> Callable[..., Any]:
    return resolve(path)


def feed_spec(ref: FeedSpec | str | None = None) -> FeedSpec:
    """The spec ``ref`` names: a spec, a name of :data:`FEEDS`, or ``module:ATTRIBUTE``
    (:func:`mlops.spec.lookup`).

    ``None`` is the flights feed (what every pre-spec caller meant).
    """
    return lookup(ref, FeedSpec, FEEDS, "flights", "docs/feeds.md, 'Add your own feed'")


def registered_feeds() -> list[FeedSpec]:
    """Every feed of :data:`FEEDS` (the published-files allowlist serves their reports)."""
    return [feed_spec(name) for name in FEEDS]
