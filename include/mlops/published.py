"""The lake files the Airflow UI may serve, and the one way to read them.

The plugin (``plugins/mlops_plugin.py``) serves ``/mlops/reports/<path>`` and
``/mlops/quarantine/<path>``. It serves a file only when ``<path>`` is, in full, a name the
platform publishes (one pattern per kind of file, :data:`RULES`), never a path a user assembles:

==================  ===============================================================  ==============
folder              published names (``ds=YYYY-MM-DD`` a real date)                  written by
==================  ===============================================================  ==============
``reports``         ``validation/ds=.../validation.html`` and ``validation.json``    ingest_flights
``reports``         ``validation/weather/ds=.../validation.{html,json}``             ingest_weather
``reports``         ``drift/ds=.../report.html`` (Evidently) and ``drift.json``      monitor_drift
``quarantine``      ``flights/ds=.../flights.csv``, ``validation.html``, ``.json``   ingest_flights
``quarantine``      ``weather/ds=.../weather.csv``, ``validation.html``, ``.json``   ingest_weather
==================  ===============================================================  ==============

The feeds' rows come from their specs (:data:`mlops.spec.feed.FEEDS`): a registered feed's
reports and quarantine are served, under the rights of its ingest DAG (``ingest_<feed>``).

Not served: ``reports/drift/history.parquet`` and ``reports/drift/requests/ledger.json``, the
monitoring's own state (the lifecycle page shows what they hold), nor anything else in the lake.

The name is matched as the HTTP layer decoded it, once: a ``%``, a ``..``, an empty segment or an
absolute path cannot match, so no second decoding can turn it into another path. On a ``file://``
lake the folder's real path is resolved and the file must be exactly ``<folder>/<name>`` below it
(no symlink on the way, nothing outside); on ``s3://`` the key is ``<prefix>/<folder>/<name>``
with the same matched name. Each rule names the DAG whose runs publish the file: the plugin lets
a user read a file only when the auth manager lets them read that DAG's runs.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlops import lake, layout
from mlops.spec.feed import FeedSpec, registered_feeds

if TYPE_CHECKING:
    from pathlib import Path

#: Longest name accepted (the published ones are under 60 characters).
MAX_NAME = 200
_DS = layout.partition("(?P<ds>[0-9]{4}-[0-9]{2}-[0-9]{2})")


class NotPublished(LookupError):
    """The requested name is not one the platform publishes (or it resolves elsewhere)."""


@dataclass(frozen=True)
class Rule:
    """One kind of published file: ``folder/<pattern>``, written by the runs of ``dag_id``."""

    folder: str
    pattern: re.Pattern[str]
    dag_id: str
    #: The pattern as users read it (for error messages).
    shape: str
    #: File names of this rule whose HTML needs its own inline scripts (Evidently's reports).
    scripted: tuple[str, ...] = ()


def _rule(
    folder: str, subfolder: str, files: tuple[str, ...], dag_id: str, scripted: tuple[str, ...] = ()
) -> Rule:
    """``<folder>/<subfolder>/ds=YYYY-MM-DD/<one of files>``, names from :mod:`mlops.layout`."""
    names = "|".join(re.escape(name) for name in files)
    pattern = re.compile(f"{re.escape(subfolder)}/{_DS}/(?:{names})", re.ASCII)
    shape = f"{subfolder}/{layout.partition('YYYY-MM-DD')}/{{{','.join(files)}}}"
    return Rule(folder, pattern, dag_id, shape, scripted)


def _feed_rules(feed: FeedSpec) -> tuple[Rule, Rule]:
    """A feed's accepted-day report (``reports/<its reports folder>/ds=...``) and its quarantined
    batch with its report (``quarantine/<feed>/ds=...``), written by its ingest DAG."""
    return (
        _rule(layout.REPORTS, feed.reports, (layout.VALIDATION_HTML, layout.VALIDATION_JSON), feed.dag_id),
        _rule(
            layout.QUARANTINE,
            feed.name,
            (feed.landing_file_name(), layout.VALIDATION_HTML, layout.VALIDATION_JSON),
            feed.dag_id,
        ),
    )


#: Every file the UI serves, named by :mod:`mlops.layout` as its writers name them:
#: ``mlops.ingest.steps`` (each registered feed's validation report under ``Partition.reports``, the
#: batch and its report under ``Partition.quarantine``; :data:`mlops.spec.feed.FEEDS`) and the drift
#: check (its report and JSON under ``layout.report_dir(..., DRIFT, ds)``). A new published file
#: kind gets a rule here, and ``tests/dags/test_plugin_security.py`` checks the writers against them.
RULES: tuple[Rule, ...] = (
    *(rule for feed in registered_feeds() for rule in _feed_rules(feed)),
    _rule(
        layout.REPORTS,
        layout.DRIFT,
        (layout.DRIFT_HTML, layout.DRIFT_JSON),
        "monitor_drift",
        scripted=(layout.DRIFT_HTML,),
    ),
)
FOLDERS: tuple[str, ...] = tuple(dict.fromkeys(r.folder for r in RULES))

_MEDIA = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".csv": "text/csv; charset=utf-8",
}


@dataclass(frozen=True)
class Published:
    """A published file: ``{lake}/<folder>/<name>``."""

    folder: str
    name: str
    ds: str
    dag_id: str
    #: Its HTML runs inline scripts of its own (served in a sandbox that allows only those).
    scripted: bool

    @property
    def media_type(self) -> str:
        return _MEDIA[os.path.splitext(self.name)[1]]

    @property
    def is_html(self) -> bool:
        return self.name.endswith(".html")


def published(folder: str, name: str) -> Published:
    """The published file ``<folder>/<name>``, or :class:`NotPublished` saying what is served."""
    rules = [r for r in RULES if r.folder == folder]
    if not rules:
        raise NotPublished(f"{folder!r} is not a served folder: the UI serves {', '.join(FOLDERS)}")
    match = None
    if len(name) <= MAX_NAME:
        match = next(((r, m) for r in rules if (m := r.pattern.fullmatch(name))), None)
    if match is not None:
        rule, m = match
        try:
            dt.date.fromisoformat(m["ds"])
        except ValueError:
            match = None
    if match is None:
        shown = name if len(name) <= 80 else name[:80] + "..."
        shapes = "; ".join(r.shape for r in rules)
        raise NotPublished(
            f"{folder}/{shown!r} is not a file the platform publishes: {folder}/ serves only {shapes}"
        )
    rule, m = match
    return Published(folder, name, m["ds"], rule.dag_id, name.rsplit("/", 1)[-1] in rule.scripted)


def local_file(item: Published, lake_uri: str) -> Path:
    """The real path of ``item`` on a ``file://`` lake, checked to be ``<folder>/<name>`` exactly.

    Raises :class:`NotPublished` when a symlink (in the folder or below) would lead elsewhere.
    """
    root = lake.local_path(lake.join(lake_uri, item.folder)).resolve()
    path = root.joinpath(*item.name.split("/"))
    real = path.resolve()
    if real != path or not real.is_relative_to(root):
        raise NotPublished(
            f"{item.folder}/{item.name} leads to {real} through a symlink; the platform writes no "
            f"symlinks under {root}: remove it"
        )
    return real


def read(item: Published, lake_uri: str) -> bytes:
    """The bytes of ``item`` in the lake at ``lake_uri``.

    :class:`FileNotFoundError` when it has not been written (a missing S3 key included).
    """
    if lake.is_s3(lake_uri):
        try:
            return lake.read_bytes(lake.join(lake_uri, item.folder, item.name))
        except Exception as exc:
            code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
            if code in {"NoSuchKey", "404", "NotFound"}:
                raise FileNotFoundError(f"{item.folder}/{item.name} is not in {lake_uri}") from exc
            raise
    path = local_file(item, lake_uri)
    # O_NOFOLLOW: a symlink swapped in after the check above is refused, not followed.
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as fh:
        return fh.read()
